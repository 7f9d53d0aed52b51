"""Chinchilla approach 1: the envelope of training curves.

Every eval point of every run is a (C, loss) pair, with C = tokens so far x the run's FLOPs per token
under the config (6N or exact). At each of `n_grid` log-spaced FLOP values, each run's curve is
interpolated (linearly in log C) where it covers that value, and the run with the lowest loss there
gives N_opt(C) (its size) and D_opt(C) (its tokens at C). Power laws are fitted through these points
(Hoffmann et al. used 1,500 FLOP values). The bootstrap resamples runs: a resample's envelope is the
minimum over the runs it drew, computed for all resamples at once from one [runs, grid] loss table.
Caveat, as in the paper: a cosine run's intermediate losses are above those of a run tuned to stop
there; a sweep with several schedule lengths per size (or WSD cooldown branches) removes the bias.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.bootstrap import resample_indices
from analysis.laws.common import ComputeOptimal, FitConfig, FitError, PowerLaw, check_table, curve_set, usable, warn

MIN_RUNS = 4


def loss_table(runs: pd.DataFrame, curves: pd.DataFrame, cfg: FitConfig, n_grid: int, min_cover: int):
    """(grid C [g], loss [runs, g] with inf where a run does not reach C, tokens [runs, g], N [runs])."""
    per_token = (runs[cfg.c_col] / runs["tokens"]).to_numpy(float)
    ids = runs["run_id"].to_numpy()
    cs, ls = [], []
    for rid, ppt in zip(ids, per_token):
        c = curves.loc[curves["run_id"] == rid].sort_values("tokens")
        c = c[(c["tokens"] > 0) & np.isfinite(c[cfg.loss_col])]
        cs.append(np.log(c["tokens"].to_numpy(float) * ppt))
        ls.append(c[cfg.loss_col].to_numpy(float))
    have = [len(c) >= 2 for c in cs]
    lo = np.min([c[0] for c, h in zip(cs, have) if h])
    hi = np.max([c[-1] for c, h in zip(cs, have) if h])
    grid = np.linspace(lo, hi, n_grid)
    loss = np.full((len(ids), n_grid), np.inf)
    for i, (c, y) in enumerate(zip(cs, ls)):
        if len(c) >= 2:
            inside = (grid >= c[0]) & (grid <= c[-1])
            loss[i, inside] = np.interp(grid[inside], c, y)
    covered = np.isfinite(loss).sum(axis=0) >= min_cover
    grid, loss = grid[covered], loss[:, covered]
    tokens = np.exp(grid)[None, :] / per_token[:, None]
    return np.exp(grid), loss, tokens, runs[cfg.n_col].to_numpy(float)


def envelope(C, loss, tokens, N, rows: np.ndarray | None = None) -> pd.DataFrame:
    """The lowest-loss run at each C (among `rows`, default all): C, N_opt, D_opt, loss."""
    sub = loss if rows is None else loss[rows]
    best = np.argmin(sub, axis=0)
    idx = best if rows is None else rows[best]
    return pd.DataFrame({"C": C, "N_opt": N[idx], "D_opt": tokens[idx, np.arange(len(C))],
                         "loss": loss[idx, np.arange(len(C))], "run": idx})


def fit(runs: pd.DataFrame, curves: pd.DataFrame, config: FitConfig | None = None, n_grid: int = 1500,
        min_cover: int = 2) -> ComputeOptimal:
    """Fit approach 1 from a runs table (N, tokens, C per run) and a curves table (run_id, tokens, loss)."""
    cfg = config or FitConfig()
    check_table(runs, cfg, MIN_RUNS, "approach 1", cols=("run_id",))
    runs = usable(runs, cfg).reset_index(drop=True)
    missing = [c for c in ("run_id", "tokens", cfg.loss_col) if c not in curves.columns]
    if missing:
        raise FitError(f"approach 1: the curves table lacks column(s) {missing}")
    runs = runs[runs["run_id"].isin(set(curves["run_id"]))].reset_index(drop=True)
    if len(runs) < MIN_RUNS:
        raise FitError(f"approach 1: {len(runs)} run(s) have training curves; the envelope needs at least {MIN_RUNS}")
    curve_set(curves[curves["run_id"].isin(set(runs["run_id"]))], "approach 1")   # one held-out set across runs
    C, loss, tokens, N = loss_table(runs, curves, cfg, n_grid, min_cover)
    if len(C) < 2:
        raise FitError("approach 1: no FLOP range is covered by enough runs' curves to form an envelope")
    pts = envelope(C, loss, tokens, N)
    notes: list[str] = []
    if pts["N_opt"].nunique() < 3:
        warn(f"approach 1: the envelope visits {pts['N_opt'].nunique()} model size(s); the N_opt exponent is "
             "poorly determined: sweep more sizes", notes)
    n_law, d_law = PowerLaw.fit(pts["C"], pts["N_opt"]), PowerLaw.fit(pts["C"], pts["D_opt"])
    if cfg.n_bootstrap:
        samples = bootstrap(C, loss, tokens, N, cfg)
        for law, cols in ((n_law, slice(0, 2)), (d_law, slice(2, 4))):
            law.samples, law.ci_level = samples[:, cols], cfg.ci_level
    return ComputeOptimal("approach 1", n_law, d_law, pts, cfg, (float(C.min()), float(C.max())), len(runs), notes)


def bootstrap(C, loss, tokens, N, cfg: FitConfig) -> np.ndarray:
    lc = np.log(C)
    out = np.full((cfg.n_bootstrap, 4), np.nan)
    cols = np.arange(len(C))
    for i, rows in enumerate(resample_indices(len(N), cfg.n_bootstrap, cfg.seed)):
        rows = np.unique(rows)
        idx = rows[np.argmin(loss[rows], axis=0)]     # envelope()'s rows, without a table per resample
        ok = np.isfinite(loss[idx, cols])
        if ok.sum() >= 2 and np.ptp(lc[ok]) > 0:
            a_n, k_n = np.polyfit(lc[ok], np.log(N[idx][ok]), 1)
            a_d, k_d = np.polyfit(lc[ok], np.log(tokens[idx, cols][ok]), 1)
            out[i] = (k_n, a_n, k_d, a_d)
    return out
