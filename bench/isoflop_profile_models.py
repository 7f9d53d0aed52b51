"""Approach 2's profile models side by side, and the BIC's noise model (approach2.BIC_NOISE) before and after, on the
public isoFLOP tables and the synthetic bias/coverage study (bench/README.md, "IsoFLOP: the profile model by each
budget's own minimum").

    python bench/isoflop_profile_models.py --public                    # every table in bench/data, 1000 bootstraps
    python bench/isoflop_profile_models.py --detail epochai_chinchilla --plot F.png   # its BIC budget by budget
    python bench/isoflop_profile_models.py --influence llama3             # which runs set approach 3's exponent
    python bench/isoflop_profile_models.py --choices --out CH.csv      # every synthetic table's profile choice, both rules
    python bench/isoflop_profile_models.py --choices --spread 0.1 --reps 8 --out SP.csv   # ... budgets of differing shapes
    python bench/isoflop_profile_models.py --synthetic --reps 24 --boot 100 --switched CH.csv --out SW.csv
                                                                       # the tables whose choice differs, both rules
    python bench/isoflop_profile_models.py --synthetic --reps 6 --boot 100 --methods shape shared window parabola
                                                       --rules budget --out M.csv   # each model per cell (--part/--parts)
    python bench/isoflop_profile_models.py --summarise M.csv           # per cell and method: bias, coverage, width, rms

The synthetic cells are bench/isoflop_bias.py's (3 laws x 1-3 decades x 4 centrings, 30 sizes a budget, 1% noise,
seeds 1000..), as in bench/isoflop_union.py; the fits under both rules use the same table and resamples.
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("SCALEMIX_NO_PROGRESS", "1")

import isoflop_bias  # noqa: E402
import public_isoflop  # noqa: E402

from analysis.laws import approach2, isoshape  # noqa: E402
from analysis.laws.common import FitConfig, FitError  # noqa: E402

RULES = ("pooled", "budget")          # approach2.BIC_NOISE before / after
FORCED = {"shared profile": (True, False), "own vertices": (True, True), "per-budget profile": (False, False)}


def _fit(runs, cfg, method, rule):
    approach2.BIC_NOISE = rule
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return approach2.fit(runs, cfg, method=method)


def forced(runs, cfg) -> dict[str, float]:
    """The N_opt exponent of each law-shaped profile model fitted as it is (no choice, no vertex check)."""
    gids = approach2.group_budgets(runs)
    groups = [approach2.as_arrays(g, cfg) for _, g in runs.groupby(gids)]
    groups = [g for g in groups if len(np.unique(g[0])) >= approach2.MIN_PER_BUDGET]
    logC = np.array([np.log(g[2]).mean() for g in groups])
    out = {}
    for label, (shared, own) in FORCED.items():
        x = isoshape.fit(approach2._stack(groups, shared, own))["logN_opt"]
        ok = np.isfinite(x)
        out[label] = float(np.polyfit(logC[ok], x[ok], 1)[0]) if ok.sum() >= 2 else float("nan")
    return out


def public(boot: int) -> None:
    print("| data | authors | fit | profile | a | 90% interval | vs authors, covers | b | 90% interval | vs authors, covers "
          "| s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, (file, a_pub, _, b_pub, _, _) in public_isoflop.PUBLISHED.items():
        runs = public_isoflop.load(public_isoflop.DATA / file)
        cfg = FitConfig(n_col="params_total", c_col="flops", n_bootstrap=boot, seed=0, processes=2)
        pub = "-" if a_pub is None else f"{a_pub:.2f}"
        rows = [("default, pooled BIC (before)", "shape", "pooled"), ("default, BIC per budget (after)", "shape", "budget"),
                ("shared", "shared", "budget"), ("window", "window", "budget"), ("parabola", "parabola", "budget")]
        for label, method, rule in rows:
            t0 = time.perf_counter()
            try:
                f = _fit(runs, cfg, method, rule)
            except FitError as e:
                print(f"| {name} | {pub} | {label} | failed: {str(e)[:60]} | | | | | | |")
                continue
            prof = f.points["profile"].iloc[0] if "profile" in f.points else "-"
            cells = []
            for law, value in ((f.n_opt, a_pub), (f.d_opt, b_pub)):
                lo, hi = law.a_ci
                vs = "" if value is None else f"{law.a - value:+.3f}, {'yes' if lo <= value <= hi else 'no'}"
                cells += [f"{law.a:.3f}", f"[{lo:.3f}, {hi:.3f}]", vs]
            print(f"| {name} | {pub} | {label} | {prof} | " + " | ".join(cells) + f" | {time.perf_counter() - t0:.1f} |",
                  flush=True)
        for label, a in forced(runs, FitConfig(n_col="params_total", c_col="flops", n_bootstrap=0)).items():
            vs = "" if a_pub is None else f"{a - a_pub:+.3f}"
            print(f"| {name} | {pub} | {label}, as fitted (no choice, no vertex check) | - | {a:.3f} | - | {vs} | | | | |")


def detail(name: str, rounds: int = 8, plot: str | None = None) -> None:
    """One public table's BIC comparison budget by budget: runs, each model's SSE and their ratio; the BIC difference
    with one noise variance and with one per budget; and the heteroscedastic likelihood in full (both models refitted
    with weights 1 / each budget's residual variance, `rounds` times), which the per-budget rule approximates by
    evaluating it at the least-squares fits. plot: a figure's path (figure())."""
    file = public_isoflop.PUBLISHED[name][0]
    runs = public_isoflop.load(public_isoflop.DATA / file)
    cfg = FitConfig(n_col="params_total", c_col="flops", n_bootstrap=0)
    groups = [approach2.as_arrays(g, cfg) for _, g in runs.groupby(approach2.group_budgets(runs))]
    groups = [g for g in groups if len(np.unique(g[0])) >= approach2.MIN_PER_BUDGET]
    logC = np.array([np.log(g[2]).mean() for g in groups])
    one, own = approach2._stack(groups, True), approach2._stack(groups, False)
    f1, f2 = isoshape.fit(one), isoshape.fit(own)
    s1, s2 = approach2._sse_by_budget(one, f1), approach2._sse_by_budget(own, f2)
    n = np.array([len(i) for i in one.idx])
    print("| C | runs | SSE one shape | SSE one each | ratio |\n|---|---|---|---|---|")
    for C, k, a, b in zip(np.exp(logC), n, s1, s2):
        print(f"| {C:.0e} | {k} | {a:.3g} | {b:.3g} | {b / a:.2f} |")
    extra, ss = own.n_linear - one.n_linear, float(s1.sum()) * 1e6
    for rule in RULES:
        approach2.BIC_NOISE = rule
        print(f"BIC(one each) - BIC(one shape), {rule} noise variance: {approach2.bic_difference(s2, s1, n, extra, ss):+.1f}")
    fits = {}
    for label, prof in (("one shape", one), ("one each", own)):
        W = [np.ones((1, len(i))) for i in prof.idx]
        for _ in range(rounds):
            alpha, beta = isoshape.fit_exponents(prof, W)
            theta = prof.sse(alpha, beta, W)[1][0, 0]
            s, t = (x[0] for x in prof.lines([np.ones((1, len(i))) for i in prof.idx]))
            var = np.array([float(((prof.loss[i] - prof.curve(g, theta[g], alpha, beta, s[g], t[g], prof.logN[i])) ** 2
                                   ).mean()) for g, i in enumerate(prof.idx)])
            W = [np.full((1, len(i)), 1 / var[g]) for g, i in enumerate(prof.idx)]
        x = prof.vertex(theta, alpha, beta, s, t)
        ok = np.isfinite(x)
        fits[label] = (-0.5 * float((n * np.log(var)).sum()), float(np.polyfit(logC[ok], x[ok], 1)[0]), alpha, beta)
        print(f"{label}, weighted by 1 / each budget's residual variance ({rounds} rounds): a {fits[label][1]:.3f} "
              f"(alpha {alpha:.3g}, beta {beta:.3g})")
    print(f"BIC(one each) - BIC(one shape), that likelihood in full: "
          f"{-2 * (fits['one each'][0] - fits['one shape'][0]) + extra * np.log(n.sum()):+.1f}")
    if plot:
        figure(name, groups, logC, (one, f1), (own, f2), s1, s2, plot)


def figure(name, groups, logC, shared, each, s1, s2, out) -> None:
    """Left: the budget holding most of the shared model's SSE, its runs and both models' profiles. Middle: each
    budget's SSE under both. Right: the budgets' vertices under both, the default's (approach2.fit) and the authors'
    exponent through them."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 3, figsize=(14, 4.2))
    g = int(np.argmax(s1))
    for (prof, f), label, col in ((shared, "one shape for all budgets", "C3"), (each, "one shape each", "C0")):
        i = prof.idx[g]
        x = np.linspace(prof.logN[i].min(), prof.logN[i].max(), 200)
        s, t = f["s"][g], f["t"][g]
        ax[0].plot(x / np.log(10), prof.curve(g, f["theta"][g], f["alpha"], f["beta"], s, t, x), color=col, label=label)
    ax[0].scatter(np.log10(groups[g][0]), groups[g][3], s=12, color="k", zorder=3, label="runs")
    ax[0].set(xlabel="log10 N", ylabel="loss", title=f"{name}: C = {np.exp(logC[g]):.0e} ({s1[g] / s1.sum():.0%} of "
              "the shared SSE)")
    ax[0].legend(fontsize=8)
    k = np.arange(len(logC))
    ax[1].bar(k - 0.2, s1, 0.4, color="C3", label="one shape")
    ax[1].bar(k + 0.2, s2, 0.4, color="C0", label="one each")
    ax[1].set(yscale="log", xticks=k, ylabel="SSE (loss units)", title="per budget: pooled BIC sums these")
    ax[1].set_xticklabels([f"{c:.0e}" for c in np.exp(logC)], rotation=60, fontsize=7)
    ax[1].legend(fontsize=8)
    a_pub = public_isoflop.PUBLISHED[name][1]
    cfg = FitConfig(n_col="params_total", c_col="flops", n_bootstrap=0)
    runs = public_isoflop.load(public_isoflop.DATA / public_isoflop.PUBLISHED[name][0])
    for rule, col, mark in (("pooled", "C3", "s"), ("budget", "C0", "o")):
        pts = _fit(runs, cfg, "shape", rule).points
        x, y = np.log10(pts["C"].to_numpy()), np.log10(pts["N_opt"].to_numpy())
        slope, icpt = np.polyfit(x, y, 1)
        ax[2].scatter(x, y, color=col, marker=mark, label=f"default, {rule} BIC ({pts['profile'].iloc[0]}): a {slope:.3f}")
        ax[2].plot(x, icpt + slope * x, color=col, lw=1)
        if rule == "budget" and a_pub is not None:
            ax[2].plot(x, y.mean() + a_pub * (x - x.mean()), color="k", ls="--", lw=1, label=f"authors' a {a_pub}")
    ax[2].set(xlabel="log10 C", ylabel="log10 N_opt", title="the budgets' vertices")
    ax[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")


def influence(name: str) -> None:
    """Which runs set approach 3's N_opt exponent on one public table: each run's place on its budget's profile (log10 N
    minus the vertex of the parabola through the budget, in decades), approach 3 (vp, Huber delta 1e-3) with each budget
    left out, with either arm beyond 0.3 / 0.4 decades left out, its mean residual by arm, and each run's influence
    (a without it minus a), summed by arm."""
    from analysis.laws import approach3
    runs = public_isoflop.load(public_isoflop.DATA / public_isoflop.PUBLISHED[name][0])
    cfg = FitConfig(n_col="params_total", c_col="flops", n_bootstrap=0)

    def fit3(t):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return approach3.fit(t.reset_index(drop=True), cfg, search="vp")

    gid = approach2.group_budgets(runs).to_numpy()
    pos = np.zeros(len(runs))
    for g in np.unique(gid):
        i = np.flatnonzero(gid == g)
        x = np.log10(runs["params_total"].to_numpy()[i])
        c2, c1, _ = np.polyfit(x, runs["loss"].to_numpy()[i], 2)
        pos[i] = x - (-c1 / (2 * c2))
    base = fit3(runs)
    res = base.residuals["residual"].to_numpy()
    arm = np.where(pos < -0.3, "small N", np.where(pos > 0.3, "large N", "near"))
    print(f"all {len(runs)} runs: a {base.a:.3f} (alpha {base.alpha:.3f}, beta {base.beta:.3f})")
    for k in ("small N", "near", "large N"):
        print(f"  {k} ({'beyond 0.3 decades' if k != 'near' else 'within 0.3 decades'}): {int((arm == k).sum())} runs, "
              f"mean residual {100 * res[arm == k].mean():+.2f}%")
    print("  each budget left out: " + ", ".join(f"{runs['budget'].iloc[np.flatnonzero(gid == g)[0]]:.0e} "
                                                 f"{fit3(runs[gid != g]).a:.3f}" for g in np.unique(gid)))
    for d in (0.3, 0.4):
        for side, drop in (("small N", pos < -d), ("large N", pos > d)):
            f = fit3(runs[~drop])
            print(f"  without the {side} arm beyond {d} decades ({int(drop.sum())} runs): a {f.a:.3f} "
                  f"(alpha {f.alpha:.3f}, beta {f.beta:.3f})")
    infl = np.array([fit3(runs.drop(index=i)).a - base.a for i in range(len(runs))])
    print("  influence (a without the run - a) summed by arm: " + ", ".join(
        f"{k} {infl[arm == k].sum():+.3f}" for k in ("small N", "near", "large N")))


def cells():
    return list(itertools.product(isoflop_bias.LAWS, (1, 2, 3), isoflop_bias.CENTRING))


def choices(reps: int, out: str, spread: float = 0.0) -> None:
    """Every synthetic table's profile choice and estimate under both rules (no bootstrap: the choice does not depend
    on it). spread > 0: each budget its own law (isoflop_bias.table's shape_spread; the truth is the slope of the
    budgets' own optima)."""
    rows = []
    for law, width, centring in cells():
        for s in range(reps):
            t, truth = isoflop_bias.table(isoflop_bias.LAWS[law], width, centring, 0.01, 30, 1000 + s,
                                          shape_spread=spread)
            row = {"law": law, "width": width, "centring": centring, "seed": 1000 + s, "truth": truth}
            for rule in RULES:
                try:
                    f = _fit(t, FitConfig(n_bootstrap=0), "shape", rule)
                except FitError:              # (no budget with a minimum: the same under either rule)
                    row[f"profile_{rule}"], row[f"a_{rule}"], row[f"dbic_{rule}"] = "failed", np.nan, np.nan
                    continue
                row[f"profile_{rule}"], row[f"a_{rule}"] = f.points["profile"].iloc[0], f.n_opt.a
                row[f"dbic_{rule}"] = f.points["share_dbic"].iloc[0] if "share_dbic" in f.points else np.nan
            rows.append(row)
        pd.DataFrame(rows).to_csv(out, index=False)
        print(law, width, centring, "done", time.strftime("%H:%M:%S"), flush=True)


def synthetic(reps: int, boot: int, part: int, parts: int, methods: list[str], rules: list[str], out: str,
              switched: str | None) -> None:
    todo = None
    if switched:
        ch = pd.read_csv(switched)
        ch = ch[ch["profile_pooled"] != ch["profile_budget"]]
        todo = set(zip(ch["law"], ch["width"], ch["centring"], ch["seed"]))
    rows = []
    for i, (law, width, centring) in enumerate(cells()):
        if i % parts != part:
            continue
        for s in range(reps):
            if todo is not None and (law, width, centring, 1000 + s) not in todo:
                continue
            t, truth = isoflop_bias.table(isoflop_bias.LAWS[law], width, centring, 0.01, 30, 1000 + s)
            for method in methods:
                for rule in (rules if method == "shape" else rules[-1:]):
                    t0 = time.perf_counter()
                    f = _fit(t, FitConfig(n_bootstrap=boot, seed=1000 + s, processes=1), method, rule)
                    rows.append({"law": law, "width": width, "centring": centring, "seed": 1000 + s, "method": method,
                                 "rule": rule, "truth": truth, **isoflop_bias.exponent_columns(f),
                                 "profile": f.points["profile"].iloc[0] if "profile" in f.points else "-",
                                 "s": time.perf_counter() - t0})
        pd.DataFrame(rows).to_csv(out, index=False)
        print(law, width, centring, "done", time.strftime("%H:%M:%S"), flush=True)


def summarise(files: list[str]) -> None:
    d = isoflop_bias.scored(pd.concat([pd.read_csv(f) for f in files]))
    g = d.groupby(["law", "width", "centring", "method", "rule"]).agg(
        n=("err", "count"), bias=("err", "mean"), rms=("err", lambda e: float(np.sqrt((e ** 2).mean()))),
        cov=("cov", "mean"), bcov=("bcov", "mean"), wid=("wid", "mean")).reset_index()
    pd.set_option("display.width", 250)
    pd.set_option("display.max_rows", 500)
    print(g.round(4).to_string(index=False))
    for (m, r), x in g.groupby(["method", "rule"]):
        print(f"{m} ({r}): {len(x)} cells, {int(x['n'].sum())} fits; largest |bias| {x['bias'].abs().max():.4f}; "
              f"rms {float(np.sqrt((x['rms'] ** 2 * x['n']).sum() / x['n'].sum())):.4f}; coverage of a: lowest cell "
              f"{x['cov'].min():.3f}, mean {x['cov'].mean():.3f}, cells < 0.85: {int((x['cov'] < 0.85).sum())}; "
              f"of b: lowest {x['bcov'].min():.3f}; mean 90% width {x['wid'].mean():.4f}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--public", action="store_true")
    p.add_argument("--detail", help="one public table's BIC comparison budget by budget (e.g. epochai_chinchilla)")
    p.add_argument("--plot", help="with --detail: write its figure here (png)")
    p.add_argument("--influence", help="which runs set approach 3's exponent on one public table (e.g. llama3)")
    p.add_argument("--choices", action="store_true")
    p.add_argument("--synthetic", action="store_true")
    p.add_argument("--summarise", nargs="+", default=[])
    p.add_argument("--reps", type=int, default=24)
    p.add_argument("--boot", type=int, default=0, help="bootstraps (default: 1000 public, 100 synthetic)")
    p.add_argument("--part", type=int, default=0)
    p.add_argument("--parts", type=int, default=1)
    p.add_argument("--methods", nargs="+", default=["shape"], choices=list(approach2.METHODS))
    p.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    p.add_argument("--spread", type=float, default=0.0, help="with --choices: per-budget shapes (isoflop_bias.table)")
    p.add_argument("--switched", help="a --choices CSV: fit only the tables whose profile choice differs by rule")
    p.add_argument("--out", default="isoflop_profile_models.csv")
    a = p.parse_args()
    if a.public:
        public(a.boot or 1000)
    if a.detail:
        detail(a.detail, plot=a.plot)
    if a.influence:
        influence(a.influence)
    if a.choices:
        choices(a.reps, a.out, a.spread)
    if a.synthetic:
        synthetic(a.reps, a.boot or 100, a.part, a.parts, a.methods, a.rules, a.out, a.switched)
    if a.summarise:
        summarise(a.summarise)


if __name__ == "__main__":
    main()
