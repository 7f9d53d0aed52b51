"""Approach 3 kept from being dragged by far-from-optimum runs? Candidates measured side by side (issue 19):

    all          the default fit (analysis/laws/approach3.py: Huber delta 1e-3 on log loss, every run weight 1)
    window       only the runs inside each budget's near-minimum window as approach 2 chooses it
                 (approach2.window_vertex: a parabola refitted to the sizes within WINDOW_DEX decades of its own vertex
                 until the window stops moving; approach2.bracket_vertex's sizes where that fails)
    tricube      every run, weighted (1 - |d / WINDOW_DEX|^3)^3 (LOESS's kernel; 0 beyond the window), d = its log10 N
                 minus that window's vertex
    balanced     the window trimmed to be symmetric about the vertex (as far as the shorter arm reaches) and each side
                 weighted so that the weighted mean of d is zero: a curvature misfit (even in d) then moves no vertex
    gamma form   a richer form, L = E + (A / N^alpha + B / D^beta)^gamma: the inner sum's isoFLOP minimum is the
                 Chinchilla one (a = beta / (alpha + beta)), gamma sets the profiles' curvature apart from alpha, beta
                 (Chinchilla's form ties the curvature at the optimum to the exponents: alpha beta (L - E) / L)

The weights are fixed from the whole table (the bootstrap resamples runs, as approach 3's does, and multiplies them in).

    python bench/approach3_near.py --public --boot 200                 # every stored table, the GPU study, study2's 4x
    python bench/approach3_near.py --synthetic --reps 4 --boot 100 --out S.csv   # bench/isoflop_bias.py's cells
    python bench/approach3_near.py --summarise S.csv
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
import warnings
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("SCALEMIX_NO_PROGRESS", "1")

import isoflop_bias  # noqa: E402
import public_isoflop  # noqa: E402

from analysis.bootstrap import resample_weights  # noqa: E402
from analysis.laws import approach2, approach3  # noqa: E402
from analysis.laws.common import FitConfig, ci  # noqa: E402

CANDIDATES = ("all", "window", "tricube", "balanced", "gamma form")
LEVEL = 0.9
GAMMA_STARTS = (1.0, 0.7, 1.5, 0.5, 2.0)
# study2 (examples/study2/runs.csv, 36 runs): the 4x run its law planned, and what it measured (bench/README.md,
# "GPU study, session 8"): L8-d512, params_compute 31,465,984, 560,971,776 tokens.
STUDY2 = ROOT / "examples" / "study2" / "runs.csv"
BIG_RUN = (3.1465984e7, 5.60971776e8, 1.5549)


# ---------------------------------------------------------------- where each run sits on its budget's profile
def near_minimum(logN, logD, loss, gid) -> tuple[np.ndarray, np.ndarray]:
    """Per run: inside its budget's approach-2 window (bool), and d = log10 N minus that window's vertex (clipped
    to the budget's sizes). A budget with no window (fewer than 3 sizes, no minimum) keeps every run, d from its
    lowest run."""
    keep, d = np.zeros(len(logN), bool), np.zeros(len(logN))
    for g in np.unique(gid):
        i = np.flatnonzero(gid == g)
        v = None
        if len(np.unique(logN[i])) >= approach2.MIN_PER_BUDGET:
            v = (approach2.window_vertex(logN[i], loss[i], logD[i], approach2.WINDOW_DEX)
                 or approach2.bracket_vertex(logN[i], loss[i], logD[i]))
        if v is None:
            keep[i], x = True, logN[i][np.argmin(loss[i])]
        else:
            lo, hi = v["window"]
            keep[i] = (logN[i] >= lo - 1e-9) & (logN[i] <= hi + 1e-9)
            x = np.clip(v["logN_opt"], logN[i].min(), logN[i].max())
        d[i] = (logN[i] - x) / np.log(10)
    return keep, d


def weights(kind: str, keep, d, gid) -> np.ndarray:
    """Per-run weights of a candidate (see the module docstring)."""
    if kind in ("all", "gamma form"):
        return np.ones(len(d))
    if kind == "window":
        return keep.astype(float)
    if kind == "tricube":
        return np.clip(1 - np.abs(d / approach2.WINDOW_DEX) ** 3, 0, None) ** 3
    w = keep.astype(float)
    for g in np.unique(gid):
        i = np.flatnonzero((gid == g) & keep)
        left, right = d[i] < 0, d[i] > 0
        if not (left.any() and right.any()):
            continue
        reach = min(-d[i].min(), d[i].max())
        inside = np.abs(d[i]) <= reach + 1e-9
        w[i] = inside
        sl, sr = -d[i][left & inside].sum(), d[i][right & inside].sum()
        w[i[left & inside]] *= (sl + sr) / (2 * sl)
        w[i[right & inside]] *= (sl + sr) / (2 * sr)
    return w


# ---------------------------------------------------------------- the richer form
def gamma_objective(th, logN, logD, logL, w, delta=approach3.HUBER_DELTA):
    """Summed Huber loss of log L = logaddexp(e, gamma * logaddexp(a - alpha log N, b - beta log D)) and its gradient;
    th = (e, a, b, alpha, beta, log gamma)."""
    e, a, b, al, be, lg = th
    g = np.exp(lg)
    t1, t2 = a - al * logN, b - be * logD
    u = np.logaddexp(t1, t2)
    p1 = np.exp(t1 - u)
    z = g * u
    lp = np.logaddexp(e, z)
    sE = np.exp(e - lp)
    r = lp - logL
    c = np.clip(r, -delta, delta)
    q = w * c
    dz = q * (1 - sE) * g
    grad = np.array([(q * sE).sum(), (dz * p1).sum(), (dz * (1 - p1)).sum(), -(dz * p1 * logN).sum(),
                     -(dz * (1 - p1) * logD).sum(), (q * (1 - sE) * z).sum()])
    return float((w * c * (r - 0.5 * c)).sum()), grad


def gamma_predict(th, logN, logD):
    e, a, b, al, be, lg = th
    return np.logaddexp(e, np.exp(lg) * np.logaddexp(a - al * logN, b - be * logD))


def gamma_fit(logN, logD, logL, w, starts) -> np.ndarray:
    """L-BFGS-B from each start (centred coordinates); the lowest objective wins."""
    best = None
    for th in starts:
        r = minimize(gamma_objective, th, args=(logN, logD, logL, w), jac=True, method="L-BFGS-B",
                     options=approach3.LBFGS_OPTIONS)
        if best is None or r.fun < best.fun:
            best = r
    return best.x


def gamma_starts(theta3, mN, mD):
    """From approach 3's optimum (centred): gamma in GAMMA_STARTS, the inner terms rescaled so that their gamma-th
    power keeps the Chinchilla terms' scale."""
    th = approach3.centre(theta3, mN, mD)
    return [np.concatenate([[th[0]], th[1:5] / g, [np.log(g)]]) for g in GAMMA_STARTS]


# ---------------------------------------------------------------- one candidate on one table
def fit_candidate(kind: str, logN, logD, loss, gid, boot: int, seed: int = 0, predict=None) -> dict:
    """a, its percentile interval (boot resamples of the runs), alpha, beta (and gamma), the runs used, and the loss
    predicted at `predict` = (N, D) where given."""
    keep, d = near_minimum(logN, logD, loss, gid)
    w = weights(kind, keep, d, gid)
    on = w > 0
    lN, lD, lL, w = logN[on], logD[on], np.log(loss[on]), w[on]
    mN, mD = lN.mean(), lD.mean()
    cN, cD = lN - mN, lD - mD
    theta, _ = approach3.fit_theta(lN, lD, lL, w)
    out = {"runs": int(on.sum())}
    W = resample_weights(len(lL), boot, seed) * w if boot else np.empty((0, len(lL)))
    if kind == "gamma form":
        th = gamma_fit(cN, cD, lL, w, gamma_starts(theta, mN, mD))
        samples = np.array([gamma_fit(cN, cD, lL, wk, [th]) for wk in W]).reshape(-1, 6)
        al, be = th[3], th[4]
        out["gamma"] = float(np.exp(th[5]))
        if predict is not None:
            out["predicted"] = float(np.exp(gamma_predict(th, np.log(predict[0]) - mN, np.log(predict[1]) - mD)))
    else:
        start = np.tile(approach3.centre(theta, mN, mD), (len(W), 1))
        samples = approach3.lbfgs_rows(start, cN, cD, lL, W) if boot else np.empty((0, 5))
        al, be = theta[3], theta[4]
        if predict is not None:
            out["predicted"] = float(np.exp(approach3.log_pred(theta, np.log([predict[0]]), np.log([predict[1]]))[0]))
    a_s = samples[:, 4] / (samples[:, 3] + samples[:, 4])
    lo, hi = ci(a_s, LEVEL) if boot else (np.nan, np.nan)
    return {**out, "a": float(be / (al + be)), "lo": lo, "hi": hi, "alpha": float(al), "beta": float(be)}


def arrays(runs: pd.DataFrame, n_col: str):
    gid = approach2.group_budgets(runs).to_numpy()
    return (np.log(runs[n_col].to_numpy(float)), np.log(runs["tokens"].to_numpy(float)),
            runs["loss"].to_numpy(float), gid)


# ---------------------------------------------------------------- public tables
def tables():
    for name, (file, a_pub, *_) in public_isoflop.PUBLISHED.items():
        yield name, public_isoflop.load(public_isoflop.DATA / file), "params_total", a_pub
    yield "gpu_study (tests/data)", pd.read_csv(ROOT / "tests" / "data" / "gpu_study_runs.csv", comment="#"), \
        "params_compute", None
    yield "study2 (examples)", pd.read_csv(STUDY2), "params_compute", None


def public(boot: int, candidates) -> None:
    print("| data | authors | approach 2 default | candidate | runs | a | 90% interval | vs authors, covers | alpha "
          "| beta | 4x run predicted (measured 1.5549) | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, runs, n_col, a_pub in tables():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a2 = approach2.fit(runs, FitConfig(n_col=n_col, c_col="flops", n_bootstrap=0)).n_opt.a
        big = BIG_RUN[:2] if name.startswith("study2") else None
        for kind in candidates:
            t0 = time.perf_counter()
            r = fit_candidate(kind, *arrays(runs, n_col), boot=boot, predict=big)
            vs = "" if a_pub is None else f"{r['a'] - a_pub:+.3f}, {'yes' if r['lo'] <= a_pub <= r['hi'] else 'no'}"
            extra = f" (gamma {r['gamma']:.2f})" if "gamma" in r else ""
            pred = f"{r['predicted']:.4f} ({100 * (r['predicted'] / BIG_RUN[2] - 1):+.2f}%)" if big else ""
            print(f"| {name} | {'-' if a_pub is None else a_pub} | {a2:.3f} | {kind}{extra} | {r['runs']} | "
                  f"{r['a']:.3f} | [{r['lo']:.3f}, {r['hi']:.3f}] | {vs} | {r['alpha']:.3f} | {r['beta']:.3f} | {pred} | "
                  f"{time.perf_counter() - t0:.1f} |", flush=True)


# ---------------------------------------------------------------- synthetic: bench/isoflop_bias.py's cells
def _one(job):
    law_name, width, centring, sizes, seed, boot, candidates = job
    t, truth = isoflop_bias.table(isoflop_bias.LAWS[law_name], width, centring, 0.01, sizes, seed)
    rows = []
    for kind in candidates:
        r = fit_candidate(kind, *arrays(t, "params_nonembedding"), boot=boot, seed=seed)
        rows.append({"law": law_name, "width": width, "centring": centring, "sizes": sizes, "seed": seed,
                     "candidate": kind, "truth": truth, **r})
    return rows


def synthetic(reps: int, boot: int, sizes: list[int], candidates, out: str, processes: int) -> None:
    # seed-major, so that a study stopped early has every cell equally often
    jobs = [(law, w, c, s, 1000 + k, boot, candidates) for k, law, w, c, s in
            itertools.product(range(reps), isoflop_bias.LAWS, (1, 2, 3), isoflop_bias.CENTRING, sizes)]
    rows = []
    with Pool(processes) as pool:
        for i, r in enumerate(pool.imap_unordered(_one, jobs)):
            rows += r
            if i % 4 == 3 or i == len(jobs) - 1:
                pd.DataFrame(rows).to_csv(out, index=False)
                print(f"{i + 1}/{len(jobs)} tables {time.strftime('%H:%M:%S')}", file=sys.stderr, flush=True)


def summarise(files: list[str]) -> None:
    d = pd.concat([pd.read_csv(f) for f in files])
    d["err"] = d["a"] - d["truth"]
    d["cov"] = (d["lo"] <= d["truth"]) & (d["truth"] <= d["hi"])
    d["wid"] = d["hi"] - d["lo"]
    keys = ["sizes", "width", "candidate"]
    g = d.groupby(keys, sort=False).agg(n=("err", "count"), bias=("err", "mean"),
                                        rms=("err", lambda e: float(np.sqrt((e ** 2).mean()))),
                                        cov=("cov", "mean"), wid=("wid", "mean"), runs=("runs", "mean"))
    print(g.round(4).to_markdown())
    cell = d.groupby(["sizes", "law", "width", "centring", "candidate"]).agg(bias=("err", "mean"), cov=("cov", "mean"))
    tot = d.groupby(["sizes", "candidate"], sort=False).agg(
        n=("err", "count"), bias=("err", "mean"), rms=("err", lambda e: float(np.sqrt((e ** 2).mean()))),
        cov=("cov", "mean"), wid=("wid", "mean"))
    worst = cell.groupby(["sizes", "candidate"], sort=False).agg(max_abs_cell_bias=("bias", lambda b: b.abs().max()),
                                                                 lowest_cell_cov=("cov", "min"))
    print(tot.join(worst).round(4).to_markdown())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--public", action="store_true")
    p.add_argument("--synthetic", action="store_true")
    p.add_argument("--summarise", nargs="+", default=[])
    p.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    p.add_argument("--boot", type=int, default=100)
    p.add_argument("--reps", type=int, default=4)
    p.add_argument("--sizes", type=int, nargs="+", default=[30], help="sizes a budget (isoflop_bias: 30)")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--out", default="approach3_near.csv")
    a = p.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if a.public:
            public(a.boot, a.candidates)
        if a.synthetic:
            synthetic(a.reps, a.boot, a.sizes, a.candidates, a.out, a.processes)
    if a.summarise:
        summarise(a.summarise)


if __name__ == "__main__":
    main()
