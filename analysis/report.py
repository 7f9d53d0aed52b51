"""`python -m analysis.report <sweep_dir>`: fit every law the sweep supports and write report.md, a
self-contained report.html (figures embedded as base64), figures/*.png and laws.json (the fitted laws, reusable
without refitting: analysis/lawfile.py), each atomically: a report killed while writing leaves every file either
as it was or complete. N and C are the sweep's own conventions (its grid.json) unless
--n-col / --c-col override them, which the report then states.

A report is the registry of section functions (analysis.report_blocks.SECTIONS): this module's own,
then those that laws plug in. Each takes the Context (tables, conventions, fits) and returns a list of
blocks, or None when the columns or fits it needs are absent, so it is skipped. Another law (MoE, data
mixing) adds its section with `register(fn, after=...)` from its own module (analysis/laws/moe_report.py)
without touching this file.
"""
from __future__ import annotations

import argparse
import base64
import dataclasses
import html
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import (  # noqa: F401  (lr_report and mixing_report are imported to register their sections)
    diagnose_report,
    lawfile,
    lr_report,
    mixing_report,
    noise,
    plots,
    recommend,
    report_blocks,
    results,
    validate,
    verdict,
)
from analysis.laws import (
    approach1,
    approach2,
    approach3,
    downstream,
    downstream_report,  # noqa: F401  (registers its section)
    moe,
    moe_report,  # noqa: F401  (registers its section)
)
from analysis.laws import lr as lr_law
from analysis.laws.common import C_COLS, N_COLS, FitConfig, FitError
from analysis.report_blocks import SECTIONS, Context, Figure, Heading, Para, Table, register  # noqa: F401
from harness.rundir import atomic_write_bytes

CHINCHILLA_FITS = ("approach 1", "approach 2", "approach 3", "holdout")


def training_mixtures(runs: pd.DataFrame) -> pd.Series:
    """Each run's training mixture as one hashable key (its w_<domain> weights, rounded past the launcher's
    precision); one key for every run when the table records no weights."""
    w = sorted(c for c in runs.columns if c.startswith("w_"))
    if not w:
        return pd.Series(0, index=runs.index)
    return runs[w].astype(float).round(5).apply(tuple, axis=1)


def not_a_chinchilla_grid(runs: pd.DataFrame, config: FitConfig) -> str:
    """Why the Chinchilla laws must not be fitted to these runs ("" when they may), ending with where the report
    looks instead. An lr sweep trains some size at several learning rates, a mixture sweep some size on several data
    mixtures: either way the losses vary with something besides N and D, and one law through them would describe
    the lrs or the mixtures, not the scaling (fitted to an lr sweep, approach 3's recommendations once crashed)."""
    if lr_law.has_lr_sweep(runs, config):
        n_sizes = runs[config.n_col].nunique()
        return (f"not fitted to a learning-rate sweep ({n_sizes} size(s), each trained at several learning rates): "
                "its losses vary with the lr as much as with N and D, so the loss surface, the isoFLOP profiles and "
                "the compute-optimal allocation would describe the lrs, not the scaling. They need a Chinchilla grid "
                "(4 or more compute budgets, several sizes each, one lr per size): `python sweep.py +grid=chinchilla "
                "grid.lr_from=<this sweep's directory>` trains one at the lrs this sweep chose. The learning-rate "
                "section below gives each size's chosen lr and the lr law")
    if {config.n_col, "tokens"} <= set(runs.columns) and len(runs):
        mix = training_mixtures(runs)
        per_size = mix.groupby([runs[config.n_col], runs["tokens"]]).nunique()
        if (per_size > 1).any():
            return (f"not fitted to a data-mixture sweep ({mix.nunique()} training mixtures over "
                    f"{len(per_size)} (N, D) point(s)): its losses vary with the mixture as well as with N and D, so "
                    "one loss surface through them would describe the mixtures, not the scaling. A Chinchilla grid "
                    "trains one mixture (`python sweep.py +grid=chinchilla data.weights=<the chosen mixture>`). The "
                    "data-mixture section below fits how the loss depends on the mixture")
    return ""


