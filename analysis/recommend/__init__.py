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

Every quantity comes with a bootstrap interval (config.ci_level): each analysis is evaluated on all resampled laws
at once (their parameters as arrays; the optimisations are elementwise golden-section searches), reported as
<name>_lo / <name>_hi columns (off_optimum) or <name>_ci = (lo, hi) entries (the dicts); NaN without a bootstrap.

Bad requests are loud: a budget more than 10x outside the fitted compute range warns (the warning is kept
on the Recommendation), more than 10^4 x raises unless allow_far=True; an unreachable loss raises.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from analysis.laws.common import ResampledLaws, ci, warn

if TYPE_CHECKING:      # the CLI on a laws.json must start fast: no pandas, scipy or matplotlib on its path
    import pandas as pd

    from analysis.laws.approach3 import LossSurface

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
    C = float(_compute_for_loss(law, target_loss, law.c_range[0]))
    if not np.isfinite(C):
        raise ValueError(f"target_loss={target_loss}: needs more than 1e40 FLOPs under the fitted law")
    return C


def _compute_for_loss(law, target_loss: float, c_lo: float):
    """Closed form, elementwise over array-valued laws: on the frontier both power terms scale as (C/k)^-g with
    g = alpha beta / (alpha + beta), so loss_opt(C) = E + K (C/k)^-g. NaN where unreachable or past 1e40 FLOPs;
    floored at 1e-6 c_lo (any smaller budget already reaches the loss)."""
    g = law.alpha * law.beta / (law.alpha + law.beta)
    K = law.A * law.G ** -law.alpha + law.B * law.G ** law.beta
    gap = target_loss - law.E
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        C = law.k * np.where(gap > 0, (K / np.where(gap > 0, gap, 1)) ** (1 / g), np.nan)
    C = np.maximum(C, 1e-6 * c_lo)
    return np.where(C <= 1e40, C, np.nan)


def tokens_for_loss(law, N, target_loss: float):
    """D with L(N, D) = target_loss; inf when N alone cannot reach it (elementwise over arrays)."""
    gap = target_loss - law.E - law.A / np.asarray(N, float) ** law.alpha
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        D = np.where(gap > 0, (law.B / np.where(gap > 0, gap, 1)) ** (1 / law.beta), np.inf)
    return float(D) if D.ndim == 0 else D


# ---- bootstrap intervals: every quantity is evaluated on all resampled laws at once (arrays of parameters)
def _resampled(law: LossSurface) -> ResampledLaws | None:
    s = np.asarray(getattr(law, "samples", np.empty((0, 5))), float)
    return ResampledLaws(*s.T, k=law.k) if len(s) else None


