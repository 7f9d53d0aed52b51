"""The report's data-mixture section: which mixture, how sure, and how well the law predicts held-out mixtures.

    report_section(ctx)   -> blocks for analysis.report (registered with analysis.report_blocks.register; None when the sweep did not vary
                             its mixture over enough mixtures)
    blocks(runs, ...)     -> the same as neutral tuples, from a runs table alone (notebooks, other reports)

The objective is the held-out loss on the corpus's natural token proportions (every run is evaluated on every
domain, so runs trained on different mixtures are scored on the same evaluation mixture); uniform when the runs
do not carry the corpus's token counts.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from analysis.laws import mixing_ceiling
from analysis.laws.common import FitError, ci
from analysis.laws.mixing import (
    SIZE_LAWS,
    W_PREFIX,
    MixingConfig,
    MixingLaw,
    domains_of,
    fit,
    heldout_by_size,
    heldout_summary,
    natural_proportions,
    split_check,
)
from analysis.report_blocks import register

TITLE = "Data mixture"


def has_mixtures(runs: pd.DataFrame) -> bool:
    """More than two distinct training mixtures: a mixture sweep, not runs that share one mixture."""
    cols = [c for c in runs.columns if c.startswith(W_PREFIX)]
    return len(cols) >= 2 and len(runs[cols].round(4).drop_duplicates()) > 2


def _ci(v: float, lo: float, hi: float, spec: str = ".3f") -> str:
    return format(v, spec) if not np.isfinite(lo) else f"{format(v, spec)} [{format(lo, spec)}, {format(hi, spec)}]"


def trust_text(rec) -> str:
    """Where the recommendation was searched, in words."""
    return {"hull": "inside the convex hull of the sampled mixtures (the trust region)",
            "box": "within each domain's sampled range (the trust region)",
            None: "over the whole simplex (no trust region)"}[rec.trust]


def gains_table(rec) -> pd.DataFrame:
    """Per baseline: predicted objective, the recommendation's predicted gain (> 0: better) with the bootstrap-only
    interval and the interval that also holds the law's held-out gap error, and the baseline's distance to the
    sampled mixtures (> 0: the baseline itself is an extrapolation of the law)."""
    rows = []
    for name, b in rec.baselines.items():
        rows.append({"baseline": name, "predicted [CI]": _ci(b["predicted"], *b["predicted_ci"], ".4f"),
                     "predicted gain [bootstrap CI]": _ci(b["gain"], *b["gain_boot_ci"], "+.4f"),
                     "predicted gain [CI with gap error]": _ci(b["gain"], *b["gain_ci"], "+.4f"),
                     "better in (bootstrap laws)": f"{b['p_better']:.0%}",
                     "distance to sampled hull (L1)": f"{b['hull_distance']:.3f}"})
    return pd.DataFrame(rows)


def gains_caption(rec, level: float) -> str:
    return (f"Predicted gain of the {'recommendation' if rec.supported else 'best candidate'} "
            f"({_ci(rec.predicted, *rec.predicted_ci, '.4f')}) over each baseline (objective of the baseline minus "
            f"the candidate's, so > 0 is better), {level:.0%} intervals: bootstrap laws, and the same widened by the "
            f"law's held-out gap error {rec.gap_error:.4f} (the spread of held-out prediction errors between two "
            "mixtures: misfit and seed noise). A recommendation needs the wider interval above zero for every baseline")


def blocks(runs: pd.DataFrame, config: MixingConfig | None = None, figures: bool = True,
           sweep_dir=None) -> list[tuple]:
    """("heading", text) ("para", text) ("table", df, caption) ("figure", name, fig, caption). sweep_dir: where
    `python -m analysis.mixing_report` saved the confirmation's mixtures (confirmation_mixtures.json); its
    confirmation sweep, when run, is compared here."""
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
    show = pd.DataFrame({"law": [f"{f}: {law.form(f)}" for f in cv["family"]],
                         "mean |error|": cv["mean_rel_error"].map(lambda x: f"{x:.2%}"),
                         "max |error|": cv["max_rel_error"].map(lambda x: f"{x:.2%}"),
                         "Spearman": cv["spearman"].map(lambda x: f"{x:.3f}")})
    out.append(("table", show, f"Held-out-mixture check: {int(cv['folds'].iloc[0])}-fold, each mixture's runs held out "
                               "together and predicted by a law fitted without them (relative error of the objective)"))
    out.append(("para", f"The report uses the **{law.family}** law, the best on held-out mixtures ({law.cv_summary()})."
                + (f" Seed noise: the objective's standard deviation over repeated runs of one mixture is "
                   f"{law.seed_noise:.4f}." if np.isfinite(law.seed_noise) else "")))
    ceil = mixing_ceiling.from_heldout(law)
    out.append(("para", ceiling_text(law, ceil)))
    rec = law.recommend()
    tab = rec.table()
    nat = law.natural or {}
    what = "recommended" if rec.supported else "best candidate (not recommended)"
    show = pd.DataFrame({"domain": tab["domain"],
                         f"{what} [CI]": [_ci(w, lo, hi) for w, lo, hi in zip(tab["weight"], tab["lo"], tab["hi"])],
                         "natural": [f"{nat.get(d, np.nan):.3f}" for d in tab["domain"]],
                         "sampled range": [f"{a:.3f}-{b:.3f}" for a, b in (rec.trust_range.get(d, (0.0, 1.0))
                                                                             for d in tab["domain"])],
                         "upper bound": tab["upper bound"].map(lambda x: f"{x:.3g}"),
                         "epochs at D": tab["epochs at D"].map(lambda x: f"{x:.2f}" if np.isfinite(x) else "–")})
    out.append(("para", f"**{rec.verdict[0].upper() + rec.verdict[1:]}.**"))
    out.append(("table", show, f"{what[0].upper() + what[1:]} mixture at the swept size, searched {trust_text(rec)} "
                               f"({cfg.ci_level:.0%} intervals from {min(cfg.recommend_resamples, cfg.n_bootstrap)} "
                               "bootstrap laws re-optimised; upper bounds from token caps of 4 epochs at D where corpus "
                               "token counts are known)"))
    out.append(("table", gains_table(rec), gains_caption(rec, law.config.ci_level)))
    best = law.table.assign(objective=law.objective.value(law.table)).sort_values("objective")
    out.append(("para", f"Best measured run: {best['run_id'].iloc[0] if 'run_id' in best else best.index[0]} at "
                        f"{best['objective'].iloc[0]:.4f} (" + ", ".join(
                            f"{d} {best[W_PREFIX + d].iloc[0]:.2f}" for d in law.domains) + ")."))
    out += [("para", f"Warning: {w}") for w in law.warnings + rec.warnings]
    out.append(("para", "Confirmation: `make mixture-confirm MIX=<sweep>` trains the recommendation, uniform and natural "
                        "(2 seeds each) and a two-stage curriculum (natural, the last 15% of tokens on the "
                        "recommendation) at 4x D, then writes predicted against measured with intervals and whether "
                        "the recommendation beats each baseline by more than the seed noise to "
                        "<sweep>/mixture_confirmation.md."))
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
        if ceil is not None:
            out.append(("figure", "mixture_ceiling", plot_ceiling(ceil, _spearman(law)),
                        "The held-out Spearman an exact law can expect on this design against the seeds per mixture "
                        f"(line: Moran's expectation for a normal spread; band: {ceil.level:.0%} of designs like it; "
                        "square: simulated on the measured values' spacing, which the verdict uses), and the law's "
                        "measured one: below the range is the law's fault, inside it the design's."))
    saved = saved_confirmation(sweep_dir)
    size_law = None
    if law.fit_size and runs[[cfg.n_col, cfg.d_col]].drop_duplicates().shape[0] > 1:
        size_law = size_law_for(law, runs, objective, cfg)
        out += size_blocks(size_law, saved, figures) if size_law is not None else [
            ("para", "No size law (joint or additive) could be fitted to these runs: " + "; ".join(law.warnings))]
    if saved is not None:
        out += confirmation_blocks(law, size_law, saved, sweep_dir, len(runs), figures)
    return out


def _spearman(law: MixingLaw) -> float:
    return float(law.cv.set_index("family").loc[law.family, "spearman"])


def ceiling_text(law: MixingLaw, ceil) -> str:
    """The held-out Spearman beside the ceiling the design's spread and seed noise allow an exact law: whose is a low
    Spearman, the law's or the design's (analysis/laws/mixing_ceiling.py)."""
    v = mixing_ceiling.verdict(_spearman(law), ceil)
    head = "**Spearman ceiling.** " + v[0].upper() + v[1:]
    return head + ("." if ceil is None else f". In numbers: {ceil.text()}.")


# ------------------------------------------------------------------------------------------ sizes
PATH_RESAMPLES = 50      # bootstrap laws re-optimised per size of the optimum's path (each is an SLSQP solve)


def saved_confirmation(sweep_dir) -> dict | None:
    """What `python -m analysis.mixing_report` wrote: the confirmation's mixtures, size and directories."""
    import json
    from pathlib import Path
    if sweep_dir is None or not (Path(sweep_dir) / "confirmation_mixtures.json").exists():
        return None
    return json.loads((Path(sweep_dir) / "confirmation_mixtures.json").read_text())


