"""The report's learning-rate section: loss against lr per size, each size's chosen lr, the lr law.

    report_section(ctx)  -> blocks for analysis.report (registered with analysis.report_blocks.register); None unless some size was trained
                            at more than one lr (an lr sweep: python sweep.py +grid=lr)

A pure function of the runs table, through analysis/laws/lr.py: the same optima and law the planner's
grid.lr_from uses (a swept size takes its own optimum, other sizes the law), so what the report shows is
what a later sweep will train with.
"""
from __future__ import annotations

import math
import warnings

import pandas as pd

from analysis.laws import lr as lr_law
from analysis.laws.common import FitError
from analysis.report_blocks import register

TITLE = "Learning-rate sweep"
PLANNER_N = "params_nonembedding"      # the N sweeps.grids.lr_from fits the law in


def table(optima: pd.DataFrame, law) -> pd.DataFrame:
    out = pd.DataFrame({"N": optima["N"].map(lambda x: f"{x:.3g}"), "D": optima["D"].map(lambda x: f"{x:.3g}"),
                        "lrs tried": [f"{len(t)}: {t[0]:.3g}..{t[-1]:.3g}" for t in optima["lrs"]],
                        "best lr tried": optima["lr_best"].map(lambda x: f"{x:.3g}"),
                        "its loss": optima["loss_best"].map(lambda x: f"{x:.4f}"),
                        "chosen lr": optima["lr_opt"].map(lambda x: f"{x:.3g}"), "how": optima["method"]})
    if law is not None:
        out["lr law"] = [f"{law(n):.3g}" for n in optima["N"]]
    out["at edge"] = optima["edge"].map(lambda e: {"high": "yes: top", "low": "yes: bottom"}.get(e, e or "no"))
    return out


@register
def report_section(ctx):
    from analysis import plots
    from analysis import report_blocks as report
    runs, cfg = ctx.runs, ctx.config
    if not lr_law.has_lr_sweep(runs, cfg):
        return None
    curves, optima = lr_law.curves(runs, cfg), lr_law.optima(runs, cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # the law's notes are shown below, not printed
        try:
            law, why = lr_law.fit(runs, cfg), ""
        except FitError as e:
            law, why = None, str(e)
    out = [report.Heading(TITLE),
           report.Para(f"{len(optima)} size(s) were trained at 2 or more learning rates. Each size's chosen lr is "
                       "the vertex of a parabola in log lr through the best lr tried and its two neighbours (it "
                       "interpolates between them and never extrapolates); where the best lr tried is the grid's "
                       "smallest or largest it is kept and flagged, since the loss may keep falling past it. "
                       "`python sweep.py +grid=chinchilla grid.lr_from=<this sweep>` trains each swept size at its "
                       "chosen lr and any other size at the lr law's."),
           report.Figure("lr_sweep", plots.lr_sweep(curves, optima, law, n_label=f"N ({cfg.n_col})"),
                         "Left: final loss against lr per size, the chosen lr starred. Right: the chosen lr against N "
                         "with the lr law and its bootstrap band."),
           report.Table(table(optima, law), f"Per size: the lrs tried and the chosen lr (N = {cfg.n_col})")]
    if law is not None and len(law.points) > 2:   # through 2 points a line has no residual to speak of
        out.append(report.Para(f"**lr law:** {law.summary()}; the interval resamples sizes. RMS log residual "
                               f"{law.rms_log_residual:.3f}: the swept sizes' optima lie about "
                               f"{100 * (math.exp(law.rms_log_residual) - 1):.0f}% from the law."))
    elif law is not None:
        out.append(report.Para(f"**lr law:** {law.summary()}."))
    else:
        out.append(report.Para(f"**lr law not fitted:** {why}"))
    if cfg.n_col != PLANNER_N:
        out.append(report.Para(f"N here is `{cfg.n_col}`; the planner fits the same law in `{PLANNER_N}`, so its "
                               "exponent differs from this one."))
    notes = [n for n in optima["note"] if n] + [w for w in (law.warnings if law else []) if "size left out" not in w]
    out += [report.Para(f"**Warning:** {n}") for n in notes]
    return out