def build_context(res: results.Results, config: FitConfig, budgets=None) -> Context:
    """Fit what the tables allow; a fit that cannot be made is recorded with its reason, not fatal. Then judge the
    fits (analysis/verdict.py) against the run-to-run noise measured from seed replicates (analysis/noise.py).
    An lr or mixture sweep gets no Chinchilla law (not_a_chinchilla_grid says why) and so no verdict on one: its
    section is the lr law (analysis/lr_report.py) or the mixing law (analysis/mixing_report.py)."""
    ctx = Context(res, config, budgets)
    attempts: dict[str, Callable] = {
        "approach 1": lambda: approach1.fit(ctx.runs, ctx.curves, config),
        "approach 2": lambda: approach2.fit(ctx.runs, config),
        "approach 3": lambda: approach3.fit(ctx.runs, config),
        "holdout": lambda: validate.holdout_largest_budget(ctx.runs, config),
    }
    if why := not_a_chinchilla_grid(ctx.runs, config):
        ctx.not_chinchilla = why
        ctx.failures.update({name: why for name in CHINCHILLA_FITS})     # laws.json says why each is missing
        attempts = {}
    if moe_report.has_moe(res.runs):     # judged with the rest, and shown by the MoE section (fitted once, here)
        attempts["moe"] = lambda: moe.fit(res.runs, moe_report.fit_config(config))
    if downstream.has_downstream(ctx.runs):   # accuracy laws, for the report's downstream section and laws.json
        attempts["downstream"] = lambda: downstream.fit_all(ctx.runs, config)
    for name, fn in attempts.items():
        try:
            out = fn()
        except (FitError, KeyError, ValueError) as e:
            ctx.failures[name] = str(e)
            continue
        if name == "holdout":
            ctx.holdout = out
        else:
            ctx.fits[name] = out
    if not ctx.not_chinchilla:
        measured = noise.estimate(res.runs, config.loss_col, config.ci_level)
        ctx.verdict = verdict.judge(ctx.fits, ctx.runs, config, noise=measured, failures=ctx.failures)
        ctx.verdict = diagnose_report.explain(ctx)   # a failed residual check: what the residuals track, the fix
    return ctx


def fmt(x) -> str:
    if isinstance(x, (float, np.floating)):
        if not np.isfinite(x):
            return "–" if np.isnan(x) else ("∞" if x > 0 else "-∞")
        return f"{x:.4g}" if 1e-3 <= abs(x) < 1e5 or x == 0 else f"{x:.3g}"
    return str(x)


def interval(lo: float, hi: float) -> str:
    return f"[{fmt(lo)}, {fmt(hi)}]" if np.isfinite(lo) else "–"


def pct(x: float, spec: str = "+.1%") -> str:
    return format(x, spec) if np.isfinite(x) else ("unreachable" if x > 0 else "–")


# ---------------------------------------------------------------- sections
def judged(ctx: Context) -> verdict.Verdict:
    """The context's verdict (judged now for a Context built without build_context)."""
    if ctx.verdict is None:
        ctx.verdict = verdict.judge(ctx.fits, ctx.runs, ctx.config, failures=ctx.failures)
    return ctx.verdict


def check_lines(checks: list[verdict.Check]) -> list[Para]:
    word = {verdict.FAIL: "Fails", verdict.CAVEAT: "Caveat"}
    return [Para(f"**{word[c.severity]}** ({c.name}{', ' + c.law if c.law else ''}): {c.message}."
                 + (f" Fix: {c.fix}." if c.fix else "")) for c in checks]


def law_text(a3, level: float) -> str:
    lo, hi = a3.ci("a")
    return (f"L(N, D) = {a3.E:.3g} + {a3.A:.3g}/N^{a3.alpha:.3f} + {a3.B:.3g}/D^{a3.beta:.3f} (fitted to {a3.n_runs} "
            f"runs); compute-optimal model size grows as C^{a3.a:.3f} ({level:.0%} interval {interval(lo, hi)}) and "
            f"training tokens as C^{a3.b:.3f}")