def optimum_table(size_law: MixingLaw, sizes: list[tuple[float, float]], trust: str | None = "hull") -> pd.DataFrame:
    """Per (N, D): the recommended weights with intervals and the predicted objective (a size law's), searched in
    the trust region `trust` (MixingLaw.recommend)."""
    import dataclasses
    law = dataclasses.replace(size_law, config=dataclasses.replace(
        size_law.config, recommend_resamples=min(size_law.config.recommend_resamples, PATH_RESAMPLES)))
    rows = []
    for n, d in sizes:
        r = law.recommend(N=n, D=d, trust=trust)
        row = {"N": n, "D": d, "predicted": r.predicted, "predicted lo": r.predicted_ci[0],
               "predicted hi": r.predicted_ci[1], "supported": r.supported}
        for dom in law.domains:
            row.update({f"w_{dom}": r.weights[dom], f"lo_{dom}": r.weights_ci[dom][0],
                        f"hi_{dom}": r.weights_ci[dom][1]})
        rows.append(row)
    return pd.DataFrame(rows)


def size_blocks(size_law: MixingLaw, saved: dict | None, figures: bool = True) -> list[tuple]:
    """The size law's held-out check at each (N, D) and how its optimal mixture moves with N and D."""
    cfg = size_law.config
    out: list[tuple] = [("heading", "Data mixture across sizes")]
    pred = heldout_by_size(size_law)
    summ = heldout_summary(pred)
    out.append(("para", f"Size law: **{size_law.family}** ({size_law.form()}), fitted to all "
                        f"{len(size_law.table)} runs at {len(summ)} sizes (N = {cfg.n_col}, D = {cfg.d_col}). "
                        + ("In this law the optimal mixture moves with N and D." if size_law.family == "joint" else
                           "In this law the optimal mixture does not depend on N or D (only the joint law moves "
                           "it); it had the lower held-out error here.")))
    out.append(("table", pd.DataFrame({
        "N": summ["N"].map(lambda x: f"{x:.3g}"), "D": summ["D"].map(lambda x: f"{x:.3g}"),
        "held-out mixtures": summ["mixtures"], "mean |error|": summ["mean_rel_error"].map(lambda x: f"{x:.2%}"),
        "max |error|": summ["max_rel_error"].map(lambda x: f"{x:.2%}"),
        "Spearman": summ["spearman"].map(lambda x: f"{x:.3f}")}),
        f"Held-out mixtures per size: {pred['mixture'].nunique()} mixtures in {min(cfg.folds, pred['mixture'].nunique())}"
        " folds, each mixture's runs at every size left out of the fit that predicts them (pure mixtures stay in "
        "training)"))
    sizes = sorted({(float(n), float(d)) for n, d in zip(summ["N"], summ["D"])})
    if saved and saved.get("N") and saved.get("D") and (saved["N"], saved["D"]) not in sizes:
        sizes.append((float(saved["N"]), float(saved["D"])))
    path = optimum_table(size_law, sizes)
    doms = size_law.domains
    show = pd.DataFrame({"N": path["N"].map(lambda x: f"{x:.3g}"), "D": path["D"].map(lambda x: f"{x:.3g}"),
                         **{d: [_ci(w, lo, hi, ".2f") for w, lo, hi in zip(path[f"w_{d}"], path[f"lo_{d}"],
                                                                           path[f"hi_{d}"])] for d in doms},
                         "predicted objective": [_ci(v, lo, hi, ".4f") for v, lo, hi in zip(
                             path["predicted"], path["predicted lo"], path["predicted hi"])]})
    out.append(("table", show, f"Recommended mixture at each size ({cfg.ci_level:.0%} intervals from "
                               f"{min(PATH_RESAMPLES, cfg.recommend_resamples)} bootstrap laws re-optimised)"
                + ("; the last row is the confirmation's size, beyond the fitted ones" if saved and saved.get("N")
                   and (saved["N"], saved["D"]) not in [tuple(x) for x in summ[["N", "D"]].to_numpy()] else "")))
    out.append(("para", moves_text(path, doms)))
    if figures:
        out.append(("figure", "mixture_sizes_heldout", plot_heldout_sizes(pred),
                    "Predicted (held out) against measured objective at each size."))
        out.append(("figure", "mixture_optimum_path", plot_optimum_path(path, doms),
                    "Recommended weight of each domain against N, one line per D (90% intervals)."))
    return out


