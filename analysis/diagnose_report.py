"""The report's residual diagnosis (analysis/diagnose.py) when approach 3's residual check fails.

    explain(ctx)          -> the context's verdict with the residual check's fix from the diagnosis (refits of
                             approach 3 without bootstrap: one per candidate cause, one per budget left out)
    report_section(ctx)   -> blocks: what the residuals track, the refits, leave-one-budget-out errors, a figure;
                             None when the check passed (analysis/report.py registers it after the summary)
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd

from analysis import diagnose, verdict
from analysis.laws import approach3
from analysis.laws.common import FitError
from analysis.report_blocks import Context, Figure, Heading, Para, Table

REFIT_STARTS = 2     # L-BFGS-B starts per refit (the report's fit uses 8): a diagnosis refits ~50 times


def _refit(config):
    quiet = dataclasses.replace(config, n_bootstrap=0)

    def fit(runs: pd.DataFrame):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return approach3.fit(runs, quiet, n_starts=REFIT_STARTS)
    return fit


def explain(ctx: Context):
    """Diagnose approach 3's residuals when its residual check failed; the verdict unchanged otherwise."""
    v = ctx.verdict
    if v is None or ctx.a3 is None or not [c for c in v.failures if c.name == "residuals" and c.law == "approach 3"]:
        return v
    sd = v.noise.sd if v.noise is not None and v.noise.measured else float("nan")
    refit = _refit(ctx.config)
    runs = approach3.usable(ctx.runs, ctx.config)
    runs = runs.assign(loss=runs[ctx.config.loss_col])   # diagnose reads `loss`: the loss approach 3 was fitted to
    d = diagnose.diagnose(runs, ctx.a3.residuals, sd, ctx.config.n_col, refit=refit)
    if "budget" in runs and runs["budget"].nunique() >= 3:
        try:
            d.lobo = diagnose.leave_one_budget_out(runs, ctx.config.n_col, refit)
        except FitError:
            d.lobo = None
    return verdict.explain_residuals(v, d)


def _fmt_ci(rho: float, ci) -> str:
    return f"{rho:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}]" if np.isfinite(ci[0]) else f"{rho:+.2f}"


def figure(runs: pd.DataFrame, resid: pd.Series, props: pd.DataFrame, keys: list[str], d=None):
    from analysis import plots
    keys = keys[:4] or ["steps", "tokens_per_param"]
    keys = [k for k in keys if k in props]
    fig, axes = plots.plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    budget = runs["budget"] if "budget" in runs else pd.Series(0.0, index=runs.index)
    for i, (ax, k) in enumerate(zip(axes[0], keys)):
        p = diagnose.BY_KEY[k]
        sc = ax.scatter(props[k], 100 * resid, c=np.log10(budget.astype(float)), cmap="viridis", s=22)
        ax.axhline(0, color="grey", lw=0.8)
        k_split = d.split(k)[0] if d is not None else float("nan")
        if np.isfinite(k_split):        # the split the diagnosis found
            ax.axvline(k_split, color="tab:red", ls="--", lw=0.8)
        if p.log:
            ax.set_xscale("log")
        ax.set_xlabel(p.label)
        if i == 0:
            ax.set_ylabel("residual, % (log measured / fitted)")
    fig.colorbar(sc, ax=axes[0].tolist(), label="log10 budget (FLOPs)")
    return fig