def section_summary(ctx: Context):
    """The verdict first; then advice only as far as the verdict and the law's own intervals allow."""
    if ctx.not_chinchilla:
        return [Heading("Summary"), Para(f"**No Chinchilla law:** {ctx.not_chinchilla}.")]
    v, a3, level = judged(ctx), ctx.a3, ctx.config.ci_level
    out = [Heading("Summary"), Para(v.headline())]
    if a3 is None:
        out.append(Para("No loss surface could be fitted: " + ctx.failures.get("approach 3", "") + "."))
    out += check_lines(v.failures + v.caveats)
    if v.noise.measured:        # (unmeasured noise is named by the residuals caveat above)
        out.append(Para(v.noise.describe()[0].upper() + v.noise.describe()[1:] + "."))
    if not v.recommends:
        if v.suggestions:
            out.append(Para("**To determine the law, add to the sweep** (costs estimated from this sweep's own "
                            "runs; the dry-run line gives the planner's):"))
            out += [Para(s.describe()) for s in v.suggestions]
        if a3 is not None:
            out.append(Para(f"For diagnosis only, not advice: the runs fit {law_text(a3, level)}."))
        out.append(Table(v.table(), "Quality checks on the fitted laws"))
        return out
    text = [f"The sweep's runs fit {law_text(a3, level)}: "
            f"{verdict.allocation_direction(a3.a, a3.ci('a'), level)}."]
    top = recommend.recommend(a3, budget=10 * a3.c_range[1], allow_far=True)
    text.append(f"At 10x the largest swept budget (C = {top.budget:.3g} FLOPs) the law recommends about "
                f"{top.n_opt:.3g} {interval(*top.n_ci)} parameters trained on {top.d_opt:.3g} {interval(*top.d_ci)} "
                f"tokens ({top.tokens_per_param:.0f} tokens per parameter), for an expected loss of {top.loss:.3f}"
                + (" (with the caveats above)." if v.caveats else "."))
    if ctx.holdout is not None:
        text.append(f"Forecast check: fitted without the largest budget, the law predicts that budget's losses "
                    f"within {ctx.holdout.mean_abs_rel_error:.1%} on average (worst {ctx.holdout.max_abs_rel_error:.1%}).")
    a2 = ctx.fits.get("approach 2")
    if a2 is not None:
        text.append(f"The isoFLOP method (approach 2) gives an N_opt exponent of {a2.n_opt.a:.3f} "
                    f"{interval(*a2.n_opt.a_ci)}; approach 3 gives {a3.a:.3f} {interval(*a3.ci('a'))} (the agreement "
                    "check compares them).")
    out += [Para(t) for t in text]
    if v.suggestions:
        out.append(Para("**To remove the caveats**, add to the sweep:"))
        out += [Para(s.describe()) for s in v.suggestions]
    out.append(Table(v.table(), "Quality checks on the fitted laws"))
    return out


def section_data(ctx: Context):
    r, res = ctx.runs, ctx.results
    n_moe = len(res.runs) - len(r)
    moe = f" ({n_moe} MoE runs are left to the MoE section; the laws here describe the dense ones)" if n_moe else ""
    out = [Heading("Sweep and conventions"),
           Para(f"{len(res.runs)} finished runs{moe}, {len(res.skipped)} run directories skipped, "
                f"{len(ctx.curves)} eval points on training curves. Conventions: {ctx.config.describe()}"
                + (f" ({ctx.config.origin})." if ctx.config.origin else "."))]
    out.append(Para(attention_setting(res.runs)))
    out.append(Para(corpus_setting(res.runs)))
    if res.skipped:
        out.append(Table(pd.DataFrame(res.skipped, columns=["run dir", "reason"]), "Skipped run directories"))
    cols = [c for c in ("run_id", "n_layers", "d_model", ctx.config.n_col, "tokens", ctx.config.c_col, "loss")
            if c in r]
    if len(r):
        out.append(Table(r[cols].sort_values(ctx.config.c_col if ctx.config.c_col in r else cols[0]),
                         "Runs (sorted by compute)"))
    for name, why in ctx.failures.items():
        if why != ctx.not_chinchilla:         # (that reason is the Summary's)
            out.append(Para(f"**{name} not fitted:** {why}"))
    return out


def corpus_setting(runs: pd.DataFrame) -> str:
    """Which corpus the runs trained on, by the hash of its tokenizer and shards (harness.data.prepare.corpus_sha256),
    so that a law can be matched to the exact data (results written before the hash existed: unknown)."""
    if not len(runs):
        return "Corpus: no runs."
    names = runs["corpus"].fillna("?").astype(str) if "corpus" in runs else pd.Series(["?"] * len(runs))
    hashes = (runs["corpus_sha256"].fillna("").astype(str) if "corpus_sha256" in runs
              else pd.Series([""] * len(runs))).replace("", "unknown (built before corpora had one)")
    pairs = (names + " (corpus sha256 " + hashes + ")").value_counts()
    if len(pairs) > 1:
        return ("Corpus: **mixed** — " + ", ".join(f"{n} runs on {k}" for k, n in pairs.items())
                + "; their losses are not on one footing.")
    return f"Corpus: {pairs.index[0]}."