def moves_text(path: pd.DataFrame, doms: list[str]) -> str:
    """How far the optimum moves from the smallest to the largest N (at the largest D) and D (at the largest N),
    beside the width of its intervals."""
    parts = []
    for axis, other in (("N", "D"), ("D", "N")):
        at = path[np.isclose(path[other], path[other].max())].sort_values(axis)
        if len(at) < 2:
            continue
        a, b = at.iloc[0], at.iloc[-1]
        shifts = ", ".join(f"{d} {a[f'w_{d}']:.2f} -> {b[f'w_{d}']:.2f}" for d in doms)
        biggest = max(doms, key=lambda d: abs(b[f"w_{d}"] - a[f"w_{d}"]))
        shift = b[f"w_{biggest}"] - a[f"w_{biggest}"]
        apart = b[f"lo_{biggest}"] > a[f"hi_{biggest}"] or a[f"lo_{biggest}"] > b[f"hi_{biggest}"]
        parts.append(f"from {axis} = {a[axis]:.3g} to {b[axis]:.3g} (at {other} = {a[other]:.3g}): {shifts}; the "
                     f"largest move, {biggest} {shift:+.2f}, is " + ("beyond" if apart else "within")
                     + " the two sizes' intervals")
    return ("How the optimum moves: " + "; ".join(parts) + ".") if parts else ""


def plot_heldout_sizes(pred: pd.DataFrame):
    plt = _plt()
    sizes = pred[["N", "D"]].drop_duplicates().sort_values(["N", "D"]).to_numpy()
    fig, axes = plt.subplots(1, len(sizes), figsize=(2.8 * len(sizes), 3.0), squeeze=False)
    for ax, (n, d) in zip(axes[0], sizes):
        g = pred[np.isclose(pred["N"], n) & np.isclose(pred["D"], d)]
        ax.scatter(g["measured"], g["predicted"], s=12, color="#3b3680")
        lo, hi = np.nanmin(g[["measured", "predicted"]].to_numpy()), np.nanmax(g[["measured", "predicted"]].to_numpy())
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
        err = np.mean(np.abs(g["predicted"] / g["measured"] - 1))
        ax.set(title=f"N {n:.3g}, D {d:.3g}: {err:.2%}", xlabel="measured")
        ax.title.set_fontsize(8)
    axes[0][0].set_ylabel("predicted (held out)")
    fig.tight_layout()
    return fig


def plot_optimum_path(path: pd.DataFrame, doms: list[str]):
    plt = _plt()
    fig, axes = plt.subplots(1, len(doms), figsize=(2.8 * len(doms), 3.0), squeeze=False, sharey=True)
    for ax, dom in zip(axes[0], doms):
        for d, g in path.groupby("D"):
            g = g.sort_values("N")
            ax.errorbar(g["N"], g[f"w_{dom}"], yerr=np.vstack([g[f"w_{dom}"] - g[f"lo_{dom}"],
                                                               g[f"hi_{dom}"] - g[f"w_{dom}"]]).clip(0),
                        marker="o", capsize=3, label=f"D {d:.3g}")
        ax.set(xscale="log", title=dom, xlabel="N")
    axes[0][0].set_ylabel("recommended weight")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------ confirmation in the report
