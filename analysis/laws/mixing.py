"""Data-mixing laws: from runs at several mixtures, predict the objective of any mixture and recommend one.

    law = fit(table)                             # -> MixingLaw (objective: natural proportions where known)
    law.predict({"code": 0.3, "prose": 0.7})     # the objective at a mixture (at the fitted size, or N=, D=)
    law.recommend(bounds=..., max_epochs=4, D=..., max_kl=...)   # -> Recommendation with intervals
                                                 # inside the sampled mixtures' hull (trust=);
                                                 # rec.supported / rec.verdict: is the gain real
    print(law.summary())

A pure function of a table: one row per run with `w_<domain>` columns (training weights, summing to 1),
the targets (per-domain held-out losses `loss_<domain>`, or any metric column), and optionally N
(`params_nonembedding`) and D (`tokens`). Natural token proportions come from `corpus_tokens_<domain>`
columns (result.json writes them) or the `natural=` argument.

The objective is the user's: "natural" (held-out losses weighted by the corpus's natural token
proportions: the default, so every run is scored on the same evaluation mixture whatever it trained on),
"uniform", one domain's name, {column_or_domain: weight}, or Objective(column="acc_x", maximize=True).

Law families, each fitted per target column, the objective being their weighted sum:
    loglinear  log y = sum_j t_j w_j                              (RegMix-style regression, on log y)
    ridge      log y = ridge on [w_j, log(w_j + eps)] (GCV-chosen penalty): a flexible regression
    ye         y = c + exp(sum_j t_j w_j)                         (Ye et al. 2024; k absorbed as sum w = 1)
    power      y = E + (sum_j C_j w_j)^-alpha                     (a power law in the effective data: the own
               domain's weight plus the others' transfer, L_i = E_i + B_i (w_i + sum_j tau_ij w_j)^-alpha_i)
    additive   y = E + 1/sum_j C_j w_j^gamma_j + A/N^alpha + B/D^beta           (Shukor et al. 2025, additive law)
    joint      y = E + 1/sum_j C_j w_j^gamma_j + A_w/N^alpha + B_w/D^beta,
               A_w = (sum_j CA_j w_j)^gamma_A, B_w = (sum_j CB_j w_j)^gamma_B    (Shukor et al. 2025, joint law)
               (the N and D terms are kept only when the table varies N or D; the paper's h is w here)

`fit(..., law="auto")` fits every family that the table has enough mixtures for, scores each by k-fold
held-out-MIXTURE error (a mixture's runs at every size and seed are held out together), and keeps the
lowest; intervals come from bootstrap resamples over runs, drawn as multiplicity weights so the linear
families solve all resamples at once (ye: Gauss-Newton steps in y, vectorised over resamples and targets, from a
profile search over c for the point fit and from the point fit for the resamples; additive at one size: Levenberg-
Marquardt on log residuals, vectorised the same way; the size laws across sizes: scipy per resample, their bootstrap
capped at MixingConfig.joint_bootstrap).

The other families describe one size: when the table holds several (N, D), they are fitted at the size
with the most mixtures (the "fit size"), and only the additive and joint laws use the others ("size laws").
"""
from __future__ import annotations

import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import least_squares, linprog, minimize
from scipy.stats import spearmanr

from analysis.bootstrap import one_blas_thread, resample_weights
from analysis.laws.common import FitError, FitWarning, ci

W_PREFIX, LOSS_PREFIX, TOKENS_PREFIX = "w_", "loss_", "corpus_tokens_"
FAMILIES = ("loglinear", "ridge", "ye", "power", "additive", "joint")
SIZE_LAWS = ("additive", "joint")   # laws in N and D as well as the weights
WEIGHT_TOL = 1e-3                 # |sum of a run's weights - 1| allowed (weights rounded to 6 decimals by the grid)
LOG_EPS = 1e-3                    # ridge's log(w + eps) feature: pure mixtures have zeros
RIDGE_LAMBDAS = np.geomspace(1e-6, 1e2, 25)
YE_Z = (-7.0, 3.0)                # ye: c = min(y) - spread * exp(z), z searched in this range
YE_GN_STEPS = 12                  # ye: Gauss-Newton steps in y after the log-space profile (converged in ~8 on RegMix)
YE_BOOT_STEPS = 5                 # ye: steps for a bootstrap resample, started at the point fit's (c, t)
GOLDEN = (math.sqrt(5) - 1) / 2
POW_START_ALPHA = (0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5)   # power: the profile start's grid of alpha
POW_START_Z = tuple(np.linspace(-6.0, 2.0, 9))   # power: and of E = min(y) - spread * exp(z) (at least 0)
POW_START_FLOOR = 1e-6            # power: a start's C_j at least this fraction of its largest (log C_j finite)
POW_STEPS = 100                   # power: Levenberg-Marquardt steps at most for a point fit
POW_PRUNE = 25                    # power: steps after which only each target's best start goes on
POW_BOOT_STEPS = 5                # power: steps for a bootstrap resample, from the point fit (as Ye's)
POW_BOOT_DTYPE = np.float32       # power: resamples' per-run arrays (theta and normal equations float64): 0.6x time
POW_TOL = 1e-10                   # power: a problem stops once a kept step gains less than this fraction of its error
POW_LOGC = 50.0                   # power: |log C_j| bound
POW_ALPHA_RANGE = (1e-3, 10.0)    # power: the exponent's bounds
POW_MARGIN = 0.03                 # auto picks power only if its held-out error is this fraction below the runner-up's
ADD_STEPS = 200                   # additive law at one size: Levenberg-Marquardt steps at most for a point fit
ADD_PRUNE = 25                    # steps after which only each target's best start goes on
ADD_BOOT_STEPS = 5                # a bootstrap resample: steps from the point fit (as Ye's)
ADD_BOOT_DTYPE = np.float32       # resamples' Jacobians: half the time, intervals as float64's (bench/README.md)
ADD_TOL = 1e-10                   # a problem stops once a kept step gains less than this fraction of its error
ADD_CHUNK = 256                   # predict: parameter sets (resample x target) per block: bounds [block, K, runs]
ADD_BOOT_CHUNK = 2 ** 18          # (problem, domain, run) entries stepped together (_lm, resamples and point fits):
                                  # ~1 MB arrays, in cache
# threads sharing the resample chunks of the additive law (and of ye and power: BOOT_CHUNK), the results the same for
# any count: on the idle 2-core VM 2 threads fit 500 x 17 with 1000 resamples in 7.8-8.1 s wall against 12.2-12.6 s on
# one (bench/README.md, "Checks at the end of session 9"); on a VM whose cores other jobs hold they ran slower than one
# (the mixadd section). Two at most: the chunks' numpy loops saturate a core each and more threads only contend.
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
ADD_BOOT_THREADS = max(1, min(2, _CORES))
FOLD_WARM_START = True            # power, additive law at one size: k-fold fits start at the full fit (see _fit)
BOOT_CHUNK = 2 ** 18              # ye, power: (resample, target, run) entries of a chunk of resamples (_in_chunks)
BOOT_BLOCK = 200                  # resamples solved at once (bounds memory: [block, targets, runs] arrays)
DEFAULT_MAX_EPOCHS = 4.0          # Muennighoff et al. 2023: up to ~4 epochs, repeated tokens are worth almost new ones
TRUST_MODES = ("hull", "box", None)   # recommend(trust=): where the optimum may lie (see MixingLaw.recommend)
HULL_MAX = 32                     # more sampled mixtures: the hull of the HULL_MAX the law rates best (SLSQP over the
                                  # convex weights grows as n^3; the per-domain box of many samples in many domains is
                                  # nearly the whole simplex: bench/README.md, "RegMix")


# ------------------------------------------------------------------------------------------ objective
@dataclass(frozen=True)
class Objective:
    """What a mixture is scored on: sum_c weights[c] * table[c] (minimised), or one column (maximize=True:
    maximised, e.g. a downstream accuracy). `name` is for reports."""
    weights: tuple[tuple[str, float], ...]
    name: str
    maximize: bool = False

    @property
    def columns(self) -> list[str]:
        return [c for c, _ in self.weights]

    @property
    def vector(self) -> np.ndarray:
        return np.array([v for _, v in self.weights], float)

    def value(self, table: pd.DataFrame) -> np.ndarray:
        return table[self.columns].to_numpy(float) @ self.vector


def domains_of(table: pd.DataFrame) -> list[str]:
    return sorted(c[len(W_PREFIX):] for c in table.columns if c.startswith(W_PREFIX))


def natural_proportions(table: pd.DataFrame, domains: list[str]) -> dict[str, float] | None:
    """Natural token proportions from corpus_tokens_<domain> columns (None when the table has none)."""
    cols = [TOKENS_PREFIX + d for d in domains]
    if not set(cols) <= set(table.columns):
        return None
    tokens = table[cols].apply(pd.to_numeric, errors="coerce").median().to_numpy(float)
    if not np.all(np.isfinite(tokens)) or tokens.sum() <= 0:
        return None
    return dict(zip(domains, tokens / tokens.sum()))


def corpus_tokens(table: pd.DataFrame, domains: list[str]) -> dict[str, float] | None:
    cols = [TOKENS_PREFIX + d for d in domains]
    if not set(cols) <= set(table.columns):
        return None
    return {d: float(table[TOKENS_PREFIX + d].median()) for d in domains}


def column_for(name: str, table: pd.DataFrame, domains: list[str]) -> str:
    """A domain's name means its held-out loss; a column name means itself; anything else is taken for a domain."""
    if name in domains or (name not in table.columns and not name.startswith(LOSS_PREFIX)):
        return LOSS_PREFIX + name
    return name


def make_objective(objective, table: pd.DataFrame, domains: list[str], natural: dict | None) -> Objective:
    """An Objective from the forms fit() accepts; FitError naming the fix when a column is missing."""
    if objective is None:                  # the default: natural where known, else uniform, else the "loss" column
        have = [d for d in domains if LOSS_PREFIX + d in table.columns]
        if len(have) == len(domains):
            known = natural or natural_proportions(table, domains)
            return make_objective("natural" if known else "uniform", table, domains, natural)
        if not have and "loss" in table.columns:
            return Objective((("loss", 1.0),), "loss")
        # some domains never evaluated: the check below names them (not the natural proportions, when unknown)
        objective = "natural" if natural or natural_proportions(table, domains) else "uniform"
    if isinstance(objective, Objective):
        obj = objective
    elif objective in ("natural", "uniform"):
        if objective == "natural":
            props = natural or natural_proportions(table, domains)
            if props is None:
                raise FitError("objective='natural' needs the corpus's natural token proportions: pass natural="
                               "{domain: proportion} or a table with corpus_tokens_<domain> columns (result.json "
                               "writes them); or use objective='uniform'")
        else:
            props = {d: 1 / len(domains) for d in domains}
        obj = Objective(tuple((LOSS_PREFIX + d, float(props.get(d, 0.0))) for d in domains
                            if props.get(d, 0.0) > 0), objective)
    elif isinstance(objective, str):
        obj = Objective(((column_for(objective, table, domains), 1.0),), objective)
    elif isinstance(objective, dict):
        w = {column_for(k, table, domains): float(v) for k, v in objective.items() if v}
        total = sum(w.values())
        if not w or total <= 0:
            raise FitError(f"objective={objective!r}: its weights sum to {total:g}; give weights with a positive sum, "
                           f"e.g. {{{domains[0]!r}: 1.0}} (the held-out loss of {domains[0]})")
        obj = Objective(tuple((k, v / total) for k, v in sorted(w.items())), "weighted: " + ", ".join(
            f"{k} {v / total:.2g}" for k, v in sorted(w.items())))
    else:
        raise FitError(f"objective={objective!r}: use 'natural', 'uniform', a domain name, a column name, "
                       "{column: weight}, or Objective(...)")
    missing = [c for c in obj.columns if c not in table.columns]
    if missing:
        have = sorted(c for c in table.columns if c.startswith(LOSS_PREFIX)) or sorted(table.columns)[:12]
        raise FitError(f"objective {obj.name!r}: column(s) {missing} are not in the table (never evaluated); "
                       f"have {have}. Evaluate every run on every domain's held-out set, or pick another objective")
    return obj


# ------------------------------------------------------------------------------------------ checks
def check_table(table: pd.DataFrame, obj_columns: list[str] | None = None) -> list[str]:
    """Raise FitError naming each problem in a mixture table; returns its domains."""
    domains = domains_of(table)
    if len(domains) < 2:
        raise FitError(f"mixing law: the table has {len(domains)} w_<domain> column(s); it needs the training "
                       "weights of 2 or more domains as w_<domain> columns (analysis.results writes them; "
                       "read_olmix converts ratios.csv)")
    errs = []
    W = table[[W_PREFIX + d for d in domains]].apply(pd.to_numeric, errors="coerce")
    ids = table["run_id"].astype(str) if "run_id" in table else pd.Series(table.index.astype(str), index=table.index)
    for d in domains:
        bad = W[W_PREFIX + d].isna()
        if bad.any():
            errs.append(f"w_{d} is missing for {int(bad.sum())} run(s) (e.g. {list(ids[bad][:3])}): a domain absent "
                        f"from a run's mixture has weight 0; fill with table['w_{d}'].fillna(0) if those runs "
                        "trained on none of it, else drop them")
    if (W < 0).any().any():
        errs.append("negative weights in w_<domain> columns: weights are proportions in [0, 1]")
    sums = W.fillna(0).sum(axis=1)
    off = (sums - 1).abs() > WEIGHT_TOL
    if off.any():
        errs.append(f"weights of {int(off.sum())} run(s) do not sum to 1 (within {WEIGHT_TOL}): e.g. "
                    + ", ".join(f"{i}: {s:.4g}" for i, s in zip(ids[off][:3], sums[off][:3]))
                    + "; divide each row's w_ columns by their sum, or add the missing domains' columns")
    for c in obj_columns or []:
        y = pd.to_numeric(table[c], errors="coerce")
        if y.isna().all():
            errs.append(f"{c} is missing in all {len(y)} runs (never evaluated): evaluate the runs on that held-out "
                        "set, or pick an objective without it")
        elif y.isna().any():
            errs.append(f"{c} is missing for {int(y.isna().sum())} run(s) (e.g. {list(ids[y.isna()][:3])}): "
                        "re-evaluate them on that domain's held-out set, or drop them")
    if errs:
        raise FitError("mixing law:\n  " + "\n  ".join(errs))
    return domains


def n_params(family: str, K: int, size_terms: int = 0) -> int:
    """Parameters per target (ridge: penalised, but no more trusted with fewer mixtures than the log-linear law)."""
    return {"loglinear": K, "ridge": K, "ye": K + 1, "power": K + 2, "additive": 2 * K + 1 + 2 * size_terms,
            "joint": 2 * K + 1 + (K + 2) * size_terms}[family]


# ------------------------------------------------------------------------------------------ families
def _gram(X: np.ndarray, M: np.ndarray) -> np.ndarray:
    """[B,p,p] X' diag(M_b) X for every resample, as one matrix product with the rows' outer products."""
    p = X.shape[1]
    return (M @ (X[:, :, None] * X[:, None, :]).reshape(len(X), p * p)).reshape(len(M), p, p)


