"""Approach 2's local parabola vertices for many bootstrap resamples of one budget at once.

The bootstrap refits a budget's local parabola (`parabola` through every size, `window` refitted to the sizes near its
own vertex, `bracket` through the lowest size and its neighbours: analysis/laws/approach2.py, local_vertex) in every
resample. One resample at a time that is ~1000 x budgets numpy.polyfit calls, and up to 10 for each `window`: 9-19 s
for the (Mis)Fitting table's 22 budgets (bench/README.md, "More public isoFLOP tables"). Here each fit is a weighted
least-squares quadratic solved from the resamples' weighted moments (rows of W, one matrix product), the window's
iterations run for all resamples together, each stopping where its own window settles. Same vertices as
local_vertex (tests/test_public_isoflop.py compares them resample by resample).
"""
from __future__ import annotations

import numpy as np

from analysis.laws.isoshape import solve as solve3

MIN_SIZES = 3          # distinct sizes a parabola needs (approach2.MIN_PER_BUDGET)
WINDOW_ROUNDS = 10     # approach2.window_vertex's rounds at most


def parabolas(x: np.ndarray, y: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least-squares y = c0 + c1 x + c2 x^2 per row of W [R, n]: (c0, c1, c2) [R] each (x centred by the
    caller: the normal equations of x^4 with x ~ 20 would lose digits)."""
    x2 = x * x
    F = np.stack([np.ones_like(x), x, x2, x2, x * x2, x2 * x2, y, x * y, x2 * y, y * y], -1)      # [n, 10]
    theta, _ = solve3(W @ F)
    return theta[:, 0], theta[:, 1], theta[:, 2]


def _distinct(present: np.ndarray) -> np.ndarray:
    """Distinct sizes per resample, from [R, U] presence."""
    return present.sum(1)


def local_vertices(logN: np.ndarray, loss: np.ndarray, logD: np.ndarray, W: np.ndarray, kind: str,
                   window_dex: float) -> tuple[np.ndarray, np.ndarray]:
    """log N_opt, log D_opt [R] of one budget's `kind` parabola (parabola, window or bracket) through the runs with
    weight W[r] > 0 (multiplicities); nan where it has no minimum or fewer than MIN_SIZES distinct sizes."""
    W = np.asarray(W, float)
    R = len(W)
    x0 = float(logN.mean())
    x = logN - x0
    u, size = np.unique(logN, return_inverse=True)
    onehot = np.eye(len(u))[size]                                    # [n, U]
    present = (W @ onehot) > 0                                       # [R, U] sizes with a run in the resample
    ok = _distinct(present) >= MIN_SIZES
    mask = W > 0                                                     # [R, n] runs the fit may use
    lo = np.where(mask, logN, np.inf).min(1)                         # the resample's smallest and largest size
    hi = np.where(mask, logN, -np.inf).max(1)
    if kind == "bracket":
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (W * loss) @ onehot / (W @ onehot)                # [R, U] mean loss per size
        rank = np.cumsum(present, 1) - 1                             # each present size's rank among the present
        low = np.argmin(np.where(present, mean, np.inf), 1)
        i = np.clip(rank[np.arange(R), low], 1, np.maximum(1, _distinct(present) - 2))[:, None]
        chosen = present & (rank >= i - 1) & (rank <= i + 1)
        mask = mask & chosen[:, size]
    active = ok.copy()
    best = np.full(R, np.nan)
    used = mask.copy()                                               # the runs behind each resample's vertex
    for _ in range(WINDOW_ROUNDS if kind == "window" else 1):
        Wm = np.where(mask, W, 0.0)
        enough = _distinct((Wm @ onehot) > 0) >= MIN_SIZES
        c0, c1, c2 = parabolas(x, loss, Wm)
        with np.errstate(invalid="ignore", divide="ignore"):
            v = -c1 / (2 * c2)
        fine = active & enough & (c2 > 0) & np.isfinite(v)
        best = np.where(active, np.where(fine, v + x0, np.nan), best)
        used = np.where(fine[:, None], mask, used)
        active = fine
        if kind != "window" or not active.any():
            break
        centre = np.clip(v + x0, lo, hi)
        new = (np.abs(logN[None, :] - centre[:, None]) <= window_dex * np.log(10)) & (W > 0)
        settled = (new == mask).all(1)
        active = active & ~settled
        mask = np.where(active[:, None], new, mask)
    # D_opt from the same runs' (log N, log D) line at the vertex
    Wm = np.where(used, W, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        w0 = Wm.sum(1)
        mx, md = Wm @ x / w0, Wm @ logD / w0
        slope = (Wm @ (x * logD) - w0 * mx * md) / (Wm @ (x * x) - w0 * mx * mx)
    xN = best
    return xN, md + slope * (xN - x0 - mx)
