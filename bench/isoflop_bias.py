"""Bias and coverage of approach 2's N_opt exponent by vertex method, on synthetic isoFLOP grids.

Grids come from a known L(N, D) (analysis/synthetic.py isoflop_table): 5 budgets 1e18..1e22, `sizes`
sizes per budget spread over `width` decades in log N, centred on the true optimum or moved by
a per-budget offset (CENTRING, in units of the width; a drift across budgets is what biases the
exponent), each size jittered by +-0.05 decades, log-normal noise on every loss. For each cell
and method: mean (fitted - true) exponent over `reps` seeds (bias), its standard error, the spread, and how
often the bootstrap interval (cfg.ci_level) covers the truth (coverage).

    python bench/isoflop_bias.py --reps 24 --boot 200            # the table in bench/README.md
    python bench/isoflop_bias.py --reps 4 --boot 50 --quick      # smoke run
    python bench/isoflop_bias.py --speed                         # 600 points, 1000 bootstraps, per method
    python bench/isoflop_bias.py --demo-grid --reps 12 --boot 200  # 4 budgets x 3 sizes: shared vs per budget
    python bench/isoflop_bias.py --sizes 8 --methods per-budget shared --widths 1 2   # when to share
    python bench/isoflop_bias.py --reps 8 --boot 50 --noise 0.005 0.02 0.03 --sizes 6 30 --spacing random --law 0 1
                                          # noise, few and uneven sizes (bench/README.md, "IsoFLOP noise, small ...")
    python bench/isoflop_bias.py --spread 0.1 --noise 0.01 --law 1 2 --methods shape parabola  # per-budget shapes
    python bench/isoflop_bias.py --summarise AFTER.csv --before BEFORE.csv   # before -> after on the same cells
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("SCALEMIX_NO_PROGRESS", "1")

from analysis.laws import approach2, approach3  # noqa: E402
from analysis.laws.common import FitConfig, FitError  # noqa: E402
from analysis.synthetic import KnownLaw, isoflop_table  # noqa: E402

LAWS = {
    "chinchilla (a .34, b .28)": KnownLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28),
    "alpha > beta (.50, .25)": KnownLaw(E=1.8, A=1500.0, B=400.0, alpha=0.50, beta=0.25),
    "alpha < beta (.25, .50)": KnownLaw(E=1.8, A=120.0, B=20000.0, alpha=0.25, beta=0.50),
}
BUDGETS = np.geomspace(1e18, 1e22, 5)


CENTRING = {   # each budget's grid centre relative to its true optimum, in units of the grid's width
    "centred": np.zeros(len(BUDGETS)),
    "drift +": np.linspace(-0.25, 0.25, len(BUDGETS)),    # a planner whose guessed exponent is too high
    "drift -": np.linspace(0.25, -0.25, len(BUDGETS)),    # ... too low
    "shifted": np.full(len(BUDGETS), 0.25),               # every grid a quarter-width towards large N
}


def table(law, width, centring, noise, sizes, seed, spacing="even", shape_spread=0.0):
    """One study table and its true N_opt exponent. shape_spread > 0: each budget's A and B are the law's times
    exp(shape_spread * normal), so the budgets' profiles differ in shape (no one L(N, D) fits all, as in digitised
    public curves) and the truth is the least-squares slope of the budgets' own optima against C."""
    kw = dict(sizes_per_budget=sizes, span=10 ** width, noise=noise, jitter_dex=0.05, spacing=spacing)
    shift = CENTRING[centring] * width
    if not shape_spread:
        return isoflop_table(law, BUDGETS, seed=seed, shift_dex=shift, **kw), law.a
    z = np.random.default_rng([seed, 7]).standard_normal((len(BUDGETS), 2)) * shape_spread
    laws = [replace(law, A=law.A * np.exp(za), B=law.B * np.exp(zb)) for za, zb in z]
    parts = [isoflop_table(lw, [C], seed=seed * 100 + i, shift_dex=shift[i], **kw).assign(budget=C)
             for i, (lw, C) in enumerate(zip(laws, BUDGETS))]
    t = pd.concat(parts, ignore_index=True)
    t["run_id"] = [f"r{i:04d}" for i in range(len(t))]
    # (the grid is centred on each budget's own optimum, so the drift is the planner's, as without a spread)
    slope = np.polyfit(np.log(BUDGETS), np.log([lw.n_opt(C) for lw, C in zip(laws, BUDGETS)]), 1)[0]
    return t, float(slope)


