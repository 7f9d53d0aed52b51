"""An MoE scaling law: loss in active parameters N, tokens D, number of experts E and granularity G.

    L(N, D, E, G) = c + (a + g / G^gamma) * E^(-delta) / N^alpha + b / D^beta

The form is Krajewski et al. (2024), "Scaling Laws for Fine-Grained Mixture of Experts":
L = c + (g/G^gamma + a)/N^alpha + b/D^beta, with N the active parameters and G the granularity
(dense MLP width / expert width), to which we add the number of experts as a factor E^(-delta) on the
parameter term, the main effect of Clark et al. (2022)'s log L = a log N + b log E + c log N log E + d.
Why this form and not Clark's: Clark et al. fit at one token count, so their law has no D and can say
nothing about tokens per parameter, which this law must recommend; Krajewski et al.'s has D and
granularity, and reduces to Chinchilla's L = E + A/N^alpha + B/D^beta for a dense model (E = G = 1), so
dense and MoE runs share one fit (c, b, beta, alpha are common) and compare on one scale. Krajewski et al.
held the expansion rate (E / G) fixed; our grid varies E at each G, hence the E factor. We leave out
Clark's interaction term (the benefit of experts shrinking with N): a grid of a few sizes cannot
resolve it, and with it the dense-equivalent size would depend on N; the residuals by E and N in the
report show whether it is missed.

Consequences used in the recommendations (k = FLOPs per active parameter per token, C = k N D):
  * an MoE (E, G) is a dense model with the parameter coefficient A(E, G) = (a + g/G^gamma) E^-delta,
    so its compute-optimal N, D follow Chinchilla's closed form with A(E, G) in place of A;
  * dense-equivalent size: the dense N' with the same predicted loss at the same D is
    N' = N * (A(1, 1) / A(E, G))^(1/alpha), a constant multiple of N for each (E, G).

Fitted like approach 3 (Hoffmann et al. 2022): Huber (delta 1e-3) on log residuals, summed, L-BFGS-B
from the best points of a grid of initialisations; bootstrap over runs for intervals. Parameters the
table cannot identify are held (and the fit warns): a, g, gamma need three granularities (dense rows
count as G = 1); with two gamma is held at Krajewski et al.'s 0.58, with one g = 0; delta needs two
expert counts (dense rows count as E = 1), else delta = 0.
"""
from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from analysis.bootstrap import one_blas_thread, parallel_map, resample_weights
from analysis.laws.common import FitConfig, FitError, ci, implausible_exponents, usable

HUBER_DELTA = 1e-3
PARAMS = ("c", "a", "g", "gamma", "delta", "alpha", "b", "beta")
# theta = (log c, log a, log g, gamma, delta, alpha, log b, beta)
LOG_PARAMS = (0, 1, 2, 6)
MIN_RUNS = 12
LBFGS_OPTIONS = dict(ftol=1e-15, gtol=1e-11, maxiter=3000, maxcor=20)


def default_config() -> FitConfig:
    """MoE laws count active non-embedding parameters (a dense model's are all active)."""
    return FitConfig(n_col="params_active_nonembedding")


def experts_and_granularity(runs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """E (1 for dense) and G = ffn_hidden / expert_hidden (1 for dense, or when widths are absent)."""
    n = len(runs)
    moe = (runs["family"] == "moe").to_numpy() if "family" in runs else (runs["n_experts"].fillna(0) > 0).to_numpy()
    E = np.where(moe, runs["n_experts"].to_numpy(float), 1.0)
    if {"ffn_hidden", "expert_hidden"} <= set(runs.columns):
        G = np.where(moe, runs["ffn_hidden"].to_numpy(float) / np.maximum(runs["expert_hidden"].to_numpy(float), 1),
                     1.0)
    else:
        G = np.ones(n)
    return E, G


# ------------------------------------------------------------------------------------------ the objective

def log_pred(theta, logN, logD, logE, logG):
    """log L; theta [..., 8] broadcasts against the [n] columns to [..., n]."""
    lc, la, lg, gam, dlt, al, lb, be = (theta[..., i:i + 1] for i in range(8))
    logA = np.logaddexp(la, lg - gam * logG) - dlt * logE
    return np.logaddexp(np.logaddexp(logA - al * logN, lb - be * logD), lc)


def huber(r, delta=HUBER_DELTA):
    ar = np.abs(r)
    return np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta))