def attention_setting(runs: pd.DataFrame) -> str:
    """Which attention the runs trained with (data.document_mask; results written before it existed: off)."""
    masks = runs["document_mask"].fillna("off") if "document_mask" in runs else pd.Series(["off"] * len(runs))
    counts = masks.value_counts().to_dict()
    what = {"on": "per-document attention (data.document_mask=on: causal within each packed document, RoPE "
                  "positions restart per document, the next document's first token is not a target)",
            "off": "attention across packed documents (data.document_mask=off)"}
    if len(counts) > 1:
        return ("Attention: **mixed** — " + ", ".join(f"{n} runs with {what.get(k, k)}" for k, n in counts.items())
                + "; their losses are not on one footing.")
    kernels = (runs.loc[masks == "on", "attention"].dropna().value_counts().to_dict()
               if "attention" in runs else {})   # results written before the column: unknown, not said
    kernel = ("; kernel: " + ", ".join(f"{k} ({n} runs)" if len(kernels) > 1 else k for k, n in kernels.items())
              if kernels else "")
    return f"Attention: {what.get(next(iter(counts), 'off'), next(iter(counts), 'off'))}{kernel}."


def section_fits(ctx: Context):
    if not ctx.fits:
        return None
    rows = []
    a3 = ctx.a3
    vp = None
    if a3 is not None:     # approach 3 again with the exponents searched by variable projection, to compare
        try:             # point estimates: the check is whether both searches reach one optimum; resampling it
            with warnings.catch_warnings():     # again would double the report's time for the same intervals
                warnings.simplefilter("ignore")
                vp = approach3.fit(ctx.runs, dataclasses.replace(ctx.config, n_bootstrap=0), search="vp")
        except (FitError, ValueError) as e:
            ctx.failures["approach 3 (variable projection)"] = str(e)
    named = [(n, ctx.fits.get(n)) for n in ("approach 1", "approach 2", "approach 3")] + [("approach 3 (VP)", vp)]
    for name, f in named:
        if f is None:
            continue
        if name.startswith("approach 3"):
            a, b = (f.a, f.ci("a")), (f.b, f.ci("b"))
        else:
            a, b = (f.n_opt.a, f.n_opt.a_ci), (f.d_opt.a, f.d_opt.a_ci)
        rows.append({"approach": name, "a (N_opt ∝ C^a)": fmt(a[0]), "a interval": interval(*a[1]),
                     "b (D_opt ∝ C^b)": fmt(b[0]), "b interval": interval(*b[1]), "runs": f.n_runs})
    out = [Heading("Fitted laws"), Table(pd.DataFrame(rows), f"Exponents with {ctx.config.ci_level:.0%} bootstrap "
                                                             "intervals (resampling runs)")]
    if a3 is not None:
        p = pd.DataFrame([{"parameter": k, "grid search": fmt(v), "interval": interval(*a3.ci(k)),
                           **({"variable projection": fmt(vp.params[k]), "VP interval": interval(*vp.ci(k))}
                              if vp is not None else {})} for k, v in a3.params.items()])
        out += [Table(p, "Approach 3: L(N, D) = E + A / N^alpha + B / D^beta (Huber delta 1e-3 on log loss, summed), "
                      "L-BFGS-B from the best of a 4,500-point grid of starts, and from the best exponents of a "
                      "variable-projection search ((E, A, B) solved for each (alpha, beta)); the VP column is "
                      "the second search's optimum, without resampling"),
                Para(f"Optimiser: {'converged' if a3.converged else '**not converged**'}, largest gradient entry "
                     f"{a3.grad_norm:.1e}, objective {a3.objective:.4g}. C = k N D with k = {a3.k:.3g}.")]
        if vp is not None:
            agree = abs(vp.a - a3.a) < 1e-3 and abs(vp.objective - a3.objective) <= 1e-9 + 1e-6 * a3.objective
            out.append(Para(f"The two searches {'agree' if agree else '**disagree**'}: objective {a3.objective:.6g} "
                            f"(grid) vs {vp.objective:.6g} (VP), a = {a3.a:.4f} vs {vp.a:.4f}"
                            + ("" if agree else "; the lower objective is the better fit, and a disagreement means "
                               "the objective has more than one minimum these runs cannot tell apart") + "."))
    notes = [w for f in ctx.fits.values() for w in getattr(f, "warnings", [])]
    out += [Para(f"**Warning:** {w}") for w in notes]
    return out


