"""The report's downstream section: per task, accuracies with standard errors, the two-step law (task loss from
(N, D) or C, accuracy from task loss), and its prediction of the largest budget from the smaller ones.

    report_section(ctx) -> blocks (registered in analysis.report_blocks.SECTIONS when this module is imported;
                           None when the runs carry no downstream columns)

The fits come from ctx.fits["downstream"] (analysis.report.build_context fits them with the other laws, so
laws.json carries them), or are made here for a context built without them.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.laws import downstream
from analysis.laws.common import FitError
from analysis.report_blocks import Context, Figure, Heading, Para, Table, register

TITLE = "Downstream tasks: accuracy, and the accuracy a budget will reach"
CONTAMINATION_FILE = "downstream_contamination.json"   # harness.downstream_tasks.overlap.FILE (analysis may not import
                                                       # harness code; tests/test_downstream_laws.py checks they agree)
MAX_PANELS = 8


def fits_of(ctx: Context) -> downstream.DownstreamFits | None:
    fits = ctx.fits.get("downstream")
    if fits is None and "downstream" not in ctx.failures and downstream.has_downstream(ctx.runs):
        try:
            fits = ctx.fits["downstream"] = downstream.fit_all(ctx.runs, ctx.config)
        except FitError as e:
            ctx.failures["downstream"] = str(e)
    return fits


def accuracy_table(runs: pd.DataFrame, tasks: list[str], cfg) -> pd.DataFrame:
    """The largest budget's runs' accuracies (mean over its runs) with the mean standard error, per task."""
    top = runs[downstream.group_budgets(runs) == downstream.group_budgets(runs).max()]
    rows = []
    for t in tasks:
        acc = pd.to_numeric(top[f"acc_{t}"], errors="coerce")
        se = pd.to_numeric(top.get(f"se_{t}", pd.Series(np.nan, index=top.index)), errors="coerce")
        n = pd.to_numeric(top.get(f"n_items_{t}", pd.Series(np.nan, index=top.index)), errors="coerce")
        best = int(np.nanargmax(acc.to_numpy())) if acc.notna().any() else None
        rows.append({"task": t, "items": n.max(), "chance": downstream.chance_of(runs, t),
                     "mean acc": acc.mean(), "best acc": acc.iloc[best] if best is not None else np.nan,
                     "best ± se": se.iloc[best] if best is not None else np.nan,
                     "best N": top[cfg.n_col].iloc[best] if best is not None else np.nan,
                     "bpb (correct answer)": pd.to_numeric(top[f"bpb_{t}"], errors="coerce").mean()})
    return pd.DataFrame(rows)


def law_table(fits: downstream.DownstreamFits) -> pd.DataFrame:
    rows = []
    for t, law in fits.laws.items():
        s = law.acc
        h = fits.holdouts.get(t)
        lo, hi = law.param_ci("acc", "L0")
        row = {"task": t, "runs": law.n_runs, "task loss (bpb)": law.loss.formula(), "step 2": law.acc_fit}
        if law.predicts_accuracy:
            row.update({"top": s.top, "k": s.k, "L0": s.L0,
                        "L0 interval": f"[{lo:.3g}, {hi:.3g}]" if np.isfinite(lo) else "–"})
        else:   # no sigmoid shown: it would read as a prediction
            row.update({"top": np.nan, "k": np.nan, "L0": np.nan, "L0 interval": "no signal"})
        if h is not None:
            lo_h, hi_h = h.table["acc_lo"].mean(), h.table["acc_hi"].mean()
            row.update({"held-out C": h.budget, "measured": h.measured, "predicted": h.predicted,
                        "interval": f"[{lo_h:.3f}, {hi_h:.3f}]" if np.isfinite(lo_h) else "–",
                        "error (points)": h.error_points,
                        f"within {downstream.WITHIN_POINTS:g}": {True: "yes", False: "no"}.get(
                            h.within, downstream.NOT_PREDICTED)})
        rows.append(row)
    return pd.DataFrame(rows)


def holdout_count_line(fits: downstream.DownstreamFits) -> str:
    """The held-out-budget checks counted, tasks without signal apart (neither a hit nor a miss)."""
    c = fits.holdout_counts()
    predicted = c["within"] + c["miss"]
    line = (f"Held-out budget: {c['within']} of {predicted} predicted task(s) within {downstream.WITHIN_POINTS:g} "
            f"accuracy points")
    if c[downstream.NOT_PREDICTED]:
        line += (f"; {c[downstream.NOT_PREDICTED]} task(s) {downstream.NOT_PREDICTED} (no signal above chance in the "
                 "fitted runs: only their task loss is predicted)")
    return line + "."


def figure(fits: downstream.DownstreamFits, runs: pd.DataFrame):
    from analysis.plots import plt
    tasks = list(fits.laws)[:MAX_PANELS]
    cols = min(4, len(tasks))
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.9 * rows), squeeze=False)
    for ax, t in zip(axes.flat, tasks):
        law = fits.laws[t]
        L = pd.to_numeric(runs[f"bpb_{t}"], errors="coerce").to_numpy(float)
        acc = pd.to_numeric(runs[f"acc_{t}"], errors="coerce").to_numpy(float)
        ax.scatter(L, acc, s=12, color="#7570b3", label="runs")
        grid = np.linspace(np.nanmin(L) * 0.9, np.nanmax(L) * 1.05, 100)
        if law.predicts_accuracy:
            ax.plot(grid, law.acc(grid), color="#1b9e77", label="step 2 (all runs)")
        if (h := fits.holdouts.get(t)) is not None and h.within is not None:
            ax.scatter(h.table["L_pred"], h.table["acc_pred"], marker="x", color="#d95f02",
                       label="held-out budget, predicted")
        ax.axhline(law.acc.chance, color="grey", lw=0.8, ls=":")
        ax.set_title(t if law.predicts_accuracy else f"{t}: no signal, not predicted", fontsize=9)
        ax.set_xlabel("bits per byte of the correct answer", fontsize=8)
        ax.set_ylabel("accuracy", fontsize=8)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def contamination_blocks(sweep_dir: Path | None) -> list:
    path = sweep_dir / CONTAMINATION_FILE if sweep_dir else None
    if path is None or not path.is_file():
        return [Para("Contamination: not checked for this sweep (`python -m harness.downstream_tasks.overlap "
                     "<corpus> --out <sweep_dir>` writes the n-gram overlap of every item with the training shards).")]
    data = json.loads(path.read_text())
    df = pd.DataFrame([{"task": t, **{k: v for k, v in r.items() if not isinstance(v, (list, dict))}}
                       for t, r in data["tasks"].items()])
    return [Table(df, f"Contamination: {data['n']}-token n-grams of each item found in the training shards of corpus "
                      f"{data['corpus']!r} (suite {data['suite']})")]


def report_section(ctx: Context):
    runs = ctx.runs
    tasks = downstream.tasks_in(runs)
    if not tasks:
        return None
    blocks = [Heading(TITLE),
              Table(accuracy_table(runs, tasks, ctx.config),
                    "Largest budget: accuracy (mean over its runs, and its best run with the binomial standard error), "
                    "items per task, chance, and the continuous metric (bits per byte of the correct answer)")]
    fits = fits_of(ctx)
    if fits is not None and fits.laws:
        blocks.append(Para(
            "Two-step law per task (Bhagia et al. 2024): the task loss (bits per byte of the correct answer) from "
            "(N, D) or compute, then accuracy = chance + (top - chance) / (1 + (L / L0)^k) (column step 2: "
            "binomial = the likelihood of each run's item count, lsq = least squares; linear = 1 + exp(k (L - L0)) "
            "in the denominator). Each law is then "
            "refitted without the largest budget and predicts that budget's mean accuracy; "
            f"{ctx.config.ci_level:.0%} intervals from {downstream.DEFAULT_BOOTSTRAP} bootstrap resamples of the runs."))
        blocks.append(Table(law_table(fits), "Downstream laws and the held-out-budget prediction"))
        if fits.holdouts:
            blocks.append(Para(holdout_count_line(fits)))
        blocks.append(Para("Step 1's form per task (form auto: nd and c each fitted without the largest budget, the "
                           "one closer to that budget's task loss kept): "
                           + "; ".join(f"{t}: {law.form_note}" for t, law in fits.laws.items()) + "."))
        blocks.append(Figure("downstream_laws", figure(fits, runs),
                             "Accuracy against task loss per run, the fitted sigmoid, and the held-out budget's "
                             "runs as the law fitted without them predicts them"))
    if fits is not None:
        blocks += [Para(f"**Not fitted** ({t}): {why}") for t, why in fits.failures.items()]
        blocks += [Para(f"**Caveat**: {w}") for w in fits.warnings]
    elif "downstream" in ctx.failures:
        blocks.append(Para(f"**Not fitted**: {ctx.failures['downstream']}"))
    blocks += contamination_blocks(sweep_dir_of(ctx))
    return blocks


def sweep_dir_of(ctx: Context) -> Path | None:
    """The sweep directory, from the run directories the results were read from (runs are one or two levels down)."""
    dirs = [Path(d) for d in getattr(ctx.results, "grid_conventions", {})]
    for parent in {p for d in dirs for p in (d.parent, d.parent.parent)}:
        if (parent / CONTAMINATION_FILE).is_file():
            return parent
    return dirs[0].parent if dirs else None


register(report_section)