def objective(theta, logN, logD, logE, logG, logL, w, free):
    """Weighted summed Huber on log residuals and its gradient (zero for held parameters)."""
    lc, la, lg, gam, dlt, al, lb, be = theta
    u = np.stack([la * np.ones_like(logG), lg - gam * logG])
    logS = np.logaddexp(u[0], u[1])
    q = np.exp(u - logS)                                   # share of a and of g/G^gamma in the coefficient
    t = np.stack([np.full_like(logN, lc), logS - dlt * logE - al * logN, lb - be * logD])
    lse = np.logaddexp(np.logaddexp(t[0], t[1]), t[2])
    p = np.exp(t - lse)
    r = lse - logL
    h = w * np.clip(r, -HUBER_DELTA, HUBER_DELTA)
    hp1 = h * p[1]
    grad = np.array([h @ p[0], hp1 @ q[0], hp1 @ q[1], -(hp1 * q[1]) @ logG, -hp1 @ logE, -hp1 @ logN,
                     h @ p[2], -(h * p[2]) @ logD])
    return float(w @ huber(r)), grad * free


def init_grid(logL: np.ndarray) -> np.ndarray:
    lmin = float(np.min(logL))
    rows = itertools.product([lmin + np.log(0.3), lmin + np.log(0.7)],        # log c: below the lowest loss
                             [0.0, 4.0, 8.0], [0.0, 4.0, 8.0], [0.5, 1.0],     # log a, log g, gamma
                             [0.0, 0.15], [0.2, 0.35, 0.6],                   # delta, alpha
                             [2.0, 6.0, 10.0], [0.2, 0.35, 0.6])              # log b, beta
    return np.array(list(rows))


def fit_theta(cols, w, held: dict[int, float], starts=None, n_starts=6):
    logN, logD, logE, logG, logL = cols
    free = np.ones(8)
    free[list(held)] = 0
    if starts is None:
        grid = np.unique(held_values(init_grid(logL), held), axis=0)
        obj = huber(log_pred(grid, logN, logD, logE, logG) - logL) @ w
        starts = grid[np.argsort(obj)[:n_starts]]
    best = None
    for s in starts:
        s = held_values(s, held)
        res = minimize(objective, s, args=(logN, logD, logE, logG, logL, w, free), jac=True, method="L-BFGS-B",
                       options=LBFGS_OPTIONS)
        if best is None or res.fun < best.fun:
            best = res
    return best.x, best


# gamma when the table has only two granularities (dense G = 1 and one MoE G): Krajewski et al.'s fit
KRAJEWSKI_GAMMA = 0.58


def holds(E: np.ndarray, G: np.ndarray) -> dict[int, float]:
    """theta index -> held value, for what the table cannot identify. a, g, gamma need 3 granularities:
    with 2 gamma is held at Krajewski et al.'s 0.58, with 1 g = 0 (log g = -30); delta needs 2 E values."""
    held = {}
    n_g = len(np.unique(G))
    if n_g == 1:
        held.update({2: -30.0, 3: 0.0})
    elif n_g == 2:
        held[3] = KRAJEWSKI_GAMMA
    if len(np.unique(E)) < 2:
        held[4] = 0.0
    return held


def held_values(theta, held: dict[int, float]):
    t = np.array(theta, float)
    for i, v in held.items():
        t[..., i] = v
    return t


# ---------------------------------------------------------------------------------------------- the law