def confirmation_blocks(law: MixingLaw, size_law: MixingLaw | None, saved: dict, sweep_dir, n_runs: int,
                        figures: bool = True) -> list[tuple]:
    """The confirmation sweep (if run) against the predictions: measured mean and seed noise per mixture, the law's
    prediction with interval, and whether the recommendation beats uniform and natural beyond the noise."""
    from pathlib import Path
    out: list[tuple] = [("heading", "Data mixture: confirmation at a larger size")]
    made = (f"The recommendation was made by the {saved.get('law', '?')} law fitted on {saved.get('fitted_runs', '?')}"
            f" runs (this report fits {n_runs})" + (f", for N = {saved['N']:.3g}, D = {saved['D']:.3g}"
                                                     if saved.get("N") and saved.get("D") else "") + ".")
    if saved.get("verdict"):
        made += f" Its verdict then: {saved['verdict']}" + ("" if saved.get("supported", True) else
                                                            " (the confirmation tests that candidate, to test the law)")
        made += "."
    if saved.get("holdout"):
        h = saved["holdout"]
        made += (f" Held-out split: fitted on {h['fitted_mixtures']} mixtures, it predicted {h['mixtures']} held-out "
                 f"mixtures within {h['mean_rel_error']:.2%} mean (max {h['max_rel_error']:.2%}), Spearman "
                 f"{h['spearman']:.3f}.")
    if saved.get("sweep_runs", saved.get("fitted_runs")) not in (None, n_runs):
        made += " **The law has changed since: the confirmation tests an earlier law's recommendation.**"
    conf_dir = Path(sweep_dir).parent / saved["confirm_dir"] if saved.get("confirm_dir") else None
    if conf_dir is None or not conf_dir.exists() or not any(conf_dir.glob("*/result.json")):
        return out + [("para", made + f" Not run yet: `sh {Path(sweep_dir) / 'confirm.sh'}` trains it.")]
    mixes, plan = saved["mixtures"], saved.get("curriculum")
    conf = load_runs([str(conf_dir)])
    # only runs of the saved mixtures (to the 6 decimals the command wrote): an earlier recommendation's runs in the
    # same directory would otherwise be matched to the nearest mixture
    M = np.array([[mixes[n].get(d, 0.0) for d in law.domains] for n in mixes])
    Wc = conf[[W_PREFIX + d for d in law.domains]].fillna(0).to_numpy(float)
    exact = np.abs(Wc[:, None, :] - M[None]).max(-1).min(1) < 1e-5
    stale = int((~exact).sum())
    conf = conf[exact].reset_index(drop=True)
    if not len(conf):
        return out + [("para", made + f" The confirmation directory {conf_dir} holds no run of the saved mixtures "
                                      f"({stale} runs of other mixtures): rerun `sh {Path(sweep_dir) / 'confirm.sh'}`.")]
    cur_dir = Path(sweep_dir).parent / saved["curriculum_dir"] if saved.get("curriculum_dir") else None
    cur = load_runs([str(cur_dir)]) if cur_dir and any(cur_dir.glob("*/result.json")) else None
    cur_name = plan["name"] if plan else "curriculum"
    cmp = compare_confirmation(law, conf, mixes, size_law, cur, cur_name)
    which, vals = _match(law, conf, M), law.objective.value(conf)
    groups = {n: vals[which == i] for i, n in enumerate(mixes) if (which == i).any()}
    if cur is not None and len(cur):
        groups[cur_name] = law.objective.value(cur)
    cmp, groups = as_candidate(cmp, groups, saved)
    lines = verdicts(cmp, groups, law.config.ci_level)
    out.append(("para", made + f" Confirmation: {len(conf)} runs at N = {conf[law.config.n_col].median():.3g}, "
                              f"D = {conf[law.config.d_col].median():.3g}" + (f" (+ {len(cur)} curriculum runs)"
                                                                               if cur is not None else "") + "."
                        + (f" {stale} run(s) of other mixtures in that directory (an earlier recommendation's) are "
                           "left out." if stale else "")))
    cols = {"mixture": cmp["mixture"], "runs": cmp["runs"],
            "measured (mean ± seed sd)": [f"{m:.4f} ± {s:.4f}" if np.isfinite(s) else f"{m:.4f}"
                                          for m, s in zip(cmp["measured"], cmp["seed std"])]}
    if "predicted (this size)" in cmp:
        cols["predicted at this size [CI]"] = [_ci(v, lo, hi, ".4f") if np.isfinite(v) else "–" for v, lo, hi in zip(
            cmp["predicted (this size)"], cmp["this size lo"], cmp["this size hi"])]
        cols["measured inside?"] = ["–" if not np.isfinite(v) else ("yes" if lo <= m <= hi else "no") for m, v, lo, hi
                                    in zip(cmp["measured"], cmp["predicted (this size)"], cmp["this size lo"],
                                           cmp["this size hi"])]
    ref = next(c[len("measured - "):] for c in cmp.columns if c.startswith("measured - "))
    cols[f"measured - {ref}"] = cmp[f"measured - {ref}"].map(lambda x: f"{x:+.4f}")
    cols[f"predicted - {ref} [CI]"] = [_ci(v, lo, hi, "+.4f") if np.isfinite(v) else "–" for v, lo, hi in zip(
        cmp[f"predicted - {ref}"], cmp["gap lo"], cmp["gap hi"])]
    out.append(("table", pd.DataFrame(cols), "Confirmation: measured against predicted ("
                + (f"levels and gaps to {ref} from the {size_law.family} size law at the confirmation's N and D"
                   if size_law else f"gaps to {ref} from the {law.family} law at its fit size")
                + f"; intervals are the law's {law.config.ci_level:.0%} bootstrap intervals, without seed noise)"))
    out.append(("para", " ".join(lines)))
    out.append(("para", "**Verdict:** " + verdict_text(lines)))
    if figures:
        out.append(("figure", "mixture_confirmation", plot_confirmation(cmp),
                    "Confirmation: measured (mean and seed sd) against predicted with intervals."))
    return out


CANDIDATE = "candidate"     # the confirmation's name for the law's best mixture when it was not recommended


def as_candidate(cmp: pd.DataFrame, groups: dict, saved: dict) -> tuple[pd.DataFrame, dict]:
    """The confirmation's table and runs by mixture with "recommended" renamed "candidate" when the law made no
    recommendation (saved["supported"] false): the confirmation then tests the law's best candidate, and calling it
    the recommendation would state what the law's intervals did not support."""
    if saved.get("supported", True):
        return cmp, groups
    return (cmp.assign(mixture=cmp["mixture"].replace({"recommended": CANDIDATE})),
            {CANDIDATE if n == "recommended" else n: v for n, v in groups.items()})


def verdict_text(lines: list[str]) -> str:
    """One plain sentence from verdicts(): does the recommendation (or the candidate) beat uniform and natural beyond
    the noise."""
    name = "recommended" if any(x.startswith("recommended vs ") for x in lines) else CANDIDATE
    rec = [x for x in lines if x.startswith(f"{name} vs ")]
    if not rec:
        return lines[0] if lines else "no confirmation runs."
    what = "the recommended mixture" if name == "recommended" else "the law's candidate (not recommended)"
    beats = [x.split(":")[0][len(f"{name} vs "):] for x in rec if "beats it" in x]
    not_beats = [x.split(":")[0][len(f"{name} vs "):] for x in rec if "does NOT" in x]
    missed = [x.split(":")[0][len("Prediction check, "):] for x in lines
              if x.startswith("Prediction check, ") and "OUTSIDE" in x]
    tail = (f" The law's predicted gap missed the measured one for {', '.join(missed)} (beyond the seed noise)."
            if missed else "")
    if beats and not not_beats:
        return f"{what} beats {' and '.join(beats)} by more than the seed noise." + tail
    if not beats:
        return f"{what} does NOT beat {' or '.join(not_beats)} by more than the seed noise." + tail
    return f"{what} beats {' and '.join(beats)} by more than the seed noise, but NOT {' or '.join(not_beats)}." + tail