def one(law, width, centring, noise, sizes, seed, boot, methods, spacing="even", shape_spread=0.0):
    t, truth = table(law, width, centring, noise, sizes, seed, spacing, shape_spread)
    cfg = FitConfig(n_bootstrap=boot, seed=seed, processes=1)
    out = {"truth": truth}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in methods:
            try:
                f = _fit(t, cfg, m)
                out[m] = (f.n_opt.a, *f.n_opt.a_ci)
                if m == "shape":
                    out["profile"] = f.points["profile"].iloc[0]
            except FitError:
                out[m] = (np.nan, np.nan, np.nan)
    return out


def exponent_columns(f) -> dict:
    """A fit's exponents and their intervals as result columns (a, lo, hi for N_opt; b, blo, bhi for D_opt)."""
    return {"a": f.n_opt.a, "lo": f.n_opt.a_ci[0], "hi": f.n_opt.a_ci[1],
            "b": f.d_opt.a, "blo": f.d_opt.a_ci[0], "bhi": f.d_opt.a_ci[1]}


def scored(d: pd.DataFrame) -> pd.DataFrame:
    """exponent_columns rows beside their truth, with err (a - truth), cov and bcov (the 90% intervals of a and of
    b = 1 - truth hold the truth) and wid (a's interval width)."""
    d = d.copy()
    d["err"] = d["a"] - d["truth"]
    d["cov"] = (d["lo"] <= d["truth"]) & (d["truth"] <= d["hi"])
    d["bcov"] = (d["blo"] <= 1 - d["truth"]) & (1 - d["truth"] <= d["bhi"])
    d["wid"] = d["hi"] - d["lo"]
    return d


def _fit(t, cfg, m):
    """approach2.fit by method; "per-budget" is `shape` kept per budget however few the sizes and whatever BIC says
    (no `shared` fallback)."""
    if m != "per-budget":
        return approach2.fit(t, cfg, method=m)
    saved = approach2.SHAPE_DOF, approach2.bic_difference
    approach2.SHAPE_DOF, approach2.bic_difference = -np.inf, lambda *a: -np.inf
    try:
        return approach2.fit(t, cfg, method="shape")
    finally:
        approach2.SHAPE_DOF, approach2.bic_difference = saved


def demo_grid(reps, boot):
    """The CPU demo's design: 4 budgets over one decade x 3 sizes (one decade wide), 1% noise: per method, the share
    of bootstrap resamples without an exponent, coverage of the 90% interval and its mean width."""
    law = LAWS["alpha > beta (.50, .25)"]
    for m in ("per-budget", "shape", "parabola"):
        res = []
        for seed in range(reps):
            t = isoflop_table(law, np.geomspace(1e18, 1e19, 4), sizes_per_budget=3, span=10, noise=0.01, seed=seed,
                              jitter_dex=0.05)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                f = _fit(t, FitConfig(n_bootstrap=boot, seed=seed, processes=1), m)
            res.append((f.n_opt.a, *f.n_opt.a_ci, np.isnan(f.n_opt.samples[:, 1]).mean()))
        r = np.array(res)
        print(f"{m:10s} {reps} seeds: sd of a {r[:, 0].std():.3f}, resamples without an exponent {r[:, 3].mean():.0%}, "
              f"coverage {np.mean((r[:, 1] <= law.a) & (law.a <= r[:, 2])):.2f}, mean width "
              f"{np.nanmean(r[:, 2] - r[:, 1]):.3f}", flush=True)


def study(reps, boot, noises, widths, centrings, sizes, methods, laws=tuple(LAWS), seed0=1000, spacings=("even",),
          shape_spread=0.0):
    rows = []
    for name, law in ((n, LAWS[n]) for n in laws):
        for noise, n_sizes, spacing in itertools.product(noises, np.atleast_1d(sizes), spacings):
            for width in widths:
                for shift in centrings:
                    res = [one(law, width, shift, noise, int(n_sizes), seed0 + s, boot, methods, spacing, shape_spread)
                           for s in range(reps)]
                    truth = np.array([r["truth"] for r in res])
                    shared = np.mean([r.get("profile") == "shared" for r in res])
                    for m in methods:
                        a = np.array([r[m] for r in res])
                        err = a[:, 0] - truth
                        ok = np.isfinite(a[:, 0])
                        cover = ((a[:, 1] <= truth) & (truth <= a[:, 2]))[ok]
                        rows.append({"law": name, "noise": noise, "sizes": int(n_sizes), "spacing": spacing,
                                     "spread": shape_spread, "width": width, "centring": shift, "method": m,
                                     "bias": np.nanmean(err), "se": np.nanstd(err) / np.sqrt(ok.sum()),
                                     "sd": np.nanstd(err), "coverage": cover.mean(), "n": int(ok.sum()),
                                     "width_ci": np.nanmean(a[:, 2] - a[:, 1]), "failed": int((~ok).sum()),
                                     "shared": shared if m == "shape" else np.nan})
                    r = rows[-len(methods):]
                    print(f"{name:26s} noise {noise:.3f} {int(n_sizes):2d} {spacing:6s} width {width} {shift:8s}  "
                          + "  ".join(f"{x['method']}: {x['bias']:+.4f} sd {x['sd']:.4f} (cov {x['coverage']:.0%})"
                                      for x in r) + (f"  shared {shared:.0%}" if "shape" in methods else ""),
                          flush=True)
    return pd.DataFrame(rows)