def section_isoflop(ctx: Context):
    a2 = ctx.fits.get("approach 2")
    if a2 is None:
        return None
    runs = approach2.usable(ctx.runs, ctx.config)
    out = [Heading("IsoFLOP profiles (approach 2)"),
           Figure("isoflop", lambda: plots.isoflop(runs, a2, approach2.group_budgets(runs)),
                  "Final loss against model size at each compute budget; stars mark each profile's minimum.")]
    if hasattr(a2, "describe_method"):
        out.append(Para(f"Vertices: {a2.describe_method()}."))
    cols = [c for c in ("C", "N_opt", "D_opt", "loss_opt", "n_runs", "n_used", "sizes_below", "sizes_above",
                        "bracketed", "in_fit", "window_lo", "window_hi") if c in a2.points]
    out.append(Table(a2.points[cols], "Per budget: the vertex, the sizes below and above it, whether they bracket it, "
                                      "whether the exponents' fit uses it (in_fit)"))
    quiet = dataclasses.replace(ctx.config, n_bootstrap=0)
    method = getattr(a2, "method", "parabola")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        others = []
        for m in (m for m in approach2.METHODS if m != method):
            try:
                others.append(f"{m} {approach2.fit(ctx.runs, quiet, method=m).n_opt.a:.4f}")
            except FitError as e:
                others.append(f"{m}: not fitted ({str(e).splitlines()[0]})")
        out.append(Para(f"N_opt exponent by the other vertex methods (no bootstrap): {'; '.join(others)}; this fit "
                        f"({method}) {a2.n_opt.a:.4f}. A parabola's vertex moves with the width and centring of a "
                        "grid (bench/README.md, \"IsoFLOP vertex bias\")."))
        try:
            sl = approach2.fit(ctx.runs, quiet, method=method, curves=ctx.curves, slices=True)
            used = sl.used
            out.append(Para(f"IsoFLOP slices from training curves ({used.attrs.get('slice_kind', '')} points: "
                            f"{len(used)} from {used['run_id'].nunique()} runs, {int(used['step'].isna().sum())} of "
                            f"them inside a curve): N_opt exponent {sl.n_opt.a:.4f}, D_opt {sl.d_opt.a:.4f}."))
        except (FitError, KeyError, ValueError) as e:
            out.append(Para(f"IsoFLOP slices from training curves: not used ({str(e).splitlines()[0]})."))
    return out


def section_optimal(ctx: Context):
    fits = [ctx.fits[k] for k in ("approach 1", "approach 2", "approach 3") if k in ctx.fits]
    if not fits:
        return None
    c_range = (ctx.runs[ctx.config.c_col].min(), ctx.runs[ctx.config.c_col].max())
    return [Heading("Compute-optimal allocation"),
            Figure("optimal_vs_compute", lambda: plots.optimal_vs_compute(fits, c_range),
                   "N_opt and D_opt against compute, each approach with its bootstrap band; shaded: swept range."),
            Figure("tokens_per_param", lambda: plots.tokens_per_param(fits, c_range),
                   "Compute-optimal tokens per parameter.")]


def section_surface(ctx: Context):
    a3 = ctx.a3
    if a3 is None:
        return None
    return [Heading("Loss surface (approach 3)"),
            Figure("loss_surface", lambda: plots.loss_surface(a3, approach3.usable(ctx.runs, ctx.config)),
                   "Contours of the fitted law; dots are runs coloured by measured loss; the line is the frontier."),
            Figure("residuals", lambda: plots.residuals(a3), "Residuals: log(measured / fitted), in percent.")]


def section_holdout(ctx: Context):
    h = ctx.holdout
    if ctx.not_chinchilla:
        return None
    if h is None:
        return [Heading("Extrapolation check"), Para("Not run: " + ctx.failures.get("holdout", "no fit"))]
    t = h.table[["run_id", "N", "D", "loss", "predicted", "rel_error"]].copy()
    return [Heading("Extrapolation check"), Para(h.summary() + "."),
            Table(t, "Held-out largest budget: measured and predicted loss")]