@register
def report_section(ctx):
    """analysis.report section: None (skipped) when the sweep did not vary its mixture."""
    from analysis import report_blocks as report
    runs = ctx.runs
    if not has_mixtures(runs):
        return None
    from pathlib import Path
    cfg = MixingConfig(n_bootstrap=ctx.config.n_bootstrap, seed=ctx.config.seed, ci_level=ctx.config.ci_level)
    kinds = {"heading": lambda b: report.Heading(b[1]), "para": lambda b: report.Para(b[1]),
             "table": lambda b: report.Table(b[1], b[2]), "figure": lambda b: report.Figure(b[1], b[2], b[3])}
    run_dirs = list(ctx.results.grid_conventions)
    sweep_dir = Path(run_dirs[0]).parent if run_dirs else None
    return [kinds[b[0]](b) for b in blocks(runs, cfg, sweep_dir=sweep_dir)]


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
    # clipped: a point optimum on the trust region's edge can lie outside its resamples' quantiles
    yerr = np.clip(np.vstack([w - lo, hi - w]), 0, None) if np.all(np.isfinite(lo)) else None
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


def plot_ceiling(ceil, measured: float, max_seeds: int = 8):
    plt = _plt()
    k = np.arange(1, max_seeds + 1)
    rows = [mixing_ceiling.ceiling(ceil.spread_sd, ceil.seed_noise / np.sqrt(j), ceil.n, level=ceil.level,
                                   sims=1000) for j in k]
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.fill_between(k, [r.lo for r in rows], [r.hi for r in rows], color="#3b3680", alpha=0.2, lw=0)
    ax.plot(k, [r.expected for r in rows], color="#3b3680", label="exact law: expected")
    ax.axhline(ceil.target, color="k", lw=0.8, ls="--", label=f"target {ceil.target:g}")
    if np.isfinite(ceil.conditional):
        ax.errorbar([ceil.seeds], [ceil.conditional], yerr=[[ceil.conditional - ceil.cond_lo],
                                                            [ceil.cond_hi - ceil.conditional]],
                    fmt="s", color="#3b3680", capsize=3, label="exact law, on this design's spacing")
    if np.isfinite(measured):
        ax.scatter([ceil.seeds], [measured], color="#d95f02", zorder=3, label="measured (this design)")
    low = min([r.lo for r in rows] + [v for v in (measured, ceil.cond_lo) if np.isfinite(v)])
    ax.set(xlabel="seeds per mixture", ylabel="held-out Spearman", ylim=(max(-1.0, min(low, ceil.target) - 0.1), 1.02))
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------ confirmation
CURRICULUM_FRAC = 0.15          # the curriculum's last stage: the final 15% of tokens (the 10-20%)


def confirmation_mixtures(law: MixingLaw, rec=None) -> dict[str, dict[str, float]]:
    """The mixtures a confirmation trains: the recommendation, uniform, and natural (where known)."""
    rec = rec or law.recommend()
    out = {"recommended": rec.weights, "uniform": {d: 1 / len(law.domains) for d in law.domains}}
    if law.natural:
        out["natural"] = dict(law.natural)
    return out


def curriculum_plan(mixes: dict[str, dict[str, float]], toward: str = "recommended",
                    frac: float = CURRICULUM_FRAC) -> dict:
    """The two-stage curriculum a confirmation compares: train on the base mixture (natural, else uniform) and
    remix the last `frac` of the tokens toward `toward`: "recommended", or domain names joined by commas (the
    last stage is then half the base mixture, half uniform over those domains)."""
    if not 0 < frac < 1:
        raise ValueError(f"curriculum frac={frac}: must be in (0, 1), e.g. 0.15 (the last 15% of tokens)")
    base_name = "natural" if "natural" in mixes else "uniform"
    base = mixes[base_name]
    if toward == "recommended":
        late = dict(mixes["recommended"])
    else:
        chosen = [d.strip() for d in toward.split(",") if d.strip()]
        if unknown := [d for d in chosen if d not in base]:
            raise ValueError(f"curriculum toward={toward!r}: {unknown} not among the domains {sorted(base)}")
        late = {d: 0.5 * base[d] + (0.5 / len(chosen) if d in chosen else 0.0) for d in base}
    total = sum(late.values())
    return {"base": base_name, "start_frac": 1 - frac, "weights": {d: w / total for d, w in late.items()},
            "name": f"{base_name} -> {toward} (last {frac:.0%})"}


def _mixture_text(m: dict[str, float]) -> str:
    """Weights in millionths that add up to exactly one: six rounded decimals can sum to 0.999999, which the
    spec's weight check (sum within 1e-6) refuses. Largest remainders: each weight is its millionths rounded down,
    and the millionths left go one each to the weights that lost most, so no weight moves by a millionth or more
    (the confirmation matches its runs to the saved weights within 1e-5, whatever the number of domains)."""
    kept = {d: w for d, w in m.items() if w > 5e-7}
    scaled = {d: w / math.fsum(kept.values()) * 1_000_000 for d, w in kept.items()}
    micro = {d: math.floor(x) for d, x in scaled.items()}
    for d in sorted(scaled, key=lambda d: micro[d] - scaled[d])[:1_000_000 - sum(micro.values())]:
        micro[d] += 1
    return "{" + ",".join(f"{d}:{q // 1_000_000}.{q % 1_000_000:06d}" for d, q in micro.items()) + "}"


def confirm_command(mixes: dict[str, dict[str, float]], tokens: float, seeds=(0, 1),
                    name: str = "mixture_confirm", extra: str = "", depth: int | None = None) -> str:
    """The sweep command that trains `mixes` at `tokens` with each seed (a list-kind mixture grid), at `depth`
    (default: the grid's, scale.mixture_depth)."""
    items = ",".join(_mixture_text(m) for m in mixes.values())
    return (f"python sweep.py +grid=mixture grid.name={name} grid.mixtures.kind=list 'grid.mixtures.list=[{items}]' "
            + (f"grid.shapes.depth={int(depth)} " if depth else "") + f"grid.shapes.tokens={int(tokens)} 'grid.seeds=[{','.join(map(str, seeds))}]'" + (f" {extra}" if extra
                                                                                              else ""))


def curriculum_command(mixes: dict, plan: dict, tokens: float, seeds=(0, 1), name: str = "mixture_curriculum",
                       extra: str = "", depth: int | None = None) -> str:
    """The sweep command that trains the curriculum: the base mixture, its last stage remixed (data.stages)."""
    stage = f"'data.stages=[{{start_frac:{plan['start_frac']:.4g},weights:{_mixture_text(plan['weights'])}}}]'"
    return confirm_command({plan["base"]: mixes[plan["base"]]}, tokens, seeds, name, (stage + " " + extra).strip(),
                           depth)


