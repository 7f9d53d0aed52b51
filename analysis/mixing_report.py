"""The report's data-mixture section: which mixture, how sure, and how well the law predicts held-out mixtures.

    report_section(ctx)   -> blocks for analysis.report (registered with analysis.report_blocks.register; None when the sweep did not vary
                             its mixture over enough mixtures)
    blocks(runs, ...)     -> the same as neutral tuples, from a runs table alone (notebooks, other reports)

The objective is the held-out loss on the corpus's natural token proportions (every run is evaluated on every
domain, so runs trained on different mixtures are scored on the same evaluation mixture); uniform when the runs
do not carry the corpus's token counts.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from analysis.laws.common import FitError, ci
from analysis.laws.mixing import FORMS, W_PREFIX, MixingConfig, MixingLaw, domains_of, fit, natural_proportions
from analysis.report_blocks import register

TITLE = "Data mixture"


def has_mixtures(runs: pd.DataFrame) -> bool:
    """More than two distinct training mixtures: a mixture sweep, not runs that share one mixture."""
    cols = [c for c in runs.columns if c.startswith(W_PREFIX)]
    return len(cols) >= 2 and len(runs[cols].round(4).drop_duplicates()) > 2


def _ci(v: float, lo: float, hi: float, spec: str = ".3f") -> str:
    return format(v, spec) if not np.isfinite(lo) else f"{format(v, spec)} [{format(lo, spec)}, {format(hi, spec)}]"


def blocks(runs: pd.DataFrame, config: MixingConfig | None = None, figures: bool = True) -> list[tuple]:
    """("heading", text) ("para", text) ("table", df, caption) ("figure", name, fig, caption)."""
    out: list[tuple] = [("heading", TITLE)]
    cfg = config or MixingConfig()
    doms = domains_of(runs)
    objective = "natural" if natural_proportions(runs, doms) else "uniform"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            law = fit(runs, objective, config=cfg)
    except FitError as e:
        return out + [("para", f"No mixing law was fitted: {e}")]
    obj_text = ("the held-out loss on the corpus's natural token proportions ("
                + ", ".join(f"{d} {w:.2f}" for d, w in law.natural.items()) + ")"
                if objective == "natural" else "the uniform average of the domains' held-out losses (the runs do "
                "not carry corpus_tokens_<domain>, so the natural proportions are unknown)")
    out.append(("para", f"Objective: {obj_text}. Every run is scored on every domain's held-out set, so runs "
                        f"trained on different mixtures are compared on the same evaluation mixture. "
                        f"{len(law.table)} runs, {int(law.cv['mixtures'].iloc[0])} distinct mixtures"
                        + (f" at N = {law.fit_size[0]:.3g}, D = {law.fit_size[1]:.3g}" if law.fit_size else "") + "."))
    cv = law.cv.copy()
    show = pd.DataFrame({"law": [f"{f}: {FORMS[f]}" for f in cv["family"]],
                         "mean |error|": cv["mean_rel_error"].map(lambda x: f"{x:.2%}"),
                         "max |error|": cv["max_rel_error"].map(lambda x: f"{x:.2%}"),
                         "Spearman": cv["spearman"].map(lambda x: f"{x:.3f}")})
    out.append(("table", show, f"Held-out-mixture check: {int(cv['folds'].iloc[0])}-fold, each mixture's runs held out "
                               "together and predicted by a law fitted without them (relative error of the objective)"))
    out.append(("para", f"The report uses the **{law.family}** law, the best on held-out mixtures ({law.cv_summary()})."
                + (f" Seed noise: the objective's standard deviation over repeated runs of one mixture is "
                   f"{law.seed_noise:.4f}." if np.isfinite(law.seed_noise) else "")))
    rec = law.recommend()
    tab = rec.table()
    nat = law.natural or {}
    show = pd.DataFrame({"domain": tab["domain"],
                         "recommended [CI]": [_ci(w, lo, hi) for w, lo, hi in zip(tab["weight"], tab["lo"], tab["hi"])],
                         "natural": [f"{nat.get(d, np.nan):.3f}" for d in tab["domain"]],
                         "upper bound": tab["upper bound"].map(lambda x: f"{x:.3g}"),
                         "epochs at D": tab["epochs at D"].map(lambda x: f"{x:.2f}" if np.isfinite(x) else "–")})
    out.append(("table", show, f"Recommended mixture at the swept size ({cfg.ci_level:.0%} intervals from "
                               f"{min(cfg.recommend_resamples, cfg.n_bootstrap)} bootstrap laws re-optimised; upper "
                               "bounds from token caps of 4 epochs at D where corpus token counts are known)"))
    lines = [f"Predicted objective at the recommendation: {_ci(rec.predicted, *rec.predicted_ci, '.4f')}"]
    for name, b in rec.baselines.items():
        lines.append(f"{name}: {_ci(b['predicted'], *b['predicted_ci'], '.4f')} (the recommendation is better in "
                     f"{b['p_better']:.0%} of bootstrap laws)")
    out.append(("para", "; ".join(lines) + "."))
    best = law.table.assign(objective=law.objective.value(law.table)).sort_values("objective")
    out.append(("para", f"Best measured run: {best['run_id'].iloc[0] if 'run_id' in best else best.index[0]} at "
                        f"{best['objective'].iloc[0]:.4f} (" + ", ".join(
                            f"{d} {best[W_PREFIX + d].iloc[0]:.2f}" for d in law.domains) + ")."))
    out += [("para", f"Warning: {w}") for w in law.warnings + rec.warnings]
    eff = law.effects()
    out.append(("table", pd.DataFrame({"domain": eff["domain"], "effect of +0.02 weight [CI]": [
        _ci(e, lo, hi, "+.4f") for e, lo, hi in zip(eff["effect"], eff["lo"], eff["hi"])]}),
        "Per-domain effects at the natural mixture: change of the objective when a domain's weight grows by 0.02 "
        "(the others shrunk in proportion); negative helps"))
    if figures:
        out.append(("figure", "mixture_heldout", plot_heldout(law),
                    "Predicted against measured objective for held-out mixtures (k-fold), each law."))
        out.append(("figure", "mixture_recommendation", plot_recommendation(law, rec),
                    "Recommended weights with bootstrap intervals, against the natural and uniform mixtures."))
        out.append(("figure", "mixture_effects", plot_effects(eff),
                    "Per-domain effect on the objective at the natural mixture, with bootstrap intervals."))
    return out


@register
def report_section(ctx):
    """analysis.report section: None (skipped) when the sweep did not vary its mixture."""
    from analysis import report_blocks as report
    runs = ctx.runs
    if not has_mixtures(runs):
        return None
    cfg = MixingConfig(n_bootstrap=ctx.config.n_bootstrap, seed=ctx.config.seed, ci_level=ctx.config.ci_level)
    kinds = {"heading": lambda b: report.Heading(b[1]), "para": lambda b: report.Para(b[1]),
             "table": lambda b: report.Table(b[1], b[2]), "figure": lambda b: report.Figure(b[1], b[2], b[3])}
    return [kinds[b[0]](b) for b in blocks(runs, cfg)]


# ------------------------------------------------------------------------------------------ plots
def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_heldout(law: MixingLaw):
    plt = _plt()
    fams = list(law.cv["family"])
    fig, axes = plt.subplots(1, len(fams), figsize=(3.4 * len(fams), 3.4), squeeze=False)
    for ax, fam in zip(axes[0], fams):
        p = law.cv_predictions[law.cv_predictions["family"] == fam]
        ax.scatter(p["measured"], p["predicted"], s=12, color="#3b3680" if fam == law.family else "#999")
        lo, hi = np.nanmin(p[["measured", "predicted"]].to_numpy()), np.nanmax(p[["measured", "predicted"]].to_numpy())
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
        err = law.cv.set_index("family").loc[fam, "mean_rel_error"]
        ax.set(title=f"{fam}{' (used)' if fam == law.family else ''}: {err:.2%}", xlabel="measured")
    axes[0][0].set_ylabel("predicted (held out)")
    fig.tight_layout()
    return fig


def plot_recommendation(law: MixingLaw, rec):
    plt = _plt()
    K = len(law.domains)
    x = np.arange(K)
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * K + 2), 3.6))
    w = np.array([rec.weights[d] for d in law.domains])
    lo = np.array([rec.weights_ci[d][0] for d in law.domains])
    hi = np.array([rec.weights_ci[d][1] for d in law.domains])
    yerr = np.vstack([w - lo, hi - w]) if np.all(np.isfinite(lo)) else None
    ax.bar(x - 0.25, w, 0.25, yerr=yerr, capsize=3, color="#3b3680", label="recommended")
    if law.natural:
        ax.bar(x, [law.natural[d] for d in law.domains], 0.25, color="#1b9e77", label="natural")
    ax.bar(x + 0.25, np.full(K, 1 / K), 0.25, color="#bbb", label="uniform")
    ax.set_xticks(x, law.domains, rotation=30 if K > 6 else 0)
    ax.set(ylabel="weight")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_effects(eff: pd.DataFrame):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 0.35 * len(eff) + 1.2))
    y = np.arange(len(eff))
    err = np.vstack([eff["effect"] - eff["lo"], eff["hi"] - eff["effect"]]) if eff["lo"].notna().all() else None
    ax.barh(y, eff["effect"], xerr=err, capsize=3, color=np.where(eff["effect"] < 0, "#1b9e77", "#d95f02"))
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y, eff["domain"])
    ax.set(xlabel="change of the objective for +0.02 weight")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------ confirmation
def confirmation_mixtures(law: MixingLaw, rec=None) -> dict[str, dict[str, float]]:
    """The mixtures a confirmation trains: the recommendation, uniform, and natural (where known)."""
    rec = rec or law.recommend()
    out = {"recommended": rec.weights, "uniform": {d: 1 / len(law.domains) for d in law.domains}}
    if law.natural:
        out["natural"] = dict(law.natural)
    return out


def confirm_command(mixes: dict[str, dict[str, float]], tokens: float, seeds=(0, 1),
                    name: str = "mixture_confirm") -> str:
    """The sweep command that trains `mixes` at `tokens` with each seed (a list-kind mixture grid)."""
    items = ",".join("{" + ",".join(f"{d}:{w:.6f}" for d, w in m.items() if w > 5e-7) + "}" for m in mixes.values())
    return (f"python sweep.py +grid=mixture grid.name={name} grid.mixtures.kind=list 'grid.mixtures.list=[{items}]' "
            f"grid.shapes.tokens={int(tokens)} 'grid.seeds=[{','.join(map(str, seeds))}]'")


def compare_confirmation(law: MixingLaw, runs: pd.DataFrame, mixes: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Per confirmation mixture: measured objective (mean and seed std over its runs), the law's prediction at the
    fitted size with its interval, and both differences to the natural (else uniform) mixture. A law fitted at one
    size predicts levels at that size only; what should carry over to the larger scale is the ranking and the gaps."""
    doms = law.domains
    W = runs[[W_PREFIX + d for d in doms]].to_numpy(float)
    names = list(mixes)
    M = np.array([[mixes[n].get(d, 0.0) for d in doms] for n in names])
    which = np.argmin(((W[:, None, :] - M[None]) ** 2).sum(-1), axis=1)
    measured = law.objective.value(runs)
    ref = "natural" if "natural" in mixes else "uniform"
    samples = law.samples(M)
    pred = law.predict(M)
    lo, hi = law.interval(M)
    rows = []
    for i, n in enumerate(names):
        m = measured[which == i]
        r = measured[which == names.index(ref)]
        gap = samples[:, i] - samples[:, names.index(ref)] if len(samples) else np.array([])
        g_lo, g_hi = ci(gap, law.config.ci_level) if len(gap) else (np.nan, np.nan)
        rows.append({"mixture": n, "runs": len(m), "measured": m.mean() if len(m) else np.nan,
                     "seed std": m.std(ddof=1) if len(m) > 1 else np.nan, "predicted (fit size)": pred[i],
                     "predicted lo": lo[i], "predicted hi": hi[i],
                     f"measured - {ref}": m.mean() - r.mean() if len(m) and len(r) else np.nan,
                     f"predicted - {ref}": pred[i] - pred[names.index(ref)], "gap lo": g_lo, "gap hi": g_hi})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json
    from pathlib import Path

    from analysis import results
    p = argparse.ArgumentParser(prog="python -m analysis.mixing_report",
                                description="Fit the mixing law of a mixture sweep; print the recommendation and the "
                                            "command that confirms it at a larger scale (or compare a confirmation).")
    p.add_argument("sweep_dir")
    p.add_argument("--tokens-factor", type=float, default=4.0, help="confirmation D as a multiple of the fitted D")
    p.add_argument("--confirm", metavar="CONFIRM_DIR", help="a finished confirmation sweep to compare with")
    p.add_argument("--bootstrap", type=int, default=MixingConfig.n_bootstrap)
    args = p.parse_args(argv)
    runs = results.load(args.sweep_dir).runs
    doms = domains_of(runs)
    law = fit(runs, "natural" if natural_proportions(runs, doms) else "uniform",
              config=MixingConfig(n_bootstrap=args.bootstrap))
    print(law.summary())
    mixes_file = Path(args.sweep_dir) / "confirmation_mixtures.json"
    if args.confirm:
        mixes = json.loads(mixes_file.read_text())
        print(compare_confirmation(law, results.load(args.confirm).runs, mixes).to_string(index=False))
        return
    rec = law.recommend()
    print(rec.table().to_string(index=False))
    mixes = confirmation_mixtures(law, rec)
    mixes_file.write_text(json.dumps(mixes, indent=1))
    D = (law.fit_size[1] if law.fit_size else float(runs["tokens"].max())) * args.tokens_factor
    print(f"wrote {mixes_file}\nconfirm at D = {D:.3g}:\n  " + confirm_command(mixes, D)
          + f"\nthen: python -m analysis.mixing_report {args.sweep_dir} --confirm runs/mixture_confirm")


if __name__ == "__main__":
    main()