def _solve_weighted(X: np.ndarray, Y: np.ndarray, M: np.ndarray, penalty: np.ndarray | None = None) -> np.ndarray:
    """Weighted least squares for every resample: X [n,p], Y [n,T], M [B,n] -> beta [B,p,T]."""
    n, p = X.shape
    G = _gram(X, M)
    scale = np.trace(G, axis1=1, axis2=2)[:, None, None] / p
    G = G + (penalty[None] * M.sum(1)[:, None, None] if penalty is not None else 0) \
        + 1e-9 * scale * np.eye(p)[None]                         # a domain absent from a resample: t_j -> 0
    XY = (M @ (X[:, :, None] * Y[:, None, :]).reshape(n, -1)).reshape(len(M), p, Y.shape[1])
    return np.linalg.solve(G, XY)


def _in_chunks(n: int, per: int, run) -> None:
    """run(slice) over problems [0, n) in slices of `per`, shared out to ADD_BOOT_THREADS threads (numpy releases the
    GIL in its array loops; the problems are independent, so the results are the same for any count)."""
    starts = range(0, n, per)
    if ADD_BOOT_THREADS > 1 and len(starts) > 1:
        with ThreadPoolExecutor(ADD_BOOT_THREADS) as pool:
            list(pool.map(lambda a: run(slice(a, a + per)), starts))
    else:
        for a in starts:
            run(slice(a, a + per))


def _pair_products(W: np.ndarray) -> tuple[np.ndarray, tuple]:
    """([n, K(K+1)/2] the upper triangles of the runs' outer products w_i w_i', their indices): for _pair_sums."""
    iu = np.triu_indices(W.shape[1])
    return W[:, iu[0]] * W[:, iu[1]], iu


def _pair_sums(X: np.ndarray, pairs: tuple[np.ndarray, tuple], out: np.ndarray) -> None:
    """out[..., K, K] = sum_i X[..., i] w_i w_i' for every row of X [..., n], each pair (j, k) computed once (the
    matrix is symmetric: half the matrix product of the full outer products, the normal equations' largest cost)."""
    WWu, iu = pairs
    u = (X.reshape(-1, X.shape[-1]) @ WWu).reshape(X.shape[:-1] + (len(iu[0]),))
    out[..., iu[0], iu[1]] = u
    out[..., iu[1], iu[0]] = u


def _levenberg_marquardt(th, data, evaluate, normal, steps: int, *, tol: float = 0.0, bounds=None,
                         start=None) -> tuple[np.ndarray, np.ndarray]:
    """The one Levenberg-Marquardt loop of the nonlinear families (Ye, Power, the additive law at one size), for many
    independent least-squares problems at once, each its own p-system (normal equations from matrix products over the
    runs, formed by the family):
      th [P, ..., p] float64 starting parameters; data: a tuple of the per-problem arrays (first axis P, or 1 where the
      problems share it), handed back to the family's functions and narrowed with the problems that go on;
      evaluate(th, data) -> (error [P, ...] float64, state at th); normal(th, state, data) -> (J'J [P, ..., p, p],
      J'r [P, ..., p], float64);
      bounds: (lo, hi, raw, project, eps) or None: raw(th) the parameters the bounds [lo, hi] hold, project(th) th moved
      into them; a parameter within eps of a bound that the step would push past it is held there (without this the
      projected step is a poor one, rejected again and again while the damping grows: steps of ~nothing);
      start: (J'J, J'r, error) at th where known.
    A step is kept only where it lowers the error (the damping then /3, else *4, Marquardt's scaling by the diagonal);
    a problem stops when a kept step gains at most tol of its error (tol = 0: never) or its damping passes 1e10, and
    once a quarter of the problems (first axis) has stopped they leave the arrays, so later steps cost only the rest;
    the normal equations at a new point are formed only where the step is kept and another step follows.
    -> (theta, error), both of th's leading shape."""
    p = th.shape[-1]
    if start is None:
        cost, state = evaluate(th, data)
        G, g = normal(th, state, data)
    else:
        G, g, cost = start
    out_th, out_cost = th.copy(), np.array(cost, float)
    rows = np.arange(len(th))                            # the problems (first axis) still in the arrays
    lam = np.full(out_cost.shape, 1e-3)
    active = np.ones(out_cost.shape, bool)
    for step in range(steps):
        alive = active.reshape(len(active), -1).any(1)
        if not alive.any():
            break
        if alive.sum() <= 0.75 * len(alive):             # stopped problems leave
            out_th[rows], out_cost[rows] = th, cost
            rows = rows[alive]
            th, G, g, cost, lam, active = (a[alive] for a in (th, G, g, cost, lam, active))
            data = tuple(a if a.shape[0] == 1 else a[alive] for a in data)
        if bounds is not None:
            lo, hi, raw, project, eps = bounds
            x = raw(th)
            held = ((x <= lo + eps) & (g > 0)) | ((x >= hi - eps) & (g < 0))
        else:
            held = np.zeros(g.shape, bool)
        A = np.where(held[..., :, None] | held[..., None, :], 0.0, G) if held.any() else np.array(G, float)
        ga = np.where(held, 0.0, g)
        D = np.einsum("...ii->...i", A)                  # a view: the damping is added in place
        D += lam[..., None] * (D + 1e-12 * D.max(-1, keepdims=True)) + held
        try:
            d = np.linalg.solve(A, -ga[..., None])[..., 0]
        except np.linalg.LinAlgError:
            d = np.stack([np.linalg.lstsq(x, -y, rcond=None)[0] for x, y in
                          zip(A.reshape(-1, p, p), ga.reshape(-1, p))]).reshape(ga.shape)
        new = th + d if bounds is None else bounds[3](th + d)
        c_new, state = evaluate(new, data)
        ok = active & np.isfinite(c_new) & (c_new < cost)
        small = ok & (cost - c_new <= tol * cost)
        if step < steps - 1 and ok.any():                # the next step needs the normal equations at a kept point
            G_new, g_new = normal(new, state, data)
            G = np.where(ok[..., None, None], G_new, G)
            g = np.where(ok[..., None], g_new, g)
        th = np.where(ok[..., None], new, th)
        cost = np.where(ok, c_new, cost)
        lam = np.where(active, np.where(ok, lam / 3, lam * 4), lam)
        active = active & ~small & (lam < 1e10)
    out_th[rows], out_cost[rows] = th, cost
    return out_th, out_cost


class LogLinear:
    name = "loglinear"

    def features(self, W):
        return W

    def fit(self, W, Y, S, M):
        return {"beta": _solve_weighted(self.features(W), np.log(Y), M)}

    def predict(self, p, W, S):
        return np.exp(self.features(W) @ p["beta"])


class Ridge(LogLinear):
    name = "ridge"

    def __init__(self):
        self.mu = self.sd = None
        self.lam = None

    def features(self, W):
        F = np.hstack([W, np.log(W + LOG_EPS)])
        return np.hstack([np.ones((len(W), 1)), (F - self.mu) / self.sd])

    def fit(self, W, Y, S, M):
        if self.mu is None or M.shape[0] == 1:             # standardise on the point fit's rows
            keep = M[0] > 0
            F = np.hstack([W[keep], np.log(W[keep] + LOG_EPS)])
            self.mu, self.sd = F.mean(0), np.where(F.std(0) > 0, F.std(0), 1.0)
            self.lam = self.gcv(self.features(W[keep]), np.log(Y[keep]))
        P = np.eye(2 * W.shape[1] + 1) * self.lam
        P[0, 0] = 0                                        # the intercept is not shrunk
        return {"beta": _solve_weighted(self.features(W), np.log(Y), M, P)}

    @staticmethod
    def gcv(F, logY) -> float:
        """The penalty minimising generalised cross-validation (summed over targets), per row."""
        n = len(F)
        Fc, Yc = F[:, 1:] - F[:, 1:].mean(0), logY - logY.mean(0)
        U, s, _ = np.linalg.svd(Fc, full_matrices=False)
        UtY = U.T @ Yc
        best, best_lam = np.inf, RIDGE_LAMBDAS[0]
        for lam in RIDGE_LAMBDAS * n:
            f = s ** 2 / (s ** 2 + lam)
            resid = (Yc ** 2).sum() - ((UtY ** 2) * (f * (2 - f))[:, None]).sum()
            df = f.sum() + 1
            score = n * resid / max(n - df, 1e-9) ** 2
            if score < best:
                best, best_lam = score, lam / n
        return float(best_lam)