def _match(law: MixingLaw, runs: pd.DataFrame, M: np.ndarray) -> np.ndarray:
    W = runs[[W_PREFIX + d for d in law.domains]].to_numpy(float)
    return np.argmin(((W[:, None, :] - M[None]) ** 2).sum(-1), axis=1)


def seed_noise(groups: list[np.ndarray]) -> tuple[float, int]:
    """Pooled standard deviation over repeated runs of each group (seeds), with its degrees of freedom."""
    dof = sum(len(g) - 1 for g in groups if len(g) > 1)
    if not dof:
        return float("nan"), 0
    ss = sum(((g - g.mean()) ** 2).sum() for g in groups if len(g) > 1)
    return float(np.sqrt(ss / dof)), dof


def compare_confirmation(law: MixingLaw, runs: pd.DataFrame, mixes: dict[str, dict[str, float]],
                         size_law: MixingLaw | None = None, curriculum: pd.DataFrame | None = None,
                         curriculum_name: str = "curriculum") -> pd.DataFrame:
    """Per confirmation mixture: measured objective (mean and seed std over its runs), the law's prediction at the
    fitted size with its interval, and both differences to the natural (else uniform) mixture. A law fitted at one
    size predicts levels at that size only; what should carry over to the larger scale is the ranking and the gaps.
    `size_law` (a law in N and D, fitted where the mixture runs span several sizes) adds its prediction, with
    interval, at the confirmation runs' own N and D. `curriculum`: runs of a two-stage curriculum, one more row
    (measured only: no law here models a change of mixture during training)."""
    doms = law.domains
    names = list(mixes)
    M = np.array([[mixes[n].get(d, 0.0) for d in doms] for n in names])
    which = _match(law, runs, M)
    measured = law.objective.value(runs)
    ref = "natural" if "natural" in mixes else "uniform"
    samples = law.samples(M)
    pred = law.predict(M)
    lo, hi = law.interval(M)
    gap_samples, gap_pred = samples, pred
    if size_law is not None:
        # the size law predicts at the confirmation's own N and D: its gaps there replace the fit size's
        N, D = float(runs[size_law.config.n_col].median()), float(runs[size_law.config.d_col].median())
        s_pred, (s_lo, s_hi) = size_law.predict(M, N=N, D=D), size_law.interval(M, N=N, D=D)
        gap_samples, gap_pred = size_law.samples(M, N=N, D=D), s_pred
    rows = []
    for i, n in enumerate(names):
        m = measured[which == i]
        r = measured[which == names.index(ref)]
        gap = gap_samples[:, i] - gap_samples[:, names.index(ref)] if len(gap_samples) else np.array([])
        g_lo, g_hi = ci(gap, law.config.ci_level) if len(gap) else (np.nan, np.nan)
        row = {"mixture": n, "runs": len(m), "measured": m.mean() if len(m) else np.nan,
               "seed std": m.std(ddof=1) if len(m) > 1 else np.nan, "predicted (fit size)": pred[i],
               "predicted lo": lo[i], "predicted hi": hi[i],
               f"measured - {ref}": m.mean() - r.mean() if len(m) and len(r) else np.nan,
               f"predicted - {ref}": gap_pred[i] - gap_pred[names.index(ref)], "gap lo": g_lo, "gap hi": g_hi}
        if size_law is not None:
            row.update({"predicted (this size)": s_pred[i], "this size lo": s_lo[i], "this size hi": s_hi[i]})
        rows.append(row)
    if curriculum is not None and len(curriculum):
        m, r = law.objective.value(curriculum), measured[which == names.index(ref)]
        rows.append({"mixture": curriculum_name, "runs": len(m), "measured": m.mean(),
                     "seed std": m.std(ddof=1) if len(m) > 1 else np.nan,
                     f"measured - {ref}": m.mean() - r.mean() if len(r) else np.nan})
    return pd.DataFrame(rows)


def verdicts(cmp: pd.DataFrame, runs_by_mixture: dict[str, np.ndarray], ci_level: float = 0.9) -> list[str]:
    """Whether the recommendation (and the curriculum, if run) beats each baseline by more than the seed noise:
    the difference of mean objectives against a one-sided t bound on the pooled seed standard deviation."""
    from scipy.stats import t as student_t
    sd, dof = seed_noise(list(runs_by_mixture.values()))
    if not dof:
        return ["Seed noise not measured (one run per mixture): no verdict; train with 2 or more seeds."]
    q = float(student_t.ppf(ci_level, dof))
    out = [f"Seed noise: pooled standard deviation of the objective {sd:.4f} ({dof} degrees of freedom, "
           f"{len(runs_by_mixture)} mixtures)."]
    for cand in [c for c in ("recommended", CANDIDATE, *[k for k in runs_by_mixture if "->" in k])
                 if c in runs_by_mixture]:
        a = runs_by_mixture[cand]
        for base in ("uniform", "natural"):
            if base not in runs_by_mixture:
                continue
            b = runs_by_mixture[base]
            diff = a.mean() - b.mean()
            se = sd * np.sqrt(1 / len(a) + 1 / len(b))
            beats = diff < -q * se
            out.append(f"{cand} vs {base}: {diff:+.4f} ({'better' if diff < 0 else 'worse'}; standard error "
                       f"{se:.4f}, one-sided {ci_level:.0%} bound {q * se:.4f}): "
                       + ("beats it by more than the seed noise." if beats else
                          "does NOT beat it by more than the seed noise."))
    return out + prediction_checks(cmp, runs_by_mixture, sd, q)


