"""Chinchilla approach 3: fit L(N, D) = E + A / N^alpha + B / D^beta to every run's final loss.

As Hoffmann et al. (2022, Appendix D.2) did: with A = exp(a), B = exp(b), E = exp(e), minimise

    sum_i Huber_delta( LSE(a - alpha log N_i, b - beta log D_i, e) - log L_i ),   delta = 1e-3 (theirs),

by L-BFGS from a grid of initialisations (alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1},
a, b in {0, 5, ..., 25}). The Huber loss is SUMMED, as in the paper: a mean makes the objective ~1e-5
and L-BFGS-B's absolute stopping rule ends the fit early (a bug of one public re-implementation); we
sum and also set tolerances far below the objective's scale (tests check the gradient at the end).
fit(..., delta="scaled") repeats the fit with delta scaled to the first fit's residuals (HUBER_K); not the default.

Vectorised: the objective is evaluated at all 4,500 grid points at once (one [grid, runs] array), and
L-BFGS-B (analytic gradient) starts from the best few. The bootstrap draws runs with replacement as
multiplicity weights, so all resamples' grid objectives are one matrix product; each resample's
L-BFGS-B then starts from the better of its best grid point and the full-data optimum, in parallel.

Compute-optimal allocation under C = k N D (k = 6 for 6ND): N_opt = G (C/k)^a, D_opt = (C/k)^b / G,
with a = beta / (alpha + beta), b = alpha / (alpha + beta), G = (alpha A / (beta B))^(1 / (alpha + beta)).
"""
from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeResult, minimize

from analysis import lbfgs as batched_lbfgs
from analysis.bootstrap import one_blas_thread, parallel_map, resample_weights
from analysis.laws.common import (
    PARAMS,
    FitConfig,
    FitError,
    SampledLaw,
    check_table,
    flops_per_param_token,
    implausible_exponents,
    usable,
)
from analysis.laws.isoshape import solve as solve3

HUBER_DELTA = 1e-3
# delta="scaled": HUBER_K times the residuals' MAD scale, as robust regression scales Huber's loss (Huber 1981;
# statsmodels' RLM default, HuberT t = 1.345 with a MAD scale: 95% of least squares' efficiency under normal noise).
# Not the default: the residuals' scale is the noise only where the law's form fits. On 0.5-2% synthetic noise it
# narrows approach 3's intervals ~30% at the same coverage, but where the form misfits (the GPU study: residual MAD
# scale 4.6%, seed-to-seed noise 0.35%) it lets the misfitting runs pull, and a moves away from the budgets' minima
# (0.630 -> 0.574, approach 2 0.657); bench/README.md, "Approach 3 and the public isoFLOP minima".
HUBER_K = 1.345
DELTAS = ("scaled",)                   # the named rules `fit` takes besides a number
MAD_TO_SIGMA = 1.4826                  # sigma of a normal per median absolute deviation
GRID = dict(alpha=np.arange(0, 2.01, 0.5), beta=np.arange(0, 2.01, 0.5), e=np.arange(-1, 1.01, 0.5),
            a=np.arange(0, 25.1, 5), b=np.arange(0, 25.1, 5))
MIN_RUNS = 8
SEARCHES = ("grid", "vp")
# L-BFGS-B stops when the relative decrease is below ftol * max(|f|, 1) or the largest gradient entry is
# below gtol; the summed Huber objective is ~1e-4..1e-2, so both must be far below that scale.
LBFGS_OPTIONS = dict(ftol=1e-15, gtol=1e-11, maxiter=2000, maxcor=20)


def grid_points() -> np.ndarray:
    """[4500, 5] initial theta = (e, a, b, alpha, beta), Hoffmann et al.'s grid."""
    return np.array([(e, a, b, al, be) for al, be, e, a, b in
                     itertools.product(GRID["alpha"], GRID["beta"], GRID["e"], GRID["a"], GRID["b"])])


def log_pred(theta: np.ndarray, logN: np.ndarray, logD: np.ndarray) -> np.ndarray:
    """log L predicted; theta [..., 5] broadcasts against logN, logD [n] to [..., n]."""
    e, a, b, al, be = (theta[..., i:i + 1] for i in range(5))
    return np.logaddexp(np.logaddexp(a - al * logN, b - be * logD), e)


def huber(r: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    ar = np.abs(r)
    return np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta))


