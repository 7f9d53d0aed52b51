"""Chinchilla approach 2: isoFLOP profiles.

Runs are grouped by budget (a `budget` column when the table has one, else runs whose exact FLOPs lie
within `gap_dex` of each other, as the planner sizes D = C / FLOPs-per-token). Each budget's final losses
against log N give a profile whose minimum is that budget's N_opt, by one of three methods:

    shape     (default) the law's own shape on the isoFLOP line, e + a N^-alpha + b D^-beta, with (e, a, b)
              per budget and (alpha, beta) shared, fitted by variable projection (analysis/laws/isoshape.py).
              It has the profile's asymmetry, so its vertex does not move with the grid's width or centring.
              It uses `shared` instead, and says so, with too few sizes per budget to fit each budget's shape
              (fewer than SHAPE_DOF residual degrees of freedom per budget: 3 sizes fit any exponents exactly)
              and where one shape for all budgets is the better model by BIC (shape_profiles; each budget with
              its own noise variance, so that no one budget's large residuals decide it), unless the shared
              vertices differ from the budgets' own beyond their noise (vertex_test) or the per-budget exponents
              are undetermined (at_bound): then each budget's own (e, a, b) at the shared exponents.
              The model chosen must fit (shape_profiles): sharing for lack of dof is refused where an F test
              prefers each budget's own (e, a, b); with run-to-run noise measured from seed replicates
              (analysis/noise.py) a model whose residuals exceed it (fit_test), and without them one whose residuals
              exceed a cubic in log N per budget's (lack_of_fit_test), is refused for the next more
              flexible one, and where none fits (the runs do not follow the law's shape along their isoFLOP lines)
              every budget's vertex is a local parabola's (profile `local`). Each law-shaped vertex is then tested
              against the runs near its budget's lowest (check_vertices): one the profile misses there beyond the
              noise comes from a local parabola instead (`vertex_by` in `points`: profile, window or bracket).
    shared    the same curve with one (a, b) for all budgets, each keeping its offset e: the shape comes from
              all budgets together (one L(N, D) with a loss offset per budget), defined with 3 sizes a budget
              and under resampling that leaves a budget 1 or 2 sizes.
    window    a parabola in log N refitted to the sizes within WINDOW_DEX decades of its own vertex.
    parabola  one parabola through every size (Hoffmann et al. 2022): biased when a grid is wide and its
              centring drifts across budgets (bench/README.md, "IsoFLOP vertex bias", has the numbers).

D_opt is read off the same group's (log N, log D) line at N_opt, which holds for any FLOP convention (6ND or
exact). Power laws N_opt = k C^a and D_opt = k' C^b are fitted through the vertices; the bootstrap resamples
runs within each budget (whole runs across budgets for curve slices) and refits every vertex; where the budgets'
optima scatter about the power law more than those refits explain, the samples are spread by the Birge ratio
(lack_of_fit, widen); for the shape methods the exponent's interval is then stretched to hold its
profile-likelihood interval, the range of the exponent over the (alpha, beta) the F test on the SSE admits
(profile_slopes, stretch), which the run bootstrap falls short of with few or unevenly spread sizes. A budget
whose vertex lies outside its sizes, or has fewer than BRACKET_MIN sizes on a side, draws a warning and is marked
in `points` (sizes_below, sizes_above, bracketed); one outside its sizes is left out of the exponents' fit where
MIN_INSIDE budgets remain (EXTRAPOLATED; `points`' in_fit). With slices=True, points
are also taken where training curves pass each budget and the schedule allows (analysis/laws/slices.py).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import chi2 as chi2_dist
from scipy.stats import f as f_dist
from scipy.stats import norm as stats_norm
from scipy.stats import t as stats_t

from analysis import noise as run_noise_mod
from analysis.bootstrap import one_blas_thread, resample_weights
from analysis.laws import isoshape, vertex_batch
from analysis.laws.common import ComputeOptimal, FitConfig, FitError, PowerLaw, check_table, ci, usable, warn
from analysis.laws.slices import isoflop_slices

MIN_PER_BUDGET = 3
METHODS = ("shape", "shared", "window", "parabola")
DEFAULT_METHOD = "shape"      # chosen by bench/isoflop_bias.py (bench/README.md, "IsoFLOP vertex bias")
WINDOW_DEX = 0.5              # `window`: sizes within this many decades of the vertex
BRACKET_MIN = 2               # distinct sizes wanted on each side of a vertex; fewer draws a warning
SHAPE_DOF = 6                 # `shape`: residual dof per budget below which it uses `shared` (bench/README.md, "Small grids")
VERTEX_TEST_LEVEL = 0.99      # `shape`: the vertex test's level (vertex_test; bench/README.md, "choosing the profile model")
VERTEX_TEST_RESAMPLES = 200   # ... and its paired bootstrap's resamples (seeded: the choice is a function of the table)
FIT_TEST_LEVEL = 0.99          # the goodness-of-fit tests' level (fit_test, near_vertex_test): a model is refused at p < 0.01
NEAR_SIZES = 2                # check_vertices: the sizes each side of a vertex whose runs its profile must go through
SD_FLOOR = 1e-4               # relative residual sd below which residuals are rounding, not noise (noise-free tables)
PROFILE_LABELS = {(False, False): "per budget", (True, False): "shared", (True, True): "own vertices"}
LOCAL = "local"               # `profile` when no law-shaped model fits: every budget's vertex is a local parabola's
SIZE_COLS = ("params_total", "params_nonembedding", "params_compute")   # any names a run's size (group_budgets)
INTERVAL_UNION = True         # shape methods: the exponent's interval holds the basic and the percentile one (fit)
BIC_NOISE = "budget"          # shape_choice's BIC: a noise variance per budget ("budget") or one for all ("pooled")
BUDGET_NOISE_DOF = 2          # ... per budget where every budget keeps this many residual dof in the per-budget model
# A budget whose vertex lies outside the sizes run (extrapolated: its minimum is at an edge of the sizes present) is
# left out of the exponents' fit ("drop") where at least MIN_INSIDE budgets have their vertex inside their sizes; it
# stays in `points` (in_fit False) and a warning names it. Such a vertex is the profile model's extrapolation beyond
# every run, and on isoFLOP slices of runs that each end at their own token count (Porian et al. 2024, who drop
# them too: the large budgets see only the large models) several budgets are so. On 192 such synthetic tables
# (bench/isoflop_edges.py) "keep" put the exponent at -1.6 and -1.2 for a truth of 0.45 where each budget fitted its
# own profile to mid-cosine slices; "drop": rms error 0.195 -> 0.031, no cell's worse by more than 0.005, pooled
# coverage 0.60 -> 0.61; the public tables' and the bias study's exponents no worse. "keep": the old behaviour, every
# budget with a minimum in the fit (bench/README.md, "IsoFLOP: budgets whose minimum is at an edge").
EXTRAPOLATED = "drop"
EXTRAPOLATED_CHOICES = ("drop", "keep")
MIN_INSIDE = 3
MIXED_D_RATIO = 1.4           # one size's token counts further apart than this in one FLOPs cluster: budgets mixed
                              # (digitised public curves repeat a size within a budget at up to 1.12x)


def group_budgets(runs: pd.DataFrame, gap_dex: float = 0.1) -> pd.Series:
    """Budget id per run: the `budget` column (the grid's nominal C) where every run has one; else, where most runs
    share their FLOPs exactly with others (nominal budgets, or isoFLOP slices interpolated at chosen budgets), each
    distinct value; else clusters of log10(flops) split at gaps > gap_dex."""
    if "budget" in runs and runs["budget"].notna().all():
        return runs["budget"].rank(method="dense").astype(int) - 1
    col = "flops" if "flops" in runs else "flops_6n"          # a public table may carry only one convention
    lc = np.log10(runs[col].to_numpy(float))
    # The gap rule chains budgets closer than gap_dex into one profile of several budgets, whose lowest run is its
    # largest budget's (26 budgets 0.09 dex apart became 2; bench/README.md, "More public isoFLOP tables"); exact
    # repeats need no rule. Runs left alone at their value become budgets of one size, left out with a warning.
    _, inv, counts = np.unique(np.round(lc, 9), return_inverse=True, return_counts=True)
    if (counts[inv] >= MIN_PER_BUDGET).mean() >= 0.5:
        return pd.Series(inv, index=runs.index)
    order = np.argsort(lc)
    ids = np.empty(len(lc), int)
    ids[order] = np.concatenate([[0], np.cumsum(np.diff(lc[order]) > gap_dex)])
    size_col = next((c for c in SIZE_COLS if c in runs), None)
    N = runs[size_col].to_numpy(float) if size_col else np.full(len(runs), np.nan)
    D = runs["tokens"].to_numpy(float) if "tokens" in runs else np.full(len(runs), np.nan)
    if not (np.isfinite(N).all() and np.isfinite(D).all() and (N > 0).all() and (D > 0).all()):
        return pd.Series(ids, index=runs.index)
    parts = [_split_mixed(np.flatnonzero(ids == g), lc, N, D) for g in np.unique(ids)]
    for k, idx in enumerate(sorted((p for part in parts for p in part), key=lambda i: lc[i].min())):
        ids[idx] = k
    return pd.Series(ids, index=runs.index)


def _split_mixed(idx: np.ndarray, lc: np.ndarray, N: np.ndarray, D: np.ndarray) -> list[np.ndarray]:
    """A FLOPs cluster (run indices) split at its widest gap in log C, recursively, while one model size in it was
    trained on token counts more than MIXED_D_RATIO apart: on one isoFLOP line a size has one D (replicates share
    it), so such a cluster holds several budgets, whose 6ND spreads (embeddings, attention) bridged the gap rule."""
    u, inv = np.unique(np.round(np.log(N[idx]), 6), return_inverse=True)
    logD = np.log(D[idx])
    spread = np.zeros(len(u))
    np.maximum.at(spread, inv, logD)
    low = np.full(len(u), np.inf)
    np.minimum.at(low, inv, logD)
    if len(idx) < 2 or (spread - low).max() <= np.log(MIXED_D_RATIO):
        return [idx]
    order = idx[np.argsort(lc[idx])]
    cut = int(np.argmax(np.diff(lc[order]))) + 1
    return _split_mixed(order[:cut], lc, N, D) + _split_mixed(order[cut:], lc, N, D)


def vertex(logN: np.ndarray, loss: np.ndarray, logD: np.ndarray, w: np.ndarray | None = None) -> dict | None:
    """Parabola through (log N, loss) (weights w: multiplicities); None when it opens downwards (no minimum)."""
    sw = None if w is None else np.sqrt(w)
    c2, c1, c0 = np.polyfit(logN, loss, 2, w=sw)
    if c2 <= 0:
        return None
    x = -c1 / (2 * c2)
    slope, icpt = np.polyfit(logN, logD, 1, w=sw)
    return {"logN_opt": x, "logD_opt": icpt + slope * x, "loss_opt": c0 - c1 * c1 / (4 * c2),
            "curvature": c2, "coef": (c2, c1, c0), "inside": logN.min() <= x <= logN.max()}


def window_vertex(logN, loss, logD, window_dex: float = WINDOW_DEX, w=None) -> dict | None:
    """The parabola refitted to the sizes within `window_dex` decades of its own vertex, until the window
    stops moving (at most 10 rounds); None when fewer than MIN_PER_BUDGET sizes remain or there is no minimum.
    Returns the vertex dict with the window (lo, hi in log N) it settled on."""
    keep = np.ones(len(logN), bool)
    v = None
    for _ in range(10):
        if len(np.unique(logN[keep])) < MIN_PER_BUDGET:
            return None
        v = vertex(logN[keep], loss[keep], logD[keep], None if w is None else w[keep])
        if v is None:
            return None
        centre = np.clip(v["logN_opt"], logN.min(), logN.max())
        new = np.abs(logN - centre) <= window_dex * np.log(10)
        if (new == keep).all():
            break
        keep = new
    v["window"] = (float(logN[keep].min()), float(logN[keep].max()))
    v["n_window"] = int(keep.sum())
    return v


def near_lowest(logN: np.ndarray, loss: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Mask of the runs at the budget's lowest size (lowest mean loss over its runs, weights w) and at the distinct
    sizes either side of it (the three sizes at that end where it is the smallest or largest): the runs that say
    where the budget's minimum lies."""
    w = np.ones(len(logN)) if w is None else w
    u, inv = np.unique(logN, return_inverse=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(inv, w * loss, len(u)) / np.bincount(inv, w, len(u))
    i = int(np.clip(np.nanargmin(mean), 1, max(1, len(u) - 2)))
    return np.isin(logN, u[max(0, i - 1):i + 2]) & (w > 0)


def near_vertex(logN: np.ndarray, x: float, per_side: int = NEAR_SIZES) -> np.ndarray:
    """Mask of the runs at the `per_side` distinct sizes nearest the vertex x (log N) on each side of it: the runs a
    profile's minimum must go through. Chosen by where the vertex lies, not by their losses (the lowest of many noisy
    runs is low by selection: tested against the noise it made a correct profile miss it in 1 table of 4 of 30 sizes)."""
    u = np.unique(logN)
    below, above = u[u <= x][::-1][:per_side], u[u > x][:per_side]
    return np.isin(logN, np.concatenate([below, above]))


def bracket_vertex(logN, loss, logD, w=None) -> dict | None:
    """The parabola through the runs at the lowest size and its neighbours (near_lowest): the local model that assumes
    least about the profile's shape, so its minimum stays between the sizes that bracket it (where the lowest size is
    not at an end). None with fewer than MIN_PER_BUDGET distinct sizes or no minimum. Returns the vertex dict with
    the window (lo, hi in log N) it used."""
    if len(np.unique(logN if w is None else logN[w > 0])) < MIN_PER_BUDGET:
        return None
    on = near_lowest(logN, loss, w)
    v = vertex(logN[on], loss[on], logD[on], None if w is None else w[on])
    if v is not None:
        v["window"] = (float(logN[on].min()), float(logN[on].max()))
        v["n_window"] = int(on.sum())
    return v


def local_vertex(logN, loss, logD, kind: str, window_dex: float = WINDOW_DEX, w=None) -> dict | None:
    """The vertex of a budget's local model: `window` (window_vertex), `bracket` (bracket_vertex) or `parabola` (vertex)
    through the runs with weight w > 0 (bootstrap multiplicities); None where it has no minimum or is degenerate."""
    if w is not None:
        on = w > 0
        logN, loss, logD, w = logN[on], loss[on], logD[on], w[on]
    if len(np.unique(logN)) < MIN_PER_BUDGET:
        return None
    try:
        if kind == "window":
            return window_vertex(logN, loss, logD, window_dex, w)
        if kind == "bracket":
            return bracket_vertex(logN, loss, logD, w)
        return vertex(logN, loss, logD, w)
    except (ValueError, np.linalg.LinAlgError):
        return None


def budget_optimum(N, D, loss, method: str = DEFAULT_METHOD, window_dex: float = WINDOW_DEX) -> float:
    """N_opt of one budget's runs by `method` (nan with fewer than MIN_PER_BUDGET sizes or no minimum)."""
    N, D, loss = (np.asarray(a, float) for a in (N, D, loss))
    if len(np.unique(N)) < MIN_PER_BUDGET:
        return float("nan")
    if method in ("shape", "shared"):       # (one budget: `shared` is the same curve)
        x = isoshape.fit(isoshape.Profiles(np.log(N), np.log(D), loss, np.zeros(len(N), int)))["logN_opt"][0]
    else:
        v = (window_vertex(np.log(N), loss, np.log(D), window_dex) if method == "window"
             else vertex(np.log(N), loss, np.log(D)))
        x = np.nan if v is None else v["logN_opt"]
    return float(np.exp(x))


def as_arrays(g: pd.DataFrame, cfg: FitConfig) -> tuple[np.ndarray, ...]:
    """(N, D, C, loss) of one budget's runs as float arrays (the bootstrap indexes these, not DataFrames)."""
    return tuple(g[c].to_numpy(float) for c in (cfg.n_col, "tokens", cfg.c_col, cfg.loss_col))


def bracketing(logN: np.ndarray, x: float) -> tuple[int, int]:
    """Distinct sizes strictly below and above the vertex x (log N)."""
    u = np.unique(logN)
    return int((u < x).sum()), int((u > x).sum())


def _check_budget(C, N, x, notes) -> bool:
    """Warnings for one budget's vertex; False when it must be left out."""
    if not np.isfinite(x):
        warn(f"approach 2: budget C={C:.3g}: the isoFLOP profile has no minimum; budget left out", notes)
        return False
    below, above = bracketing(np.log(N), x)
    if not _inside(N, x):
        warn(f"approach 2: budget C={C:.3g}: the optimum N={np.exp(x):.3g} lies outside the sizes run "
             f"({N.min():.3g}..{N.max():.3g}): extrapolated; add sizes on that side", notes)
    elif min(below, above) < BRACKET_MIN:
        side = "below" if below < above else "above"
        warn(f"approach 2: budget C={C:.3g}: the optimum N={np.exp(x):.3g} is poorly bracketed ({below} distinct "
             f"size(s) below it, {above} above): its vertex rests on one side; add sizes {side} it", notes)
    return True


def isoflop_points(groups: list[tuple[np.ndarray, ...]], notes: list[str] | None = None,
                   method: str = DEFAULT_METHOD, window_dex: float = WINDOW_DEX,
                   noise: run_noise_mod.Noise | None = None) -> pd.DataFrame:
    """One row per usable budget (groups of (N, D, C, loss) arrays): C, N_opt, D_opt, vertex loss, the profile
    fitted (parabola coefficients c2, c1, c0, or the law-shaped curve's e, a, b, alpha, beta, s, t, mN, mD, ym),
    the sizes below/above the vertex, and for `window` the window used. For the shape methods `vertex_by` says
    where each vertex came from: `profile` (the law-shaped model), or `window` / `bracket` where that model misses
    the runs near its vertex by more than the run-to-run noise (`noise`, measured from seed
    replicates; else a cubic smoother's residual scatter: reference) and a local parabola takes its place
    (check_vertices)."""
    keep = []
    for N, D, Cs, loss in groups:
        C = float(np.exp(np.log(Cs).mean()))
        if len(np.unique(N)) < MIN_PER_BUDGET:
            if notes is not None:
                warn(f"approach 2: budget C={C:.3g} has {len(np.unique(N))} distinct sizes; "
                     f"an isoFLOP profile needs {MIN_PER_BUDGET}: budget left out", notes)
            continue
        keep.append((N, D, C, loss))
    rows = []
    if method in ("shape", "shared") and keep:
        ref = reference(keep, noise)
        prof, f, share_dbic = shape_profiles(keep, method, notes, ref)
        if prof is None:                 # no law-shaped model fits these runs: each budget's own local parabola
            rows = local_rows(keep, notes, window_dex, ref)
        else:
            rows = [_shape_row(prof, f, i, C, share_dbic) for i, (_, _, C, _) in enumerate(keep)]
            rows = check_vertices(keep, rows, notes, window_dex, ref, residuals(prof, f), n_params(prof))
        kept = []
        for (N, _, C, _), r in zip(keep, rows):
            x = np.nan if r is None else np.log(r["N_opt"])
            if notes is not None and not _check_budget(C, N, x, notes) or not np.isfinite(x):
                continue
            kept.append(r)
        rows = kept
    else:
        for N, D, C, loss in keep:
            v = (window_vertex(np.log(N), loss, np.log(D), window_dex) if method == "window"
                 else vertex(np.log(N), loss, np.log(D)))
            x = np.nan if v is None else v["logN_opt"]
            if notes is not None and not _check_budget(C, N, x, notes) or not np.isfinite(x):
                continue
            rows.append(_parabola_row(v, C, N))
    if len(rows) < 2:
        raise FitError(f"approach 2: {len(rows)} budget(s) with a usable isoFLOP profile; power laws need at least 2 "
                       f"(3 or more for a meaningful exponent): sweep more budgets with >= {MIN_PER_BUDGET} sizes each")
    return pd.DataFrame(rows).sort_values("C", ignore_index=True)


def _shape_row(prof: isoshape.Profiles, f: dict, i: int, C: float, share_dbic: float) -> dict | None:
    """Budget i's row of `points` from a law-shaped profile fit; None where its profile has no minimum."""
    x = f["logN_opt"][i]
    if not np.isfinite(x):
        return None
    N = np.exp(prof.logN[prof.idx[i]])
    e, a, b = f["theta"][i]
    return {"C": C, "N_opt": float(np.exp(x)), "D_opt": float(np.exp(f["logD_opt"][i])),
            "loss_opt": float(f["loss_opt"][i]), "e": e, "a": a, "b": b, "alpha": f["alpha"], "beta": f["beta"],
            "s": f["s"][i], "t": f["t"][i], "mN": prof.mN[i], "mD": prof.mD[i], "ym": prof.ym[i],
            "profile": PROFILE_LABELS[prof.shared, prof.own_vertices], "share_dbic": share_dbic,
            "vertex_by": "profile", **_sides(N, x, len(N))}


def _parabola_row(v: dict, C: float, N: np.ndarray, kind: str | None = None) -> dict:
    row = {"C": C, "N_opt": float(np.exp(v["logN_opt"])), "D_opt": float(np.exp(v["logD_opt"])),
           "loss_opt": v["loss_opt"], "c2": v["coef"][0], "c1": v["coef"][1], "c0": v["coef"][2]}
    if "window" in v:
        row.update(window_lo=float(np.exp(v["window"][0])), window_hi=float(np.exp(v["window"][1])))
    if kind is not None:
        row["vertex_by"] = kind
    return {**row, **_sides(N, v["logN_opt"], v.get("n_window", len(N)))}


# ---------------------------------------------------------------- goodness of fit: the profile model and each vertex
def residuals(prof: isoshape.Profiles, f: dict) -> list[np.ndarray]:
    """Per budget, the log residuals log(loss / fitted) of a law-shaped profile fit (its own coefficients per budget
    for `own vertices`): relative to the loss, as the run-to-run noise is measured (analysis/noise.py)."""
    out = []
    for i, pred in zip(prof.idx, fitted(prof, f)):
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.log(prof.loss[i] / np.where(pred > 0, pred, np.nan)))
    return out


def fitted(prof: isoshape.Profiles, f: dict) -> list[np.ndarray]:
    """Per budget, the fitted profile's loss at its runs (own vertices: each budget's own coefficients)."""
    return [prof.curve(g, f["theta"][g], f["alpha"], f["beta"], f["s"][g], f["t"][g], prof.logN[i])
            for g, i in enumerate(prof.idx)]


def n_params(prof: isoshape.Profiles) -> int:
    """Coefficients a law-shaped profile model fits: its linear ones (own vertices: 3 a budget) and 2 exponents."""
    return (3 * len(prof.idx) if prof.own_vertices else prof.n_linear) + 2


def fit_test(r: np.ndarray, k: int, noise: run_noise_mod.Noise) -> tuple[float, float, float, int]:
    """Whether residuals r (log, all runs) of a model with k coefficients are the run-to-run noise: their variance
    over the measured noise's, F-distributed on (n - k, the noise's dof) where the model holds. Returns (RMS of r
    on its dof, F, p-value, dof); p 1 where either is unmeasured."""
    r = r[np.isfinite(r)]
    dof = len(r) - k
    if dof < 1 or not noise.measured:
        return float("nan"), float("nan"), 1.0, max(dof, 0)
    rms = float(np.sqrt(r @ r / dof))
    ratio = rms ** 2 / max(noise.sd, SD_FLOOR) ** 2
    return rms, ratio, float(f_dist.sf(ratio, dof, noise.dof)), dof


def lack_of_fit_test(r: np.ndarray, k: int, smooth: run_noise_mod.Noise) -> tuple[float, float, float, int]:
    """Whether residuals r (log, all runs) of a model with k coefficients are as small as a smoother's (smooth: each
    budget's polynomial in log N, run_noise_mod.smoother) allows: the classical lack-of-fit F test with the smoother as
    the full model, ((SSE - SSE_smooth) / (dof - smooth dof)) / (SSE_smooth / smooth dof), F on those dof where the
    model holds (the law-shaped profile is nearly a cubic's, so nearly nested in it; where the smoother misses
    smooth profiles its SSE grows and the test refuses less). Without replicates this is what tells a model whose
    residuals are misfit from one whose residuals are noise: testing the model's residual scatter against the
    smoother's as against replicates' noise (fit_test) shares their noise in numerator and denominator and refused no
    model on the GPU study (bench/README.md, "IsoFLOP: lack of fit without replicates"). Returns (RMS of r on its
    dof, F, p-value, dof); p 1 where untestable."""
    r = r[np.isfinite(r)]
    dof = len(r) - k
    if dof < 1 or not smooth.measured or dof - smooth.dof < 1:
        return float("nan"), float("nan"), 1.0, max(dof, 0)
    sse, sse_s = float(r @ r), max(smooth.sd, SD_FLOOR) ** 2 * smooth.dof
    F = max((sse - sse_s) / (dof - smooth.dof), 0.0) / (sse_s / smooth.dof)
    return float(np.sqrt(sse / dof)), F, float(f_dist.sf(F, dof - smooth.dof, smooth.dof)), dof


def reference(groups, noise: run_noise_mod.Noise | None) -> run_noise_mod.Noise:
    """What a profile model's residuals are tested against: the run-to-run noise measured from seed replicates, else
    the residual scatter of a cubic in log N fitted to each budget's runs on its own (run_noise_mod.smoother; pure
    error where a budget repeats a size)."""
    if noise is not None and noise.measured:
        return noise
    return run_noise_mod.smoother([np.log(g[0]) for g in groups], [g[3] for g in groups])


def near_vertex_test(r: np.ndarray, sd: float, dof: float) -> tuple[float, float]:
    """(mean, p-value) of residuals r (log) of one budget's runs near its vertex (near_vertex) against noise sd (of log
    loss) estimated on `dof` degrees of freedom: how far the profile passes above (mean < 0) or below them on average,
    len(r) mean^2 / sd^2 being F(1, dof) where it goes through them as the noise allows. The mean, not the mean
    square: one outlying run beside a vertex (a 3.8-sigma run in a table of 150) is not a profile that misses them
    (bench/README.md, "IsoFLOP: goodness of fit")."""
    r = r[np.isfinite(r)]
    if not len(r) or not np.isfinite(sd):
        return float("nan"), 1.0
    mean = float(r.mean())
    ratio = len(r) * mean ** 2 / max(sd, SD_FLOOR) ** 2
    p = f_dist.sf(ratio, 1, dof) if np.isfinite(dof) else chi2_dist.sf(ratio, 1)
    return mean, float(p)


def dip_test(x: float, loss_v: float, logN, loss, sd: float, dof: float) -> tuple[float, float]:
    """(log(loss_v / the floor), p-value): whether a vertex's loss lies below the runs near the budget's lowest by
    more than the noise allows. The floor is the minimum of the parabola through the lowest size and its neighbours
    (bracket_vertex) less that parabola's own dip below the lowest size's loss: three sizes estimate how far the
    profile falls between them only to about that much (noise-free law-shaped runs 0.6 decades apart put the law's
    minimum 0.1% below that parabola's, with its dip 0.5%). The parabola's noise is the noise times sqrt(h (X'X)^-1 h')
    at its vertex, the vertex's own at most one run's: one-sided t on `dof`. A vertex above the floor is not tested
    here (near_vertex_test is)."""
    v = bracket_vertex(logN, loss, np.zeros_like(logN))
    if v is None or not np.isfinite(sd) or not loss_v > 0:
        return float("nan"), 1.0
    on = near_lowest(logN, loss)
    X = np.vander(logN[on], 3)
    h = np.vander(np.atleast_1d(v["logN_opt"]), 3)[0]
    factor = float(h @ np.linalg.pinv(X.T @ X) @ h)
    u = np.unique(logN[on])
    low = min(float(loss[logN == x].mean()) for x in u)
    d = float(np.log(loss_v / v["loss_opt"]) + max(0.0, np.log(low / v["loss_opt"])))
    se = max(sd, SD_FLOOR) * np.sqrt(1.0 + factor)
    z = d / se
    return d, float(stats_t.cdf(z, dof) if np.isfinite(dof) else stats_norm.cdf(z))


def check_vertices(groups, rows: list[dict | None], notes, window_dex: float, noise: run_noise_mod.Noise | None,
                   r: list[np.ndarray], k: int) -> list[dict | None]:
    """Each budget's law-shaped vertex tested against the runs at the sizes either side of it (near_vertex) and the
    minimum they bracket (dip_test): where the profile passes above or below them, or its vertex lies below that
    minimum, by more than the noise allows (each at FIT_TEST_LEVEL, Bonferroni-corrected for
    the G budgets tested, so that a table of law-shaped runs keeps all its vertices at that level) its vertex is not
    what the runs say (a vertex far below the runs there, or the curve passing above them) and that budget's vertex
    comes from a local parabola instead (local_row). The noise (`noise`, from reference): measured from seed
    replicates, else the residual scatter of a cubic in log N fitted to each of the other budgets
    (others_smoother), which neither a misfitting profile model nor a misfit at this budget inflates; the profile's
    own scatter only where neither is measured (too few sizes a budget for the cubic)."""
    if noise is not None and noise.measured:
        sd, dof = noise.sd, noise.dof
        what = (f"the residual scatter of a polynomial of degree {run_noise_mod.SMOOTH_DEGREE} in log N per budget, "
                f"{sd:.2%} on {dof} dof (no seed replicates)" if noise.source == run_noise_mod.SMOOTHER else
                f"run-to-run noise {sd:.2%} (seed replicates, {dof} dof)")
    else:
        allr = np.concatenate(r)
        allr = allr[np.isfinite(allr)]
        dof = len(allr) - k
        if dof < 1:
            return rows
        sd = float(np.sqrt(allr @ allr / dof))
        what = (f"the profiles' residual scatter {sd:.2%} ({dof} dof; run-to-run noise unmeasured and too few sizes a "
                "budget for a smoother: sweep seed replicates to test the vertices against them)")
    out = []
    alpha = (1 - FIT_TEST_LEVEL) / len(groups)
    for g, ((N, D, C, loss), row, rg) in enumerate(zip(groups, rows, r)):
        if row is None:
            out.append(row)
            continue
        if noise is not None and noise.source == run_noise_mod.SMOOTHER:
            sd, dof = others_smoother(groups, g, noise)
        near = near_vertex(np.log(N), np.log(row["N_opt"]))
        off, p = near_vertex_test(rg[near], sd, dof)
        dip, p_dip = dip_test(np.log(row["N_opt"]), row["loss_opt"], np.log(N), loss, sd, dof)
        if min(p, p_dip) >= alpha:
            out.append(row)
            continue
        low = float(loss[near].min())
        local = local_row(N, D, C, loss, window_dex, sd, dof, alpha)
        if notes is not None:
            then = ("a local parabola takes its place (none has a minimum: the profile's is kept)" if local is None else
                    f"its vertex comes from a local parabola instead ({local['vertex_by']}: N_opt "
                    f"{local['N_opt']:.3g}, loss {local['loss_opt']:.4g})")
            warn(f"approach 2: budget C={C:.3g}: the {row['profile']} profile's vertex (N_opt {row['N_opt']:.3g}, loss "
                 f"{row['loss_opt']:.4g}, {row['loss_opt'] / low - 1:+.1%} from the lowest run near it, {low:.4g}) misses "
                 f"the runs near it: the profile passes {abs(off):.2%} {'below' if off > 0 else 'above'} them on "
                 f"average (p {p:.2g}), its vertex lies {dip:+.2%} from the minimum of the parabola through the lowest "
                 f"size and its neighbours (p {p_dip:.2g}), against {what}: {then}", notes)
        # the row keeps the profile model's exponents: the bootstrap and the profile interval re-search them from
        # `points` (any row), and a local vertex in the first row left them nan (every resample nan)
        out.append(row if local is None else {**local, "profile": row["profile"], "alpha": row["alpha"],
                                               "beta": row["beta"], "share_dbic": row.get("share_dbic", np.nan)})
    return out


def others_smoother(groups, g: int, smooth: run_noise_mod.Noise) -> tuple[float, float]:
    """(sd, dof) of the cubic smoother's residual scatter over every budget but g (smooth where that one is
    unmeasured): budget g's vertex is judged against noise its own runs do not inflate, as an externally studentized
    residual is (a misfit near g's vertex inflates g's own cubic's residuals as well as the profile's: a 4% dip at
    one budget's optimum, 0.5% noise, 12 sizes, was caught in 12 of 12 tables this way, in 6 with every budget's
    scatter and 5 with the profile's own; bench/README.md, "IsoFLOP: the Epoch AI table")."""
    others = [h for i, h in enumerate(groups) if i != g]
    loo = run_noise_mod.smoother([np.log(h[0]) for h in others], [h[3] for h in others])
    return (loo.sd, loo.dof) if loo.measured else (smooth.sd, smooth.dof)


def local_row(N, D, C, loss, window_dex: float, sd: float, dof: float,
              alpha: float = 1 - FIT_TEST_LEVEL) -> dict | None:
    """A budget's vertex from a local parabola: the window parabola (window_vertex) where it goes through the runs near
    its vertex as the noise (sd on dof) allows (near_vertex_test, p >= alpha), else the parabola through the lowest
    size and its neighbours (bracket_vertex), which on a V-shaped profile stays between its sizes where a wider parabola dips below them.
    None where neither has a minimum."""
    logN, logD = np.log(N), np.log(D)
    for kind in ("window", "bracket"):
        v = local_vertex(logN, loss, logD, kind, window_dex)
        if v is None:
            continue
        near = near_vertex(logN, v["logN_opt"])
        pred = np.polyval(v["coef"], logN[near])
        with np.errstate(invalid="ignore", divide="ignore"):
            fits = min(near_vertex_test(np.log(loss[near] / pred), sd, dof)[1],
                       dip_test(v["logN_opt"], v["loss_opt"], logN, loss, sd, dof)[1]) >= alpha
        if fits or kind == "bracket":
            return _parabola_row(v, C, N, kind)
    return None


def local_rows(groups, notes, window_dex: float, noise: run_noise_mod.Noise) -> list[dict | None]:
    """Every budget's vertex from its own local parabola (local_row), tested against the noise (seed replicates', else
    the smoother's: reference)."""
    alpha = (1 - FIT_TEST_LEVEL) / len(groups)
    rows = [local_row(N, D, C, loss, window_dex, noise.sd, noise.dof, alpha) for N, D, C, loss in groups]
    rows = [None if r is None else {**r, "profile": LOCAL, "share_dbic": np.nan} for r in rows]
    if notes is not None:
        kinds = [r["vertex_by"] for r in rows if r is not None]
        notes.append(f"approach 2: each budget's vertex is a local parabola's ({kinds.count('window')} the window "
                     f"parabola within {window_dex:g} decades of its vertex, {kinds.count('bracket')} the parabola "
                     "through the lowest size and its neighbours, where the window's misses the runs there beyond "
                     f"the noise: {noise_text(noise)})")
    return rows


def shape_profiles(groups, method: str, notes: list[str] | None = None, noise: run_noise_mod.Noise | None = None
                   ) -> tuple[isoshape.Profiles | None, dict | None, float]:
    """The law-shaped profile model (shape_choice) tested for goodness of fit: a model is not chosen where its
    residuals are much worse than a per-budget alternative's or than the run-to-run noise.

    - Where `shape` shares one (a, b) because the per-budget shapes have too few residual dof (SHAPE_DOF), no model
      choice was tested: an F test on the SSE against each budget's own (e, a, b) at the same exponents (the `own
      vertices` model, which nests it: 2 (G - 1) more coefficients) refuses sharing at FIT_TEST_LEVEL.
    - With the noise measured from seed replicates, the model's residual variance over the noise's (F on the model's
      and the noise's dof, fit_test) refuses it at FIT_TEST_LEVEL; without them (`noise` from reference: the
      smoother's) the lack-of-fit F test against a cubic in log N per budget does (lack_of_fit_test); the next more
      flexible one (shared -> own vertices -> per budget, where it has residual dof and exponents inside the search
      range) is tried. The notes say which reference was used.
    Where every law-shaped model is refused the runs do not follow the law's shape along their isoFLOP lines (runs far
    from their optimum, with few optimizer steps, for one): (None, None, dBIC), and each budget's vertex is a local
    parabola's (local_rows). A profile passing both is still checked budget by budget near its vertex
    (check_vertices). `shared` (the method) is the user's choice of model and is not replaced."""
    prof, f, dbic = shape_choice(groups, method, notes)
    if method != "shape":
        return prof, f, dbic
    order = [(True, False), (True, True), (False, False)]
    i = order.index((prof.shared, prof.own_vertices))
    n, G = sum(len(g[0]) for g in groups), len(groups)
    ss_total = float(sum(((prof.loss[j] - prof.ym[g]) ** 2).sum() for g, j in enumerate(prof.idx)))
    sse_one = _sse(prof, f)
    # (a shared fit exact to rounding, noise-free runs of one law, is not tested: its F is rounding over rounding)
    if i == 0 and per_budget_dof(groups) < SHAPE_DOF and n - 3 * G - 2 >= 1 and G >= 2 and sse_one > 1e-12 * ss_total:
        hybrid = _stack(groups, True, True)
        f_h = isoshape.fit(hybrid)
        sse_own = _sse(hybrid, f_h)
        df1, df2 = 2 * (G - 1), n - 3 * G - 2
        F = ((sse_one - sse_own) / df1) / max(sse_own / df2, 1e-300)
        p = float(f_dist.sf(F, df1, df2))
        if p < 1 - FIT_TEST_LEVEL:
            if notes is not None:
                notes.append(f"approach 2: one shared (a, b) fits the budgets' losses much worse than each budget's own "
                             f"(e, a, b) at the same exponents (SSE {sse_one:.3g} against {sse_own:.3g}, F {F:.3g} on "
                             f"{df1} and {df2} dof, p {p:.2g}): each budget keeps its own vertex")
            prof, f, i = hybrid, f_h, 1
    if noise is None or not noise.measured:
        if notes is not None:
            notes.append(f"approach 2: the profile model's goodness of fit is untested: {noise_text(noise)}")
        return prof, f, dbic
    smoothed = noise.source == run_noise_mod.SMOOTHER
    test = lack_of_fit_test if smoothed else fit_test
    against = noise_text(noise)
    refused = []
    while True:
        label = PROFILE_LABELS[order[i]]
        rms, ratio, p, dof = test(np.concatenate(residuals(prof, f)), n_params(prof), noise)
        if p >= 1 - FIT_TEST_LEVEL:
            if notes is not None:
                notes.append(f"approach 2: {'; '.join(refused + [''])}the {label} profiles' residuals are {rms:.2%} RMS "
                             f"(F {ratio:.3g}, p {p:.2g}) against {against}: they are used")
            return prof, f, dbic
        df_num = dof - noise.dof if smoothed else dof
        refused.append(f"the {label} profiles' residuals are {rms:.2%} RMS of the loss (F {ratio:.3g} on {df_num} and "
                       f"{noise.dof} dof, p {p:.2g})")
        i += 1
        if i == 2 and (per_budget_dof(groups) < 1):
            i += 1
        if i >= len(order):
            break
        prof = _stack(groups, *order[i])
        f = isoshape.fit(prof)
        if i == 2 and at_bound(f):
            refused.append(f"the per-budget profiles' exponents stop at the search range's bound (alpha "
                           f"{f['alpha']:.3g}, beta {f['beta']:.3g})")
            break
    if notes is not None:
        notes.append(f"approach 2: no law-shaped profile model describes these runs within their noise "
                     f"({against}): {'; '.join(refused)}. Each budget's vertex comes from a local parabola instead (the law's "
                     "shape does not hold along these isoFLOP lines, e.g. for runs far from their optimum or with few "
                     "optimizer steps)")
    return None, None, dbic


def noise_text(noise: run_noise_mod.Noise | None) -> str:
    """The reference a profile model was tested against, in words (for the notes)."""
    if noise is None:
        return "run-to-run noise unmeasured"
    if noise.measured and noise.source == run_noise_mod.SMOOTHER:
        return (f"the residual scatter of a polynomial of degree {run_noise_mod.SMOOTH_DEGREE} in log N per budget, "
                f"{noise.sd:.2%} on {noise.dof} dof (no seed replicates: the lack-of-fit F test)")
    if noise.measured:
        return f"run-to-run noise {noise.sd:.2%} measured from seed replicates ({noise.dof} dof)"
    return noise.describe()


def _stack(groups, shared: bool, own_vertices: bool = False) -> isoshape.Profiles:
    """The budgets (N, D, C, loss) as one isoshape.Profiles."""
    return isoshape.Profiles(np.log(np.concatenate([g[0] for g in groups])),
                             np.log(np.concatenate([g[1] for g in groups])), np.concatenate([g[3] for g in groups]),
                             np.concatenate([np.full(len(g[0]), i) for i, g in enumerate(groups)]), shared=shared,
                             own_vertices=own_vertices)


def _sse_by_budget(prof: isoshape.Profiles, f: dict) -> np.ndarray:
    """Per budget, the sum of squared residuals (loss units) of a fitted profile model [G]."""
    return np.array([float(((prof.loss[i] - pred) ** 2).sum()) for i, pred in zip(prof.idx, fitted(prof, f))])


def _sse(prof: isoshape.Profiles, f: dict) -> float:
    """Sum of squared residuals (loss units) of a fitted profile model, from its curves (own vertices: its own
    coefficients, whose SSE isoshape reports as the shared model's)."""
    return sum(float(((prof.loss[i] - pred) ** 2).sum()) for i, pred in zip(prof.idx, fitted(prof, f)))


def shape_choice(groups, method: str, notes: list[str] | None = None) -> tuple[isoshape.Profiles, dict, float]:
    """The law-shaped profiles of the budgets (N, D, C, loss) and their fit (isoshape.fit), per budget, shared or shared
    with each budget's own vertex (`own_vertices`), and BIC(per budget) - BIC(shared) (nan where not compared; > 0:
    shared is the better model by its loss residuals). `shape` shares one (a, b) when the per-budget fit has too few
    residual degrees of freedom (SHAPE_DOF), or when BIC prefers it: the budgets' shapes are then one law's within the
    noise, and sharing its 2 coefficients instead of 2 per budget pins every vertex with all budgets' runs (on 1-decade
    grids per-budget vertices scatter 2-6x more, with outliers). BIC, not an F test at 5%: a test at 5% keeps
    per-budget shapes on 1 in 20 tables drawn from one law, and there those vertices can be wild (+0.34 on the
    exponent); BIC's false choice is ~1e-5 at 150 runs and it still rejects sharing on both public data sets
    (bench/README.md, "IsoFLOP bias and coverage in every cell"). Its likelihood gives each budget its own noise
    variance (bic_difference, BIC_NOISE): with one, a budget with a steep far arm that neither model fits decided
    the comparison for all. Where BIC shares, the vertices are tested too
    (vertex_test): BIC weighs the loss residuals, and on a narrow grid budgets whose shapes differ by ~10% barely
    move them while their optima move by more than their noise; where the test rejects, each budget keeps its own
    vertex at the shared exponents (isoshape `own_vertices`). So too where BIC keeps one (a, b) per budget but
    their exponents stop at the search range's bound (at_bound): undetermined, they take the vertices with them."""
    one = _stack(groups, True)
    if method == "shared":
        return one, isoshape.fit(one), float("nan")
    if per_budget_dof(groups) < SHAPE_DOF:
        if notes is not None:
            notes.append(f"approach 2: {per_budget_dof(groups):.2g} residual degrees of freedom per budget are too few "
                         f"to fit each budget's shape (>= {SHAPE_DOF} wanted): the profiles share one (a, b), each "
                         "budget keeping its own offset (method `shared`); add sizes per budget for independent "
                         "profiles")
        return one, isoshape.fit(one), float("nan")
    own = _stack(groups, False)
    # (each its own global search: started from the per-budget exponents, the shared fit stopped in local optima
    # where a 1-decade grid left those wild, and the comparison then rejected one law on data drawn from one)
    f_own, f_one = isoshape.fit(own), isoshape.fit(one)
    ss_total = float(sum(((one.loss[i] - one.ym[g]) ** 2).sum() for g, i in enumerate(one.idx)))
    dbic = bic_difference(_sse_by_budget(own, f_own), _sse_by_budget(one, f_one), [len(i) for i in own.idx],
                          own.n_linear - one.n_linear, ss_total)
    hybrid = _stack(groups, True, own_vertices=True)
    if dbic <= 0:
        if not at_bound(f_own):
            return own, f_own, dbic
        why = (f"approach 2: one (a, b) per budget fits the losses better (BIC lower by {-dbic:.3g}) but leaves its "
               f"exponents undetermined (alpha {f_own['alpha']:.3g}, beta {f_own['beta']:.3g}: at the search range's "
               f"bound {isoshape.EXP_RANGE}): each budget keeps its own vertex, (e, a, b) solved at the exponents of "
               "one shared (a, b)")
    else:
        chi2, p_value = vertex_test(one, hybrid, f_one)
        if p_value >= 1 - VERTEX_TEST_LEVEL:
            if notes is not None:
                notes.append(f"approach 2: one shared (a, b) describes the budgets' profiles as well as one each (BIC "
                             f"lower by {dbic:.3g}) and moves no optimum beyond its noise (p {p_value:.2g}): they "
                             "share it, each budget keeping its own offset")
            return one, f_one, dbic
        why = (f"approach 2: one shared (a, b) fits the budgets' losses as well as one each (BIC lower by {dbic:.3g}) "
               f"but moves their optima more than their noise explains (chi^2 {chi2:.3g} on {len(one.idx)} dof, "
               f"p {p_value:.2g}): each budget keeps its own vertex, (e, a, b) solved at the shared exponents")
    if notes is not None:
        notes.append(why)
    return hybrid, isoshape.fit(hybrid), dbic


def at_bound(f: dict) -> bool:
    """Whether a profile fit's exponents (isoshape.fit) stopped at the search range's bound: on a narrow grid the
    per-budget shapes trade alpha and beta along a flat valley to there, and their vertices follow (bench/README.md,
    "choosing the profile model")."""
    lo, hi = np.log(isoshape.EXP_RANGE)
    z = np.log([f["alpha"], f["beta"]])
    return bool(np.isclose(z, lo, atol=1e-3).any() or np.isclose(z, hi, atol=1e-3).any())


def vertex_test(one: isoshape.Profiles, hybrid: isoshape.Profiles, f_one: dict) -> tuple[float, float]:
    """chi^2 and its p-value (dof: the budgets with a vertex in both) of the difference between the budgets' vertices (log N_opt [G]) with one shared
    (a, b) and with each budget's own at the same exponents (a Hausman-type test: under one law both estimate the
    same optima). The difference's covariance is that of a paired run bootstrap (VERTEX_TEST_RESAMPLES, the same
    resamples and the same exponent search for both): its resamples differ only in the coefficients."""
    Ws = [resample_weights(len(i), VERTEX_TEST_RESAMPLES, k) for k, i in enumerate(one.idx)]
    x_one = isoshape.bootstrap_vertices(one, Ws, f_one["alpha"], f_one["beta"])[0]
    x_own = isoshape.bootstrap_vertices(hybrid, Ws, f_one["alpha"], f_one["beta"])[0]
    f_hyb = isoshape.fit(hybrid)
    d = f_hyb["logN_opt"] - f_one["logN_opt"]
    on = np.isfinite(d)                     # (a budget without a vertex in either model has nothing to compare)
    d, diffs = d[on], (x_own - x_one)[:, on]
    diffs = diffs[np.isfinite(diffs).all(1)]
    if len(d) < 2 or len(diffs) < max(20, 4 * len(d)):
        return float("nan"), 1.0
    chi2 = float(d @ np.linalg.pinv(np.atleast_2d(np.cov(diffs, rowvar=False)), rcond=1e-9, hermitian=True) @ d)
    return chi2, float(chi2_dist.sf(chi2, len(d)))


def bic_difference(sse_own, sse_one, n, extra: int, ss_total: float) -> float:
    """BIC of per-budget (a, b) (`extra` more coefficients) minus BIC of one shared (a, b), Gaussian least squares;
    inf where the shared fit is exact to rounding (noise-free, one law). Scalars (SSE, runs): one noise variance for
    all runs, n log(SSE_own / SSE_one) + extra log n. Arrays per budget (BIC_NOISE "budget"): each budget its own
    noise variance, sum_g n_g log(SSE_own,g / SSE_one,g) + extra log n (the G variances, in both models, cancel),
    where every budget keeps BUDGET_NOISE_DOF residual dof in the per-budget model (else pooled, as with scalars).
    Why per budget: with one variance the comparison is the ratio of summed SSEs, which the budget with the largest
    residuals decides; on Epoch AI's Chinchilla table that is 1e19's steep right arm (losses to 5.0, 70% above its
    minimum), whose SSE neither model reduces (ratio 0.94), so one shape won by 61.5 although it fits the other eight
    budgets 2-17x worse. A variance per budget makes each budget's fit count by its own ratio (there -71.2: one
    shape each); the full heteroscedastic likelihood (both models refitted with 1/variance weights, iterated) says
    the same (-7.6). bench/README.md, "IsoFLOP: the profile model by each budget's own minimum"."""
    sse_own, sse_one, n = (np.atleast_1d(np.asarray(x, float)) for x in (sse_own, sse_one, n))
    if sse_one.sum() <= 1e-12 * ss_total:
        return float("inf")
    total = float(n.sum())
    by_budget = (BIC_NOISE == "budget" and len(n) > 1 and (n - 3 >= BUDGET_NOISE_DOF).all()
                 and (sse_own > 1e-12 * ss_total).all())
    if by_budget:
        return float((n * np.log(sse_own / sse_one)).sum() + extra * np.log(total))
    return float(total * np.log(max(sse_own.sum(), 1e-300) / sse_one.sum()) + extra * np.log(total))


def per_budget_dof(groups) -> float:
    """Residual degrees of freedom per budget of the per-budget shape fit: (runs - 3 per budget - 2 exponents) / budgets."""
    return (sum(len(g[0]) for g in groups) - 3 * len(groups) - 2) / len(groups)


def _sides(N, x, n_used) -> dict:
    below, above = bracketing(np.log(N), x)
    return {"inside": _inside(N, x), "n_runs": len(N), "n_used": n_used,
            "sizes_below": below, "sizes_above": above,
            "bracketed": _inside(N, x) and min(below, above) >= BRACKET_MIN}


def _inside(N, x, tol: float = 1e-6) -> bool:
    """The vertex x (log N) within the sizes run; one at an end size to rounding (tol, in log N) is at that size."""
    return bool(np.log(N.min()) - tol <= x <= np.log(N.max()) + tol)


def profile(row: pd.Series, logN: np.ndarray) -> np.ndarray:
    """The isoFLOP profile fitted to one budget (a row of `points`), evaluated at log N: for plots."""
    if "c2" in row and np.isfinite(row.get("c2", np.nan)):
        return row["c2"] * logN ** 2 + row["c1"] * logN + row["c0"]
    logD = row["s"] * logN + row["t"]
    u, v = np.exp(-row["alpha"] * (logN - row["mN"])), np.exp(-row["beta"] * (logD - row["mD"]))
    return row["ym"] + row["e"] + row["a"] * u + row["b"] * v


@dataclass
class IsoflopFit(ComputeOptimal):
    """Approach 2's ComputeOptimal plus how its vertices were found: `method` (shape, window or parabola),
    `used` (the table the profiles were fitted to; with slices, one row per run and budget it passed, its
    `slice` kind and step), and for the shape method the shared exponents of the profiles."""
    method: str = DEFAULT_METHOD
    used: pd.DataFrame = field(default_factory=pd.DataFrame)
    window_dex: float = WINDOW_DEX

    def describe_method(self) -> str:
        text = self._describe_profiles()
        out = self.points[~self.points["in_fit"]] if "in_fit" in self.points else self.points.iloc[:0]
        if len(out):
            text += ("; not used in the exponents' fit: " + ", ".join(f"C={c:.3g}" for c in out["C"]) + ", whose "
                     "minimum lies outside the sizes run (extrapolated)")
        by = self.points["vertex_by"] if "vertex_by" in self.points else pd.Series(dtype=object)
        moved = self.points[by.isin(["window", "bracket"])]
        if len(moved) and self.points["profile"].iloc[0] != LOCAL:
            text += ("; at " + ", ".join(f"C={c:.3g}" for c in moved["C"]) + " that profile misses the runs near the "
                     "vertex beyond their noise, and the vertex is a local parabola's (the window's, or the "
                     "lowest size's and its neighbours')")
        return text

    def _describe_profiles(self) -> str:
        if self.method in ("shape", "shared") and self.points["profile"].iloc[0] == LOCAL:
            return ("no law-shaped profile fits the runs within their noise (measured from seed replicates, or without "
                    "them the residual scatter of a cubic in log N per budget), so each budget's vertex is a "
                    f"local parabola's in log N: refitted to the sizes within {self.window_dex:g} decades of its vertex, "
                    "or, where that one misses the runs near its vertex beyond the noise, through the lowest size and "
                    "its neighbours")
        if self.method in ("shape", "shared"):
            p = self.points
            if p["profile"].iloc[0] == "shared":
                why = ("" if self.method != "shape" else " (too few sizes per budget for a shape each)"
                       if np.isnan(p["share_dbic"].iloc[0]) else
                       f" (one shape fits all budgets as well as one each: BIC lower by {p['share_dbic'].iloc[0]:.3g})")
                return (f"each budget's profile is the law's own shape on its isoFLOP line, e + a N^-alpha + b D^-beta "
                        f"with one (a, b) and exponents shared by all budgets (alpha {p['alpha'].iloc[0]:.3g}, beta "
                        f"{p['beta'].iloc[0]:.3g}) and an offset e per budget, fitted by variable projection" + why)
            if p["profile"].iloc[0] == "own vertices":
                return (f"each budget's profile is the law's own shape on its isoFLOP line, e + a N^-alpha + b D^-beta "
                        f"with (e, a, b) per budget at the exponents (alpha {p['alpha'].iloc[0]:.3g}, beta "
                        f"{p['beta'].iloc[0]:.3g}) of one shared (a, b): each budget's own vertex, at exponents "
                        "pinned by all budgets together")
            return (f"each budget's profile is the law's own shape on its isoFLOP line, e + a N^-alpha + b D^-beta "
                    f"with (e, a, b) per budget and exponents shared (alpha {p['alpha'].iloc[0]:.3g}, beta "
                    f"{p['beta'].iloc[0]:.3g}), fitted by variable projection to every size")
        if self.method == "window":
            return (f"a parabola in log N refitted to the sizes within {self.window_dex:g} decades of its vertex until "
                    f"the window settles")
        return "one parabola in log N through every size of a budget (biased when the grid is wide or off-centre)"


def fit(runs: pd.DataFrame, config: FitConfig | None = None, gap_dex: float = 0.1, method: str = DEFAULT_METHOD,
        window_dex: float = WINDOW_DEX, curves: pd.DataFrame | None = None, slices: bool = False,
        slice_kind: str = "auto", budgets=None, extrapolated: str | None = None) -> IsoflopFit:
    """Approach 2 on a runs table (one row per finished run). method: `shape` (default: the law-shaped profile,
    unbiased by the grid's width, bench/isoflop_bias.py), `window` (parabola near the vertex) or `parabola`.
    slices=True: also take a point at each budget that a run's training curve passes where the schedule makes
    it a finished run's equal (analysis/laws/slices.py; `slice_kind` annealed/constant/auto, `budgets` where to
    slice, default the runs' own budgets); `curves` is then required. extrapolated: "drop" (default, EXTRAPOLATED) or
    "keep": whether budgets whose vertex lies outside their sizes enter the exponents' fit (mark_in_fit)."""
    cfg = config or FitConfig()
    extrapolated = EXTRAPOLATED if extrapolated is None else extrapolated
    if method not in METHODS:
        raise FitError(f"approach 2: method={method!r}: use one of {METHODS}")
    if extrapolated not in EXTRAPOLATED_CHOICES:
        raise FitError(f"approach 2: extrapolated={extrapolated!r}: use one of {EXTRAPOLATED_CHOICES}")
    if slices:
        if curves is None:
            raise FitError("approach 2: slices=True needs the curves table (curves=results.curves)")
        check_table(runs, cfg, 1, "approach 2 (slices)")
        table = isoflop_slices(runs, curves, cfg, gap_dex, slice_kind, budgets)
    else:
        check_table(runs, cfg, 2 * MIN_PER_BUDGET, "approach 2")
        table = usable(runs, cfg)
    gids = group_budgets(table, gap_dex)
    parts = [(gid, g) for gid, g in table.groupby(gids)]
    groups = [as_arrays(g, cfg) for _, g in parts]
    notes: list[str] = []
    if slices:
        dropped = table.attrs.get("dropped", {})
        notes.append(f"approach 2: isoFLOP slices from training curves: {len(table)} {table.attrs['slice_kind']} "
                     f"points ({int(table['step'].isna().sum())} inside curves) from {table['run_id'].nunique()} runs "
                     f"at {len(parts)} budgets" + (f"; not mixed in: {dropped}" if dropped else ""))
    noise = run_noise_mod.estimate(usable(runs, cfg), cfg.loss_col, cfg.ci_level)
    pts = mark_in_fit(isoflop_points(groups, notes, method, window_dex, noise), extrapolated, notes)
    used_pts = pts[pts["in_fit"]]
    if len(used_pts) < 3:
        warn(f"approach 2: only {len(used_pts)} budgets: the exponent comes from {len(used_pts)} points and its "
             "interval is not meaningful; sweep 3 or more budgets", notes)
    n_law, d_law = PowerLaw.fit(used_pts["C"], used_pts["N_opt"]), PowerLaw.fit(used_pts["C"], used_pts["D_opt"])
    if cfg.n_bootstrap:
        clusters = [g["run_id"].to_numpy() for _, g in parts] if slices else None
        samples, xN, xD = bootstrap(groups, cfg, method, window_dex, pts, clusters, notes)
        logC = np.log(used_pts["C"].to_numpy(float))
        chi2 = {}
        # The shape methods' exponent interval is the basic bootstrap interval (Davison and Hinkley 1997, 5.2),
        # the percentiles reflected about the estimate: over 16 cells of bench/isoflop_bias.py (2-3 decades, 4
        # centrings, 2 laws, 12 seeds, 30 sizes) the percentile interval covered 0.85 on average although the
        # bootstrap's spread matched the fits' (its skew points the wrong way); the basic one, the same width,
        # 0.90 (bench/README.md, "IsoFLOP intervals", with BCa and a jackknife floor, which were not better).
        # It is then stretched to hold the exponent's profile-likelihood interval (profile_slopes, stretch): with
        # few sizes a budget or thin sides the run bootstrap's interval is too narrow or skewed the wrong way; and,
        # for `shape`, the exponent of the profile model it did not choose (other_profile_slopes)
        # (bench/README.md, "IsoFLOP noise, small and uneven grids"); and (INTERVAL_UNION) the percentile interval
        # itself: where the bootstrap distribution is skewed the two disagree on which side is long, and one table
        # cannot tell which is right (the synthetic cells favour the basic one; on Epoch AI's Chinchilla table the
        # shared profile's resamples run long towards small exponents, the percentile interval holds the authors'
        # 0.49 and the basic one reflects that tail away): the interval holds both (bench/README.md, "IsoFLOP: the
        # Epoch AI table").
        shaped = method in ("shape", "shared") and pts["profile"].iloc[0] != LOCAL
        region = profile_slopes(groups, pts, cfg.ci_level) if shaped else {}
        other = other_profile_slopes(groups, pts) if shaped and method == "shape" else {}
        for col, a_other in other.items():
            region[col] = np.append(region[col], a_other)
        if other:
            alt = "per budget" if pts["profile"].iloc[0] == "shared" else "shared"
            notes.append(f"approach 2: the other profile model ({alt}) gives exponents a {other['N_opt']:.3g}, "
                         f"b {other['D_opt']:.3g}; the intervals hold them (the choice between the two is uncertain)")
        stretched = {}
        for law, cols, col, xs in ((n_law, slice(0, 2), "N_opt", xN), (d_law, slice(2, 4), "D_opt", xD)):
            chi2[col] = lack_of_fit(logC, np.log(used_pts[col].to_numpy(float)), xs)
            law.samples, law.ci_level = widen(samples[:, cols], law, chi2[col]), cfg.ci_level
            law.basic = shaped
            if shaped and INTERVAL_UNION:
                region[col] = np.append(region.get(col, np.empty(0)), ci(law.samples[:, 1], cfg.ci_level))
            if col in region:
                before = law.a_ci
                law.samples = stretch(law, region[col])
                if law.a_ci != before:
                    stretched[col] = (before, law.a_ci)
        if any(v > 1 for v in chi2.values()):
            ratios = ", ".join(f"{k} {v:.2g}" for k, v in chi2.items())
            notes.append(f"approach 2: the budgets' optima scatter about the power laws more than the bootstrap's "
                         f"errors of each explain (chi^2/dof {ratios}): their intervals are widened by the Birge ratio "
                         "sqrt(chi^2/dof)")
        if stretched:
            moved = ", ".join(f"{k} [{b[0]:.3g}, {b[1]:.3g}] -> [{a[0]:.3g}, {a[1]:.3g}]"
                              for k, (b, a) in stretched.items())
            notes.append("approach 2: the run bootstrap's exponent interval (basic: its percentiles reflected about "
                         "the estimate) does not hold the profile-likelihood interval, the other profile model's "
                         f"exponent or the percentile interval; stretched to hold them: {moved}")
    used = table.assign(budget_id=gids.to_numpy())
    return IsoflopFit("approach 2", n_law, d_law, pts, cfg, (float(table[cfg.c_col].min()),
                      float(table[cfg.c_col].max())), table["run_id"].nunique() if "run_id" in table else len(table),
                      notes, method=method, used=used, window_dex=window_dex)


def mark_in_fit(pts: pd.DataFrame, extrapolated: str, notes: list[str] | None) -> pd.DataFrame:
    """`points` with a column in_fit: False for the budgets whose vertex lies outside their sizes (inside False) when
    extrapolated == "drop" and at least MIN_INSIDE budgets have theirs inside (EXTRAPOLATED says why); a warning
    names the budgets left out, or those kept for want of enough inside."""
    pts = pts.assign(in_fit=True)
    out = ~pts["inside"].astype(bool).to_numpy() if "inside" in pts else np.zeros(len(pts), bool)
    if extrapolated != "drop" or not out.any():
        return pts
    where = ", ".join(f"C={c:.3g} (N_opt {n:.3g})" for c, n in zip(pts["C"][out], pts["N_opt"][out]))
    if (~out).sum() >= MIN_INSIDE:
        pts.loc[out, "in_fit"] = False
        warn(f"approach 2: {int(out.sum())} budget(s) whose optimum lies outside the sizes run left out of the "
             f"exponents' fit (not used: {where}); {int((~out).sum())} budgets with their optimum inside remain "
             "(extrapolated='keep' uses them all)", notes)
    else:
        warn(f"approach 2: {int(out.sum())} budget(s) whose optimum lies outside the sizes run are kept in the "
             f"exponents' fit ({where}): only {int((~out).sum())} have their optimum inside, {MIN_INSIDE} are needed "
             "to leave the others out", notes)
    return pts


def _in_fit(logC: np.ndarray, pts: pd.DataFrame) -> np.ndarray:
    """Which budgets (log C) the full-data fit's exponents used: a resample estimates the same statistic, so a budget
    left out there (no minimum, or in_fit False: mark_in_fit) stays out (else a resample where it has a wild minimum
    moves the exponent by a jump)."""
    used = pts[pts["in_fit"]] if "in_fit" in pts else pts
    return np.isclose(logC[:, None], np.log(used["C"].to_numpy(float))[None, :], rtol=0, atol=1e-9).any(1)


def _point_rows(logC: np.ndarray, pts: pd.DataFrame) -> list[int | None]:
    """Per usable budget (log C), its row in `points`; None for a budget the full-data fit left out."""
    cs = np.log(pts["C"].to_numpy(float))
    rows = [np.flatnonzero(np.isclose(cs, c, rtol=0, atol=1e-9)) for c in logC]
    return [int(j[0]) if len(j) else None for j in rows]


def _local_kinds(logC: np.ndarray, pts: pd.DataFrame) -> list[str | None]:
    """Per usable budget (log C), how the full-data fit found its vertex (`vertex_by`: profile, window or bracket);
    None for a budget it left out."""
    by = pts["vertex_by"].to_numpy() if "vertex_by" in pts else np.full(len(pts), "profile")
    return [None if j is None else str(by[j]) for j in _point_rows(logC, pts)]


def _local_columns(logC: np.ndarray, pts: pd.DataFrame, xN: np.ndarray, xD: np.ndarray) -> tuple[np.ndarray, ...]:
    """xN, xD [P, G] of a law-shaped model with the budgets whose vertex is a local parabola's set to that vertex
    (which does not depend on the profiles' exponents)."""
    xN, xD = np.array(xN, float), np.array(xD, float)
    for j, (k, row) in enumerate(zip(_local_kinds(logC, pts), _point_rows(logC, pts))):
        if k not in (None, "profile"):
            xN[..., j], xD[..., j] = np.log(pts["N_opt"].iloc[row]), np.log(pts["D_opt"].iloc[row])
    return xN, xD


def _profiles(groups, usable_g, pts) -> isoshape.Profiles:
    """The usable budgets as the profile model the full-data fit chose (`points`' profile)."""
    return _stack([groups[i] for i in usable_g], shared=pts["profile"].iloc[0] != "per budget",
                  own_vertices=pts["profile"].iloc[0] == "own vertices")


def resample_weights_within(groups, cfg: FitConfig, clusters=None) -> list[np.ndarray]:
    """[n_bootstrap, n_g] multiplicities per budget: runs drawn with replacement within each budget (as before),
    or, with `clusters` (run ids per row: slices of one run are not independent), whole runs drawn from all."""
    if clusters is None:
        seeds = np.random.default_rng(cfg.seed).integers(0, 2**31, size=len(groups))
        return [resample_weights(len(g[0]), cfg.n_bootstrap, int(s)) for g, s in zip(groups, seeds)]
    ids, inv = np.unique(np.concatenate(clusters), return_inverse=True)
    W = resample_weights(len(ids), cfg.n_bootstrap, cfg.seed)
    bounds = np.cumsum([0] + [len(c) for c in clusters])
    return [W[:, inv[a:b]] for a, b in zip(bounds[:-1], bounds[1:])]


def bootstrap(groups, cfg: FitConfig, method: str = DEFAULT_METHOD, window_dex: float = WINDOW_DEX,
              pts: pd.DataFrame | None = None, clusters=None,
              notes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[n, 4] samples of (log k_N, a_N, log k_D, a_D), each resample refitting every budget's vertex, and the vertices
    (log N_opt, log D_opt [n, G]) of the budgets the full-data fit kept."""
    Ws = resample_weights_within(groups, cfg, clusters)
    usable_g = [i for i, g in enumerate(groups) if len(np.unique(g[0])) >= MIN_PER_BUDGET]
    logC = np.array([np.log(groups[i][2]).mean() for i in usable_g])
    kinds = _local_kinds(logC, pts) if method in ("shape", "shared") else [method] * len(usable_g)
    if method in ("shape", "shared") and pts["profile"].iloc[0] != LOCAL:
        prof = _profiles(groups, usable_g, pts)
        with one_blas_thread() if cfg.processes <= 1 else nullcontext():
            xN, xD, edge = isoshape.bootstrap_vertices(prof, [Ws[i] for i in usable_g], float(pts["alpha"].iloc[0]),
                                                       float(pts["beta"].iloc[0]))
        if edge > 0.05 and notes is not None:
            warn(f"approach 2: {edge:.0%} of bootstrap resamples put the profiles' exponents at the edge of the "
                 f"local search: the interval may be too narrow", notes)
        kinds = [k if k not in ("profile", None) else None for k in kinds]
    else:
        xN = xD = np.full((cfg.n_bootstrap, len(usable_g)), np.nan)
    local = [j for j, k in enumerate(kinds) if k is not None]
    if local:                  # budgets whose vertex is a parabola's: refitted by that parabola in every resample
        xN, xD = xN.copy(), xD.copy()
        for j in local:
            N, D, _, loss = groups[usable_g[j]]
            x, d = vertex_batch.local_vertices(np.log(N), loss, np.log(D), Ws[usable_g[j]], kinds[j], window_dex)
            far = _far_outside(np.log(N), x)
            xN[:, j], xD[:, j] = np.where(far, np.nan, x), np.where(far, np.nan, d)
    keep = _in_fit(logC, pts) if pts is not None else np.ones(len(logC), bool)
    samples = np.column_stack([*_line(logC, np.where(keep, xN, np.nan)), *_line(logC, np.where(keep, xD, np.nan))])
    return samples, xN[:, keep], xD[:, keep]


def lack_of_fit(logC: np.ndarray, x: np.ndarray, xs: np.ndarray) -> float:
    """chi^2 per degree of freedom of the budgets' optima x [G] (log N_opt or log D_opt at log C) about their fitted
    power law, measured against the bootstrap's covariance of the optima (xs [R, G], resamples in rows): ~1 where
    they scatter as much as their own errors explain, more where the power law or the vertices' errors do not hold.
    nan with fewer than 3 budgets or too few resamples defining every optimum."""
    G = len(x)
    ok = np.isfinite(xs).all(1)
    if G < 3 or ok.sum() < max(20, 4 * G):
        return float("nan")
    X = np.column_stack([np.ones(G), logC])
    M = np.eye(G) - X @ np.linalg.pinv(X)                  # the line's residual maker (rank G - 2)
    r = M @ x
    V = M @ np.atleast_2d(np.cov(xs[ok], rowvar=False)) @ M
    return float(r @ np.linalg.pinv(V, rcond=1e-9, hermitian=True) @ r) / (G - 2)


def widen(samples: np.ndarray, law: PowerLaw, chi2_dof: float) -> np.ndarray:
    """Bootstrap samples [n, 2] of (log k, a), spread about the estimate by the Birge ratio sqrt(chi2_dof) where
    that exceeds 1 (the scale factor by which inconsistent measurements' errors are inflated, Birge 1932; the
    Particle Data Group's practice). The run bootstrap resamples runs within each budget, so it knows each
    vertex's noise but not how far the budgets' optima stray from one power law (a curved N_opt(C), a misfitting
    profile shape); the scatter about the line measures both. Every interval read from the samples (the
    exponent's, N_opt's or D_opt's at any budget: linear in (log k, a)) widens by the same factor."""
    if not np.isfinite(chi2_dof) or chi2_dof <= 1:
        return samples
    scale = float(np.sqrt(chi2_dof))
    centre = np.array([np.log(law.k), law.a])
    return centre + scale * (samples - centre)


def profile_slopes(groups, pts: pd.DataFrame, level: float) -> dict[str, np.ndarray]:
    """The N_opt and D_opt exponents over the profiles' exponent region at `level` (isoshape.profile_region): their
    range is the exponents' profile-likelihood interval given the profiles' shape, by the F test on the SSE."""
    usable_g = [i for i, g in enumerate(groups) if len(np.unique(g[0])) >= MIN_PER_BUDGET]
    logC = np.array([np.log(groups[i][2]).mean() for i in usable_g])
    keep = _in_fit(logC, pts)
    prof = _profiles(groups, usable_g, pts)
    xN, xD = isoshape.profile_region(prof, float(pts["alpha"].iloc[0]), float(pts["beta"].iloc[0]), level)
    xN, xD = _local_columns(logC, pts, xN, xD)
    return {"N_opt": _line(logC[keep], xN[:, keep])[1], "D_opt": _line(logC[keep], xD[:, keep])[1]}


def other_profile_slopes(groups, pts: pd.DataFrame) -> dict[str, float]:
    """The N_opt and D_opt exponents under the profile model `shape` did not choose (per budget where it shares one
    (a, b), shared where it keeps one each); {} where that model is undefined (per-budget shapes with under one
    residual degree of freedom a budget) or has fewer than 3 vertices. The choice is a test on the loss residuals
    and can be wrong where it matters: on 1-decade grids whose budgets' shapes differ by ~10% BIC shared them in
    75-100% of tables, the exponent was off by up to 0.08 and 6 of 8 cells covered under 0.85; on digitised public
    curves `shared` is off by 0.044 (bench/README.md, "IsoFLOP noise, small and uneven grids")."""
    usable_g = [i for i, g in enumerate(groups) if len(np.unique(g[0])) >= MIN_PER_BUDGET]
    kept = [groups[i] for i in usable_g]
    shared_now = pts["profile"].iloc[0] == "shared"
    if shared_now and per_budget_dof(kept) < 1:
        return {}
    prof = _profiles(groups, usable_g, pts)
    prof.shared, prof.own_vertices = not shared_now, False
    f = isoshape.fit(prof)
    logC = np.array([np.log(g[2]).mean() for g in kept])
    xN, xD = _local_columns(logC, pts, f["logN_opt"], f["logD_opt"])
    keep = _in_fit(logC, pts) & np.isfinite(xN)
    if keep.sum() < 3:
        return {}
    return {"N_opt": float(np.polyfit(logC[keep], xN[keep], 1)[0]),
            "D_opt": float(np.polyfit(logC[keep], xD[keep], 1)[0])}


def stretch(law: PowerLaw, slopes: np.ndarray) -> np.ndarray:
    """law.samples [n, 2] of (log k, a) moved away from the estimate, the resamples with a below it by one factor and
    those above by another (each >= 1), so that the exponent's interval (law.a_ci) holds the range of `slopes` (the
    profile interval). The order of the resamples is kept, so the interval's ends move to exactly that range; where
    it already holds it, or a side has no resamples, that side is unchanged."""
    s = law.samples
    ok = np.isfinite(slopes)
    lo, hi = law.a_ci
    if not ok.any() or not (np.isfinite(lo) and np.isfinite(hi)):
        return s
    want_lo, want_hi = min(lo, slopes[ok].min()), max(hi, slopes[ok].max())
    k_lo = (law.a - want_lo) / (law.a - lo) if law.a > lo else 1.0       # for the resamples that give the lower end
    k_hi = (want_hi - law.a) / (hi - law.a) if hi > law.a else 1.0
    # the basic interval's lower end reflects the resamples above the estimate; the percentile one's, those below
    k = np.where((s[:, 1] > law.a) == law.basic, k_lo, k_hi)[:, None]
    centre = np.array([np.log(law.k), law.a])
    return centre + np.maximum(k, 1.0) * (s - centre)


def _line(logC: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of y [R, G] (nan: budget without a vertex in that resample), intercept and slope of y on log C;
    nan where fewer than 2 budgets remain."""
    m = np.isfinite(y)
    n = m.sum(1)
    x = np.where(m, logC, 0.0)
    y0 = np.where(m, y, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mx, my = x.sum(1) / n, y0.sum(1) / n
        sxx = (np.where(m, (logC - mx[:, None]) ** 2, 0)).sum(1)
        sxy = (np.where(m, (logC - mx[:, None]) * (y0 - my[:, None]), 0)).sum(1)
        slope = sxy / sxx
    ok = (n >= 2) & (sxx > 0)
    return np.where(ok, my - slope * mx, np.nan), np.where(ok, slope, np.nan)


def _far_outside(logN: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Resampled parabolas' vertices x further outside the budget's sizes than their whole span: near-flat parabolas'
    (curvature ~0), which the runs do not locate; counted as no minimum, like one opening downwards. (Kept, one such
    resample in 20 of a 5-size budget put its vertex at N ~ e^99 and the exponent's interval at [-11.4, 0.44] on a
    public table; bench/README.md, "More public isoFLOP tables".) nan counts as outside."""
    lo, hi = float(logN.min()), float(logN.max())
    with np.errstate(invalid="ignore"):
        return ~((lo - (hi - lo) <= x) & (x <= hi + (hi - lo)))