def _interval(samples, level: float) -> tuple[float, float]:
    """ci() over resamples; +-inf (e.g. "this size never reaches that loss") are kept as the extreme values they are,
    NaN (quantity undefined on that resample) are dropped."""
    s = np.asarray(samples, float)
    s = s[~np.isnan(s)]
    if np.isinf(s).any():
        lo, hi = np.quantile(s, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
        return float(lo), float(hi)
    return ci(s, level)


def _intervals(law: LossSurface, evaluate, keys) -> dict[str, tuple[float, float]]:
    """{key: (lo, hi)} of evaluate(resampled laws)[key]; NaN intervals when the law has no bootstrap."""
    laws = _resampled(law)
    if laws is None:
        return {k: (np.nan, np.nan) for k in keys}
    vals = evaluate(laws)
    return {k: _interval(vals[k], law.config.ci_level) for k in keys}


def _golden_min(f, lo, hi, iters: int = 120):
    """Elementwise golden-section minimum of a unimodal f over [lo, hi] (arrays): one array evaluation per step,
    so 1000 resamples cost about as much as one. 120 steps shrink the bracket by 0.618^120 ~ 1e-25."""
    r = (np.sqrt(5) - 1) / 2
    a, b = np.broadcast_arrays(np.asarray(lo, float), np.asarray(hi, float))
    a, b = a.copy(), b.copy()
    x1, x2 = b - r * (b - a), a + r * (b - a)
    f1, f2 = f(x1), f(x2)
    for _ in range(iters):
        left = f1 <= f2                          # the minimum lies in [a, x2], else in [x1, b]
        a, b = np.where(left, a, x1), np.where(left, x2, b)
        x = np.where(left, b - r * (b - a), a + r * (b - a))
        fx = f(x)
        x1, f1, x2, f2 = (np.where(left, x, x2), np.where(left, fx, f2),
                          np.where(left, x1, x), np.where(left, f1, fx))
    x = (a + b) / 2
    return x, f(x)


OFF_KEYS = ("N", "D", "tokens_per_param", "loss", "loss_penalty", "D_same_loss", "extra_compute")


def _off(law, C: float, f: float) -> dict:
    n_opt, l_opt = law.n_opt(C), law.loss_opt(C)
    N = f * n_opt
    D = C / (law.k * N)
    loss = law.predict(N, D)
    D_same = tokens_for_loss(law, N, l_opt)
    return {"N": N, "D": D, "tokens_per_param": D / N, "loss": loss, "loss_penalty": loss - l_opt,
            "D_same_loss": D_same, "extra_compute": law.k * N * D_same / C - 1}


def off_optimum(law: LossSurface, C: float, size_factors=(2.0, 1.0, 0.5, 0.25, 0.1)) -> pd.DataFrame:
    """Models f x N_opt trained at the same C (so longer when smaller): loss penalty at equal compute, and the
    compute needed to match the optimum's loss (extra_compute = C'/C - 1; inf when that size never gets there).
    Each quantity q has a bootstrap interval q_lo, q_hi (f x each resample's own N_opt, at the same C)."""
    import pandas as pd

    rows = []
    for f in size_factors:
        row = {"size_factor": f, **{k: float(v) for k, v in _off(law, C, f).items()}}
        for k, (lo, hi) in _intervals(law, lambda laws, f=f: _off(laws, C, f), OFF_KEYS).items():
            row[f"{k}_lo"], row[f"{k}_hi"] = lo, hi
        rows.append(row)
    return pd.DataFrame(rows)


INFERENCE_KEYS = ("N", "D", "tokens_per_param", "train_flops", "total_flops", "chinchilla_N", "chinchilla_D",
                  "chinchilla_total_flops", "saving")


def _inference(law, target_loss: float, inference_tokens: float, c_lo: float) -> dict:
    C_chin = _compute_for_loss(law, target_loss, c_lo)
    with np.errstate(invalid="ignore", divide="ignore"):
        n_min = (law.A / (target_loss - law.E)) ** (1 / law.alpha)     # below this N the loss is out of reach
    n_chin = law.n_opt(C_chin)

    def total(logN):
        N = np.exp(logN)
        return law.k * N * tokens_for_loss(law, N, target_loss) + INFERENCE_FLOPS_PER_TOKEN * N * inference_tokens

    with np.errstate(invalid="ignore"):
        logN, best = _golden_min(total, np.log(n_min) + 1e-9, np.log(n_chin) + np.log(10))
    N = np.exp(logN)
    D = tokens_for_loss(law, N, target_loss)
    chin_total = C_chin + INFERENCE_FLOPS_PER_TOKEN * n_chin * inference_tokens
    return {"N": N, "D": D, "tokens_per_param": D / N, "train_flops": law.k * N * D, "total_flops": best,
            "chinchilla_N": n_chin, "chinchilla_D": law.d_opt(C_chin), "chinchilla_total_flops": chin_total,
            "saving": 1 - best / chin_total}


def inference_optimal(law: LossSurface, target_loss: float, inference_tokens: float) -> dict:
    """The N, D reaching `target_loss` with least training (k N D) + inference (2 N T) FLOPs (Sardana et al. 2023).
    Each quantity q has a bootstrap interval q_ci = (lo, hi); resamples whose E is above target_loss cannot reach it
    and are left out of the intervals (their share is `unreachable_share`)."""
    compute_for_loss(law, target_loss)                   # loud on an unreachable target
    point = {k: float(v) for k, v in _inference(law, target_loss, inference_tokens, law.c_range[0]).items()}
    out = {"target_loss": target_loss, "inference_tokens": inference_tokens, **point}
    cis = _intervals(law, lambda laws: _inference(laws, target_loss, inference_tokens, law.c_range[0]),
                     INFERENCE_KEYS)
    out.update({f"{k}_ci": v for k, v in cis.items()})
    laws = _resampled(law)
    out["unreachable_share"] = float(np.mean(laws.E >= target_loss)) if laws is not None else np.nan
    return out


def effective_tokens(D, unique_tokens: float, r_star: float = R_STAR_D):
    """Muennighoff et al.'s D': the first epoch counts fully, repetitions R = D/U - 1 decay with R*."""
    D = np.asarray(D, float)
    R = np.maximum(D / unique_tokens - 1, 0)
    return np.where(D <= unique_tokens, D, unique_tokens + unique_tokens * r_star * (1 - np.exp(-R / r_star)))


DATA_KEYS = ("N", "D", "epochs", "effective_tokens", "loss", "unconstrained_N", "unconstrained_D",
             "unconstrained_loss")


def _data_constrained(law, C: float, unique_tokens: float, r_star: float) -> dict:
    loss = lambda logN: law.predict(np.exp(logN), effective_tokens(C / (law.k * np.exp(logN)), unique_tokens, r_star))
    n_free = law.n_opt(C)
    logN, best = _golden_min(loss, np.log(n_free) - np.log(1e3), np.log(n_free) + np.log(1e3))
    N = np.exp(logN)
    D = C / (law.k * N)
    return {"N": N, "D": D, "epochs": D / unique_tokens, "effective_tokens": effective_tokens(D, unique_tokens, r_star),
            "loss": best, "unconstrained_N": n_free, "unconstrained_D": law.d_opt(C),
            "unconstrained_loss": law.loss_opt(C)}


def data_constrained(law: LossSurface, C: float, unique_tokens: float, r_star: float = R_STAR_D,
                     allow_far: bool = False) -> dict:
    """Best N for budget C when only `unique_tokens` exist: loss L(N, D'(C / kN)); compare with unlimited data.
    Each quantity q has a bootstrap interval q_ci = (lo, hi)."""
    notes: list[str] = []
    check_budget(law, C, allow_far, notes)
    point = {k: float(v) for k, v in _data_constrained(law, C, unique_tokens, r_star).items()}
    epochs = point["epochs"]
    if epochs > 4 * (1 + r_star):
        warn(f"data_constrained: {epochs:.0f} epochs of the unique data: far past the regime Muennighoff et al. "
             "measured (returns vanish after ~16 epochs); more unique data would help more than compute", notes)
    cis = _intervals(law, lambda laws: _data_constrained(laws, C, unique_tokens, r_star), DATA_KEYS)
    return {"C": C, "unique_tokens": unique_tokens, **point, "r_star": r_star, "warnings": notes,
            **{f"{k}_ci": v for k, v in cis.items()}}


def default_budgets(law: LossSurface) -> list[float]:
    """10x and 100x the largest swept budget, and a few standard ones."""
    hi = law.c_range[1]
    return sorted({hi, 10 * hi, 100 * hi, 1e17, 1e19, 1e21, 1e23})


def table(law: LossSurface, budgets=None) -> pd.DataFrame:
    """One row per budget; requests refused as extrapolation appear as rows saying so, not as numbers."""
    import pandas as pd

    rows = []
    for C in budgets or default_budgets(law):
        try:
            rows.append(recommend(law, budget=C).row())
        except ExtrapolationError as e:
            rows.append({"C": C, "warnings": "refused: " + str(e).split(": the law")[0]})
    return pd.DataFrame(rows)