def scaled_delta(residuals: np.ndarray) -> float:
    """Huber's delta for these log residuals: HUBER_K times their MAD scale, never below HUBER_DELTA."""
    r = np.asarray(residuals, float)
    return max(HUBER_DELTA, HUBER_K * MAD_TO_SIGMA * float(np.median(np.abs(r - np.median(r)))))


def objective(theta: np.ndarray, logN, logD, logL, w, delta: float = HUBER_DELTA) -> tuple[float, np.ndarray]:
    """Weighted sum of Huber losses on log-loss residuals, and its gradient in theta."""
    f, grad = objective_rows(np.asarray(theta, float)[None], logN, logD, logL, np.asarray(w)[None], delta)
    return float(f[0]), grad[0]


def objective_rows(theta: np.ndarray, logN, logD, logL, w, delta: float = HUBER_DELTA) -> tuple[np.ndarray, np.ndarray]:
    """`objective` of K problems at once: theta [K, 5], w [K, n] -> f [K], gradients [K, 5]. Elementwise operations
    and sums along rows, so that each row's numbers do not depend on the other rows (analysis/lbfgs.py relies on it)."""
    e, a, b, al, be = (theta[:, i:i + 1] for i in range(5))
    t1, t2 = a - al * logN, b - be * logD
    m = np.maximum(np.maximum(t1, t2), e)
    x1, x2, x3 = np.exp(t1 - m), np.exp(t2 - m), np.exp(e - m)
    s = x1 + x2 + x3
    r = m + np.log(s) - logL
    c = np.clip(r, -delta, delta)                                 # d Huber / d r
    # elementwise products and sums, not `@`: BLAS threads on 100-element dot products are slow on a busy machine
    f = (w * c * (r - 0.5 * c)).sum(1)                             # = Huber(r): 0.5 r^2 inside delta, linear outside
    g = w * c / s                                                  # weighted, over the softmax denominator
    g1, g2 = g * x1, g * x2                                        # times the softmax weights of each term
    grad = np.stack([(g * x3).sum(1), g1.sum(1), g2.sum(1), -(g1 * logN).sum(1), -(g2 * logD).sum(1)], 1)
    return f, grad


def lbfgs(theta0, logN, logD, logL, w, delta: float = HUBER_DELTA):
    res = minimize(objective, theta0, args=(logN, logD, logL, w, delta), jac=True, method="L-BFGS-B",
                   options=LBFGS_OPTIONS)
    return res