def speed(methods):
    law = LAWS["alpha > beta (.50, .25)"]
    t = isoflop_table(law, BUDGETS, sizes_per_budget=120, span=1e3, noise=0.01, seed=0, jitter_dex=0.05)
    for m in methods:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0, c0 = time.perf_counter(), time.process_time()
            approach2.fit(t, FitConfig(n_bootstrap=1000, processes=2), method=m)
            print(f"approach 2 {m}: {len(t)} points, 1000 bootstraps: {time.perf_counter() - t0:.2f} s "
                  f"({time.process_time() - c0:.2f} s CPU, load {os.getloadavg()[0]:.1f})")
    for m in ("grid", "vp"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            approach3.fit(t, FitConfig(n_bootstrap=0), search=m)
            t1 = time.perf_counter()
            approach3.fit(t, FitConfig(n_bootstrap=200, processes=2), search=m)
            print(f"approach 3 {m}: {len(t)} points: fit {t1 - t0:.2f} s; with 200 bootstraps "
                  f"{time.perf_counter() - t1:.2f} s")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=24)
    p.add_argument("--boot", type=int, default=200)
    p.add_argument("--sizes", type=int, nargs="+", default=[30])
    p.add_argument("--spacing", nargs="+", default=["even"], choices=["even", "random"],
                   help="sizes evenly spaced in log N, or drawn at random over the window (unequal gaps)")
    p.add_argument("--spread", type=float, default=0.0,
                   help="per-budget shapes: each budget's A, B times exp(spread * normal) (table())")
    p.add_argument("--seed0", type=int, default=1000, help="seeds seed0 .. seed0 + reps - 1 (more seeds for a cell)")
    p.add_argument("--noise", type=float, nargs="+", default=[0.01])
    p.add_argument("--methods", nargs="+", default=list(approach2.METHODS))
    p.add_argument("--law", type=int, nargs="+", default=list(range(len(LAWS))), help="indices into LAWS")
    p.add_argument("--widths", type=float, nargs="+", default=[1, 2, 3])
    p.add_argument("--summarise", nargs="+", default=[], help="CSV files of earlier runs: print their tables")
    p.add_argument("--before", nargs="+", default=[],
                   help="with --summarise: CSVs of the same cells under other code; print before -> after by group")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--speed", action="store_true")
    p.add_argument("--demo-grid", action="store_true", help="the CPU demo's 4 x 3 design (demo_grid)")
    p.add_argument("--out", default="")
    a = p.parse_args()
    if a.speed:
        speed(a.methods)
        return
    if a.demo_grid:
        demo_grid(a.reps, a.boot)
        return
    if a.summarise:
        after = pd.concat([pd.read_csv(f) for f in a.summarise], ignore_index=True)
        if a.before:
            print(before_after(pd.concat([pd.read_csv(f) for f in a.before], ignore_index=True), after))
        else:
            summarise(after)
        return
    widths, centrings = ((1, 3), ("centred", "drift +")) if a.quick else (a.widths, tuple(CENTRING))
    df = study(a.reps, a.boot, a.noise, widths, centrings, a.sizes, a.methods, [list(LAWS)[i] for i in a.law], a.seed0,
               a.spacing, a.spread)
    if a.out:
        df.to_csv(a.out, index=False)
    summarise(df)


KEYS = ["law", "noise", "sizes", "spacing", "spread", "width", "centring", "method"]    # one cell and method