def section_recommendations(ctx: Context):
    if ctx.not_chinchilla:
        return None
    a3, v = ctx.a3, judged(ctx)
    if not v.recommends:
        failed = sorted({c.name for c in v.failures}, key=verdict.CHECKS.index)
        return [Heading("Recommendations"),
                Para(f"**No recommendation: the law is not determined** (failed checks: {', '.join(failed)}). "
                     "Compute-optimal sizes, off-optimum penalties, inference-aware and data-constrained allocations "
                     "from this fit would look precise and mean nothing, so none are shown. The Summary says what "
                     "to add to the sweep.")]
    if a3 is None:
        return None
    caveat = []
    if v.caveats:
        names = ", ".join(sorted({c.name for c in v.caveats}, key=verdict.CHECKS.index))
        caveat = [Para(f"**Weakly determined:** these numbers hold with the caveats named in the Summary ({names}).")]
    tab = recommend.table(a3, ctx.budgets)
    show = pd.DataFrame({"C (FLOPs)": tab["C"].map(fmt)})
    if "N_opt" in tab:
        show["N_opt"] = [f"{fmt(n)} {interval(lo, hi)}" if np.isfinite(n) else "–"
                         for n, lo, hi in zip(tab["N_opt"], tab["N_lo"], tab["N_hi"])]
        show["D_opt"] = [f"{fmt(n)} {interval(lo, hi)}" if np.isfinite(n) else "–"
                         for n, lo, hi in zip(tab["D_opt"], tab["D_lo"], tab["D_hi"])]
        show["tokens/param"] = tab["tokens_per_param"].map(lambda x: f"{x:.1f}" if np.isfinite(x) else "–")
        show["loss"] = [f"{v:.3f} {interval(lo, hi)}" if np.isfinite(v) else "–"
                        for v, lo, hi in zip(tab["loss"], tab["loss_lo"], tab["loss_hi"])]
    show["warnings"] = tab["warnings"].fillna("")
    C = 10 * a3.c_range[1]
    off = recommend.off_optimum(a3, C)
    off_show = pd.DataFrame({"model size": off["size_factor"].map(lambda f: f"{f:g} x N_opt"), "N": off["N"].map(fmt),
                             "tokens/param": off["tokens_per_param"].map(lambda x: f"{x:.0f}"),
                             "loss penalty at same C": [f"{x:+.4f} [{pct(lo, '+.4f')}, {pct(hi, '+.4f')}]" for x, lo, hi in zip(
                                 off["loss_penalty"], off["loss_penalty_lo"], off["loss_penalty_hi"])],
                             "extra compute for same loss": [" ".join((pct(x), f"[{pct(lo)}, {pct(hi)}]"))
                                                             for x, lo, hi in zip(off["extra_compute"],
                                                                                  off["extra_compute_lo"],
                                                                                  off["extra_compute_hi"])]})
    inf = recommend.inference_optimal(a3, float(a3.loss_opt(C)), inference_tokens=10 * float(a3.d_opt(C)))
    unique = float(a3.d_opt(C)) / 8
    dc = recommend.data_constrained(a3, C, unique, allow_far=True)
    return [Heading("Recommendations"), *caveat,
            Table(show, f"Compute-optimal allocation per budget ({ctx.config.ci_level:.0%} intervals); budgets far "
                        "outside the fit are refused rather than answered"),
            Table(off_show, f"Going off the optimum at C = {C:.3g}: smaller models trained longer (inference is cheaper; "
                            f"{ctx.config.ci_level:.0%} intervals)"),
            Para(f"**Inference-aware optimum** (Sardana et al. 2023; 2N FLOPs per inference token): to reach loss "
                 f"{inf['target_loss']:.3f} and then serve {inf['inference_tokens']:.3g} tokens, train "
                 f"N = {inf['N']:.3g} {interval(*inf['N_ci'])} on D = {inf['D']:.3g} ({inf['tokens_per_param']:.0f} "
                 f"{interval(*inf['tokens_per_param_ci'])} tokens/parameter): {inf['total_flops']:.3g} FLOPs in all, "
                 f"{inf['saving']:.0%} [{pct(inf['saving_ci'][0], '.0%')}, {pct(inf['saving_ci'][1], '.0%')}] less than the "
                 f"Chinchilla-optimal N = {inf['chinchilla_N']:.3g} ({inf['chinchilla_total_flops']:.3g} FLOPs)."),
            Para(f"**Data-constrained** (Muennighoff et al. 2023: repeated tokens decay with R* = {dc['r_star']}): at "
                 f"C = {C:.3g} with only {unique:.3g} unique tokens (1/8 of D_opt), train N = {dc['N']:.3g} "
                 f"{interval(*dc['N_ci'])} for {dc['epochs']:.1f} epochs ({dc['effective_tokens']:.3g} effective "
                 f"tokens): expected loss {dc['loss']:.3f} {interval(*dc['loss_ci'])} against "
                 f"{dc['unconstrained_loss']:.3f} {interval(*dc['unconstrained_loss_ci'])} with unlimited data "
                 f"(N = {dc['unconstrained_N']:.3g}). Brackets: {ctx.config.ci_level:.0%} bootstrap intervals.")]