def prediction_checks(cmp: pd.DataFrame | None, runs_by_mixture: dict[str, np.ndarray], sd: float,
                      q: float) -> list[str]:
    """Whether each measured gap to the reference mixture lies in the law's predicted gap interval widened by the
    seed noise (q standard errors of the measured gap): the law's interval holds no seed noise, so a measured gap
    just outside it is not yet a miss, while one further out says the law's mixture effect did not carry to the
    confirmation's size."""
    if cmp is None or "gap lo" not in cmp:
        return []
    ref = next((c[len("measured - "):] for c in cmp.columns if c.startswith("measured - ")), None)
    if ref not in runs_by_mixture:
        return []
    out = []
    for _, row in cmp.iterrows():
        name, lo, hi = row["mixture"], float(row["gap lo"]), float(row["gap hi"])
        if name == ref or name not in runs_by_mixture or not (np.isfinite(lo) and np.isfinite(hi)):
            continue
        measured = runs_by_mixture[name].mean() - runs_by_mixture[ref].mean()
        se = sd * np.sqrt(1 / len(runs_by_mixture[name]) + 1 / len(runs_by_mixture[ref]))
        inside = lo - q * se <= measured <= hi + q * se
        out.append(f"Prediction check, {name} - {ref}: measured {measured:+.4f}, predicted "
                   f"{float(row[f'predicted - {ref}']):+.4f} [{lo:+.4f}, {hi:+.4f}]; "
                   + ("inside that interval widened by the seed noise." if inside else
                      f"OUTSIDE that interval widened by the seed noise ({q * se:.4f}): the law's predicted gap did "
                      "not hold at the confirmation's size."))
    return out