@dataclass
class MoELaw:
    c: float
    a: float
    g: float
    gamma: float
    delta: float
    alpha: float
    b: float
    beta: float
    k: float                          # FLOPs per active parameter per token (C = k N D)
    config: FitConfig
    n_runs: int
    experts: tuple[int, ...]          # E values seen (1 = dense)
    granularities: tuple[float, ...]  # G values seen
    held: tuple[str, ...]             # parameters held because the table cannot identify them
    objective: float
    converged: bool
    residuals: pd.DataFrame
    samples: np.ndarray = field(default_factory=lambda: np.empty((0, 8)))
    warnings: list[str] = field(default_factory=list)

    @property
    def params(self) -> dict[str, float]:
        return {p: getattr(self, p) for p in PARAMS}

    def coefficient(self, E=1, G=1):
        """A(E, G) = (a + g / G^gamma) * E^-delta: the parameter-term coefficient of an (E, G) MoE."""
        return (self.a + self.g / np.asarray(G, float) ** self.gamma) * np.asarray(E, float) ** -self.delta

    def predict(self, N, D, E=1, G=1):
        N, D = np.asarray(N, float), np.asarray(D, float)
        return self.c + self.coefficient(E, G) / N ** self.alpha + self.b / D ** self.beta

    def dense_equivalent(self, N, E, G=1):
        """The dense N' with the MoE's predicted loss at the same D: N * (A(1,1) / A(E,G))^(1/alpha)."""
        return np.asarray(N, float) * (self.coefficient(1, 1) / self.coefficient(E, G)) ** (1 / self.alpha)

    def n_opt(self, C, E=1, G=1):
        """Compute-optimal active N at budget C (Chinchilla's closed form with A = A(E, G))."""
        s = self.alpha + self.beta
        scale = (self.alpha * self.coefficient(E, G) / (self.beta * self.b)) ** (1 / s)
        return scale * (np.asarray(C, float) / self.k) ** (self.beta / s)

    def d_opt(self, C, E=1, G=1):
        return np.asarray(C, float) / self.k / self.n_opt(C, E, G)

    def tokens_per_param(self, C, E=1, G=1):
        return self.d_opt(C, E, G) / self.n_opt(C, E, G)

    def loss_opt(self, C, E=1, G=1):
        return self.predict(self.n_opt(C, E, G), self.d_opt(C, E, G), E, G)

    def compute_multiplier(self, C, E, G=1):
        """How much more compute a compute-optimal dense model needs to reach the MoE's optimal loss at C."""
        target = self.loss_opt(C, E, G)
        lo, hi = np.log(np.asarray(C, float)) - 5, np.log(np.asarray(C, float)) + 12
        for _ in range(200):                               # bisection in log C (loss_opt decreases in C)
            mid = (lo + hi) / 2
            worse = self.loss_opt(np.exp(mid)) > target
            lo, hi = np.where(worse, mid, lo), np.where(worse, hi, mid)
        return np.exp((lo + hi) / 2) / np.asarray(C, float)

    def recommend(self, C, E=1, G=1) -> dict:
        """At budget C for an (E, G) MoE (E=G=1: dense): N_opt, D_opt, D/N, loss, dense-equivalent size."""
        n = float(self.n_opt(C, E, G))
        row = dict(C=float(C), n_experts=E, granularity=G, N_opt=n, D_opt=float(self.d_opt(C, E, G)),
                   tokens_per_param=float(self.tokens_per_param(C, E, G)), loss=float(self.loss_opt(C, E, G)),
                   dense_equivalent_N=float(self.dense_equivalent(n, E, G)),
                   compute_multiplier=float(self.compute_multiplier(C, E, G)))
        if len(self.samples):
            boot = [law.tokens_per_param(C, E, G) for law in self.sample_laws()]
            row["tokens_per_param_ci"] = ci(np.array(boot), self.config.ci_level)
            eq = [law.dense_equivalent(1.0, E, G) for law in self.sample_laws()]
            row["dense_equivalent_ratio_ci"] = ci(np.array(eq), self.config.ci_level)
        return row

    def sample_laws(self) -> list[MoELaw]:
        return [MoELaw(*s, k=self.k, config=self.config, n_runs=self.n_runs, experts=self.experts,
                       granularities=self.granularities, held=self.held, objective=np.nan, converged=True,
                       residuals=self.residuals.iloc[:0]) for s in self.samples]

    def ci(self, name: str) -> tuple[float, float]:
        if len(self.samples) == 0:
            return (float("nan"), float("nan"))
        return ci(self.samples[:, PARAMS.index(name)], self.config.ci_level)

    def summary(self) -> str:
        rows = []
        for p in PARAMS:
            lo, hi = self.ci(p)
            note = "  (held)" if p in self.held else ""
            rows.append(f"  {p:<6} {getattr(self, p):10.4g}   [{lo:.4g}, {hi:.4g}]{note}")
        return ("MoE law: L = c + (a + g/G^gamma) E^-delta / N^alpha + b / D^beta  "
                f"({self.n_runs} runs, E in {list(self.experts)}, G in {list(self.granularities)}, "
                f"{'converged' if self.converged else 'NOT converged'})\n" + "\n".join(rows)
                + f"\n  ({self.config.describe()})")


def theta_to_params(theta) -> np.ndarray:
    t = np.array(theta, float)
    t[..., list(LOG_PARAMS)] = np.exp(t[..., list(LOG_PARAMS)])
    return t


