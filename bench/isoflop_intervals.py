"""Interval constructions for approach 2's exponent compared on the same fits (bench/README.md, "IsoFLOP intervals").

For one law of bench/isoflop_bias.py, each cell (widths 2 and 3 decades x 4 centrings) and seed: one run bootstrap
and a leave-one-run-out jackknife, and from them the percentile, basic, BCa and normal (max of bootstrap sd and
jackknife se) intervals; prints per cell the bias, spreads, BCa's z0 and acceleration, and each interval's coverage
and mean width.

    python bench/isoflop_intervals.py --law 0 --reps 12 --boot 100 --sizes 30
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("SCALEMIX_NO_PROGRESS", "1")

import isoflop_bias as ib  # noqa: E402

from analysis.laws import approach2, isoshape  # noqa: E402
from analysis.laws.common import FitConfig  # noqa: E402


def intervals(t, boot: int, seed: int, level: float = 0.9) -> dict:
    """The estimate and each interval construction's (lo, hi) for one table."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = approach2.fit(t, FitConfig(n_bootstrap=boot, seed=seed, processes=1))
    pts = f.points
    groups = [approach2.as_arrays(g, f.config) for _, g in f.used.groupby("budget_id")]
    n = [len(g[0]) for g in groups]
    Ws = []                                  # leave-one-run-out: row r drops run r
    for g in range(len(groups)):
        W = np.ones((sum(n), n[g]))
        W[sum(n[:g]) + np.arange(n[g]), np.arange(n[g])] = 0
        Ws.append(W)
    prof = approach2._profiles(groups, list(range(len(groups))), pts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        xN, _, _ = isoshape.bootstrap_vertices(prof, Ws, float(pts["alpha"].iloc[0]), float(pts["beta"].iloc[0]))
    _, jack = approach2._line(np.array([np.log(g[2]).mean() for g in groups]), xN)
    a = f.n_opt.a
    b = f.n_opt.samples[:, 1]
    b, jack = b[np.isfinite(b)], jack[np.isfinite(jack)]
    d = jack.mean() - jack
    acc = (d ** 3).sum() / (6 * ((d ** 2).sum()) ** 1.5)
    z0 = norm.ppf(np.clip((b < a).mean() + 0.5 * (b == a).mean(), 1e-3, 1 - 1e-3))
    zq = norm.ppf([(1 - level) / 2, (1 + level) / 2])
    pct = np.quantile(b, [(1 - level) / 2, (1 + level) / 2])
    jse = np.sqrt((len(jack) - 1) / len(jack) * (d ** 2).sum())
    return {"a": a, "boot_sd": b.std(), "jack_se": jse, "z0": z0, "acc": acc, "percentile": pct,
            "basic": 2 * a - pct[::-1], "bca": np.quantile(b, norm.cdf(z0 + (z0 + zq) / (1 - acc * (z0 + zq)))),
            "normal max(sd, jack)": a + zq * max(jse, b.std())}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--law", type=int, default=0, help="index into bench/isoflop_bias.py LAWS")
    p.add_argument("--reps", type=int, default=12)
    p.add_argument("--boot", type=int, default=100)
    p.add_argument("--sizes", type=int, default=30)
    a = p.parse_args()
    law = list(ib.LAWS.values())[a.law]
    kinds = ("percentile", "basic", "bca", "normal max(sd, jack)")
    for width, cen in itertools.product((2.0, 3.0), ib.CENTRING):
        rows = [intervals(ib.isoflop_table(law, ib.BUDGETS, sizes_per_budget=a.sizes, span=10 ** width, noise=0.01,
                                           seed=1000 + s, shift_dex=ib.CENTRING[cen] * width, jitter_dex=0.05),
                          a.boot, s) for s in range(a.reps)]
        est = np.array([r["a"] for r in rows])
        cover = {k: np.mean([r[k][0] <= law.a <= r[k][1] for r in rows]) for k in kinds}
        width_ = {k: np.mean([r[k][1] - r[k][0] for r in rows]) for k in kinds}
        print(f"{list(ib.LAWS)[a.law]} w{width:g} {cen}: bias {np.mean(est - law.a):+.4f} sd {est.std():.4f} "
              f"boot sd {np.mean([r['boot_sd'] for r in rows]):.4f} jack se {np.mean([r['jack_se'] for r in rows]):.4f} "
              f"z0 {np.mean([r['z0'] for r in rows]):+.2f} acc {np.mean([r['acc'] for r in rows]):+.3f} | "
              + "  ".join(f"{k} {cover[k]:.2f}/{width_[k]:.4f}" for k in kinds), flush=True)


if __name__ == "__main__":
    main()