def lbfgs_rows(theta0: np.ndarray, logN, logD, logL, w: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    """[K, 5] optima of K problems, problem k from theta0[k] with weights w[k]: `lbfgs` of each, to the bit, run
    together (analysis/lbfgs.py: ~5x less CPU for a bootstrap's resamples) where that reproduces scipy here."""
    if not batched_lbfgs.available():
        return np.array([lbfgs(t, logN, logD, logL, wk, delta).x for t, wk in zip(theta0, w)]).reshape(-1, 5)
    fun = lambda theta, rows: objective_rows(theta, logN, logD, logL, w[rows], delta)
    return batched_lbfgs.minimize_many(fun, theta0, LBFGS_OPTIONS)["x"]


def centre(theta: np.ndarray, mN: float, mD: float, sign: int = 1) -> np.ndarray:
    """Move theta to (sign=1) or from (sign=-1) coordinates where log N and log D have mean zero:
    a' = a - alpha mean(log N). Same objective, far better conditioned (a and alpha stop trading off)."""
    theta = np.array(theta, float, copy=True)
    theta[..., 1] -= sign * theta[..., 3] * mN
    theta[..., 2] -= sign * theta[..., 4] * mD
    return theta


def fit_theta(logN, logD, logL, w, n_starts: int = 8, delta: float = HUBER_DELTA) -> tuple[np.ndarray, object]:
    """Evaluate the whole grid at once, then L-BFGS-B from the `n_starts` best grid points; best result wins."""
    grid = grid_points()
    obj = huber(log_pred(grid, logN, logD) - logL, delta) @ w
    mN, mD = logN.mean(), logD.mean()
    with one_blas_thread():
        best = lbfgs_best(centre(grid[np.argsort(obj)[:n_starts]], mN, mD), logN - mN, logD - mD, logL, w, delta)
    return centre(best.x, mN, mD, -1), best


def lbfgs_best(starts: np.ndarray, logN, logD, logL, w, delta: float = HUBER_DELTA) -> OptimizeResult:
    """`lbfgs` from each of starts [K, 5]; the result of the first start with the lowest objective (as a loop that
    keeps a result only when it is strictly lower would): the starts run together where analysis/lbfgs.py reproduces
    minimize() here, else one after another."""
    if batched_lbfgs.available():
        fun = lambda theta, rows: objective_rows(theta, logN, logD, logL, np.broadcast_to(w, (len(rows), len(w))),
                                                 delta)
        out = batched_lbfgs.minimize_many(fun, starts, LBFGS_OPTIONS)
        results = [OptimizeResult(x=out["x"][k], fun=float(out["fun"][k]), success=bool(out["success"][k]),
                                  message=out["message"][k], nit=int(out["nit"][k]), nfev=int(out["nfev"][k]))
                   for k in range(len(starts))]
    else:
        results = [lbfgs(s, logN, logD, logL, w, delta) for s in starts]
    return min(results, key=lambda res: res.fun)     # min keeps the first of equal ones, as the loop did


# ---- variable projection (search="vp"): the exponents searched, (E, A, B) solved for each
VP_GRID = np.linspace(0.05, 2.0, 32)          # alpha and beta candidates (Hoffmann et al.'s range, finer)
VP_IRLS = 6                                   # reweighting rounds of the inner Huber solve
VP_STARTS = 3                                 # L-BFGS-B polishes from the best few (alpha, beta)


def vp_profile(alpha: np.ndarray, beta: np.ndarray, logN, logD, logL, w,
               delta: float = HUBER_DELTA) -> tuple[np.ndarray, np.ndarray]:
    """For candidate exponents [P]: (E, A, B) [P, 3] that minimise the Huber objective with the exponents held,
    and that objective [P]. Inner solve: with relative residuals (E + A x + B y) / L - 1 (= the log residual to
    first order) the model is linear in (E, A, B), so each round is a weighted 3x3 least-squares solve for every
    candidate at once, the weights being Huber's IRLS weights min(1, delta / |r|) (Holland and Welsch 1977).
    Coefficients that come out negative are clipped to a floor (E, A, B must be positive for the log form)."""
    L = np.exp(logL)
    x = np.exp(-alpha[:, None] * logN) / L            # [P, n]: the features over L (relative residuals)
    y = np.exp(-beta[:, None] * logD) / L
    one = np.broadcast_to(1 / L, x.shape)
    F = np.stack([one * one, one * x, one * y, x * x, x * y, y * y, one, x, y, np.ones_like(x)], -1)  # [P, n, 10]
    omega = np.broadcast_to(w, x.shape).astype(float)
    floor = np.array([1e-6, 1e-12, 1e-12]) * np.exp(logL.mean())
    for _ in range(VP_IRLS):
        theta, _ = solve3(np.einsum("pn,pnk->pk", omega, F))
        theta = np.maximum(theta, floor)
        r = np.log(theta[:, :1] * one * L + theta[:, 1:2] * x * L + theta[:, 2:3] * y * L) - logL
        omega = w * np.minimum(1.0, delta / np.maximum(np.abs(r), 1e-300))
    return theta, (w * huber(r, delta)).sum(1)


def fit_theta_vp(logN, logD, logL, w, n_starts: int = VP_STARTS,
                 delta: float = HUBER_DELTA) -> tuple[np.ndarray, object, dict]:
    """Variable projection: every (alpha, beta) on VP_GRID x VP_GRID profiled, then L-BFGS-B on all five
    parameters (the same objective as the grid fit) from the best `n_starts` candidates."""
    A, B = (g.ravel() for g in np.meshgrid(VP_GRID, VP_GRID, indexing="ij"))
    coef, obj = vp_profile(A, B, logN, logD, logL, w, delta)
    mN, mD = logN.mean(), logD.mean()
    top = np.argsort(obj)[:n_starts]
    starts = np.column_stack([np.log(coef[top, 0]), np.log(coef[top, 1]), np.log(coef[top, 2]), A[top], B[top]])
    with one_blas_thread():
        best = lbfgs_best(centre(starts, mN, mD), logN - mN, logD - mD, logL, w, delta)
        if not best.success:      # a line search that fails at the optimum's rounding level: restart from there
            again = lbfgs(best.x, logN - mN, logD - mD, logL, w, delta)
            best = again if again.fun <= best.fun else best
    k = int(np.argmin(obj))
    info = {"profile_alpha": float(A[k]), "profile_beta": float(B[k]), "profile_objective": float(obj[k])}
    return centre(best.x, mN, mD, -1), best, info


def _boot_rows(items) -> list[np.ndarray]:
    """Resamples' optima (centred coordinates), each L-BFGS-B from its chosen start on its weights; a chunk of
    `bootstrap`'s items (cN, cD, logL, w, start, delta), run together: each result is that of its resample alone."""
    cN, cD, logL = items[0][:3]
    w, start = (np.array([it[k] for it in items]) for k in (3, 4))
    return list(lbfgs_rows(start, cN, cD, logL, w, items[0][5]))


def theta_to_params(theta: np.ndarray) -> np.ndarray:
    """[..., 5] theta (e, a, b, alpha, beta) -> [..., 5] (E, A, B, alpha, beta)."""
    theta = np.asarray(theta, float)
    return np.concatenate([np.exp(theta[..., :3]), theta[..., 3:]], axis=-1)


@dataclass
class LossSurface(SampledLaw):
    """The fitted L(N, D) with its compute-optimal allocation and bootstrap samples of (E, A, B, alpha, beta):
    SampledLaw's fields, and the optimiser's state and residuals."""
    objective: float
    grad_norm: float                  # largest |gradient| entry at the optimum (convergence check)
    residuals: pd.DataFrame           # run_id, N, D, C, loss, predicted, residual (log)
    search: str = "grid"              # how the starting point was found: grid of starts, or variable projection
    search_info: dict = field(default_factory=dict)

    approach = "approach 3"

    @classmethod
    def known(cls, E: float, A: float, B: float, alpha: float, beta: float, k: float = 6.0,
              c_range: tuple[float, float] = (1e18, 1e21), n_runs: int = 100, config: FitConfig | None = None):
        """A law with given parameters (no fit, no bootstrap): for tests and what-if recommendations."""
        return cls(E=E, A=A, B=B, alpha=alpha, beta=beta, k=k, config=config or FitConfig(n_bootstrap=0),
                   n_runs=n_runs, n_range=(np.nan, np.nan), d_range=(np.nan, np.nan), c_range=c_range,
                   objective=np.nan, grad_norm=0.0, converged=True, residuals=pd.DataFrame())

    # ---- intervals from the bootstrap
    def sample_surfaces(self) -> list[LossSurface]:
        return [LossSurface(*s, k=self.k, config=self.config, n_runs=self.n_runs, n_range=self.n_range,
                            d_range=self.d_range, c_range=self.c_range, objective=np.nan, grad_norm=np.nan,
                            converged=True, residuals=self.residuals.iloc[:0]) for s in self.samples]

    def summary(self) -> str:
        rows = []
        for p in PARAMS + ("a", "b"):
            lo, hi = self.ci(p)
            rows.append(f"  {p:<6} {getattr(self, p):10.4g}   [{lo:.4g}, {hi:.4g}]")
        return (f"approach 3: L(N, D) = E + A/N^alpha + B/D^beta  ({self.n_runs} runs, "
                f"{'converged' if self.converged else 'NOT converged'}, |grad| {self.grad_norm:.1e})\n"
                + "\n".join(rows) + f"\n  ({self.config.describe()})")


def fit(runs: pd.DataFrame, config: FitConfig | None = None, n_starts: int = 8, search: str = "grid",
        delta: float | str = HUBER_DELTA) -> LossSurface:
    """Fit approach 3 to a runs table (one row per run: N, tokens, C, final loss). Pure function of the table.
    search: "grid" (Hoffmann et al.'s 4,500-point grid of starts) or "vp" (variable projection over the
    exponents, fit_theta_vp); both minimise the same summed Huber objective with L-BFGS-B at the end.
    delta: Huber's delta on log residuals (Hoffmann et al.'s 1e-3), or "scaled" (see HUBER_K)."""
    cfg = config or FitConfig()
    if search not in SEARCHES:
        raise FitError(f"approach 3: search={search!r}: use one of {SEARCHES}")
    if delta not in DELTAS and not (isinstance(delta, (int, float)) and delta > 0):
        raise FitError(f"approach 3: delta={delta!r}: use a positive number (Huber's delta on log residuals; "
                       f"default {HUBER_DELTA:g}) or one of {DELTAS}")
    check_table(runs, cfg, MIN_RUNS, "approach 3 (5 parameters)")
    runs = usable(runs, cfg).reset_index(drop=True)
    N, D, C = (runs[c].to_numpy(float) for c in (cfg.n_col, "tokens", cfg.c_col))
    L = runs[cfg.loss_col].to_numpy(float)
    logN, logD, logL = np.log(N), np.log(D), np.log(L)
    ones = np.ones_like(logN)

    def search_fit(d: float):
        if search == "vp":
            return fit_theta_vp(logN, logD, logL, ones, delta=d)
        return (*fit_theta(logN, logD, logL, ones, n_starts, delta=d), {})

    if delta == "scaled":
        theta, res, info = search_fit(HUBER_DELTA)      # Hoffmann et al.'s delta: its residuals give the scale
        delta = scaled_delta(logL - log_pred(theta, logN, logD))
        if delta > HUBER_DELTA:
            theta, res, info = search_fit(delta)
    else:
        delta = float(delta)
        theta, res, info = search_fit(delta)
    info = {**info, "huber_delta": delta}
    _, grad = objective(theta, logN, logD, logL, ones, delta)
    grad_norm = float(np.abs(grad).max())
    notes: list[str] = []
    converged = bool(res.success) and grad_norm < 1e-6
    if not converged:
        notes.append(f"approach 3: L-BFGS-B did not converge ({res.message}; |grad| {grad_norm:.1e})")
    pred = np.exp(log_pred(theta, logN, logD))
    residuals = pd.DataFrame({"run_id": runs.get("run_id", pd.Series(range(len(runs)))).to_numpy(),
                              "N": N, "D": D, "C": C, "loss": L, "predicted": pred,
                              "residual": np.log(L) - np.log(pred)})
    samples = bootstrap(logN, logD, logL, theta, cfg, search, delta) if cfg.n_bootstrap else np.empty((0, 5))
    E, A, B, al, be = theta_to_params(theta)
    notes += implausible_exponents("approach 3", {"alpha": al, "beta": be},
                                   {"N": (N.min(), N.max()), "D": (D.min(), D.max())})
    law = LossSurface(E=E, A=A, B=B, alpha=al, beta=be, k=flops_per_param_token(runs, cfg), config=cfg,
                      n_runs=len(runs), n_range=(N.min(), N.max()), d_range=(D.min(), D.max()),
                      c_range=(C.min(), C.max()), objective=float(res.fun), grad_norm=grad_norm,
                      converged=converged, residuals=residuals, samples=samples, warnings=notes, search=search,
                      search_info=info)
    for msg in notes:
        warnings.warn(msg, stacklevel=2)
    return law


def bootstrap(logN, logD, logL, theta_full, cfg: FitConfig, search: str = "grid",
              delta: float = HUBER_DELTA) -> np.ndarray:
    """[n_bootstrap, 5] samples of (E, A, B, alpha, beta), runs resampled with replacement (seeded). Each
    resample's L-BFGS-B starts from the better of the full-data optimum and (grid search) its best grid point;
    with search="vp", from the full-data optimum alone (the profile already searched the exponents globally).
    Every resample uses the full-data fit's Huber delta."""
    W = resample_weights(len(logN), cfg.n_bootstrap, cfg.seed)
    mN, mD = logN.mean(), logD.mean()
    cN, cD = logN - mN, logD - mD
    start = np.broadcast_to(centre(theta_full, mN, mD), (len(W), 5))
    if search != "vp":
        grid = grid_points()
        grid_obj = huber(log_pred(grid, logN, logD) - logL, delta) @ W.T   # [grid, resamples] in one product
        best_grid = centre(grid[np.argmin(grid_obj, axis=0)], mN, mD)
        # the better of the two starts on each resample's own objective; the full-data optimum on a tie
        better = objective_rows(best_grid, cN, cD, logL, W, delta)[0] < objective_rows(start, cN, cD, logL, W, delta)[0]
        start = np.where(better[:, None], best_grid, start)
    items = [(cN, cD, logL, w, s, delta) for w, s in zip(W, start)]
    thetas = centre(np.array(parallel_map(_boot_rows, items, processes=cfg.processes, desc="approach 3 bootstrap",
                                          batched=True)).reshape(-1, 5), mN, mD, -1)
    return theta_to_params(thetas)