def plot_confirmation(cmp: pd.DataFrame):
    """Measured (mean +- seed std) against predicted (with interval) per confirmation mixture."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    x = np.arange(len(cmp))
    ax.errorbar(x - 0.1, cmp["measured"], yerr=cmp["seed std"].fillna(0), fmt="o", color="k", capsize=3,
                label="measured (mean, seed std)")
    col = "predicted (this size)" if "predicted (this size)" in cmp else None
    if col:
        ok = cmp[col].notna()
        ax.errorbar(x[ok] + 0.1, cmp.loc[ok, col], fmt="s", color="#3b3680", capsize=3, label="predicted (size law)",
                    yerr=np.vstack([cmp.loc[ok, col] - cmp.loc[ok, "this size lo"],
                                    cmp.loc[ok, "this size hi"] - cmp.loc[ok, col]]))
    else:            # no size law: the fit-size law's predicted gap, placed on the measured reference mixture
        gap = next(c for c in cmp.columns if c.startswith("predicted - "))
        ref = gap[len("predicted - "):]
        ok = cmp[gap].notna()
        base = float(cmp.loc[cmp["mixture"] == ref, "measured"].iloc[0])
        ax.errorbar(x[ok] + 0.1, base + cmp.loc[ok, gap], fmt="s", color="#3b3680", capsize=3,
                    label=f"measured {ref} + predicted gap (90%)",
                    yerr=np.vstack([cmp.loc[ok, gap] - cmp.loc[ok, "gap lo"], cmp.loc[ok, "gap hi"] - cmp.loc[ok, gap]]))
    ax.set_xticks(x, cmp["mixture"], rotation=15, fontsize=8)
    ax.set(ylabel="objective")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def load_runs(dirs: list[str]) -> pd.DataFrame:
    from analysis import results
    return pd.concat([results.load(d).runs for d in dirs], ignore_index=True)


def size_law_for(law: MixingLaw, runs: pd.DataFrame, objective, cfg: MixingConfig) -> MixingLaw | None:
    """The law in N and D with the lower held-out error, where the runs span sizes (else None)."""
    fams = [f for f in law.cv.sort_values("mean_rel_error")["family"] if f in SIZE_LAWS]
    if not fams:
        return None
    if law.family == fams[0]:
        return law
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit(runs, objective, law=fams[0], config=cfg)


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json
    from pathlib import Path

    p = argparse.ArgumentParser(prog="python -m analysis.mixing_report",
                                description="Fit the mixing law of a mixture sweep; print the recommendation and the "
                                            "commands that confirm it at a larger scale (or compare a confirmation).")
    p.add_argument("sweep_dir", help="the mixture sweep (the recommendation and its files are written here)")
    p.add_argument("--also", nargs="*", default=[], metavar="DIR",
                   help="more mixture sweeps fitted with it (seed replicates, other token counts)")
    p.add_argument("--tokens-factor", type=float, default=4.0, help="confirmation D as a multiple of the fitted D")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="confirmation seeds (2+ measure the noise)")
    p.add_argument("--curriculum", default="recommended", metavar="TOWARD",
                   help="the curriculum's last stage: 'recommended', domains 'a,b' (see curriculum_plan), or 'none'")
    p.add_argument("--curriculum-frac", type=float, default=CURRICULUM_FRAC)
    p.add_argument("--sweep-args", default="", help="extra sweep.py overrides for the confirmation (e.g. the model)")
    p.add_argument("--confirm", metavar="CONFIRM_DIR", help="a finished confirmation sweep to compare with")
    p.add_argument("--curriculum-dir", metavar="DIR", help="the finished curriculum sweep (with --confirm)")
    p.add_argument("--bootstrap", type=int, default=MixingConfig.n_bootstrap)
    p.add_argument("--holdout", type=int, default=0, metavar="K",
                   help="hold K interior mixtures (not uniform or natural) out of the fit: the law that recommends is "
                        "fitted on the rest and scored on them (mixture_holdout.csv)")
    args = p.parse_args(argv)
    if args.holdout < 0:
        p.error(f"--holdout {args.holdout}: the number of mixtures to hold out, 0 (none) or more")
    sweep = Path(args.sweep_dir)
    runs = load_runs([args.sweep_dir, *args.also])
    doms = domains_of(runs)
    objective = "natural" if natural_proportions(runs, doms) else "uniform"
    cfg = MixingConfig(n_bootstrap=args.bootstrap)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        law = fit(runs, objective, config=cfg)
    n_sweep_runs, holdout = len(runs), None
    if args.holdout and not args.confirm:
        keep = [{d: 1 / len(doms) for d in doms}] + ([law.natural] if law.natural else [])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            law, per, holdout = split_check(runs, args.holdout, objective, natural=law.natural, config=cfg, keep=keep)
        runs = law.table.drop(columns="_fit_size").reset_index(drop=True)
        per.to_csv(sweep / "mixture_holdout.csv", index=False)
        print(f"held-out split: the {holdout['family']} law fitted on {holdout['fitted_mixtures']} mixtures predicts "
              f"{holdout['mixtures']} held-out mixtures within {holdout['mean_rel_error']:.2%} mean (max "
              f"{holdout['max_rel_error']:.2%}), Spearman {holdout['spearman']:.3f} (wrote {sweep / 'mixture_holdout.csv'})")
        split_ceiling = mixing_ceiling.from_measured(law, per["measured"], per["runs"])
        print("  held-out split's " + mixing_ceiling.verdict(holdout["spearman"], split_ceiling)
              + ("" if split_ceiling is None else f"; {split_ceiling.text()}"))
    print(law.summary())
    print("  " + ceiling_text(law, mixing_ceiling.from_heldout(law)).replace("**", ""))
    mixes_file = sweep / "confirmation_mixtures.json"
    if args.confirm:
        saved = json.loads(mixes_file.read_text())
        mixes, plan = saved["mixtures"], saved.get("curriculum")
        conf = load_runs([args.confirm])
        M = np.array([[mixes[n].get(d, 0.0) for d in law.domains] for n in mixes])
        Wc = conf[[W_PREFIX + d for d in law.domains]].fillna(0).to_numpy(float)
        conf = conf[np.abs(Wc[:, None, :] - M[None]).max(-1).min(1) < 1e-5].reset_index(drop=True)  # saved mixtures
        cur = load_runs([args.curriculum_dir]) if args.curriculum_dir else None
        size_law = size_law_for(law, runs, objective, cfg)
        cmp = compare_confirmation(law, conf, mixes, size_law, cur, plan["name"] if plan else "curriculum")
        M = np.array([[mixes[n].get(d, 0.0) for d in law.domains] for n in mixes])
        which, vals = _match(law, conf, M), law.objective.value(conf)
        groups = {n: vals[which == i] for i, n in enumerate(mixes) if (which == i).any()}
        if cur is not None and len(cur):
            groups[plan["name"] if plan else "curriculum"] = law.objective.value(cur)
        cmp, groups = as_candidate(cmp, groups, saved)
        lines = verdicts(cmp, groups, cfg.ci_level)
        text = cmp.to_string(index=False, float_format=lambda x: f"{x:.4f}")
        print(text + "\n" + "\n".join(lines))
        md = [f"# Mixture confirmation: {args.confirm}", "", law.summary(), "",
              (f"Size law for levels at the confirmation size: {size_law.family} ({size_law.cv_summary()})"
               if size_law is not None else "No size law (the fitted runs share one N and D): predicted levels are "
               "at the fit size; compare gaps."), "", "```", text, "```", "", *[f"- {x}" for x in lines]]
        (sweep / "mixture_confirmation.md").write_text("\n".join(md) + "\n")
        cmp.to_csv(sweep / "mixture_confirmation.csv", index=False)
        plot_confirmation(cmp).savefig(sweep / "mixture_confirmation.png", dpi=120)
        print(f"wrote {sweep / 'mixture_confirmation.md'} (+ .csv, .png)")
        return
    # where the runs span sizes, the confirmation is at the largest N and tokens_factor x the largest D, and the
    # recommendation is the size law's optimum THERE (its levels and intervals are predictions at that size)
    size_law = size_law_for(law, runs, objective, cfg) if law.fit_size and \
        runs[[cfg.n_col, cfg.d_col]].drop_duplicates().shape[0] > 1 else None
    if size_law is not None:
        big = runs[np.isclose(runs[cfg.n_col].astype(float), runs[cfg.n_col].astype(float).max())]
        N, D = float(big[cfg.n_col].iloc[0]), float(runs[cfg.d_col].max()) * args.tokens_factor
        depth = int(big["n_layers"].iloc[0]) if "n_layers" in big else None
        rec, used = size_law.recommend(N=N, D=D), size_law
        print(f"size law {size_law.family} ({size_law.cv_summary()}); recommendation for N = {N:.3g}, D = {D:.3g}")
    else:
        N, D, depth = None, (law.fit_size[1] if law.fit_size else float(runs["tokens"].max())) * args.tokens_factor, None
        rec, used = law.recommend(), law
    print(rec.table().to_string(index=False))
    print(gains_table(rec).to_string(index=False))
    print(rec.verdict + ("" if rec.supported else ": the confirmation trains this candidate anyway, to test the law"))
    for w in rec.warnings:
        print(f"warning: {w}")
    mixes = confirmation_mixtures(law, rec)
    plan = None if args.curriculum == "none" else curriculum_plan(mixes, args.curriculum, args.curriculum_frac)
    name = sweep.name
    mixes_file.write_text(json.dumps({
        "mixtures": mixes, "curriculum": plan, "law": used.family, "fitted_runs": len(runs), "sweep_runs": n_sweep_runs,
        "holdout": holdout, "N": N, "D": D,
        "predicted": rec.predicted, "predicted_ci": rec.predicted_ci, "weights_ci": rec.weights_ci,
        "supported": rec.supported, "verdict": rec.verdict, "trust": rec.trust, "hull_distance": rec.hull_distance,
        "gap_error": rec.gap_error, "warnings": rec.warnings,
        "gains": {n: {k: b[k] for k in ("gain", "gain_boot_ci", "gain_ci")} for n, b in rec.baselines.items()},
        "confirm_dir": f"{name}_confirm", "curriculum_dir": f"{name}_curriculum" if plan else None}, indent=1))
    cmds = [confirm_command(mixes, D, args.seeds, f"{name}_confirm", args.sweep_args, depth)]
    if plan:
        cmds.append(curriculum_command(mixes, plan, D, args.seeds, f"{name}_curriculum", args.sweep_args, depth))
    also = ("--also " + " ".join(args.also)) if args.also else ""
    cmds.append(f"python -m analysis.mixing_report {args.sweep_dir} {also} --confirm {sweep.parent / (name + '_confirm')}"
                + (f" --curriculum-dir {sweep.parent / (name + '_curriculum')}" if plan else ""))
    script = sweep / "confirm.sh"
    script.write_text(f"#!/bin/sh\n# written by python -m analysis.mixing_report: train the recommendation, uniform and "
                      f"natural\n# (and the curriculum) at D = {D:.3g}, then compare with the law's predictions\nset -e\n"
                      + "\n".join("${PYTHON:-python}" + c[len("python"):] for c in cmds) + "\n")
    print(f"wrote {mixes_file} and {script}; confirm at D = {D:.3g} with: sh {script}\n  " + "\n  ".join(cmds))


if __name__ == "__main__":
    main()