def section_domains(ctx: Context):
    doms = ctx.results.domains
    if not doms or ctx.config.c_col not in ctx.runs:
        return None
    return [Heading("Per-domain losses"),
            Figure("domain_losses", lambda: plots.domain_losses(ctx.runs, ctx.config, doms),
                   "Held-out loss on each domain against compute, coloured by model size.")]


# this module's sections, in order, ahead of those the laws registered when imported above
SECTIONS[:0] = [
    section_summary, section_data, section_fits, section_isoflop, section_optimal, section_surface,
    section_holdout, section_recommendations, section_domains]
register(diagnose_report.report_section, after=section_summary)


# ---------------------------------------------------------------- rendering
def md_table(df: pd.DataFrame) -> str:
    cells = [[fmt(v) for v in row] for row in df.itertuples(index=False)]
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    return "\n".join([head, "|" + "---|" * len(df.columns)] + ["| " + " | ".join(r) + " |" for r in cells])


def inline_html(text: str) -> str:
    import re
    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", t)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", t)


CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1.5em;color:#222;line-height:1.5}h1{border-bottom:2px solid #7570b3;padding-bottom:.2em}
h2{margin-top:2em;color:#3b3680}table{border-collapse:collapse;font-size:.85em;margin:.6em 0 1.2em}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f1f0fa}
caption{caption-side:top;text-align:left;font-style:italic;color:#555;padding-bottom:.3em}
figure{margin:1em 0}img{max-width:100%}figcaption{color:#555;font-size:.9em}code{background:#f4f4f4;padding:0 3px}
.scroll{max-height:360px;overflow:auto;display:inline-block}"""


def render(ctx: Context, out_dir: Path, title: str) -> tuple[Path, Path]:
    """report.md and report.html (and figures/*.png) from the sections' blocks. The sections run first, in order (a
    section may note a failure in the context for laws.json); their figures are then drawn to PNG in
    ctx.config.processes processes (plots.png_bytes), the larger part of a report's time after its fits; this module's
    sections hand over their figures unmade (a function making one), so that the workers make them too."""
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    blocks = []
    for section in report_blocks.SECTIONS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blocks += section(ctx) or []
    figures = [b for b in blocks if isinstance(b, Figure)]
    pngs = dict(zip(map(id, figures), plots.png_bytes([b.fig for b in figures], ctx.config.processes)))
    md, body = [f"# {title}\n"], [f"<h1>{html.escape(title)}</h1>"]
    for b in blocks:
        if isinstance(b, Heading):
            md.append(f"\n## {b.text}\n")
            body.append(f"<h2>{html.escape(b.text)}</h2>")
        elif isinstance(b, Para):
            md.append(b.text + "\n")
            body.append(f"<p>{inline_html(b.text)}</p>")
        elif isinstance(b, Table):
            md.append((f"*{b.caption}*\n\n" if b.caption else "") + md_table(b.df) + "\n")
            t = b.df.to_html(index=False, border=0, float_format=fmt, escape=True)
            t = t.replace("<table", "<table><caption>" + html.escape(b.caption) + "</caption", 1) if b.caption else t
            body.append(f'<div class="scroll">{t}</div>' if len(b.df) > 12 else t)
        elif isinstance(b, Figure):
            png = pngs[id(b)]
            atomic_write_bytes(fig_dir / f"{b.name}.png", png)
            md.append(f"![{b.caption}](figures/{b.name}.png)\n\n*{b.caption}*\n")
            data = base64.b64encode(png).decode()
            body.append(f'<figure><img alt="{html.escape(b.caption)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{html.escape(b.caption)}</figcaption></figure>")
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    atomic_write_bytes(md_path, "\n".join(md).encode())
    atomic_write_bytes(html_path, (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
                                   f"</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>").encode())
    return md_path, html_path


def remove_stale_temps(*dirs: Path) -> None:
    """A report killed while writing leaves a temp file (harness.rundir.atomic_write_bytes: .<name>.tmp<pid>) beside
    the complete file it was to replace: remove those of processes no longer alive."""
    for d in dirs:
        for tmp in d.glob(".*.tmp*") if d.is_dir() else []:
            pid = tmp.name.rpartition(".tmp")[2]
            if pid.isdigit() and not pid_alive(int(pid)):
                tmp.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:     # alive, another user's
        return True
    return True


def write_report(sweep_dir: str | Path, out_dir: str | Path | None = None, config: FitConfig | None = None,
                 budgets=None, **config_kw) -> tuple[Path, Path, Path]:
    """report.md, report.html and laws.json in out_dir (default <sweep_dir>/report). `config`: the fit's conventions;
    None: the sweep's own (its grid.json), with `config_kw` (n_col, c_col: stated overrides; n_bootstrap, seed)."""
    sweep_dir = Path(sweep_dir)
    out = Path(out_dir) if out_dir else sweep_dir / "report"
    remove_stale_temps(out, out / "figures")
    res = results.load(sweep_dir)
    ctx = build_context(res, config or res.fit_config(**config_kw), budgets)
    md, page = render(ctx, out, f"Scaling-law report: {sweep_dir.name}")
    return md, page, lawfile.save_for_report(out, sweep_dir.name, ctx)


def sweep_status(stream) -> int:
    """The exit status on the stream's first line (1 when there is none: the command was killed before it could
    print one, or printed something else)."""
    try:
        line = stream.readline()
    except KeyboardInterrupt:      # Ctrl-C reaches the sweep and this process alike
        return 130
    try:
        return int(line.strip())
    except ValueError:
        return 1


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.split("\n")[0])
    p.add_argument("sweep_dir")
    p.add_argument("--out", help="output directory (default <sweep_dir>/report)")
    p.add_argument("--budgets", type=float, nargs="*", help="FLOP budgets to recommend for (default: 10x, 100x the "
                                                            "largest swept budget and 1e17, 1e19, 1e21, 1e23)")
    p.add_argument("--n-col", choices=N_COLS, help="N convention (default: the one the sweep's grid was designed "
                                                   "around, from its grid.json); an override is stated in the report")
    p.add_argument("--c-col", choices=C_COLS, help="compute convention (default: the sweep's, from its grid.json)")
    p.add_argument("--bootstrap", type=int, default=FitConfig.n_bootstrap)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--status-on-stdin", action="store_true",
                   help="first wait for the exit status of the command making the sweep on stdin (`{ python sweep.py "
                        "...; echo $?; } | python -m analysis.report ... --status-on-stdin`: this process's start-up "
                        "runs beside the sweep's); a status other than 0 ends it with that status, writing nothing")
    args = p.parse_args(argv)
    if args.status_on_stdin:
        status = sweep_status(sys.stdin)
        if status != 0:
            print(f"analysis.report: the sweep exited with status {status}: no report", file=sys.stderr)
            raise SystemExit(status)
    from analysis.results import sweep_dir_problem
    if problem := sweep_dir_problem(args.sweep_dir):   # not a report of pandas errors: say what is missing
        p.error(problem)
    try:
        md, page, laws = write_report(args.sweep_dir, args.out, budgets=args.budgets, n_col=args.n_col,
                                      c_col=args.c_col, n_bootstrap=args.bootstrap, seed=args.seed)
    except (results.ConventionsError, FileNotFoundError) as e:
        raise SystemExit(f"analysis.report: {e}") from None
    print(f"wrote {md}\nwrote {page}\nwrote {laws}")


if __name__ == "__main__":
    main()