def with_design(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of CSVs written before the design columns existed: 30 evenly spaced sizes, one law."""
    return df.assign(**{k: df[k] if k in df else v for k, v in (("sizes", 30), ("spacing", "even"), ("spread", 0.0))})


def pool(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the same cell and method from several runs (other seeds: --seed0) as one row over all their seeds."""
    keys = KEYS

    def merged(g):
        n = g["n"].to_numpy(float)
        bias = np.average(g["bias"], weights=n)
        sd = np.sqrt(np.average(g["sd"] ** 2 + (g["bias"] - bias) ** 2, weights=n))
        return pd.Series({"bias": bias, "se": sd / np.sqrt(n.sum()), "sd": sd,
                          "coverage": np.average(g["coverage"], weights=n), "n": int(n.sum()),
                          "width_ci": np.average(g["width_ci"], weights=n), "failed": int(g["failed"].sum())})
    return df.groupby(keys, sort=False).apply(merged).reset_index()


def summarise(df: pd.DataFrame) -> None:
    df = with_design(df)
    if "n" in df and df.duplicated(KEYS).any():
        df = pool(df)
    summary = df.groupby("method").agg(max_abs_bias=("bias", lambda x: x.abs().max()),
                                       mean_coverage=("coverage", "mean"), min_coverage=("coverage", "min"))
    print(summary.to_string())
    piv = df.pivot_table(index=KEYS[:-1], columns="method",
                         values=["bias", "coverage"]).round(3)
    print(piv.to_string())
    if "width_ci" in df:
        print(markdown(df))


def before_after(before: pd.DataFrame, after: pd.DataFrame) -> str:
    """Per (noise, sizes, width), over centrings and laws: the after code's bias and spread, and coverage and interval
    width before -> after (the same tables: the seeds and cells of both runs must match)."""
    keys = [k for k in KEYS if k != "method"]
    m = with_design(before).merge(with_design(after), on=keys, suffixes=("_b", "_a"))
    out = ["| noise | sizes a budget | width (decades) | largest abs bias (/ se) | mean bias | sd of a | mean coverage "
           "before -> after | lowest cell | cells < 0.85 | mean 90% width |", "|---|---|---|---|---|---|---|---|---|---|"]
    for (n, s, w), g in m.groupby(["noise", "sizes", "width"]):
        i = g["bias_a"].abs().idxmax()
        out.append(f"| {n:g} | {s} | {w:g} | {g['bias_a'][i]:+.4f} ({abs(g['bias_a'][i]) / g['se_a'][i]:.1f}) | "
                   f"{g['bias_a'].mean():+.4f} | {g['sd_a'].mean():.4f} | {g['coverage_b'].mean():.2f} -> "
                   f"**{g['coverage_a'].mean():.2f}** | {g['coverage_b'].min():.2f} -> {g['coverage_a'].min():.2f} | "
                   f"{(g['coverage_b'] < 0.85).sum()} -> {(g['coverage_a'] < 0.85).sum()} of {len(g)} | "
                   f"{g['width_ci_b'].mean():.3f} -> {g['width_ci_a'].mean():.3f} |")
    out.append(f"\nall cells: coverage {m['coverage_b'].mean():.3f} -> {m['coverage_a'].mean():.3f}; largest change in "
               f"an estimate's mean {((m['bias_b'] - m['bias_a']).abs().max()):.1e}; fits {int(m['n_a'].sum())}")
    return "\n".join(out)


def markdown(df: pd.DataFrame, first: str = "shape", second: str = "parabola") -> str:
    """bench/README.md's tables: per method and width, over cells (max |bias|, the largest |bias| / its standard error,
    mean and lowest coverage, cells under 0.85, mean interval width, mean sd of the exponent over seeds); then per cell
    `first`'s bias and coverage beside `second`'s bias."""
    design = [k for k in ("noise", "sizes", "spacing", "spread") if df[k].nunique() > 1]
    keys = ["method", *design, "width"]
    out = [f"| {' | '.join(keys)} | max abs bias | max abs bias / se | mean coverage | lowest cell | cells < 0.85 "
           "| mean 90% width | sd of a |", "|---|" + "---|" * (len(keys) + 6)]
    for k, g in df.groupby(keys):
        worst = g.loc[g["bias"].abs().idxmax()]
        out.append(f"| {' | '.join(f'{x:g}' if isinstance(x, float) else str(x) for x in k)} | {worst['bias']:+.4f} | "
                   f"{abs(worst['bias']) / worst['se']:.1f} | {g['coverage'].mean():.3f} | {g['coverage'].min():.2f} | "
                   f"{(g['coverage'] < 0.85).sum()} of {len(g)} | {g['width_ci'].mean():.4f} | {g['sd'].mean():.4f} |")
    if design:
        return "\n".join(out)            # (the per-cell table is for one design)
    out += ["", f"| law | width | {' | '.join(CENTRING)} |", "|---|---|" + "---|" * len(CENTRING)]
    for (law, w), g in df.groupby(["law", "width"], sort=False):
        cells = []
        for c in CENTRING:
            a = g[(g["centring"] == c) & (g["method"] == first)]
            b = g[(g["centring"] == c) & (g["method"] == second)]
            cells.append("" if a.empty else f"{a['bias'].iloc[0]:+.4f}, {a['coverage'].iloc[0]:.2f}"
                         + ("" if b.empty else f" \\| {b['bias'].iloc[0]:+.4f}"))
        out.append(f"| {law} | {w:g} | " + " | ".join(cells) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