def fit(runs: pd.DataFrame, config: FitConfig | None = None) -> MoELaw:
    """Fit the MoE law to a runs table (dense rows welcome: E = G = 1). Pure function of the table."""
    cfg = config or default_config()
    errs = list(cfg.errors())
    need = [cfg.n_col, "tokens", cfg.c_col, cfg.loss_col, "n_experts"]
    if missing := [c for c in need if c not in runs.columns]:
        errs.append(f"MoE law: the runs table lacks column(s) {missing}")
    if errs:
        raise FitError("\n".join(errs))
    runs = usable(runs, cfg).reset_index(drop=True)
    if len(runs) < MIN_RUNS:
        raise FitError(f"MoE law: {len(runs)} usable run(s); the 8-parameter fit needs at least {MIN_RUNS}")
    E, G = experts_and_granularity(runs)
    N, D, C, L = (runs[c].to_numpy(float) for c in (cfg.n_col, "tokens", cfg.c_col, cfg.loss_col))
    cols = (np.log(N), np.log(D), np.log(E), np.log(G), np.log(L))
    hold = holds(E, G)
    free = np.ones(8)
    free[list(hold)] = 0
    held = [PARAMS[i] for i in sorted(hold)]
    notes: list[str] = []
    if held:
        values = ", ".join(f"{PARAMS[i]} = {0.0 if i == 2 else v:g}" for i, v in sorted(hold.items()))
        notes.append(f"MoE law: granularities {sorted(set(G.tolist()))} and expert counts {sorted(set(E.tolist()))} "
                     f"cannot identify every parameter: held {values}")
    ones = np.ones(len(runs))
    with one_blas_thread():             # L-BFGS-B on 8 parameters: BLAS threads only add contention
        theta, res = fit_theta(cols, ones, hold)
    _, grad = objective(theta, *cols, ones, free)
    converged = bool(res.success) and float(np.abs(grad).max()) < 1e-6
    if not converged:
        notes.append(f"MoE law: L-BFGS-B did not converge ({res.message}; |grad| {np.abs(grad).max():.1e})")
    pred = np.exp(log_pred(theta, *cols[:4]))
    residuals = pd.DataFrame({"run_id": runs.get("run_id", pd.Series(range(len(runs)))).to_numpy(), "N": N, "D": D,
                              "E": E, "G": G, "C": C, "loss": L, "predicted": pred,
                              "residual": np.log(L) - np.log(pred)})
    samples = bootstrap(cols, theta, hold, cfg) if cfg.n_bootstrap else np.empty((0, 8))
    k = float(np.median(C / (N * D)))
    params = theta_to_params(theta)
    if 2 in hold:
        params[2] = 0.0
    named = dict(zip(PARAMS, params))
    notes += implausible_exponents("MoE law", {k: named[k] for k in ("alpha", "beta")},
                                   {"N": (N.min(), N.max()), "D": (D.min(), D.max())})
    law = MoELaw(*params, k=k, config=cfg, n_runs=len(runs),
                 experts=tuple(sorted({int(e) for e in E})), granularities=tuple(sorted({float(x) for x in G})),
                 held=tuple(held), objective=float(res.fun), converged=converged, residuals=residuals,
                 samples=samples, warnings=notes)
    for msg in notes:
        warnings.warn(msg, stacklevel=2)
    return law


def _boot_one(args):
    cols, w, hold, starts = args
    theta, _ = fit_theta(cols, w, hold, starts=starts)
    return theta


def bootstrap(cols, theta_full, hold, cfg: FitConfig) -> np.ndarray:
    """[n_bootstrap, 8] parameter samples, runs resampled with replacement (seeded), each refit from the
    full-data optimum."""
    W = resample_weights(len(cols[0]), cfg.n_bootstrap, cfg.seed)
    items = [(cols, w, hold, (theta_full,)) for w in W]
    thetas = np.array(parallel_map(_boot_one, items, processes=cfg.processes, desc="MoE law bootstrap"))
    return theta_to_params(thetas)


def synthetic_runs(params: dict[str, float], sizes=(3e6, 1e7, 3e7, 1e8), budgets=(1e16, 1e17, 1e18),
                   experts=(8, 16, 32), granularities=(1, 2, 4), noise: float = 0.005, seed: int = 0,
                   k: float = 6.0, dense_ffn: int = 1024) -> pd.DataFrame:
    """A runs table from a known law: dense rows and every (E, G) MoE at each active size and budget,
    D = C / (k N), loss times exp(noise * normal). Columns as the real runs table."""
    law = MoELaw(**params, k=k, config=default_config(), n_runs=0, experts=(), granularities=(), held=(),
                 objective=0.0, converged=True, residuals=pd.DataFrame())
    rng = np.random.default_rng(seed)
    configs = [("dense", 0, 1)] + [("moe", e, g) for e in experts for g in granularities]
    rows = []
    for family, E, G in configs:
        for N in sizes:
            for C in budgets:
                D = C / (k * N)
                loss = float(law.predict(N, D, max(E, 1), G)) * np.exp(noise * rng.standard_normal())
                rows.append(dict(run_id=f"r{len(rows):04d}", family=family, n_experts=E, top_k=G if E else 0,
                                 ffn_hidden=dense_ffn, expert_hidden=dense_ffn // G if E else 0,
                                 params_active_nonembedding=N, tokens=D, flops=C, flops_6n=C, loss=loss))
    return pd.DataFrame(rows)
