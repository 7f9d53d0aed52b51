"""IsoFLOP slices whose budgets' minima sit at an edge of the sizes present (issue 19): approach 2 with the budgets
whose vertex lies outside the sizes run kept in the exponent's fit or left out (approach2.EXTRAPOLATED), beside a
Porian-like estimator, on synthetic slices of long runs from a known L(N, D).

The design is Porian et al. 2024's (formll/resolving-scaling-law-discrepancies): 16 sizes 5M-901M, one run per size
ending at its own tokens-per-parameter multiple, sliced at 12 budgets 2x apart, 1.25e16-2.56e19 (1e17 * 2^k,
k = -3..8), so that the small budgets see the large models early in their runs and the large budgets only the large
models. Each slice is the run's curve log-interpolated at t = C / 6N (as their fetch_flop). Cases (CASES):

    constant   constant-lr runs: every slice the law times (1 + gap): the law's form (its E, A, B scaled)
    cosine     cosine runs sliced mid-decay (which analysis/laws/slices.py refuses): the gap closes as each run ends,
               so a slice's excess depends on t / D_end(N): not the law's form; the truth is still the law's
               (what annealed runs at each budget would give)

Estimators, each on the points table as a user would give it (bench/public_isoflop.py's columns):
    keep      approach2.fit, extrapolated="keep" (the behaviour before this bench)
    drop      approach2.fit, extrapolated="drop" (out of the fit where >= MIN_INSIDE budgets are inside)
    porian    ours, written for this bench after the paper's description: per budget an Akima interpolant of log loss
              in log N on a grid of 25 points per gap between sizes, its argmin; a budget whose argmin is at an end
              is dropped; the vertex's spread from resamples with the noise added to every loss (its known sd),
              the median of the resamples' vertices as the budget's N_opt, a budget with fewer than half its
              resamples inside dropped; a weighted (1 / sd^2) line of log N_opt on log C; its interval the 5th-95th
              percentiles of the lines through the resamples' vertices.

    python bench/isoflop_edges.py --reps 10 --boot 200 --part 0 --parts 2 --out E0.csv   # and --part 1 --out E1.csv
    python bench/isoflop_edges.py --summarise E0.csv E1.csv
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
from scipy.interpolate import Akima1DInterpolator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("SCALEMIX_NO_PROGRESS", "1")

from analysis.laws import approach2  # noqa: E402
from analysis.laws.common import FitConfig, FitError  # noqa: E402
from analysis.synthetic import KnownLaw, long_runs  # noqa: E402

SIZES = np.geomspace(5e6, 9.01e8, 16)
BUDGETS = 1e17 * 2.0 ** np.arange(-3, 9)
LAWS = {
    "chinchilla": KnownLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28),
    # alpha < beta, a = 0.545; its optimum 32 -> 16 tokens per parameter over the budgets, inside the sizes
    "alpha < beta": KnownLaw(E=1.8, A=200.0, B=1500.0, alpha=0.30, beta=0.36),
}
# tokens per parameter at each size's end: "long" runs every size 80x (the top budgets' minima near the lower edge);
# "short" the large models trained relatively less (160x at 5M down to 30x at 901M), as a fixed budget of compute
# per size would have it, so the largest budgets' minima fall below the sizes present
MULTIPLES = {"long": np.full(len(SIZES), 80.0), "short": np.geomspace(160, 30, len(SIZES))}
CASES = ("constant", "cosine")
# runs per size: 1 (one run each, as the brief's design: ~115 points, too few residual dof per budget for a profile
# shape each, so approach 2 shares one) or 2 (two seeds each, ~230 points: "several hundred points per
# configuration", where approach 2 fits each budget's own profile)
REPLICATES = (1, 2)
GAP = 0.03              # the unannealed gap: a constant-lr point's loss above an annealed run's (relative)
RUN_NOISE, POINT_NOISE = 0.004, 0.003   # a run's seed offset (shared by its slices) and each point's own noise
FIRST_FRAC = 3e-5       # evals from this fraction of a run (the largest model at the smallest budget: 6e-5 of 80x)


def points(runs: pd.DataFrame, curves: pd.DataFrame, budgets=BUDGETS, k: float = 6.0) -> pd.DataFrame:
    """The isoFLOP points: each run's curve log-interpolated (log loss in log tokens) at t = C / kN for every budget
    C its curve covers, one row per point with its own run_id (as bench/public_isoflop.load gives a table)."""
    rows = []
    for r in runs.to_dict("records"):
        c = curves[curves["run_id"] == r["run_id"]].sort_values("tokens")
        lt, ll = np.log(c["tokens"].to_numpy(float)), np.log(c["loss"].to_numpy(float))
        N = r["params_nonembedding"]
        for C in budgets:
            t = C / (k * N)
            if lt[0] <= np.log(t) <= lt[-1]:
                rows.append({"run_id": f"p{len(rows):04d}", "budget": C, "params_total": N, "params_nonembedding": N,
                             "tokens": t, "flops": C, "flops_6n": C, "loss": float(np.exp(np.interp(np.log(t), lt, ll)))})
    return pd.DataFrame(rows)


def case_table(law: KnownLaw, multiples: np.ndarray, schedule: str, seed: int, replicates: int = 1) -> pd.DataFrame:
    parts = []
    for j in range(replicates):
        runs, curves = long_runs(law, SIZES, 0.0, schedule=schedule, tokens_per_param=multiples, first_frac=FIRST_FRAC,
                                 steps=1_000_000, evals_per_run=120, noise=POINT_NOISE, run_noise=RUN_NOISE,
                                 unannealed_gap=GAP, seed=1000 * seed + j)
        parts.append(points(runs, curves))
    t = pd.concat(parts, ignore_index=True)
    return t.assign(run_id=[f"p{i:04d}" for i in range(len(t))])


def porian_like(pts: pd.DataFrame, sd: float, boot: int = 200, seed: int = 0, per_gap: int = 25) -> dict:
    """The Porian-like estimator (module docstring): a, its 90% interval, the budgets used."""
    rng = np.random.default_rng(seed)
    logC, x, w, samples = [], [], [], []
    for C, g in pts.groupby("budget"):
        g = g.loc[g.groupby("params_total")["loss"].idxmin()].sort_values("params_total")   # the best run per size
        ln, ll = np.log(g["params_total"].to_numpy(float)), np.log(g["loss"].to_numpy(float))
        if len(ln) < 3:
            continue
        grid = np.linspace(ln[0], ln[-1], (len(ln) - 1) * per_gap)
        i = int(np.argmin(Akima1DInterpolator(ln, ll)(grid)))
        if i in (0, len(grid) - 1):
            continue                                  # the minimum at an end of the sizes present: dropped
        noisy = ll + sd * rng.standard_normal((boot, len(ll)))
        j = np.argmin(Akima1DInterpolator(ln, noisy.T)(grid), axis=0)
        ok = (j > 0) & (j < len(grid) - 1)
        if ok.sum() < boot // 2:
            continue
        v = grid[j[ok]]
        spread = max(v.std(), 0.33 * (grid[1] - grid[0])) * boot / ok.sum()
        logC.append(np.log(C))
        x.append(float(np.median(v)))
        w.append(1 / spread ** 2)
        samples.append(v)
    if len(x) < 2:
        return {"a": np.nan, "lo": np.nan, "hi": np.nan, "used": len(x)}
    logC, w = np.array(logC), np.array(w)
    a = np.polyfit(logC, np.array(x), 1, w=np.sqrt(w))[0]
    m = min(len(s) for s in samples)
    slopes = [np.polyfit(logC, np.array([s[i] for s in samples]), 1, w=np.sqrt(w))[0] for i in range(m)]
    lo, hi = np.percentile(slopes, [5, 95])
    return {"a": float(a), "lo": float(lo), "hi": float(hi), "used": len(x)}


def approach2_fit(pts: pd.DataFrame, extrapolated: str, boot: int, seed: int) -> dict:
    cfg = FitConfig(n_col="params_total", c_col="flops", n_bootstrap=boot, seed=seed, processes=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            f = approach2.fit(pts, cfg, extrapolated=extrapolated)
        except FitError as e:
            return {"a": np.nan, "lo": np.nan, "hi": np.nan, "used": 0, "error": str(e)[:80]}
    p = f.points
    return {"a": f.n_opt.a, "lo": f.n_opt.a_ci[0], "hi": f.n_opt.a_ci[1], "used": int(p["in_fit"].sum()),
            "outside": int((~p["inside"].astype(bool)).sum()), "profile": p["profile"].iloc[0]
            if "profile" in p else ""}


def study(reps: int, boot: int, out: str, seed0: int = 0, part: int = 0, parts: int = 1) -> None:
    rows = []
    sd = float(np.hypot(RUN_NOISE, POINT_NOISE))
    cells = list(itertools.product(LAWS.items(), MULTIPLES.items(), CASES, REPLICATES))
    for c, ((law_name, law), (mult_name, mult), case, nrep) in enumerate(cells):
        if c % parts != part:
            continue
        for s in range(reps):
            pts = case_table(law, mult, case, seed0 + s, nrep)
            base = {"law": law_name, "multiples": mult_name, "case": case, "replicates": nrep, "seed": seed0 + s,
                    "truth": law.a, "points": len(pts)}
            for est in ("keep", "drop", "porian"):
                t0 = time.perf_counter()
                r = porian_like(pts, sd, boot, seed0 + s) if est == "porian" else approach2_fit(pts, est, boot, seed0 + s)
                rows.append({**base, "estimator": est, **r, "s": time.perf_counter() - t0})
        pd.DataFrame(rows).to_csv(out, index=False)
        print(law_name, mult_name, case, nrep, "done", time.strftime("%H:%M:%S"), flush=True)


def summarise(files: list[str]) -> None:
    d = pd.concat([pd.read_csv(f) for f in files])
    d["err"] = d["a"] - d["truth"]
    d["cov"] = (d["lo"] <= d["truth"]) & (d["truth"] <= d["hi"])
    d["wid"] = d["hi"] - d["lo"]
    g = d.groupby(["law", "multiples", "case", "replicates", "estimator"], sort=False).agg(
        n=("err", "count"), bias=("err", "mean"), rmse=("err", lambda e: float(np.sqrt((e ** 2).mean()))),
        cov=("cov", "mean"), wid=("wid", "median"), used=("used", "mean"), outside=("outside", "mean"),
        s=("s", "mean")).reset_index()
    pd.set_option("display.width", 250)
    pd.set_option("display.max_rows", 500)
    print(g.round(3).to_string(index=False))
    for est, x in d.groupby("estimator", sort=False):
        print(f"{est}: {len(x)} tables, bias {x['err'].mean():+.4f}, rms error {np.sqrt((x['err'] ** 2).mean()):.4f}, "
              f"90% coverage {x['cov'].mean():.3f}, median width {x['wid'].median():.3f}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--boot", type=int, default=200)
    p.add_argument("--seed0", type=int, default=0)
    p.add_argument("--out", default="isoflop_edges.csv")
    p.add_argument("--part", type=int, default=0)
    p.add_argument("--parts", type=int, default=1)
    p.add_argument("--summarise", nargs="+", default=[])
    a = p.parse_args()
    if a.summarise:
        summarise(a.summarise)
    else:
        study(a.reps, a.boot, a.out, a.seed0, a.part, a.parts)


if __name__ == "__main__":
    main()