def report_section(ctx: Context):
    v = ctx.verdict
    d = getattr(v, "diagnosis", None)
    if d is None:
        return None
    out = [Heading("Residual diagnosis (approach 3)"),
           Para(f"Approach 3's residual RMS is {d.rms:.2%} of the loss"
                + (f", {d.rms / d.noise_sd:.2g}x the run-to-run noise ({d.noise_sd:.2%})" if np.isfinite(d.noise_sd)
                   else "") + ". What the residuals track among the runs' recorded properties: "
                + (d.finding() + "." if d.named else d.note + "."))]
    if d.named:
        out.append(Para(f"**Change:** {d.fix()}."))
    if len(d.table):
        t = pd.DataFrame({
            "property": d.table["label"], "runs": d.table["n"],
            "rank corr. with residual [90%]": [_fmt_ci(r, c) for r, c in zip(d.table["rho"], d.table["rho_ci"])],
            "p": d.table["p"].map(lambda x: f"{x:.1g}"),
            "rank corr. with abs(residual) [90%]": [_fmt_ci(r, c) for r, c in zip(d.table["rho_abs"],
                                                                               d.table["rho_abs_ci"])],
            "p (abs)": d.table["p_abs"].map(lambda x: f"{x:.1g}"),
            "split": [f"{s} {k:.3g}" if np.isfinite(k) else "–" for s, k in zip(d.table["bad_side"],
                                                                               d.table["threshold"])],
            "RMS there (runs)": [f"{a:.1%} ({n})" if n else "–" for a, n in zip(d.table["rms_bad"], d.table["n_bad"])],
            "RMS elsewhere (runs)": [f"{a:.1%} ({n})" for a, n in zip(d.table["rms_good"], d.table["n_good"])]})
        out.append(Table(t, f"Each property against the residuals: Spearman rank correlations (a candidate cause "
                            f"needs p below {diagnose.ALPHA:g} / {2 * len(d.table)}, Bonferroni), and the split "
                            "of the runs that separates the residual RMS most"))
    if d.refits:
        rows = [{"left out": f"{diagnose.BY_KEY[k].label} {f.side} {f.threshold:.3g}",
                 "runs kept": f.n_kept, "RMS kept": f"{f.rms_kept:.1%}", "runs left out": f.n_left,
                 "left out vs refitted law": f"{f.mean_left:+.1%} mean, {f.rms_left:.1%} RMS, "
                                             f"{f.share_above:.0%} above", "separation": f"{f.separation:.2g}",
                 "evidence of a cause": "yes" if d.qualifies(k) else "no"}
                for k, f in sorted(((k, f) for k, f in d.refits.items() if f is not None),
                                   key=lambda kv: (not d.qualifies(kv[0]), -kv[1].separation))]
        out.append(Table(pd.DataFrame(rows), "Approach 3 refitted without the runs at one end of each property, "
                                             "predicting the runs left out. Threshold: of up to "
                                             f"{diagnose.SPLITS} tried, the fewest runs left out whose refit fits "
                                             f"the rest within {diagnose.PARSIMONY:g}x of the best and leaves them "
                                             "above the law (else the largest separation = their RMS error / the "
                                             f"kept runs' RMS). Evidence of a cause: kept RMS {diagnose.MIN_GAIN:g}x "
                                             f"below the law's, at least {diagnose.ONE_SIDED_SHARE:.0%} of the "
                                             f"left-out runs above it by more than {diagnose.ONE_SIDED_SDS:g}x the "
                                             "larger of the noise and the kept RMS"))
    lobo = getattr(d, "lobo", None)
    if lobo is not None and len(lobo):
        g = lobo.groupby("budget")["lobo"]
        t = pd.DataFrame({"held-out budget (FLOPs)": [f"{c:.3g}" for c in g.mean().index],
                          "runs": g.size().to_numpy(), "mean error": g.mean().map(lambda x: f"{x:+.1%}").to_numpy(),
                          "RMS error": g.apply(lambda x: float(np.sqrt(np.mean(x ** 2)))).map(
                              lambda x: f"{x:.1%}").to_numpy()})
        out.append(Table(t, "Leave one budget out: each budget's runs predicted by approach 3 fitted to the others "
                            "(log measured / predicted; > 0: above the law)"))
    runs = approach3.usable(ctx.runs, ctx.config).reset_index(drop=True)
    resid = runs["run_id"].map(ctx.a3.residuals.set_index("run_id")["residual"]).astype(float)
    props = diagnose.properties(runs, ctx.config.n_col)
    keys = list(dict.fromkeys(([d.cause] if d.named else []) + d.candidates))
    out.append(Figure("residual_diagnosis", figure(runs, resid, props, keys, d),
                      "Approach 3's residuals against the properties that track them (or steps and tokens per "
                      "parameter when none does), coloured by budget; dashed: the threshold the diagnosis found for each."))
    return out