class Ye:
    """y = c + exp(t . w) per target. For a fixed c, log(y - c) is linear in w (least squares); c is found by a
    golden-section search on the squared error in y itself, for all resamples and targets at once. That profile
    fits t in log space, where the runs nearest the floor c weigh most; damped Gauss-Newton steps on (c, t) jointly
    then minimise the squared error in y itself (on RegMix's public data the profile's y-error was 1.4-4x the least
    squares one: bench/README.md, "Data-mixing laws on public data: RegMix")."""
    name = "ye"

    def __init__(self):
        self.theta0 = None

    def _bounds(self, Y):
        lo = Y.min(0)
        spread = np.maximum(np.ptp(Y, 0), 1e-6 * np.maximum(np.abs(lo), 1))
        return lo, spread

    def _eval(self, z, W, Yt, M, Ginv, lo, spread):
        """z [B,T] -> (rss [B,T], c [B,T], t [B,T,K])."""
        c = lo[None] - spread[None] * np.exp(z)
        R = Yt[None] - c[..., None]                                        # [B,T,n] > 0
        B, T, n = R.shape
        b = ((np.log(R) * M[:, None, :]).reshape(B * T, n) @ W).reshape(B, T, -1)   # one matrix product
        t = b @ Ginv                                                       # Ginv is symmetric
        R -= np.exp((t.reshape(B * T, -1) @ W.T).reshape(B, T, n))
        rss = (R * R * M[:, None, :]).sum(-1)
        return rss, c, t

    def fit(self, W, Y, S, M):
        B, T = M.shape[0], Y.shape[1]
        if B > 1 and self.theta0 is not None:              # resamples: Levenberg-Marquardt from the point fit's (c, t)
            th = np.broadcast_to(self.theta0, (B, T, W.shape[1] + 1))
            out = {"c": np.empty((B, T)), "t": np.empty((B, T, W.shape[1]))}

            def run(sl):                                   # resamples in chunks and threads, as the additive law's
                p = self._refine(W, Y, M[sl], th[sl, :, 0], th[sl, :, 1:], YE_BOOT_STEPS)
                out["c"][sl], out["t"][sl] = p["c"], p["t"]
            _in_chunks(B, max(1, BOOT_CHUNK // (T * len(W))), run)
            return out
        lo, spread = self._bounds(Y)
        Yt = Y.T
        G = _gram(W, M)
        G += 1e-9 * np.trace(G, axis1=1, axis2=2)[:, None, None] / W.shape[1] * np.eye(W.shape[1])
        Ginv = np.linalg.inv(G)
        zs = np.linspace(*YE_Z, 41)                        # the profile over c: a coarse scan, then golden section
        scan = np.stack([self._eval(np.full((B, T), z), W, Yt, M, Ginv, lo, spread)[0] for z in zs])
        i = np.argmin(scan, axis=0)
        a, b = zs[np.maximum(i - 1, 0)], zs[np.minimum(i + 1, len(zs) - 1)]
        x1, x2 = b - GOLDEN * (b - a), a + GOLDEN * (b - a)
        f1 = self._eval(x1, W, Yt, M, Ginv, lo, spread)[0]
        f2 = self._eval(x2, W, Yt, M, Ginv, lo, spread)[0]
        for _ in range(22):                                # golden section, one new point per iteration
            left = f1 < f2                                 # the minimum lies in [a, x2], else in [x1, b]
            a, b = np.where(left, a, x1), np.where(left, x2, b)
            new_x1, new_x2 = np.where(left, b - GOLDEN * (b - a), x2), np.where(left, x1, a + GOLDEN * (b - a))
            f_new = self._eval(np.where(left, new_x1, new_x2), W, Yt, M, Ginv, lo, spread)[0]
            f1, f2 = np.where(left, f_new, f2), np.where(left, f1, f_new)
            x1, x2 = new_x1, new_x2
        _, c, t = self._eval((a + b) / 2, W, Yt, M, Ginv, lo, spread)
        p = self._refine(W, Y, M, c, t)
        if B == 1:
            self.theta0 = np.concatenate([p["c"][0][:, None], p["t"][0]], -1)   # [T, K+1]
        return p

    @staticmethod
    def _refine(W, Y, M, c, t, steps: int = YE_GN_STEPS) -> dict:
        """Levenberg-Marquardt steps (_levenberg_marquardt) on sum_i M_bi (c + exp(t . w_i) - y_i)^2 from the profile's
        (c, t), for every resample and target at once (one (K+1)-system per pair, its normal equations as matrix
        products over the runs); a step is kept only where it lowers the error; every problem takes all its steps."""
        B, T, K = t.shape
        pairs = _pair_products(W)
        theta = np.concatenate([c[..., None], t], -1)                       # [B,T,K+1]

        def evaluate(th, data):
            Mb, _, Yt = data
            e = np.exp(np.clip(th[..., 1:] @ W.T, -60, 60))                  # [B,T,n]
            r = th[..., :1] + e - Yt
            return (Mb * r * r).sum(-1), (r, e)

        def normal(th, state, data):
            (r, e), (Mb, m_sum, _) = state, data
            Me = Mb * e
            G = np.empty(th.shape + (K + 1,))
            G[..., 0, 0] = m_sum
            G[..., 0, 1:] = G[..., 1:, 0] = Me @ W
            _pair_sums(Me * e, pairs, G[..., 1:, 1:])
            return G, np.concatenate([(Mb * r).sum(-1)[..., None], (Me * r) @ W], -1)
        data = (M[:, None, :], M.sum(1)[:, None], Y.T[None])
        theta = _levenberg_marquardt(theta, data, evaluate, normal, steps)[0]
        return {"c": theta[..., 0], "t": theta[..., 1:]}

    def predict(self, p, W, S):
        return p["c"][:, None, :] + np.exp(W @ p["t"].transpose(0, 2, 1))


class Power:
    """y = E + (sum_j C_j w_j)^-alpha per target: a power law in the target's effective data, its own domain's
    weight plus what every other domain transfers to it (C_j, in the units of the own domain's: L_i = E_i +
    B_i (w_i + sum_j tau_ij w_j)^-alpha_i with B_i = C_i^-alpha_i, tau_ij = C_j / C_i; for a target that is not one
    of the training domains, every C_j is a transfer). Where Ye's exponential stays finite as a domain's weight goes
    to 0, this grows as a power of the data that remains, as a data-scaling law does; a domain that transfers nothing
    (C_j -> 0) leaves the loss of a mixture without the target's data to the others' transfer. K + 2 parameters.
    theta = (E, log C_1..K, alpha), least squares in y (as Ye's): profile starts (for a grid of (E, alpha),
    (y - E)^(-1/alpha) is linear in C: weighted least squares; one start per alpha), POW_PRUNE steps of
    Levenberg-Marquardt on all parameters from each, then the best start of each target to convergence, for
    every resample and target at once (normal equations as matrix products over the runs, as Ye's);
    resamples: POW_BOOT_STEPS steps from the point fit."""
    name = "power"

    def __init__(self):
        self.theta0 = None
        self.warm = None          # [targets, K+2] a point fit's only start (k-fold folds: the full fit's)

    @staticmethod
    def _bounds(K: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = np.full(K + 2, -POW_LOGC), np.full(K + 2, POW_LOGC)
        lo[0], hi[0] = 0.0, np.inf                         # E: a loss's floor is >= 0
        lo[-1], hi[-1] = POW_ALPHA_RANGE
        return lo, hi

    @staticmethod
    def _terms(th, W):
        """th [..., K+2] on runs W [n, K] -> (f [..., n], t = s^-alpha, log s, s)."""
        K, dt = W.shape[-1], W.dtype
        s = np.maximum(np.exp(th[..., 1:1 + K]).astype(dt) @ W.T, np.finfo(dt).tiny)   # > 0: every run has some weight
        logs = np.log(s)
        t = np.exp(np.minimum(-th[..., -1:].astype(dt) * logs, 0.99 * np.log(np.finfo(dt).max)))
        return th[..., :1].astype(dt) + t, t, logs, s

    def _start(self, W, Y, m):
        """[T, S, K+2] profile starts of each target from runs W [n, K], Y [n, T] with multiplicities m [n]: for
        every (E, alpha) of a grid, C by least squares on (y - E)^(-1/alpha) = W C (each run weighted by
        (dy/dv)^2, so that it approximates least squares in y), clipped positive; for each alpha of the grid (S of
        them) the E with the least squared error in y (one start per alpha: from the single best grid point the
        steps can end in a basin of small alpha and E, 2-3x the true error, on 2 of 16 synthetic targets)."""
        K = W.shape[1]
        keep = m > 0
        Wk, Yk, mk = W[keep], Y[keep], m[keep]
        lo, spread = Yk.min(0), np.maximum(np.ptp(Yk, 0), 1e-6 * np.maximum(np.abs(Yk.min(0)), 1))
        E = np.maximum(lo[None] - spread[None] * np.exp(np.asarray(POW_START_Z))[:, None], 0.0)       # [nz, T]
        E = np.minimum(E, lo[None] * (1 - 1e-9))
        a = np.asarray(POW_START_ALPHA)
        R = Yk.T[None, None] - E[None, :, :, None]                     # [na, nz, T, n] > 0
        R = np.maximum(R, 1e-12 * np.maximum(spread, 1e-300)[None, None, :, None])
        med = np.exp(np.log(R).mean(-1, keepdims=True))                # scale: (R / med)^(-1/a) stays finite
        v = np.exp(np.clip(-np.log(R / med) / a[:, None, None, None], -300, 300))
        wt = mk * (a[:, None, None, None] * R / v) ** 2                 # (dy / dv)^2: y-space weights
        WW = (Wk[:, :, None] * Wk[:, None, :]).reshape(len(Wk), K * K)
        G = (wt.reshape(-1, len(Wk)) @ WW).reshape(wt.shape[:3] + (K, K))
        G += 1e-9 * np.trace(G, axis1=-2, axis2=-1)[..., None, None] / K * np.eye(K) + 1e-300 * np.eye(K)
        b = (wt * v) @ Wk                                               # [na, nz, T, K]
        C = np.linalg.solve(G, b[..., None])[..., 0]
        C = np.maximum(C, POW_START_FLOOR * np.maximum(C.max(-1, keepdims=True), 1e-300))
        C = C * med ** (-1 / a[:, None, None, None])                    # undo the scale: y - E = (W C)^-alpha
        th = np.concatenate([np.broadcast_to(E[None, ..., None], C.shape[:3] + (1,)), np.log(C),
                             np.broadcast_to(a[:, None, None, None], C.shape[:3] + (1,))], -1)
        lo_b, hi_b = self._bounds(K)
        th = np.clip(th, lo_b, hi_b)
        f = self._terms(th, Wk)[0]
        rss = (mk * (f - Yk.T[None, None]) ** 2).sum(-1)               # [na, nz, T]
        rss = np.where(np.isfinite(rss), rss, np.inf)
        best = rss.argmin(1)                                           # [na, T]: the best E for each alpha
        th = np.take_along_axis(th, best[:, None, :, None], 1)[:, 0]   # [na, T, K+2]
        return th.transpose(1, 0, 2)

    def _refine(self, th, W, Yt, M, steps: int, dtype=np.float64) -> np.ndarray:
        """Levenberg-Marquardt steps (_levenberg_marquardt) on sum_i M_bi (f_i - y_i)^2 from th [B, T, K+2], every
        resample and target at once (the (K+2)-system of a problem from matrix products over the runs); steps projected
        onto the bounds; a problem stops when a kept step gains less than POW_TOL. Runs W [n, K], targets Yt [T, n],
        multiplicities M [B, n]. dtype: of the per-run arrays (residuals, the products over runs); theta, its normal
        equations and the errors compared stay float64."""
        p = th.shape[-1]
        K = p - 2
        lo, hi = self._bounds(K)
        W, Yt, M = W.astype(dtype, copy=False), Yt.astype(dtype, copy=False), M.astype(dtype, copy=False)
        pairs = _pair_products(W)

        def evaluate(x, data):
            Mb, _, Y = data
            f, t, logs, s = self._terms(x, W)
            r = f - Y
            return (Mb * r * r).sum(-1, dtype=np.float64), (r, t, logs, s)

        def normal(x, state, data):
            (r, t, logs, s), (Mb, m_sum, _) = state, data
            a, C = x[..., -1:].astype(dtype), np.exp(x[..., 1:1 + K])
            q = -a * t / s                                                # d f / d s
            h = -logs * t                                                 # d f / d alpha
            Mq, Mh = Mb * q, Mb * h
            lead = x.shape[:-1]
            G = np.empty(lead + (p, p))
            G[..., 0, 0] = m_sum
            G[..., 0, 1:1 + K] = G[..., 1:1 + K, 0] = (Mq @ W) * C
            G[..., 0, -1] = G[..., -1, 0] = Mh.sum(-1, dtype=np.float64)
            _pair_sums(Mq * q, pairs, G[..., 1:1 + K, 1:1 + K])
            G[..., 1:1 + K, 1:1 + K] *= C[..., :, None] * C[..., None, :]
            G[..., 1:1 + K, -1] = G[..., -1, 1:1 + K] = ((Mq * h) @ W) * C
            G[..., -1, -1] = (Mh * h).sum(-1, dtype=np.float64)
            g = np.concatenate([(Mb * r).sum(-1, dtype=np.float64)[..., None], ((Mq * r) @ W) * C,
                                (Mh * r).sum(-1, dtype=np.float64)[..., None]], -1)
            return G, g
        data = (M[:, None, :], M.sum(1, dtype=np.float64)[:, None], Yt[None])
        return _levenberg_marquardt(th, data, evaluate, normal, steps, tol=POW_TOL,
                                    bounds=(lo, hi, lambda x: x, lambda x: np.clip(x, lo, hi), 1e-12))[0]

    def fit(self, W, Y, S, M):
        B, T = M.shape[0], Y.shape[1]
        if B > 1 and self.theta0 is not None:              # resamples: steps from the point fit
            # (every resample on all runs, multiplicity 0 for those it did not draw: with each resample's own runs the
            # products over runs need one [runs, K^2] matrix per resample, 4x slower in all on 500 x 17)
            th = np.repeat(self.theta0[None], B, 0)

            def run(sl):                                   # resamples in chunks and threads, as the additive law's
                th[sl] = self._refine(th[sl], W, Y.T, M[sl], POW_BOOT_STEPS, POW_BOOT_DTYPE)
            _in_chunks(B, max(1, BOOT_CHUNK // (T * len(W))), run)
            return {"theta": th}
        if self.warm is not None:                          # k-fold folds: from the full data's fit, to convergence
            th = self._refine(np.repeat(self.warm[None], B, 0), W, Y.T, M, POW_STEPS)
            if B == 1:
                self.theta0 = th[0]
            return {"theta": th}
        th = np.empty((B, T, W.shape[1] + 2))
        for b in range(B):                                 # a point fit: every start POW_PRUNE steps, the best goes on
            starts = self._start(W, Y, M[b])               # [T, S, K+2]
            n_s = starts.shape[1]
            tt = np.repeat(np.arange(T), n_s)
            x = self._refine(starts.reshape(1, T * n_s, -1), W, Y.T[tt], M[b:b + 1], POW_PRUNE)[0]
            r = self._terms(x, W)[0] - Y.T[tt]
            rss = np.where(np.isfinite(r).all(-1), (M[b] * r * r).sum(-1), np.inf).reshape(T, n_s)
            th[b] = x.reshape(T, n_s, -1)[np.arange(T), rss.argmin(1)]
        th = self._refine(th, W, Y.T, M, POW_STEPS - POW_PRUNE)
        if B == 1:
            self.theta0 = th[0]
        return {"theta": th}

    def predict(self, p, W, S):
        return self._terms(p["theta"], np.atleast_2d(W))[0].transpose(0, 2, 1)


class Shukor:
    """Shukor et al. (2025)'s laws in N, D and the weights h, per target, fitted by least squares on log
    residuals (analytic Jacobian, a few starts; resamples warm-started at the point fit):

        additive  y = E + 1/sum_j C_j h_j^gamma_j + A/N^alpha + B/D^beta                       (2K + 5 parameters)
        joint     y = E + 1/sum_j C_j h_j^gamma_j + A_h/N^alpha + B_h/D^beta,
                  A_h = (sum_j CA_j h_j)^gamma_A,  B_h = (sum_j CB_j h_j)^gamma_B                  (4K + 5 parameters)

    In the additive law the optimal mixture does not depend on N or D; in the joint law it does. The N and D
    terms are kept only where the table varies N or D (at one size both reduce to E + 1/sum C_j h_j^gamma_j, fitted
    for all targets, starts and resamples at once by _fit_one_size: a candidate of law="auto" there).
    theta = (log E, log C_1..K, gamma_1..K, [N term], [D term]); a term is (log A, alpha) in the additive law,
    (log CA_1..K, gamma_A, alpha) in the joint law."""

    def __init__(self, name: str, use_n: bool, use_d: bool):
        self.name, self.use_n, self.use_d = name, use_n, use_d
        self.theta0 = None
        self.warm = None          # at one size: [targets, 2K+1] a point fit's only start (k-fold folds: the full fit's)

    def _term_size(self, K: int) -> int:
        return 2 if self.name == "additive" else K + 2

    def _layout(self, K: int) -> tuple[int, int, int]:
        """(index of the N term, index of the D term, length of theta); a term absent from the table has none."""
        n0 = 1 + 2 * K
        d0 = n0 + self._term_size(K) * self.use_n
        return n0, d0, d0 + self._term_size(K) * self.use_d

    def _scale_term(self, th, i, W, logX):
        """(value [n], d value / d theta[i:i + size] [n, size]) of A/X^alpha (additive) or A_h/X^alpha (joint)."""
        if self.name == "additive":
            t = np.exp(th[i] - th[i + 1] * logX)
            return t, np.stack([t, -logX * t], 1)
        K = W.shape[1]
        CA = np.exp(th[i:i + K])
        s = W @ CA                                                       # > 0: every row has some weight
        t = np.exp(th[i + K] * np.log(s) - th[i + K + 1] * logX)
        dC = t[:, None] * th[i + K] * (W * CA[None]) / s[:, None]
        return t, np.hstack([dC, (t * np.log(s))[:, None], (-logX * t)[:, None]])

    def _pred_jac(self, th, W, S, need_jac: bool = True):
        K = W.shape[1]
        logN, logD = S
        n0, d0, p = self._layout(K)
        with np.errstate(divide="ignore"):
            logW = np.log(W)
        Cw = np.exp(th[1:1 + K][None] + th[1 + K:1 + 2 * K][None] * logW)      # 0 where w = 0
        s = Cw.sum(1)
        pred = np.exp(th[0]) + 1 / s
        J = np.zeros((len(W), p)) if need_jac else None
        if need_jac:
            J[:, 0] = np.exp(th[0])
            dm = -Cw / s[:, None] ** 2
            J[:, 1:1 + K] = dm
            J[:, 1 + K:1 + 2 * K] = np.where(W > 0, dm * np.where(W > 0, logW, 0), 0)
        for use, i, logX in ((self.use_n, n0, logN), (self.use_d, d0, logD)):
            if use:
                t, dt = self._scale_term(th, i, W, logX)
                pred = pred + t
                if need_jac:
                    J[:, i:i + dt.shape[1]] = dt
        return pred, J

    def _pred(self, th, W, S):
        return self._pred_jac(th, W, S, need_jac=False)[0]

    def _bounds(self, K):
        _, _, p = self._layout(K)
        lo, hi = np.full(p, -20.0), np.full(p, 40.0)
        lo[0], hi[0] = -10, 3
        lo[1 + K:1 + 2 * K], hi[1 + K:1 + 2 * K] = 0.01, 3               # gamma_j
        n0, d0, _ = self._layout(K)
        for use, i in ((self.use_n, n0), (self.use_d, d0)):
            if use:
                size = self._term_size(K)
                lo[i + size - 1], hi[i + size - 1] = 0, 3                # the exponent alpha / beta
                if self.name == "joint":
                    lo[i + K], hi[i + K] = -5, 5                         # gamma_A / gamma_B
        return lo, hi

    def _one(self, W, S, y, m, starts, max_nfev: int = 400):
        keep = m > 0
        Wk, Sk, yk, sw = W[keep], (S[0][keep], S[1][keep]), y[keep], np.sqrt(m[keep])
        lo, hi = self._bounds(W.shape[1])
        logy = np.log(yk)

        def resid(th):
            return (np.log(self._pred(th, Wk, Sk)) - logy) * sw

        def jac(th):
            pred, J = self._pred_jac(th, Wk, Sk)
            return J / pred[:, None] * sw[:, None]
        best = None
        for th0 in starts:
            res = least_squares(resid, np.clip(th0, lo + 1e-9, hi - 1e-9), jac=jac, bounds=(lo, hi), method="trf",
                                x_scale="jac", max_nfev=max_nfev)
            if best is None or res.cost < best.cost:
                best = res
        return best.x

    def starts(self, W, y, S):
        """Starts around a split of the mean loss between E, the mixture term and the size terms."""
        K = W.shape[1]
        n0, d0, p = self._layout(K)
        out = []
        for e_frac in (0.5, 0.8):
            E = e_frac * y.min()
            gap = max(y.mean() - E, 1e-3)
            n_terms = 1 + self.use_n + self.use_d
            for g in (0.3, 1.0):
                th = np.zeros(p)
                # each term starts at gap / n_terms at uniform weights and the table's median N and D
                th[0] = math.log(E)
                th[1:1 + K] = -math.log(gap / n_terms * K * K ** -g)
                th[1 + K:1 + 2 * K] = g
                for use, i, logX in ((self.use_n, n0, S[0]), (self.use_d, d0, S[1])):
                    if use:
                        expo, level = 0.3, math.log(gap / n_terms) + 0.3 * float(np.median(logX))
                        if self.name == "additive":
                            th[i:i + 2] = level, expo
                        else:                            # (sum CA_j h_j)^1 = CA at equal CA_j
                            th[i:i + K], th[i + K], th[i + K + 1] = level, 1.0, expo
                out.append(th)
        return out

    def from_additive(self, th_add: np.ndarray, K: int) -> np.ndarray:
        """A joint-law start equal to a fitted additive law: CA_j = A for every j, gamma_A = 1 (A_w = A)."""
        n0, d0, p = self._layout(K)
        th = np.zeros(p)
        th[:n0] = th_add[:n0]
        i_add = n0
        for use, i in ((self.use_n, n0), (self.use_d, d0)):
            if use:
                th[i:i + K], th[i + K], th[i + K + 1] = th_add[i_add], 1.0, th_add[i_add + 1]
                i_add += 2
        return th

    # -------------------------------------------------- at one size: E + 1/sum_j C_j w_j^gamma_j, vectorised
    @staticmethod
    def _log_w(W):
        """(log w with 0 where w = 0, the mask w > 0): a domain absent from a run adds nothing to sum_j C_j w_j^g_j."""
        pos = W > 0
        return np.where(pos, np.log(np.where(pos, W, 1.0)), 0.0), pos

    @staticmethod
    def _log_center(Lw, pos, m) -> np.ndarray:
        """[K] the mean log weight of each domain over the rows (multiplicity m) that have it: the solvers work in
        log C_j' = log C_j + gamma_j c_j, the log-level of the domain's term at its typical weight, so that its level
        and its slope gamma_j are nearly uncorrelated (in (log C_j, gamma_j) they are, for a domain sampled over a
        narrow range of weights, almost collinear: Levenberg-Marquardt crawls along that valley)."""
        n_pos = m @ pos
        return np.where(n_pos > 0, (m @ Lw) / np.maximum(n_pos, 1e-300), 0.0)

    @staticmethod
    def _shift(th, c, sign: float) -> np.ndarray:
        """theta with log C_j moved to (+1) or from (-1) the centred level log C_j + gamma_j c_j."""
        K = len(c)
        out = th.copy()
        out[..., 1:1 + K] += sign * th[..., 1 + K:] * c
        return out

    def _mix_lm(self, th, Lw, pos, logy, m, steps: int, c: np.ndarray):
        """The point fit's Levenberg-Marquardt (_lm in float64) for P problems on the same runs: th [P, 2K+1] uncentred,
        Lw, pos [n, K] (_log_w), logy [P, n], m [n] the runs' multiplicities, c the centre (_log_center) ->
        (theta [P, 2K+1] uncentred, error [P]). Problems go in chunks of ADD_BOOT_CHUNK entries, as the resamples'."""
        lo, hi = self._bounds(Lw.shape[-1])
        L, ps = ((Lw - c) * pos).T[None], pos.T[None]                          # [1, K, n]: every problem's runs
        th = self._shift(np.clip(th, lo, hi), c, 1)
        cost = np.empty(len(th))

        def run(sl):
            th[sl], cost[sl] = self._lm(th[sl], L, ps, logy[sl], m[None], c, steps)
        _in_chunks(len(th), max(1, ADD_BOOT_CHUNK // L.size), run)
        return self._shift(th, c, -1), cost

    def _fit_one_size(self, W, Y, M) -> dict:
        """E + 1/sum_j C_j w_j^gamma_j per target by least squares on log residuals, all targets (and starts) one
        vectorised Levenberg-Marquardt: the point fit from self.warm where set (k-fold folds: the full data's fit),
        else from self.starts' four starts per target, the best kept after ADD_PRUNE steps; resamples by
        _boot_one_size from the point fit."""
        B, T = M.shape[0], Y.shape[1]
        K = W.shape[1]
        if B > 1 and self.theta0 is not None:
            return {"theta": self._boot_one_size(W, Y, M)}
        Lw, pos = self._log_w(W)
        logY = np.log(Y)
        theta = np.empty((B, T, 2 * K + 1))
        none = (np.zeros(0), np.zeros(0))
        for b in range(B):                                   # a point fit (or folds passed as rows)
            keep = M[b] > 0
            Lk, pk, mk = Lw[keep], pos[keep], M[b][keep]
            c = self._log_center(Lk, pk, mk)
            if self.warm is not None:
                starts = self.warm[:, None]
            else:
                starts = np.stack([np.stack(self.starts(W[keep], Y[keep, t], none)) for t in range(T)])  # [T, S, p]
            n_s = starts.shape[1]
            tt = np.repeat(np.arange(T), n_s)
            th, cost = self._mix_lm(starts.reshape(T * n_s, -1), Lk, pk, logY[keep][:, tt].T, mk,
                                    ADD_PRUNE if n_s > 1 else ADD_STEPS, c)
            if n_s > 1:                                      # the best start of each target goes on
                th = th.reshape(T, n_s, -1)[np.arange(T), cost.reshape(T, n_s).argmin(1)]
                th, cost = self._mix_lm(th, Lk, pk, logY[keep].T, mk, ADD_STEPS - ADD_PRUNE, c)
            theta[b] = th
        if B == 1:
            self.theta0 = theta[0]
        return {"theta": theta}

    def _boot_one_size(self, W, Y, M) -> np.ndarray:
        """[B, T, 2K+1] resample fits: ADD_BOOT_STEPS Levenberg-Marquardt steps from the point fit theta0 (as Ye's),
        every (resample, target) one problem, by the point fit's solver (_lm), its problems arranged for speed
        (bench/README.md, "1000 resamples of the additive law"):
          - at theta0 every resample shares each run's residual and Jacobian row, so the first normal equations of all
            resamples are one matrix product of the multiplicities with the runs' outer products (as _gram);
          - a resample's problems carry only the runs it drew (~63% of them), with their multiplicities;
          - problems go through all their steps in chunks of a few resamples x every target (ADD_BOOT_CHUNK entries),
            small enough to stay in the CPU's cache, laid out [.., domain, run] so the Jacobian is written in contiguous
            blocks (_lm: the normal equations at a new point are formed only where the step is kept and another
            step follows), shared out to ADD_BOOT_THREADS threads."""
        B, T = M.shape[0], Y.shape[1]
        n, K = W.shape
        p, dt = 2 * K + 1, ADD_BOOT_DTYPE
        lo, hi = self._bounds(K)
        Lw, pos = self._log_w(W)
        c = self._log_center(Lw, pos, np.ones(n))
        Lt = ((Lw - c) * pos).T.astype(dt)                                    # [K, n], centred
        post = pos.T.copy()
        logY = np.log(Y)
        th0 = self._shift(np.clip(self.theta0, lo, hi), c, 1)                  # [T, p], centred
        # at theta0 the residuals and Jacobian rows are every resample's: its normal equations are sums over runs
        Cw, s, f, E, r = self._terms_t(th0, Lt, post, logY.T)                  # [T, K, n], ... r [T, n]
        J = self._jacobian_t(Cw, s, f, E, Lt, np.ones(n, dt))                 # [T, p, n]
        iu = np.triu_indices(p)
        Mt = M.astype(dt)
        JJ = np.concatenate([J[:, i:i + 1] * J[:, i:] for i in range(p)], 1)     # [T, p(p+1)/2, n], iu's order
        Gu = (Mt @ JJ.reshape(-1, n).T).reshape(B, T, -1)
        G0 = np.empty((B, T, p, p))
        G0[..., iu[0], iu[1]] = Gu
        G0[..., iu[1], iu[0]] = Gu
        g0 = (Mt @ (J * r[:, None].astype(dt)).reshape(-1, n).T).reshape(B, T, p).astype(float)
        cost0 = M @ (r * r).T                                                  # [B, T]
        drawn = M > 0
        n_max = int(drawn.sum(1).max())
        rows = np.argsort(~drawn, axis=1, kind="stable")[:, :n_max]            # a resample's drawn runs first
        mult = np.take_along_axis(M, rows, 1)                                  # 0 on the padding
        out = np.empty((B, T, p))
        per = max(1, ADD_BOOT_CHUNK // (T * K * n_max))                        # resamples per chunk

        def run(sl):
            ix = rows[sl]
            out[sl] = self._lm(np.repeat(th0[None], len(ix), 0), np.moveaxis(Lt[:, ix], 0, 1)[:, None],
                               np.moveaxis(post[:, ix], 0, 1)[:, None], logY[ix].transpose(0, 2, 1),
                               mult[sl][:, None], c, ADD_BOOT_STEPS, start=(G0[sl], g0[sl], cost0[sl]))[0]
        _in_chunks(B, per, run)
        return self._shift(out, c, -1)

    @staticmethod
    def _terms_t(th, L, pos, logy=None):
        """At centred parameters th [..., 2K+1] on runs with centred log weights L [..., K, n] (broadcast against
        th's leading axes) and logs of the targets logy [..., n]: (C_j w_j^gamma_j [..., K, n] in L's dtype, their
        sum s, f = E + 1/s, E [..., 1], log residuals r = log f - log y or None without logy) (s, f, r: [..., n],
        float64). Uncentred theta on uncentred log weights gives the same terms (predict)."""
        K = L.shape[-2]
        t = th.astype(L.dtype)
        Cw = t[..., 1 + K:, None] * L
        Cw += t[..., 1:1 + K, None]
        np.exp(Cw, out=Cw)
        if not pos.all():                    # a domain absent from a run adds nothing (L is 0 there, exp is not)
            Cw *= pos
        s = np.maximum(Cw.sum(-2, dtype=np.float64), 1e-300)      # float64 whatever L's dtype: the sum of K terms
        E = np.exp(th[..., :1])
        f = E + 1 / s
        return Cw, s, f, E, None if logy is None else np.log(f) - logy

    @staticmethod
    def _jacobian_t(Cw, s, f, E, L, sw):
        """[..., 2K+1, n] d (sw log f) / d (log E, centred log C_j, gamma_j) per run, in Cw's dtype (L: the centred log
        weights [..., K, n]; sw: the runs' weights)."""
        K, n = Cw.shape[-2:]
        J = np.empty(Cw.shape[:-2] + (2 * K + 1, n), Cw.dtype)
        J[..., 0, :] = E / f * sw
        np.multiply(Cw, (-sw / (s * s * f)).astype(Cw.dtype)[..., None, :], out=J[..., 1:1 + K, :])
        np.multiply(J[..., 1:1 + K, :], L, out=J[..., 1 + K:, :])
        return J

    def _lm(self, th, L, pos, logy, m, c, steps: int, start=None):
        """Levenberg-Marquardt (_levenberg_marquardt) on the weighted log residuals sqrt(m_i) (log f_i - log y_i) of many
        problems at once, each its (2K+1)-system, in the centred parameters of _log_center (c); steps projected onto
        the bounds (of theta itself, not the centred levels); a problem stops when a kept step gains less than ADD_TOL
        of its error. The point fit and k-fold folds (_mix_lm, float64) and the resamples (_boot_one_size,
        ADD_BOOT_DTYPE) run it.
        th [P, ..., 2K+1] centred; L, pos [P or 1, ..., K, n] the runs' centred log weights (in the Jacobian's dtype)
        and masks; logy [P, ..., n]; m [P or 1, ..., n] the runs' multiplicities; start: (normal matrix J'J, gradient
        J'r, error) at th where known. -> (theta centred, error)."""
        lo, hi = self._bounds(L.shape[-2])

        def evaluate(x, data):
            L, pos, logy, m, _ = data
            Cw, s, f, E, r = self._terms_t(x, L, pos, logy)
            return (m * r * r).sum(-1), (Cw, s, f, E, r)

        def normal(x, state, data):
            (Cw, s, f, E, r), (L, _, _, _, sw) = state, data
            J = self._jacobian_t(Cw, s, f, E, L, sw)
            G, g = J @ np.swapaxes(J, -1, -2), (J @ (r * sw).astype(J.dtype)[..., None])[..., 0]
            return G.astype(float), g.astype(float)

        def project(x):
            return self._shift(np.clip(self._shift(x, c, -1), lo, hi), c, 1)
        data = (L, pos, logy, m, np.sqrt(m).astype(L.dtype))
        return _levenberg_marquardt(th, data, evaluate, normal, steps, tol=ADD_TOL, start=start,
                                    bounds=(lo, hi, lambda x: self._shift(x, c, -1), project, 1e-9))

    def fit(self, W, Y, S, M):
        if not (self.use_n or self.use_d):
            return self._fit_one_size(W, Y, M)
        B, T = M.shape[0], Y.shape[1]
        K = W.shape[1]
        theta = np.zeros((B, T, self._layout(K)[2]))
        for t in range(T):
            if B == 1 or self.theta0 is None:
                if self.name == "joint" and (self.use_n or self.use_d):
                    # the joint law nests the additive one (A_w = A when CA_j = A, gamma_A = 1): fit that (fast,
                    # well-posed) and start the joint fit there; a start of its own guards against that basin
                    add = Shukor("additive", self.use_n, self.use_d)
                    th_add = add._one(W, S, Y[:, t], M[0], add.starts(W, Y[:, t], S))
                    starts = [self.from_additive(th_add, K), self.starts(W, Y[:, t], S)[1]]
                    theta[0, t] = self._one(W, S, Y[:, t], M[0], starts, max_nfev=150)
                else:
                    theta[0, t] = self._one(W, S, Y[:, t], M[0], self.starts(W, Y[:, t], S))
                continue
            for b in range(B):                               # resamples: warm-started at the point fit
                theta[b, t] = self._one(W, S, Y[:, t], M[b], [self.theta0[t]], max_nfev=100)
        if B == 1:
            self.theta0 = theta[0]
        return {"theta": theta}

    def predict(self, p, W, S):
        th = p["theta"]
        if not (self.use_n or self.use_d):
            B, T, _ = th.shape
            Lw, pos = self._log_w(np.atleast_2d(W))
            out = np.empty((B * T, len(Lw)))
            flat = th.reshape(B * T, -1)
            for a in range(0, B * T, ADD_CHUNK):
                out[a:a + ADD_CHUNK] = self._terms_t(flat[a:a + ADD_CHUNK], Lw.T, pos.T)[2]
            return out.reshape(B, T, -1).transpose(0, 2, 1)
        return np.stack([np.stack([self._pred(th[b, t], W, S) for t in range(th.shape[1])], -1)
                         for b in range(th.shape[0])])


def make_family(name: str, use_n: bool = False, use_d: bool = False):
    if name in ("additive", "joint"):
        return Shukor(name, use_n, use_d)
    return {"loglinear": LogLinear, "ridge": Ridge, "ye": Ye, "power": Power}[name]()


# ------------------------------------------------------------------------------------------ config and law
@dataclass(frozen=True)
class MixingConfig:
    """How a mixing law is fitted and checked. n_col/d_col: N and D columns (used only by the size laws)."""
    n_bootstrap: int = 1000
    seed: int = 0
    ci_level: float = 0.9
    folds: int = 5
    n_col: str = "params_nonembedding"
    d_col: str = "tokens"
    recommend_resamples: int = 100      # bootstrap laws re-optimised for the recommendation's weight intervals
    # resamples of a size law fitted across sizes (N or D varies): each is refitted by scipy's least squares, ~100x a
    # resample of Ye's law: fewer by default (at one size the additive law draws n_bootstrap: Shukor._boot_one_size)
    joint_bootstrap: int = 200
    # Pure (single-domain) mixtures stay in every training fold unless cv_corners: held out, a corner of the simplex
    # is an extrapolation beyond every other run (the other domains' weights all go to 0), which a recommendation
    # inside the simplex never asks of the law (bench/README.md, "Data-mixing laws on the demo corpus")
    cv_corners: bool = False

    def errors(self) -> list[str]:
        e = []
        if self.n_bootstrap < 0:
            e.append(f"MixingConfig.n_bootstrap={self.n_bootstrap}: must be >= 0 (0: no intervals)")
        if not 0 < self.ci_level < 1:
            e.append(f"MixingConfig.ci_level={self.ci_level}: must be in (0, 1), e.g. 0.9")
        if self.folds < 2:
            e.append(f"MixingConfig.folds={self.folds}: k-fold needs at least 2")
        return e


@dataclass
class Recommendation:
    weights: dict[str, float]
    weights_ci: dict[str, tuple[float, float]]
    predicted: float                       # objective at the recommended weights (the law's point estimate)
    predicted_ci: tuple[float, float]
    # name -> {"weights", "predicted", "predicted_ci", "p_better", "gain" (> 0: the recommendation is better),
    # "gain_boot_ci" (bootstrap only), "gain_ci" (also the held-out gap error), "hull_distance"}
    baselines: dict[str, dict]
    upper_bounds: dict[str, float]         # effective per-domain upper bound (bounds and token caps)
    epochs: dict[str, float]               # epochs of each domain at D (when corpus tokens are known)
    N: float | None = None
    D: float | None = None
    warnings: list[str] = field(default_factory=list)
    supported: bool = False                # the gain over every baseline is distinguishable from zero
    verdict: str = ""                      # "recommended: ..." or "no recommendation: ..."
    trust: str | None = None               # the trust region searched ("hull", "box", None: the whole simplex)
    hull_distance: float = float("nan")    # L1 distance of the weights to the sampled mixtures' convex hull
    gap_error: float = float("nan")        # the law's held-out error on a difference of two mixtures (MixingLaw.gap_error)
    trust_range: dict[str, tuple[float, float]] = field(default_factory=dict)   # per-domain bounds searched

    def table(self) -> pd.DataFrame:
        rows = [{"domain": d, "weight": w, "lo": self.weights_ci[d][0], "hi": self.weights_ci[d][1],
                 "upper bound": self.upper_bounds.get(d, 1.0), "epochs at D": self.epochs.get(d, np.nan)}
                for d, w in self.weights.items()]
        return pd.DataFrame(rows)


@dataclass
class MixingLaw:
    family: str
    objective: Objective
    domains: list[str]
    targets: list[str]
    table: pd.DataFrame                  # the rows used (with "_fit_size" marking the fit size's rows)
    params: dict                         # point fit, leading resample axis of length 1
    boot: dict | None                    # bootstrap params, leading axis n_resamples
    model: object
    config: MixingConfig
    cv: pd.DataFrame                     # per family: mean/max relative error, Spearman on held-out mixtures
    cv_predictions: pd.DataFrame         # per held-out run: family, measured, predicted
    fit_size: tuple[float, float] | None
    natural: dict[str, float] | None
    corpus_tokens: dict[str, float] | None
    seed_noise: float                    # std of the objective over repeated runs of one mixture (nan: none)
    warnings: list[str] = field(default_factory=list)
    # a one-size family fitted again at each other size of the table with enough mixtures: (N, D) -> (model, params)
    per_size: dict = field(default_factory=dict)

    # -------------------------------------------------- prediction
    def _W(self, weights) -> np.ndarray:
        if isinstance(weights, dict):
            weights = [weights]
        if isinstance(weights, pd.DataFrame):
            cols = [W_PREFIX + d for d in self.domains]
            W = weights[cols].to_numpy(float) if set(cols) <= set(weights) else weights[self.domains].to_numpy(float)
        elif isinstance(weights, (list, tuple)) and weights and isinstance(weights[0], dict):
            unknown = {k for w in weights for k in w} - set(self.domains)
            if unknown:
                raise ValueError(f"weights name domain(s) {sorted(unknown)} the law was not fitted on "
                                 f"(it knows {self.domains})")
            W = np.array([[w.get(d, 0.0) for d in self.domains] for w in weights], float)
        else:
            W = np.atleast_2d(np.asarray(weights, float))
        if W.shape[1] != len(self.domains):
            raise ValueError(f"weights have {W.shape[1]} entries; the law has {len(self.domains)} domains "
                             f"{self.domains}")
        if np.any(np.abs(W.sum(1) - 1) > WEIGHT_TOL):
            raise ValueError(f"weights sum to {W.sum(1)} (not 1): normalise them")
        return W

    def _S(self, m: int, N=None, D=None):
        n0, d0 = self.fit_size or (1.0, 1.0)
        return (np.full(m, math.log(N or n0)), np.full(m, math.log(D or d0)))

    def predict_targets(self, weights, N=None, D=None, params=None) -> np.ndarray:
        """[resamples, mixtures, targets] predicted target columns (resamples = 1 for the point fit)."""
        W = self._W(weights)
        model, params = self._at_size(N, D, params)
        return model.predict(params, W, self._S(len(W), N, D))

    def _is_fit_size(self, N, D) -> bool:
        """(N, D) is the size the law was fitted at: None stands for it, and a law without a fit size has only one."""
        if not self.fit_size or (N is None and D is None):
            return True
        return bool(np.isclose(N or self.fit_size[0], self.fit_size[0])
                    and np.isclose(D or self.fit_size[1], self.fit_size[1]))

    def _has_size_terms(self) -> bool:
        """A size law fitted across sizes (at one size the additive law has no N or D terms: a one-size law too)."""
        return self.family in SIZE_LAWS and bool(self.model.use_n or self.model.use_d)

    def _at_size(self, N, D, params):
        """The model and parameters for (N, D): a size law's own; a one-size family's fit at that size (per_size) or,
        for a size it was not fitted at, the fit size's with a warning (its levels belong to the fit size)."""
        if self._has_size_terms() or self._is_fit_size(N, D):
            return self.model, params or self.params
        n, d = N or self.fit_size[0], D or self.fit_size[1]
        for (n_s, d_s), (model, p_s) in self.per_size.items():
            if np.isclose(n, n_s) and np.isclose(d, d_s):
                if params is not None and params is not self.params:
                    raise ValueError(f"the {self.family} law has bootstrap resamples at its fit size only, not at "
                                     f"N={n:.3g}, D={d:.3g}: use a size law (fit(..., law='additive' or 'joint'))")
                return model, p_s
        warnings.warn(f"the {self.family} law describes the sizes it was fitted at ({self.fit_size} and "
                      f"{list(self.per_size)}), not N={n:.3g}, D={d:.3g}: predicted at its fit size; for other sizes "
                      "fit a size law (law='additive' or 'joint') to runs at several sizes", FitWarning, stacklevel=3)
        return self.model, params or self.params

    def predict(self, weights, N=None, D=None) -> np.ndarray:
        """The objective at each mixture (N and D: only the size laws use them; default the fit size).
        weights: a dict or list of dicts (domain -> weight), a DataFrame with w_<domain> or <domain> columns (matched
        by name), or an array whose columns are in `self.domains` order (positional: no names to match)."""
        return self.predict_targets(weights, N, D)[0] @ self.objective.vector

    def samples(self, weights, N=None, D=None) -> np.ndarray:
        """[resamples, mixtures] the objective under every bootstrap law (empty without a bootstrap)."""
        if not self.boot:
            return np.empty((0, len(self._W(weights))))
        return self.predict_targets(weights, N, D, self.boot) @ self.objective.vector

    def interval(self, weights, N=None, D=None) -> tuple[np.ndarray, np.ndarray]:
        s = self.samples(weights, N, D)
        if not len(s):
            nan = np.full(s.shape[1], np.nan)
            return nan, nan
        q = [(1 - self.config.ci_level) / 2, (1 + self.config.ci_level) / 2]
        lo, hi = np.nanquantile(s, q, axis=0)
        return lo, hi

    # -------------------------------------------------- effects
    def effects(self, base: dict | None = None, step: float = 0.02) -> pd.DataFrame:
        """Per domain: the objective's change when its weight grows by `step` (the others shrunk in proportion),
        at `base` (default: the natural mixture, else uniform), with bootstrap intervals."""
        base = base or self.natural or {d: 1 / len(self.domains) for d in self.domains}
        w0 = self._W(base)[0]
        rows = []
        for j, d in enumerate(self.domains):
            s = min(step, 1 - w0[j])
            w1 = w0 * (1 - w0[j] - s) / max(1 - w0[j], 1e-12)
            w1[j] = w0[j] + s
            pair = np.vstack([w0, w1])
            delta = float(np.diff(self.predict(pair))[0]) / s * step
            bs = self.samples(pair)
            lo, hi = ci(np.diff(bs, axis=1)[:, 0] / s * step, self.config.ci_level) if len(bs) else (np.nan, np.nan)
            rows.append({"domain": d, "base weight": w0[j], "effect": delta, "lo": lo, "hi": hi})
        return pd.DataFrame(rows)

    # -------------------------------------------------- recommendation
    def sampled_mixtures(self) -> np.ndarray:
        """[m, K] the distinct interior mixtures the law was fitted on (at the fit size for a one-size family; every
        size for a size law): the region its evidence covers. Pure mixtures are left out: with them the convex hull
        is the whole simplex, yet a corner says nothing about the mixtures between it and the interior samples."""
        t = self.table if self.family in SIZE_LAWS or "_fit_size" not in self.table else \
            self.table[self.table["_fit_size"].to_numpy(bool)]
        W = t[[W_PREFIX + d for d in self.domains]].to_numpy(float)
        W = W / W.sum(1, keepdims=True)
        W = W[W.max(1) < 1 - 1e-6]
        return np.unique(np.round(W, 6), axis=0) if len(W) else W.reshape(0, len(self.domains))

    def gap_error(self) -> float:
        """The law's error on a DIFFERENCE of two mixtures' objectives, from its k-fold held-out check: the ci_level
        quantile of |r_a - r_b| over pairs of held-out mixtures, r = predicted - measured (seeds averaged). It holds
        what the bootstrap cannot: the law's misfit, and the measurements' seed noise. NaN with < 3 mixtures."""
        p = self.cv_predictions[self.cv_predictions["family"] == self.family]
        if "mixture" not in p or p["mixture"].nunique() < 3:
            return float("nan")
        r = (p["predicted"] - p["measured"]).groupby(p["mixture"]).mean().to_numpy()
        i, j = np.triu_indices(len(r), 1)
        return float(np.quantile(np.abs(r[i] - r[j]), self.config.ci_level))

    def recommend(self, bounds: dict[str, tuple[float, float]] | None = None, *, min_weight: float = 0.0,
                  max_weight: float = 1.0, D: float | None = None, N: float | None = None,
                  max_epochs: float | None = DEFAULT_MAX_EPOCHS, corpus_tokens: dict[str, float] | None = None,
                  max_kl: float | None = None, starts: int = 8, trust: str | None = "hull") -> Recommendation:
        """Weights that optimise the objective under bounds, per-domain token caps, an optional closeness to the
        natural mixture and a trust region; intervals from re-optimising under bootstrap laws; the predicted gain
        over uniform and natural with intervals, and whether that gain is distinguishable from zero.

        Token caps: at D training tokens, domain d can supply at most max_epochs * U_d tokens (U_d its unique
        tokens), so w_d <= max_epochs * U_d / D (Muennighoff et al. 2023: up to about 4 epochs repeated data is
        worth nearly as much as new). max_kl: KL(w || natural) <= max_kl.

        trust: where the optimum may lie. "hull" (default): inside the convex hull of the sampled interior mixtures
        (sampled_mixtures()), the region the law was fitted on (with more than HULL_MAX of them, the hull of the
        HULL_MAX the point law predicts best: a part of the whole hull, so still no extrapolation, and it says so);
        "box": each weight within its sampled range; None: anywhere on the simplex (an extrapolation wherever it
        leaves the samples: bench/README.md, "trust region").

        The gain over each baseline has a bootstrap interval and, widened by the law's held-out gap error
        (gap_error(), in quadrature), an interval that also holds the law's misfit; `supported` is True only when
        the latter excludes zero for every baseline. Otherwise the weights are a candidate, not a recommendation:
        rec.verdict says so ("no recommendation: ...")."""
        with one_blas_thread():      # hundreds of small SLSQP solves: BLAS threads only add contention (53 s vs 3 s)
            return self._recommend(bounds, min_weight, max_weight, D, N, max_epochs, corpus_tokens, max_kl, starts,
                                   trust)

    def _recommend(self, bounds, min_weight, max_weight, D, N, max_epochs, corpus_tokens, max_kl, starts,
                   trust) -> Recommendation:
        K = len(self.domains)
        if trust not in TRUST_MODES:
            raise ValueError(f"recommend(trust={trust!r}): use one of {TRUST_MODES} ('hull': the sampled mixtures' "
                             "convex hull; 'box': their per-domain ranges; None: the whole simplex)")
        lo = np.full(K, float(min_weight))
        hi = np.full(K, float(max_weight))
        for d, (a, b) in (bounds or {}).items():
            if d not in self.domains:
                raise ValueError(f"bounds: domain {d!r} is not one of {self.domains}")
            lo[self.domains.index(d)], hi[self.domains.index(d)] = a, b
        warns: list[str] = []
        tokens = corpus_tokens or self.corpus_tokens
        D = D or (self.fit_size[1] if self.fit_size else None)
        epochs = {}
        if max_epochs is not None and tokens and D:
            cap = np.array([max_epochs * tokens[d] / D for d in self.domains])
            hi = np.minimum(hi, cap)
        if lo.sum() > 1 + 1e-9 or hi.sum() < 1 - 1e-9 or np.any(lo > hi + 1e-12):
            raise ValueError(f"recommend: no mixture satisfies the bounds (lower sum {lo.sum():.3g}, upper sum "
                             f"{hi.sum():.3g} after token caps at D={D}): loosen bounds or max_epochs, or lower D")
        user_lo, user_hi = lo.copy(), hi.copy()
        P = self.sampled_mixtures()
        if trust is not None and len(P) < 2:
            warns.append(f"no trust region: the law was fitted on {len(P)} interior mixture(s); the optimum may lie "
                         "anywhere on the simplex, far from what was measured")
            trust = None
        sign = -1.0 if self.objective.maximize else 1.0
        P_all = P
        if trust == "hull" and len(P) > HULL_MAX:
            rated = sign * self.predict(P, N, D)
            P = P[np.argsort(rated, kind="stable")[:HULL_MAX]]
            warns.append(f"trust region: the convex hull of the {HULL_MAX} of the {len(P_all)} sampled mixtures the law "
                         "predicts best (inside the hull of all of them; searching that whole hull is too slow)")
        if trust is not None:                        # the box holds the hull: bounds for either mode
            lo, hi = np.maximum(lo, P.min(0)), np.minimum(hi, P.max(0))
            if lo.sum() > 1 + 1e-9 or hi.sum() < 1 - 1e-9 or np.any(lo > hi + 1e-12):
                raise ValueError("recommend: no mixture satisfies the bounds inside the sampled region (the trust "
                                 "region): sample mixtures there, or pass trust=None to extrapolate")
        nat = None
        if max_kl is not None:
            if not self.natural:
                raise ValueError("recommend(max_kl=...): the law has no natural proportions (pass natural= to fit)")
            nat = np.array([self.natural[d] for d in self.domains])
        rng = np.random.default_rng(self.config.seed)
        x0s = [np.full(K, 1 / K)] + ([nat] if nat is not None else []) \
            + ([np.array([self.natural[d] for d in self.domains])] if self.natural else []) \
            + list(rng.dirichlet(np.ones(K), size=starts))
        obs = self.table[[W_PREFIX + d for d in self.domains]].to_numpy(float)
        best_obs = obs[np.argmin(sign * self.objective.value(self.table))]
        x0s.append(best_obs)

        S1 = self._S(K + 1, N, D)
        vec = self.objective.vector
        eye = np.eye(K) * 1e-6
        # the variables: w itself (box, none), or the convex weights lam of the sampled mixtures, w = lam @ P (hull)
        T = P if trust == "hull" else np.eye(K)
        n_var = len(T)

        def to_var(w0: np.ndarray) -> np.ndarray:
            if trust != "hull":
                x = np.clip(w0, lo, hi)
                return x / x.sum() if x.sum() > 0 else np.full(K, 1 / K)
            x = np.full(n_var, 0.2 / n_var)          # mostly the sampled mixture nearest the start, a little of all
            x[np.argmin(((P - w0) ** 2).sum(1))] += 0.8
            return x

        if trust == "hull":        # starts that map to the same nearest sampled mixture are one start in lam
            near = [int(np.argmin(((P - w0) ** 2).sum(1))) for w0 in x0s]
            x0s = [x0s[near.index(i)] for i in dict.fromkeys(near)][:4]

        def solve(params, w_starts) -> np.ndarray:
            def f_and_grad(x):                       # value and forward-difference gradient in one prediction
                w = x @ T
                pts = np.vstack([w, w + eye])
                v = sign * (self.model.predict(params, pts, S1)[0] @ vec)
                return float(v[0]), T @ ((v[1:] - v[0]) / 1e-6)
            cons = [{"type": "eq", "fun": lambda x: x.sum() - 1, "jac": lambda x: np.ones(n_var)}]
            if trust == "hull":    # the bounds and caps on w = lam @ P as linear constraints, where tighter than the hull
                if len(lo_j := np.flatnonzero(lo > P.min(0) + 1e-12)):
                    cons.append({"type": "ineq", "fun": lambda x: x @ T[:, lo_j] - lo[lo_j], "jac": lambda x: T[:, lo_j].T})
                if len(hi_j := np.flatnonzero(hi < P.max(0) - 1e-12)):
                    cons.append({"type": "ineq", "fun": lambda x: hi[hi_j] - x @ T[:, hi_j], "jac": lambda x: -T[:, hi_j].T})
            if nat is not None:
                cons.append({"type": "ineq", "fun": lambda x: max_kl - float(np.sum(np.where(
                    x @ T > 0, (x @ T) * np.log(np.maximum(x @ T, 1e-300) / nat), 0)))})
            var_bounds = [(0.0, 1.0)] * n_var if trust == "hull" else list(zip(lo, hi))
            best = None
            for w0 in w_starts:
                r = minimize(f_and_grad, to_var(w0), jac=True, method="SLSQP", bounds=var_bounds, constraints=cons,
                             options=dict(maxiter=300, ftol=1e-12))
                x = np.clip(r.x, *np.array(var_bounds).T)
                x = x / x.sum()
                w = np.clip(x @ T, 0, None)
                w = w / w.sum()
                if trust == "hull" and (np.any(w < lo - 1e-6) or np.any(w > hi + 1e-6)):
                    continue                         # a start that ended outside the bounds (infeasible)
                if best is None or f_and_grad(to_var(w) if trust != "hull" else x)[0] < best[0]:
                    best = (f_and_grad(to_var(w) if trust != "hull" else x)[0], w)
            if best is None:
                raise ValueError("recommend: no mixture in the sampled mixtures' convex hull satisfies the bounds and "
                                 "token caps: loosen them, pass trust='box', or trust=None to extrapolate")
            return best[1]

        w_star = solve(self.params, x0s)
        if np.any((w_star > user_hi - 1e-4) & (user_hi < 1)) or np.any((w_star < user_lo + 1e-4) & (user_lo > 0)):
            warns.append("the optimum sits on a bound or token cap: the constraint, not the law, decides there")
        dist = hull_distance(w_star, P_all) if len(P_all) >= 2 else float("nan")
        if trust is not None and dist > 1e-3:
            warns.append(f"the optimum lies outside the sampled mixtures' convex hull (L1 distance {dist:.3f}): inside "
                         "their per-domain ranges, but in a corner no run measured")
        elif trust is None and dist > 1e-3:
            warns.append(f"the optimum lies outside the sampled mixtures' convex hull (L1 distance {dist:.3f}; no trust "
                         "region): an extrapolation of the law")
        weights_ci = {d: (np.nan, np.nan) for d in self.domains}
        if self.boot and self.config.recommend_resamples:
            n = min(self.config.recommend_resamples, self._n_boot())
            # each bootstrap law from the point optimum and from uniform (its optimum is near the point's)
            ws = np.array([solve({k: v[i:i + 1] for k, v in self.boot.items()}, [w_star, np.full(K, 1 / K)])
                           for i in range(n)])
            q = [(1 - self.config.ci_level) / 2, (1 + self.config.ci_level) / 2]
            lo_q, hi_q = np.quantile(ws, q, axis=0)
            weights_ci = {d: (float(a), float(b)) for d, a, b in zip(self.domains, lo_q, hi_q)}
        pred = float(self.predict(w_star, N, D)[0])
        p_lo, p_hi = self.interval(w_star, N, D)
        gap_err = self.gap_error()
        baselines = {}
        named = {"uniform": np.full(K, 1 / K)}
        if self.natural:
            named["natural"] = np.array([self.natural[d] for d in self.domains])
        q = [(1 - self.config.ci_level) / 2, (1 + self.config.ci_level) / 2]
        for name, w in named.items():
            both = np.vstack([w_star, w])
            s = self.samples(both, N, D)
            p_better = float(np.mean(sign * (s[:, 0] - s[:, 1]) < 0)) if len(s) else np.nan
            b_lo, b_hi = self.interval(w, N, D)
            b_pred = float(self.predict(w, N, D)[0])
            gain = sign * (b_pred - pred)              # > 0: the recommendation is better
            g_lo, g_hi = (np.quantile(sign * (s[:, 1] - s[:, 0]), q) if len(s) else (np.nan, np.nan))
            e = gap_err if np.isfinite(gap_err) else 0.0
            baselines[name] = {"weights": dict(zip(self.domains, w)), "predicted": b_pred,
                               "predicted_ci": (float(b_lo[0]), float(b_hi[0])), "p_better": p_better,
                               "gain": gain, "gain_boot_ci": (float(g_lo), float(g_hi)),
                               "gain_ci": (float(gain - np.hypot(gain - g_lo, e)), float(gain + np.hypot(g_hi - gain, e))),
                               "hull_distance": hull_distance(w, P) if len(P) >= 2 else float("nan")}
        unclear = [n for n, b in baselines.items() if not b["gain_ci"][0] > 0]
        if not self.boot:
            unclear = list(baselines)
        supported = not unclear
        if supported:
            verdict = ("recommended: the predicted gain over " + " and ".join(
                f"{n} {b['gain']:+.4g} [{b['gain_ci'][0]:+.4g}, {b['gain_ci'][1]:+.4g}]" for n, b in baselines.items())
                + f" excludes zero ({self.config.ci_level:.0%} intervals: bootstrap and held-out gap error)")
        elif not self.boot:
            verdict = "no recommendation: the law has no bootstrap, so its predicted gain has no interval"
        else:
            verdict = ("no recommendation: predicted gain not distinguishable from zero (over " + ", ".join(
                f"{n}: {baselines[n]['gain']:+.4g} [{baselines[n]['gain_ci'][0]:+.4g}, {baselines[n]['gain_ci'][1]:+.4g}]"
                for n in unclear) + f"; {self.config.ci_level:.0%} intervals: bootstrap and held-out gap error "
                f"{gap_err:.3g}); the weights are the law's best candidate, not a recommendation")
        if tokens and D:
            epochs = {d: float(w * D / tokens[d]) for d, w in zip(self.domains, w_star)}
        if (beyond := self._beyond_measured(pred, gap_err, N, D)):
            warns.append(beyond)
        far = self._size_extrapolation(N, D)
        if far:
            warns.append(far)
        return Recommendation(dict(zip(self.domains, map(float, w_star))), weights_ci, pred,
                              (float(p_lo[0]), float(p_hi[0])), baselines, dict(zip(self.domains, map(float, hi))),
                              epochs, N, D, warns, supported=supported, verdict=verdict, trust=trust,
                              hull_distance=dist, gap_error=gap_err,
                              trust_range={d: (float(a), float(b)) for d, a, b in zip(self.domains, lo, hi)})

    def _beyond_measured(self, pred: float, gap_err: float, N, D) -> str:
        """A warning when the optimum's predicted objective beats the best measured run by more than the law's
        held-out gap error: an optimiser lands where the law errs in its favour (the winner's curse), so that level is
        the law's, not a measurement's ("" otherwise, or at another size than the runs')."""
        if not np.isfinite(gap_err) or not self._is_fit_size(N, D):
            return ""
        t = self.table if "_fit_size" not in self.table else self.table[self.table["_fit_size"].to_numpy(bool)]
        sign = -1.0 if self.objective.maximize else 1.0
        best = float(np.min(sign * self.objective.value(t))) * sign
        if sign * (best - pred) <= gap_err:
            return ""
        return (f"the optimum's predicted objective {pred:.4g} beats the best measured run ({best:.4g}) by "
                f"{abs(best - pred):.3g}, more than the law's held-out gap error ({gap_err:.3g}): that level is the "
                "law's extrapolation between runs (optimisers land where a law errs in their favour); expect the "
                "confirmation to measure less gain")

    def _size_extrapolation(self, N, D) -> str:
        """A warning when (N, D) lies beyond the sizes the law was fitted at ("" when inside)."""
        if not self.fit_size or (N is None and D is None):
            return ""
        cfg, parts = self.config, []
        for name, col, x in (("N", cfg.n_col, N), ("D", cfg.d_col, D)):
            if x is None or col not in self.table:
                continue
            v = self.table[col].to_numpy(float)
            factor = max(v.min() / x, x / v.max())
            if factor > 1.01:
                parts.append(f"{name} = {x:.3g} is {factor:.2g}x beyond the fitted {v.min():.3g}..{v.max():.3g}")
        return ("size extrapolation: " + "; ".join(parts) + ": the gain's intervals come from the fitted sizes and "
                "do not hold this extrapolation's error") if parts else ""

    def optimum_path(self, sizes: list[tuple[float, float]], **kwargs) -> pd.DataFrame:
        """The recommended weights at each (N, D): how the optimum moves with scale (joint law; the others
        only through token caps, which tighten as D grows)."""
        rows = []
        for N, D in sizes:
            r = self.recommend(N=N, D=D, **kwargs)
            rows.append({"N": N, "D": D, "predicted": r.predicted, **{f"w_{d}": w for d, w in r.weights.items()}})
        return pd.DataFrame(rows)

    def size_terms(self) -> tuple[bool, bool]:
        """(N varies, D varies) over the table: the size terms a size law fitted to it has (as in fit)."""
        cfg, t = self.config, self.table
        if cfg.n_col not in t or cfg.d_col not in t:
            return False, False
        return tuple(bool(np.ptp(np.log(t[col].to_numpy(float))) > 0) for col in (cfg.n_col, cfg.d_col))

    def form(self, family: str | None = None) -> str:
        """The law of `family` (default: this law's) as fitted to this table: size terms only where N or D varies."""
        return form(family or self.family, *self.size_terms())

    def _n_boot(self) -> int:
        return len(next(iter(self.boot.values()))) if self.boot else 0

    # -------------------------------------------------- text
    def cv_summary(self) -> str:
        row = self.cv.set_index("family").loc[self.family]
        return (f"held-out-mixture error of the {self.family} law ({int(row['folds'])}-fold over "
                f"{int(row['mixtures'])} mixtures{'' if self.config.cv_corners else ', pure mixtures never held out'}"
                f"): mean {row['mean_rel_error']:.2%}, max {row['max_rel_error']:.2%}, "
                f"Spearman {row['spearman']:.3f}"
                + (f"; the power law's {self.cv['mean_rel_error'].iloc[0]:.2%} is lower by less than "
                   f"{POW_MARGIN:.0%} of it: a tie keeps the {self.family} law"
                   if self.cv["family"].iloc[0] == "power" != self.family else ""))

    def summary(self) -> str:
        lines = [f"mixing law: {self.family} ({self.form()}), objective {self.objective.name!r} "
                 f"({'maximised' if self.objective.maximize else 'minimised'}), {len(self.domains)} domains, "
                 f"{len(self.table)} runs" + (f", fit size N={self.fit_size[0]:.3g} D={self.fit_size[1]:.3g}"
                                             if self.fit_size else "")]
        lines.append("  " + self.cv_summary())
        lines.append("  k-fold held-out-mixture error by family: " + ", ".join(
            f"{r.family} {r.mean_rel_error:.2%}" for r in self.cv.itertuples()))
        if np.isfinite(self.seed_noise):
            lines.append(f"  seed noise (std of the objective over repeated runs of a mixture): {self.seed_noise:.4g}")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def hull_distance(w: np.ndarray, P: np.ndarray) -> float:
    """L1 distance from the mixture w to the convex hull of the rows of P (a linear program: w = lam @ P + s+ - s-,
    lam on the simplex, minimise sum s+ + s-); 0 inside."""
    n, K = P.shape
    A = np.block([[P.T, np.eye(K), -np.eye(K)], [np.ones((1, n)), np.zeros((1, 2 * K))]])
    r = linprog(np.r_[np.zeros(n), np.ones(2 * K)], A_eq=A, b_eq=np.r_[w, 1.0], bounds=(0, None), method="highs")
    return float(r.fun) if r.status == 0 else float("nan")


def form(family: str, use_n: bool = True, use_d: bool = True) -> str:
    """A family's law in words, with the N and D terms only where the table varies N (use_n) or D (use_d): at one
    size they are constants, part of E, and the additive and joint laws are one law (what a fit can determine)."""
    if family not in SIZE_LAWS:
        return {"loglinear": "log y = t . w", "ridge": "log y = ridge on [w, log(w + 1e-3)]",
                "ye": "y = c + exp(t . w), Ye et al. 2024",
                "power": "y = E + (sum C_j w_j)^-alpha, a power law in the effective data"}[family]
    if not (use_n or use_d):
        return ("y = E + 1/sum C_j w_j^gamma_j, Shukor et al. 2025 at one size (N and D fixed: their terms are "
                "part of E)")
    if family == "additive":
        terms, defs = ["A/N^alpha"] * use_n + ["B/D^beta"] * use_d, []
    else:
        terms = ["A_w/N^alpha"] * use_n + ["B_w/D^beta"] * use_d
        defs = ["A_w = (sum CA_j w_j)^gamma_A"] * use_n + ["B_w = (sum CB_j w_j)^gamma_B"] * use_d
    return ", ".join([" + ".join(["y = E + 1/sum C_j w_j^gamma_j", *terms]), *defs,
                      f"Shukor et al. 2025 ({family})"])



# ------------------------------------------------------------------------------------------ fitting
def _mixture_keys(W: np.ndarray) -> np.ndarray:
    _, inv = np.unique(np.round(W, 4), axis=0, return_inverse=True)
    return inv.ravel()


def _fit_size(table: pd.DataFrame, cfg: MixingConfig, keys: np.ndarray) -> tuple[float, float] | None:
    if cfg.n_col not in table or cfg.d_col not in table:
        return None
    sizes = table[[cfg.n_col, cfg.d_col]].astype(float)
    counts = pd.DataFrame({"N": sizes[cfg.n_col], "D": sizes[cfg.d_col], "k": keys}).groupby(["N", "D"])["k"].nunique()
    best = counts[counts == counts.max()].index.max()        # most mixtures; ties: the largest size
    return float(best[0]), float(best[1])


def _shortfall(name: str, K: int, size_terms: int, keys: np.ndarray, points: np.ndarray) -> str:
    """Why the runs with mixture `keys` and (mixture, size) `points` are too few for a family ("" if enough).
    A size law needs more mixtures than its mixture parameters, and more (mixture, size) points than all of its
    parameters: its N and D terms are pinned by the sizes, not by more mixtures."""
    size_law = name in SIZE_LAWS
    need_mix = n_params(name, K, 0 if size_law else size_terms)
    n_mix = len(np.unique(keys))
    if n_mix < need_mix + 1:
        return (f"{name}: {n_mix} mixtures, needs more than its {need_mix} "
                f"{'mixture ' if size_law and size_terms else ''}parameters per target")
    need, n_pts = n_params(name, K, size_terms), len(np.unique(points))
    if size_law and n_pts < need + 1:
        return f"{name}: {n_pts} (mixture, size) points, needs more than its {need} parameters per target"
    return ""


def _families(names, K, size_terms, keys, points, at_size) -> tuple[list[str], list[str]]:
    ok, notes = [], []
    for name in names:
        rows = slice(None) if name in SIZE_LAWS else at_size
        if why := _shortfall(name, K, size_terms, keys[rows], points[rows]):
            notes.append(why)
        else:
            ok.append(name)
    return ok, notes


def fit(table: pd.DataFrame, objective=None, law: str = "auto", *, natural: dict[str, float] | None = None,
        config: MixingConfig | None = None, families: tuple[str, ...] | None = None) -> MixingLaw:
    """Fit a mixing law to `table` for `objective`; law="auto" picks the family with the lowest k-fold
    held-out-mixture error (module docstring). Raises FitError, naming the fix, on a table it cannot use.

    objective None (default): the natural-proportion loss where the natural proportions are known (natural= or
    corpus_tokens_<domain> columns), else the uniform average of the loss_<domain> columns, else a "loss" column;
    law.objective.name says which.

    families: the candidates of law="auto" (default FAMILIES; at one size without "joint", which is the additive law
    there: E + 1/sum_j C_j w_j^gamma_j)."""
    with one_blas_thread():             # many small matrix products: BLAS threads only add contention
        return _fit(table, objective, law, natural, config, families)


def _fit(table, objective, law, natural, config, families) -> MixingLaw:
    cfg = config or MixingConfig()
    if errs := cfg.errors():
        raise FitError("\n".join(errs))
    if law != "auto" and law not in FAMILIES:
        raise FitError(f"law={law!r}: use 'auto' or one of {FAMILIES}")
    table = table.reset_index(drop=True)
    domains = check_table(table)
    obj = make_objective(objective, table, domains, natural)
    check_table(table, obj.columns)
    Y_all = table[obj.columns].to_numpy(float)
    if np.any(Y_all <= 0):
        bad = [c for c, col in zip(obj.columns, Y_all.T) if np.any(col <= 0)]
        raise FitError(f"objective columns {bad} have values <= 0; the laws model log y or y - c with y > 0: "
                       "use a loss, or a positive metric (e.g. 1 - accuracy, or accuracy with maximize=True)")
    W_all = table[[W_PREFIX + d for d in domains]].to_numpy(float)
    W_all = W_all / W_all.sum(1, keepdims=True)
    K = len(domains)
    keys = _mixture_keys(W_all)
    size = _fit_size(table, cfg, keys)
    if size is not None:
        logN, logD = np.log(table[cfg.n_col].to_numpy(float)), np.log(table[cfg.d_col].to_numpy(float))
        at_size = (np.isclose(table[cfg.n_col].to_numpy(float), size[0]) &
                   np.isclose(table[cfg.d_col].to_numpy(float), size[1]))
        use_n, use_d = bool(np.ptp(logN) > 0), bool(np.ptp(logD) > 0)
    else:
        logN = logD = np.zeros(len(table))
        at_size, use_n, use_d = np.ones(len(table), bool), False, False
    S_all = (logN, logD)
    size_keys = np.unique(np.c_[logN, logD], axis=0, return_inverse=True)[1].ravel()
    points = keys * (size_keys.max() + 1) + size_keys
    candidates = list(families or FAMILIES) if law == "auto" else [law]
    if law == "auto" and not (use_n or use_d) and families is None:
        # at one size both size laws are one mixture law, E + 1/sum_j C_j w_j^gamma_j (their N and D terms drop out):
        # it is a candidate once, as "additive"
        candidates = [c for c in candidates if c != "joint"]
    ok, notes = _families(candidates, K, use_n + use_d, keys, points, at_size)
    if not ok:
        raise FitError(f"mixing law: too few mixtures for {candidates}: " + "; ".join(notes) + ". Add mixtures "
                       f"(python sweep.py +grid=mixture grid.mixtures.samples=<more>), or use law='loglinear' "
                       f"(needs {K + 1} mixtures for {K} domains)")
    warns = [f"not considered: {n}" for n in notes] if law == "auto" else []

    def rows_for(name):
        return np.ones(len(table), bool) if name in SIZE_LAWS else at_size

    # k-fold over held-out mixtures: every run of a held-out mixture (all sizes, all seeds) leaves the fold
    corner = np.isclose(W_all.max(1), 1.0)
    uniq = np.unique(keys[at_size & (cfg.cv_corners | ~corner)])
    folds = min(cfg.folds, len(uniq))
    perm = np.random.default_rng(cfg.seed).permutation(uniq)
    fold_of = {k: i % folds for i, k in enumerate(perm)}
    cv_rows, cv_pred = [], []
    point_fits = {}                     # family -> (model, params) fitted to every run, where the check needed it
    for name in ok:
        measured, predicted, run_ids, mix_ids = [], [], [], []
        if FOLD_WARM_START and (name == "power" or name in SIZE_LAWS and not (use_n or use_d)):
            # each fold's fit starts at the fit to every run instead of cold starts (the additive law at one size: four
            # a target, a fifth of the time; power: one a grid alpha), and runs to the fold's own least-squares
            # optimum: on RegMix's data and synthetic tables its held-out error equals the cold-started folds'
            # (bench/README.md, "the additive law at one size in auto" and "auto faster")
            full = make_family(name, use_n, use_d)
            point_fits[name] = (full, full.fit(W_all, Y_all, S_all, rows_for(name)[None].astype(float)))
        for f in range(folds):
            test = at_size & np.array([fold_of.get(k, -1) == f for k in keys])
            train = rows_for(name) & ~np.isin(keys, keys[test])
            if _shortfall(name, K, use_n + use_d, keys[train], points[train]):
                continue
            model = make_family(name, use_n, use_d)
            if name in point_fits:
                model.warm = point_fits[name][0].theta0
            M = train[None].astype(float)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p = model.fit(W_all, Y_all, S_all, M)
                pred = model.predict(p, W_all[test], (logN[test], logD[test]))[0] @ obj.vector
            measured += list(obj.value(table[test]))
            predicted += list(pred)
            run_ids += list(table.loc[test, "run_id"] if "run_id" in table else np.flatnonzero(test))
            mix_ids += list(keys[test])
        if not measured:
            notes.append(f"{name}: no fold had enough mixtures left to fit")
            continue
        m, p = np.array(measured), np.array(predicted)
        # scored per held-out mixture: its runs (seeds) averaged, so replicates sharpen the measurement they are
        # compared with instead of counting one mixture several times
        per_mix = pd.DataFrame({"k": mix_ids, "m": m, "p": p}).groupby("k").mean()
        rel = np.abs(per_mix["p"].to_numpy() / per_mix["m"].to_numpy() - 1)
        rho = (spearmanr(per_mix["m"], per_mix["p"]).statistic if len(per_mix) > 2 and np.ptp(per_mix["m"]) > 0
               else np.nan)
        cv_rows.append({"family": name, "folds": folds, "mixtures": len(uniq), "mean_rel_error": float(np.nanmean(rel)),
                        "max_rel_error": float(np.nanmax(rel)), "spearman": float(rho)})
        cv_pred.append(pd.DataFrame({"family": name, "run_id": run_ids, "mixture": mix_ids, "measured": m,
                                     "predicted": p}))
    if not cv_rows:
        raise FitError("mixing law: too few mixtures to cross-validate any family: " + "; ".join(notes)
                       + f". Add mixtures (python sweep.py +grid=mixture grid.mixtures.samples=<more>; {K} domains "
                         f"need more than {K + 1} mixtures at one size)")
    cv = pd.DataFrame(cv_rows).sort_values("mean_rel_error", ignore_index=True)
    chosen = cv["family"].iloc[0] if law == "auto" else law
    if law == "auto" and chosen == "power" and len(cv) > 1 and \
            cv["mean_rel_error"].iloc[0] > (1 - POW_MARGIN) * cv["mean_rel_error"].iloc[1]:
        # a tie keeps the runner-up: Ye's law with small transfers is nearly a power law in the effective data, and
        # on runs generated from it the two tie within the check's noise (power / ye 0.98-1.02, tests/
        # test_mixing_power.py); the power law is chosen only where it predicts held-out mixtures better
        chosen = cv["family"].iloc[1]

    rows = rows_for(chosen)
    if chosen in point_fits:
        model, params = point_fits[chosen]
    else:
        model = make_family(chosen, use_n, use_d)
        params = model.fit(W_all, Y_all, S_all, rows[None].astype(float))
    boot = None
    # a size law across sizes refits each resample by scipy, one at a time: fewer; at one size its resamples are
    # stepped together (Shukor._boot_one_size) and cost about what Ye's do
    n_boot = min(cfg.n_bootstrap, cfg.joint_bootstrap) if chosen in SIZE_LAWS and (use_n or use_d) else cfg.n_bootstrap
    if n_boot:
        idx = np.flatnonzero(rows)
        R = resample_weights(len(idx), n_boot, cfg.seed)
        parts = []
        for a in range(0, n_boot, BOOT_BLOCK):
            M = np.zeros((min(BOOT_BLOCK, n_boot - a), len(table)))
            M[:, idx] = R[a:a + BOOT_BLOCK]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parts.append(model.fit(W_all, Y_all, S_all, M))
        boot = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    used = table.assign(_fit_size=at_size)
    obj_vals = obj.value(table)
    noise = pd.Series(obj_vals[at_size]).groupby(keys[at_size]).std().dropna()
    res = MixingLaw(chosen, obj, domains, list(obj.columns), used, params, boot, model, cfg, cv,
                    pd.concat(cv_pred, ignore_index=True), size, natural or natural_proportions(table, domains),
                    corpus_tokens(table, domains), float(np.sqrt((noise ** 2).mean())) if len(noise) else np.nan,
                    warns)
    if chosen not in SIZE_LAWS and size is not None:
        # the one-size family again at each other size with enough mixtures, so predict(N=, D=) there is its own
        sizes_all = np.c_[table[cfg.n_col].to_numpy(float), table[cfg.d_col].to_numpy(float)]
        for n_s, d_s in np.unique(sizes_all, axis=0):
            rows_s = np.isclose(sizes_all[:, 0], n_s) & np.isclose(sizes_all[:, 1], d_s)
            if (n_s, d_s) == size or _shortfall(chosen, K, 0, keys[rows_s], points[rows_s]):
                continue
            m_s = make_family(chosen)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res.per_size[(float(n_s), float(d_s))] = (m_s, m_s.fit(W_all, Y_all, S_all, rows_s[None].astype(float)))
    if cv.set_index("family").loc[chosen, "mean_rel_error"] > 0.02:
        res.warnings.append(f"{chosen} predicts held-out mixtures only within "
                            f"{cv.set_index('family').loc[chosen, 'mean_rel_error']:.1%} on average: treat its "
                            "recommendation as a direction, not a number")
    for w in res.warnings:
        warnings.warn(w, FitWarning, stacklevel=2)
    return res


def heldout_by_size(law: MixingLaw, folds: int | None = None) -> pd.DataFrame:
    """A size law's held-out-mixture check at EVERY size: k-fold over mixtures, each held-out mixture's runs at all
    of its (N, D) predicted by the law refitted without any of that mixture's runs (fit's own check scores the
    fit size only). One row per held-out run: run_id, N, D, mixture (key), measured, predicted. Pure mixtures stay
    in training unless config.cv_corners (as in fit)."""
    if law.family not in SIZE_LAWS:
        raise FitError(f"heldout_by_size: the {law.family} law describes one size; fit a size law "
                       "(fit(..., law='joint' or 'additive')) to runs at several N or D")
    cfg, t = law.config, law.table
    W = t[[W_PREFIX + d for d in law.domains]].to_numpy(float)
    W = W / W.sum(1, keepdims=True)
    Y = t[law.targets].to_numpy(float)
    N, D = t[cfg.n_col].to_numpy(float), t[cfg.d_col].to_numpy(float)
    S = (np.log(N), np.log(D))
    keys = _mixture_keys(W)
    corner = np.isclose(W.max(1), 1.0)
    uniq = np.unique(keys[cfg.cv_corners | ~corner])
    k = min(folds or cfg.folds, len(uniq))
    perm = np.random.default_rng(cfg.seed).permutation(uniq)
    fold_of = {m: i % k for i, m in enumerate(perm)}
    fold = np.array([fold_of.get(m, -1) for m in keys])
    use_n, use_d = bool(np.ptp(S[0]) > 0), bool(np.ptp(S[1]) > 0)
    ids = t["run_id"].astype(str).to_numpy() if "run_id" in t else np.arange(len(t)).astype(str)
    parts = []
    for f in range(k):
        test = fold == f
        model = make_family(law.family, use_n, use_d)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = model.fit(W, Y, S, (~test)[None].astype(float))
            pred = model.predict(p, W[test], (S[0][test], S[1][test]))[0] @ law.objective.vector
        parts.append(pd.DataFrame({"run_id": ids[test], "N": N[test], "D": D[test], "mixture": keys[test],
                                   "measured": law.objective.value(t[test]), "predicted": pred}))
    return pd.concat(parts, ignore_index=True)


def heldout_summary(pred: pd.DataFrame) -> pd.DataFrame:
    """Per (N, D) of heldout_by_size's rows: held-out mixtures, mean and max relative error, Spearman (seeds of a
    mixture averaged first, as fit's check does)."""
    rows = []
    for (n, d), g in pred.groupby(["N", "D"]):
        per_mix = g.groupby("mixture")[["measured", "predicted"]].mean()
        rel = np.abs(per_mix["predicted"] / per_mix["measured"] - 1)
        rho = (spearmanr(per_mix["measured"], per_mix["predicted"]).statistic
               if len(per_mix) > 2 and np.ptp(per_mix["measured"]) > 0 else np.nan)
        rows.append({"N": n, "D": d, "mixtures": len(per_mix), "mean_rel_error": float(rel.mean()),
                     "max_rel_error": float(rel.max()), "spearman": float(rho)})
    return pd.DataFrame(rows)


def split_check(table: pd.DataFrame, n_heldout: int, objective=None, law: str = "auto", *,
                natural: dict[str, float] | None = None, config: MixingConfig | None = None,
                keep: list[dict[str, float]] | None = None) -> tuple[MixingLaw, pd.DataFrame, dict]:
    """A held-out split: `n_heldout` interior mixtures (drawn with config.seed; never pure ones, nor those in `keep`,
    e.g. uniform and natural, the baselines) leave the table; the law is fitted (its family chosen, its k-fold check
    run) on the rest and predicts them. Returns (that law, one row per held-out mixture: mixture weights, measured
    mean over its runs, predicted, relative error, runs; a summary: mixtures, mean and max relative error, Spearman)."""
    cfg = config or MixingConfig()
    domains = check_table(table)
    W = table[[W_PREFIX + d for d in domains]].to_numpy(float)
    W = W / W.sum(1, keepdims=True)
    keys = _mixture_keys(W)
    interior = W.max(1) < 1 - 1e-6
    for k in keep or []:
        interior &= np.abs(W - np.array([k.get(d, 0.0) for d in domains])).max(1) > 1e-4
    pool = np.unique(keys[interior])
    if not 0 < n_heldout < len(pool):
        raise FitError(f"split_check: n_heldout={n_heldout}, but the table has {len(pool)} interior mixtures to draw "
                       "from (not pure, not the kept baselines): hold out between 1 and "
                       f"{len(pool) - 1}, and leave the fit enough (more than its parameters per target)")
    out_keys = np.random.default_rng(cfg.seed).choice(pool, n_heldout, replace=False)
    test = np.isin(keys, out_keys)
    fitted = fit(table[~test].reset_index(drop=True), objective, law, natural=natural, config=cfg)
    held = table[test].reset_index(drop=True)
    if fitted.fit_size:                          # a one-size law predicts its fit size: score the runs there
        at = (np.isclose(held[cfg.n_col].astype(float), fitted.fit_size[0]) &
              np.isclose(held[cfg.d_col].astype(float), fitted.fit_size[1])) if cfg.n_col in held else None
        if at is not None and fitted.family not in SIZE_LAWS:
            held = held[np.asarray(at)].reset_index(drop=True)
    Wh = held[[W_PREFIX + d for d in domains]].to_numpy(float)
    Wh = Wh / Wh.sum(1, keepdims=True)
    if fitted.family in SIZE_LAWS:
        pred = np.array([fitted.predict(w, N=float(n), D=float(d))[0] for w, n, d in
                         zip(Wh, held[cfg.n_col].astype(float), held[cfg.d_col].astype(float))])
    else:
        pred = fitted.predict(Wh)
    rows = pd.DataFrame({"mixture": _mixture_keys(Wh), "measured": fitted.objective.value(held), "predicted": pred,
                         **{W_PREFIX + d: Wh[:, j] for j, d in enumerate(domains)}})
    per = rows.groupby("mixture").mean().assign(runs=rows.groupby("mixture").size()).reset_index(drop=True)
    per["rel_error"] = per["predicted"] / per["measured"] - 1
    rho = spearmanr(per["measured"], per["predicted"]).statistic if len(per) > 2 else np.nan
    summary = {"mixtures": len(per), "fitted_mixtures": int(len(np.unique(keys[~test]))), "family": fitted.family,
               "mean_rel_error": float(per["rel_error"].abs().mean()), "max_rel_error": float(per["rel_error"].abs().max()),
               "spearman": float(rho)}
    return fitted, per, summary


# ------------------------------------------------------------------------------------------ interop
def read_olmix(path, ratios: str = "ratios.csv", metrics: str = "metrics.csv") -> pd.DataFrame:
    """A mixture table from Olmix-style CSVs in `path`: ratios.csv (run_id, [name], one column per domain) and
    metrics.csv (run_id, [name], metric columns), joined on run_id. Domain columns become w_<domain>; a metric
    column named after a domain becomes loss_<domain>; other metrics keep their names."""
    from pathlib import Path
    p = Path(path)
    r, m = pd.read_csv(p / ratios), pd.read_csv(p / metrics)
    for name, df in (("ratios", r), ("metrics", m)):
        if "run_id" not in df:
            raise FitError(f"{p / (ratios if name == 'ratios' else metrics)}: needs a run_id column "
                           f"(has {list(df.columns)[:8]})")
    doms = [c for c in r.columns if c not in ("run_id", "name", "index")]
    out = r[["run_id"]].assign(**{W_PREFIX + d: pd.to_numeric(r[d], errors="coerce") for d in doms})
    mets = {c: (LOSS_PREFIX + c if c in doms else c) for c in m.columns if c not in ("run_id", "name", "index")}
    out = out.merge(m[["run_id", *mets]].rename(columns=mets), on="run_id", how="inner")
    if len(out) < len(r):
        warnings.warn(f"read_olmix: {len(r) - len(out)} run(s) in {ratios} have no row in {metrics}", FitWarning,
                      stacklevel=2)
    return out


def write_olmix(table: pd.DataFrame, path, metrics: list[str] | None = None) -> tuple:
    """Write ratios.csv and metrics.csv (Olmix's layout) from a mixture table; loss_<domain> columns are
    written under the domain's name. Returns the two paths."""
    from pathlib import Path
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    doms = domains_of(table)
    ids = table["run_id"] if "run_id" in table else pd.Series([f"run{i}" for i in range(len(table))])
    ratios = pd.DataFrame({"run_id": ids.to_numpy(), **{d: table[W_PREFIX + d].to_numpy() for d in doms}})
    cols = metrics or [c for c in table.columns if c.startswith(LOSS_PREFIX)]
    mets = pd.DataFrame({"run_id": ids.to_numpy(), **{(c[len(LOSS_PREFIX):] if c.startswith(LOSS_PREFIX) else c):
                                                      table[c].to_numpy() for c in cols}})
    ratios.to_csv(p / "ratios.csv", index=False)
    mets.to_csv(p / "metrics.csv", index=False)
    return p / "ratios.csv", p / "metrics.csv"


# ------------------------------------------------------------------------------------------ synthetic
def synthetic_ye_table(n_mixtures: int, n_domains: int, noise: float = 0.002, seed: int = 0,
                       params: dict | None = None, concentration: float = 1.0) -> tuple[pd.DataFrame, dict]:
    """Runs whose per-domain losses follow Ye et al.'s law with known parameters (returned): c_i in [1.5, 3],
    t_ii < 0 (a domain's own data helps most), small off-diagonal transfer; multiplicative log-normal noise.
    Mixtures: Dirichlet samples (concentration x K around uniform) plus the pure domains."""
    rng = np.random.default_rng(seed)
    K = n_domains
    doms = [f"d{i:02d}" for i in range(K)]
    if params is None:
        c = rng.uniform(1.5, 3.0, K)
        t = rng.uniform(-0.3, 0.1, (K, K))
        t[np.diag_indices(K)] = rng.uniform(-2.5, -1.0, K)
        logk = np.log(rng.uniform(0.5, 1.5, K))
        params = {"c": c, "t": t + logk[:, None], "domains": doms}
    W = np.vstack([rng.dirichlet(np.full(K, concentration), size=max(n_mixtures - K, 0)), np.eye(K)])[:n_mixtures]
    L = params["c"][None] + np.exp(W @ params["t"].T)
    L = L * np.exp(noise * rng.standard_normal(L.shape))
    df = pd.DataFrame({"run_id": [f"m{i:04d}" for i in range(len(W))],
                       **{W_PREFIX + d: W[:, i] for i, d in enumerate(doms)},
                       **{LOSS_PREFIX + d: L[:, i] for i, d in enumerate(doms)}})
    return df, params


def synthetic_power_table(n_mixtures: int, n_domains: int, noise: float = 0.002, seed: int = 0,
                          params: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """Runs whose per-domain losses follow the power law in effective data (Power) with known parameters (returned):
    E_i in [1.5, 3], alpha_i in [0.2, 0.6], C_ii = 1-3 (the own domain), C_ij 5-30% of it (transfer);
    multiplicative log-normal noise. Mixtures: Dirichlet samples (uniform) plus the pure domains."""
    rng = np.random.default_rng(seed)
    K = n_domains
    doms = [f"d{i:02d}" for i in range(K)]
    if params is None:
        logC = np.log(rng.uniform(0.05, 0.3, (K, K)))
        logC[np.diag_indices(K)] = 0.0
        logC += np.log(rng.uniform(1.0, 3.0, K))[:, None]
        params = {"E": rng.uniform(1.5, 3.0, K), "alpha": rng.uniform(0.2, 0.6, K), "logC": logC, "domains": doms}
    W = np.vstack([rng.dirichlet(np.ones(K), size=max(n_mixtures - K, 0)), np.eye(K)])[:n_mixtures]
    L = params["E"][None] + (W @ np.exp(params["logC"]).T) ** -params["alpha"][None]
    L = L * np.exp(noise * rng.standard_normal(L.shape))
    df = pd.DataFrame({"run_id": [f"m{i:04d}" for i in range(len(W))],
                       **{W_PREFIX + d: W[:, i] for i, d in enumerate(doms)},
                       **{LOSS_PREFIX + d: L[:, i] for i, d in enumerate(doms)}})
    return df, params


def synthetic_joint_table(n_mixtures: int, n_domains: int, sizes, noise: float = 0.002, seed: int = 0,
                          params: dict | None = None, kind: str = "additive") -> tuple[pd.DataFrame, dict]:
    """Runs whose per-domain losses follow one of Shukor et al.'s laws (kind: "additive" or "joint") with known
    parameters at every (N, D) in `sizes`; the same mixtures (Dirichlet samples plus the pure domains) at each
    size. In the joint truth a target's own domain makes its data term smaller (CB small on the diagonal), so
    its optimal weight moves with D."""
    rng = np.random.default_rng(seed)
    K = n_domains
    doms = [f"d{i:02d}" for i in range(K)]
    if params is None:
        logC = np.log(rng.uniform(0.3, 1.0, (K, K)))
        logC[np.diag_indices(K)] = np.log(rng.uniform(2.0, 4.0, K))     # own-domain data helps most
        params = {"E": rng.uniform(1.2, 2.0, K), "A": rng.uniform(20, 40, K), "alpha": rng.uniform(0.3, 0.4, K),
                  "B": rng.uniform(200, 400, K), "beta": rng.uniform(0.28, 0.36, K), "logC": logC,
                  "gamma": rng.uniform(0.3, 0.6, (K, K)), "domains": doms}
        if kind == "joint":
            params["alpha"] = np.full(K, rng.uniform(0.3, 0.4))       # one exponent per target, as in the law
            params["beta"] = np.full(K, rng.uniform(0.28, 0.36))
            params["gamma_A"], params["gamma_B"] = rng.uniform(0.7, 1.3, K), rng.uniform(0.7, 1.3, K)
            params["CA"] = params["A"][:, None] ** (1 / params["gamma_A"][:, None]) * rng.uniform(0.7, 1.4, (K, K))
            rel = rng.uniform(0.8, 1.5, (K, K))
            rel[np.diag_indices(K)] = 0.3
            params["CB"] = params["B"][:, None] ** (1 / params["gamma_B"][:, None]) * rel
    elif kind not in SIZE_LAWS:
        raise ValueError(f"kind={kind!r}: use one of {SIZE_LAWS}")
    W = np.vstack([rng.dirichlet(np.ones(K), size=max(n_mixtures - K, 0)), np.eye(K)])[:n_mixtures]
    rows = []
    for N, D in sizes:
        L = joint_truth(params, W, N, D) * np.exp(noise * rng.standard_normal((len(W), K)))
        for i, w in enumerate(W):
            rows.append({"run_id": f"m{i:03d}-N{N:.0e}-D{D:.0e}", "params_nonembedding": N, "tokens": D,
                         **{W_PREFIX + d: w[j] for j, d in enumerate(doms)},
                         **{LOSS_PREFIX + d: L[i, j] for j, d in enumerate(doms)}})
    return pd.DataFrame(rows), params


def joint_truth(params: dict, W: np.ndarray, N: float, D: float) -> np.ndarray:
    """[mixtures, domains] the losses of Shukor et al.'s law with known parameters (synthetic_joint_table's):
    the joint law where params has CA/CB, else the additive law."""
    W = np.atleast_2d(W)
    with np.errstate(divide="ignore"):
        logW = np.log(W)
    s = np.exp(params["logC"][None] + params["gamma"][None] * logW[:, None, :]).sum(-1)     # [m, target]
    if "CA" in params:
        A = (W @ params["CA"].T) ** params["gamma_A"][None]
        B = (W @ params["CB"].T) ** params["gamma_B"][None]
    else:
        A, B = params["A"][None], params["B"][None]
    return params["E"] + A / N ** params["alpha"] + B / D ** params["beta"] + 1 / s
