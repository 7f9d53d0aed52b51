"""From a fitted loss surface (approach 3) to decisions: how big a model, how many tokens.

    recommend(law, budget=C)            N_opt, D_opt, tokens per parameter, expected loss, with intervals
    recommend(law, target_loss=L)       the smallest compute that reaches L, and its allocation
    off_optimum(law, C, factors)        cost of a smaller model trained longer (loss penalty at the same C;
                                        extra compute for the same loss), as teams do to save inference
    inference_optimal(law, L, T_inf)    minimise training + inference FLOPs (2N per inference token) at loss L
                                        (Sardana et al. 2023, "Beyond Chinchilla-Optimal")
    data_constrained(law, C, U)         best allocation with U unique tokens, repeated epochs worth less:
                                        D' = U + U R* (1 - exp(-R / R*)), R = D/U - 1 repetitions, R* = 15.4
                                        (Muennighoff et al. 2023, "Scaling Data-Constrained Language Models",
                                        fitted R*_D = 15.39; their R*_N = 5.31 for excess parameters is not used)

Bad requests are loud: a budget more than 10x outside the fitted compute range warns (the warning is kept
on the Recommendation), more than 10^4 x raises unless allow_far=True; an unreachable loss raises.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import brentq, minimize_scalar

from analysis.laws.approach3 import LossSurface
from analysis.laws.common import warn

R_STAR_D = 15.4            # Muennighoff et al. 2023: repetitions at which repeated data's value has decayed by 1/e
INFERENCE_FLOPS_PER_TOKEN = 2.0   # per parameter (forward pass), as Sardana et al. 2023
WARN_FACTOR, REFUSE_FACTOR = 10.0, 1e4
FEW_RUNS = 15


class ExtrapolationError(ValueError):
    """The request lies too far outside what the sweep measured for any number to be meaningful."""


@dataclass
class Recommendation:
    budget: float                      # training FLOPs C (the law's convention)
    n_opt: float
    d_opt: float
    loss: float
    n_ci: tuple[float, float]
    d_ci: tuple[float, float]
    loss_ci: tuple[float, float]
    target_loss: float | None = None
    config: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def tokens_per_param(self) -> float:
        return self.d_opt / self.n_opt

    @property
    def tokens_per_param_ci(self) -> tuple[float, float]:
        # N and D move together on the isoFLOP line (D = C / kN): the interval follows from N's
        return (self.d_ci[0] / self.n_ci[1], self.d_ci[1] / self.n_ci[0])

    def row(self) -> dict:
        return {"C": self.budget, "N_opt": self.n_opt, "N_lo": self.n_ci[0], "N_hi": self.n_ci[1],
                "D_opt": self.d_opt, "D_lo": self.d_ci[0], "D_hi": self.d_ci[1],
                "tokens_per_param": self.tokens_per_param, "loss": self.loss, "loss_lo": self.loss_ci[0],
                "loss_hi": self.loss_ci[1], "warnings": "; ".join(self.warnings)}


def check_budget(law: LossSurface, C: float, allow_far: bool, notes: list[str]) -> None:
    lo, hi = law.c_range
    factor = max(lo / C, C / hi)
    if factor > REFUSE_FACTOR and not allow_far:
        raise ExtrapolationError(
            f"budget C={C:.3g} is {factor:.0e}x outside the fitted range [{lo:.3g}, {hi:.3g}] "
            f"(more than {REFUSE_FACTOR:.0e}x): the law was not measured there. Sweep closer budgets, "
            "or pass allow_far=True to get a number anyway")
    if factor > WARN_FACTOR:
        warn(f"C={C:.3g} is {factor:.3g}x outside the fitted range [{lo:.3g}, {hi:.3g}]: an extrapolation over "
             f"{np.log10(factor):.1f} orders of magnitude; treat the interval as a lower bound on the uncertainty",
             notes)
    if law.n_runs < FEW_RUNS:
        warn(f"the law was fitted to {law.n_runs} runs (fewer than {FEW_RUNS}): intervals are wide and fragile",
             notes)
    if not law.converged:
        warn("the approach-3 fit did not converge: its numbers are not reliable", notes)


def recommend(law: LossSurface, budget: float | None = None, target_loss: float | None = None,
              allow_far: bool = False) -> Recommendation:
    """Compute-optimal N, D for a budget C, or for the cheapest C that reaches `target_loss`."""
    if (budget is None) == (target_loss is None):
        raise ValueError("recommend: give exactly one of budget= (FLOPs) or target_loss=")
    if target_loss is not None:
        budget = compute_for_loss(law, target_loss)
    notes: list[str] = []
    check_budget(law, budget, allow_far, notes)
    n_ci, d_ci, l_ci = (law.interval(fn, budget) for fn in ("n_opt", "d_opt", "loss_opt"))
    as_tuple = lambda x: (float(x[0]), float(x[1]))
    return Recommendation(budget=float(budget), n_opt=float(law.n_opt(budget)), d_opt=float(law.d_opt(budget)),
                          loss=float(law.loss_opt(budget)), n_ci=as_tuple(n_ci), d_ci=as_tuple(d_ci),
                          loss_ci=as_tuple(l_ci), target_loss=target_loss, config=law.config.describe(),
                          warnings=notes)


def compute_for_loss(law: LossSurface, target_loss: float) -> float:
    """The smallest C whose compute-optimal loss equals target_loss."""
    if not target_loss > law.E:
        raise ValueError(f"target_loss={target_loss}: unreachable, the fitted irreducible loss is E={law.E:.4g}; "
                         "ask for a loss above E")
    f = lambda lc: float(law.loss_opt(np.exp(lc))) - target_loss
    lo, hi = np.log(1e-6 * law.c_range[0]), np.log(1e40)
    if f(hi) > 0:
        raise ValueError(f"target_loss={target_loss}: needs more than 1e40 FLOPs under the fitted law")
    if f(lo) < 0:
        return float(np.exp(lo))
    return float(np.exp(brentq(f, lo, hi, xtol=1e-10)))


def tokens_for_loss(law: LossSurface, N: float, target_loss: float) -> float:
    """D with L(N, D) = target_loss; inf when N alone cannot reach it."""
    gap = target_loss - law.E - law.A / N ** law.alpha
    return float((law.B / gap) ** (1 / law.beta)) if gap > 0 else np.inf


def off_optimum(law: LossSurface, C: float, size_factors=(2.0, 1.0, 0.5, 0.25, 0.1)) -> pd.DataFrame:
    """Models f x N_opt trained at the same C (so longer when smaller): loss penalty at equal compute, and the
    compute needed to match the optimum's loss (extra_compute = C'/C - 1; inf when that size never gets there)."""
    n_opt, l_opt = float(law.n_opt(C)), float(law.loss_opt(C))
    rows = []
    for f in size_factors:
        N = f * n_opt
        D = C / (law.k * N)
        D_same = tokens_for_loss(law, N, l_opt)
        rows.append({"size_factor": f, "N": N, "D": D, "tokens_per_param": D / N, "loss": float(law.predict(N, D)),
                     "loss_penalty": float(law.predict(N, D)) - l_opt, "D_same_loss": D_same,
                     "extra_compute": law.k * N * D_same / C - 1})
    return pd.DataFrame(rows)


def inference_optimal(law: LossSurface, target_loss: float, inference_tokens: float) -> dict:
    """The N, D reaching `target_loss` with least training (k N D) + inference (2 N T) FLOPs (Sardana et al. 2023)."""
    C_chin = compute_for_loss(law, target_loss)
    n_min = (law.A / (target_loss - law.E)) ** (1 / law.alpha)     # below this N the loss is out of reach

    def total(logN: float) -> float:
        N = np.exp(logN)
        return law.k * N * tokens_for_loss(law, N, target_loss) + INFERENCE_FLOPS_PER_TOKEN * N * inference_tokens

    n_chin = float(law.n_opt(C_chin))
    res = minimize_scalar(total, bounds=(np.log(n_min) + 1e-9, np.log(n_chin) + np.log(10)), method="bounded",
                          options={"xatol": 1e-8})
    N = float(np.exp(res.x))
    D = tokens_for_loss(law, N, target_loss)
    chin_total = C_chin + INFERENCE_FLOPS_PER_TOKEN * n_chin * inference_tokens
    return {"target_loss": target_loss, "inference_tokens": inference_tokens, "N": N, "D": D,
            "tokens_per_param": D / N, "train_flops": law.k * N * D, "total_flops": float(res.fun),
            "chinchilla_N": n_chin, "chinchilla_D": float(law.d_opt(C_chin)), "chinchilla_total_flops": chin_total,
            "saving": 1 - float(res.fun) / chin_total}


def effective_tokens(D, unique_tokens: float, r_star: float = R_STAR_D):
    """Muennighoff et al.'s D': the first epoch counts fully, repetitions R = D/U - 1 decay with R*."""
    D = np.asarray(D, float)
    R = np.maximum(D / unique_tokens - 1, 0)
    return np.where(D <= unique_tokens, D, unique_tokens + unique_tokens * r_star * (1 - np.exp(-R / r_star)))


def data_constrained(law: LossSurface, C: float, unique_tokens: float, r_star: float = R_STAR_D,
                     allow_far: bool = False) -> dict:
    """Best N for budget C when only `unique_tokens` exist: loss L(N, D'(C / kN)); compare with unlimited data."""
    notes: list[str] = []
    check_budget(law, C, allow_far, notes)
    loss = lambda logN: float(law.predict(np.exp(logN), effective_tokens(C / (law.k * np.exp(logN)), unique_tokens,
                                                                          r_star)))
    n_free = float(law.n_opt(C))
    res = minimize_scalar(loss, bounds=(np.log(n_free) - np.log(1e3), np.log(n_free) + np.log(1e3)), method="bounded",
                          options={"xatol": 1e-8})
    N = float(np.exp(res.x))
    D = C / (law.k * N)
    epochs = D / unique_tokens
    if epochs > 4 * (1 + r_star):
        warn(f"data_constrained: {epochs:.0f} epochs of the unique data: far past the regime Muennighoff et al. "
             "measured (returns vanish after ~16 epochs); more unique data would help more than compute", notes)
    return {"C": C, "unique_tokens": unique_tokens, "N": N, "D": D, "epochs": epochs,
            "effective_tokens": float(effective_tokens(D, unique_tokens, r_star)), "loss": float(res.fun),
            "unconstrained_N": n_free, "unconstrained_D": float(law.d_opt(C)),
            "unconstrained_loss": float(law.loss_opt(C)), "r_star": r_star, "warnings": notes}


def default_budgets(law: LossSurface) -> list[float]:
    """10x and 100x the largest swept budget, and a few standard ones."""
    hi = law.c_range[1]
    return sorted({hi, 10 * hi, 100 * hi, 1e17, 1e19, 1e21, 1e23})


def table(law: LossSurface, budgets=None) -> pd.DataFrame:
    """One row per budget; requests refused as extrapolation appear as rows saying so, not as numbers."""
    rows = []
    for C in budgets or default_budgets(law):
        try:
            rows.append(recommend(law, budget=C).row())
        except ExtrapolationError as e:
            rows.append({"C": C, "warnings": "refused: " + str(e).split(": the law")[0]})
    return pd.DataFrame(rows)
