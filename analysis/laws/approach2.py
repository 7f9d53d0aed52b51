"""Chinchilla approach 2: isoFLOP profiles.

Runs are grouped by budget (a `budget` column when the table has one, else runs whose exact FLOPs lie
within `gap_dex` of each other, as the planner sizes D = C / FLOPs-per-token). In each group a parabola
in log N is fitted to the final losses; its vertex is that budget's N_opt. D_opt is read off the same
group's (log N, log D) line at N_opt, which holds for any FLOP convention (6ND or exact). Power laws
N_opt = k C^a and D_opt = k' C^b are fitted through the vertices; the bootstrap resamples runs within
each budget and refits everything.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from analysis.bootstrap import parallel_map, resample_indices
from analysis.laws.common import ComputeOptimal, FitConfig, FitError, PowerLaw, check_table, usable, warn

MIN_PER_BUDGET = 3


def group_budgets(runs: pd.DataFrame, gap_dex: float = 0.1) -> pd.Series:
    """Budget id per run: the `budget` column (the grid's nominal C) where every run has one, else clusters of
    log10(flops) split at gaps > gap_dex."""
    if "budget" in runs and runs["budget"].notna().all():
        return runs["budget"].rank(method="dense").astype(int) - 1
    lc = np.log10(runs["flops"].to_numpy(float))
    order = np.argsort(lc)
    ids = np.empty(len(lc), int)
    ids[order] = np.concatenate([[0], np.cumsum(np.diff(lc[order]) > gap_dex)])
    return pd.Series(ids, index=runs.index)


def vertex(logN: np.ndarray, loss: np.ndarray, logD: np.ndarray) -> dict | None:
    """Parabola through (log N, loss); None when it opens downwards (no minimum)."""
    c2, c1, c0 = np.polyfit(logN, loss, 2)
    if c2 <= 0:
        return None
    x = -c1 / (2 * c2)
    slope, icpt = np.polyfit(logN, logD, 1)
    return {"logN_opt": x, "logD_opt": icpt + slope * x, "loss_opt": c0 - c1 * c1 / (4 * c2),
            "curvature": c2, "coef": (c2, c1, c0), "inside": logN.min() <= x <= logN.max()}


def as_arrays(g: pd.DataFrame, cfg: FitConfig) -> tuple[np.ndarray, ...]:
    """(N, D, C, loss) of one budget's runs as float arrays (the bootstrap indexes these, not DataFrames)."""
    return tuple(g[c].to_numpy(float) for c in (cfg.n_col, "tokens", cfg.c_col, cfg.loss_col))


def isoflop_points(groups: list[tuple[np.ndarray, ...]], notes: list[str] | None = None) -> pd.DataFrame:
    """One row per usable budget (groups of (N, D, C, loss) arrays): C, N_opt, D_opt, vertex loss, parabola."""
    rows = []
    for N, D, Cs, loss in groups:
        C = float(np.exp(np.log(Cs).mean()))
        if len(np.unique(N)) < MIN_PER_BUDGET:
            if notes is not None:
                warn(f"approach 2: budget C={C:.3g} has {len(np.unique(N))} distinct sizes; "
                     f"a parabola needs {MIN_PER_BUDGET}: budget left out", notes)
            continue
        v = vertex(np.log(N), loss, np.log(D))
        if v is None:
            if notes is not None:
                warn(f"approach 2: budget C={C:.3g}: the isoFLOP parabola has no minimum; budget left out", notes)
            continue
        if not v["inside"] and notes is not None:
            warn(f"approach 2: budget C={C:.3g}: the optimum N={np.exp(v['logN_opt']):.3g} lies outside the sizes "
                 f"run ({N.min():.3g}..{N.max():.3g}): extrapolated; add sizes on that side", notes)
        rows.append({"C": C, "N_opt": float(np.exp(v["logN_opt"])), "D_opt": float(np.exp(v["logD_opt"])),
                     "loss_opt": v["loss_opt"], "c2": v["coef"][0], "c1": v["coef"][1], "c0": v["coef"][2],
                     "inside": v["inside"], "n_runs": len(N)})
    if len(rows) < 2:
        raise FitError(f"approach 2: {len(rows)} budget(s) with a usable isoFLOP parabola; power laws need at least 2 "
                       f"(3 or more for a meaningful exponent): sweep more budgets with >= {MIN_PER_BUDGET} sizes each")
    return pd.DataFrame(rows).sort_values("C", ignore_index=True)


def fit(runs: pd.DataFrame, config: FitConfig | None = None, gap_dex: float = 0.1) -> ComputeOptimal:
    cfg = config or FitConfig()
    check_table(runs, cfg, 2 * MIN_PER_BUDGET, "approach 2")
    runs = usable(runs, cfg)
    groups = [as_arrays(g, cfg) for _, g in runs.groupby(group_budgets(runs, gap_dex))]
    notes: list[str] = []
    pts = isoflop_points(groups, notes)
    if len(pts) < 3:
        warn(f"approach 2: only {len(pts)} budgets: the exponent comes from {len(pts)} points and its interval "
             "is not meaningful; sweep 3 or more budgets", notes)
    n_law, d_law = PowerLaw.fit(pts["C"], pts["N_opt"]), PowerLaw.fit(pts["C"], pts["D_opt"])
    if cfg.n_bootstrap:
        samples = bootstrap(groups, cfg)
        for law, cols in ((n_law, slice(0, 2)), (d_law, slice(2, 4))):
            law.samples, law.ci_level = samples[:, cols], cfg.ci_level
    return ComputeOptimal("approach 2", n_law, d_law, pts, cfg, (float(runs[cfg.c_col].min()),
                          float(runs[cfg.c_col].max())), len(runs), notes)


def bootstrap(groups: list[tuple[np.ndarray, ...]], cfg: FitConfig) -> np.ndarray:
    """[n, 4] samples of (log k_N, a_N, log k_D, a_D): runs resampled with replacement within each budget."""
    rng_seeds = np.random.default_rng(cfg.seed).integers(0, 2**31, size=len(groups))
    draws = [resample_indices(len(g[0]), cfg.n_bootstrap, int(s)) for g, s in zip(groups, rng_seeds)]
    items = [(groups, [d[i] for d in draws]) for i in range(cfg.n_bootstrap)]
    return np.array(parallel_map(_refit, items, processes=1, desc="approach 2 bootstrap"))


def _refit(args) -> list[float]:
    groups, idx = args
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pts = isoflop_points([tuple(a[i] for a in g) for g, i in zip(groups, idx)])
            n, d = PowerLaw.fit(pts["C"], pts["N_opt"]), PowerLaw.fit(pts["C"], pts["D_opt"])
        return [np.log(n.k), n.a, np.log(d.k), d.a]
    except (FitError, ValueError, np.linalg.LinAlgError):
        return [np.nan] * 4
