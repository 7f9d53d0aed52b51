"""What every law shares: the fit conventions (FitConfig), the checks on its input table, the
Chinchilla closed form, and power laws y = k x^a fitted in log space with bootstrap intervals.

numpy only at import (pandas where a table is read): a saved law (analysis/lawfile.py) is used
without pandas or scipy, so that `python -m analysis.recommend laws.json` starts fast.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

N_COLS = ("params_nonembedding", "params_total", "params_active", "params_active_nonembedding", "params_compute")
C_COLS = ("flops", "flops_6n")


class FitError(ValueError):
    """A fit cannot be made from this table (too few runs, missing columns): nothing is returned."""


class FitWarning(UserWarning):
    """A fit or a recommendation was made but deserves suspicion (extrapolation, optimum at the edge)."""


def curve_set(curves: pd.DataFrame, what: str) -> int:
    """The held-out set the curves' losses are on: 0 (each run's full eval set) or the eval.curve_tokens of runs
    whose evals scored that prefix subset (analysis.results.curve_point reads those losses throughout such a run).
    Runs of different sets are not comparable on one curve: FitError naming them."""
    if "curve_tokens" not in curves or not len(curves):
        return 0
    sets = curves.groupby("run_id")["curve_tokens"].first().fillna(0).astype(int)
    if sets.nunique() > 1:
        eg = {int(k): v.index[0] for k, v in sets.groupby(sets)}
        raise FitError(f"{what}: the runs' curves are on different held-out sets (eval.curve_tokens "
                       f"{sorted(eg)}, 0 = the full set; e.g. {eg}), so their losses are not comparable: fit runs of "
                       "one eval.curve_tokens (filter results.curves and runs by the curves' curve_tokens column)")
    return int(sets.iloc[0])


def warn(msg: str, sink: list[str] | None = None) -> None:
    """Warn loudly and keep the message with the object it concerns (so reports can show it)."""
    warnings.warn(msg, FitWarning, stacklevel=3)
    if sink is not None:
        sink.append(msg)


# Data and parameter exponents that published fits have found lie around 0.2-0.8 (Kaplan et al. 2020,
# Hoffmann et al. 2022, Besiroglu et al. 2024); far outside this band a fit is not constrained by its runs.
PLAUSIBLE_EXPONENT = (0.05, 2.0)


UNCONSTRAINED = "do not trust this law's predictions"   # marks the notes below in a law's warnings


def implausible_exponents(law_name: str, exponents: dict[str, float], ranges: dict[str, tuple[float, float]]
                          ) -> list[str]:
    """A note per exponent outside PLAUSIBLE_EXPONENT, naming how wide the swept ranges were."""
    lo, hi = PLAUSIBLE_EXPONENT
    spans = ", ".join(f"{k} spans {b / a:.3g}x" for k, (a, b) in ranges.items())
    return [f"{law_name}: {name} = {value:.3g} lies outside {lo:g}-{hi:g}, where published fits fall: these runs "
            f"do not constrain it ({spans}); {UNCONSTRAINED}, sweep wider ranges of N and D"
            for name, value in exponents.items() if not lo <= value <= hi]


def unconstrained(warnings_: list[str]) -> list[str]:
    """The implausible-exponent notes among a law's warnings (reports lead with them)."""
    return [w for w in warnings_ if UNCONSTRAINED in w]


@dataclass(frozen=True)
class FitConfig:
    """The conventions a fit is made under; recorded in every law and stated in the report.

    n_col: which parameter count N means (non-embedding as Kaplan et al. 2020, total as Hoffmann et al.
    2022, active for MoE, or params_compute: active non-embedding plus the output head, whose matmul
    dominates the FLOPs of small models; Porian et al. 2024 found that leaving it out is one of the
    causes of the Kaplan/Chinchilla discrepancy, and at CPU-demo scale it is most of the compute). c_col: compute C as the exact FLOP count or the 6ND rule."""
    n_col: str = "params_nonembedding"
    c_col: str = "flops_6n"
    loss_col: str = "loss"
    n_bootstrap: int = 1000
    seed: int = 0
    ci_level: float = 0.9
    processes: int = 2                 # bootstrap worker processes
    origin: str = ""                   # where n_col and c_col came from (the sweep's grid.json, a default, an override)

    def errors(self) -> list[str]:
        e = []
        if self.n_col not in N_COLS:
            e.append(f"FitConfig.n_col={self.n_col!r}: use one of {N_COLS}")
        if self.c_col not in C_COLS:
            e.append(f"FitConfig.c_col={self.c_col!r}: use one of {C_COLS}")
        if self.n_bootstrap < 0:
            e.append(f"FitConfig.n_bootstrap={self.n_bootstrap}: must be >= 0 (0 disables intervals)")
        if not 0 < self.ci_level < 1:
            e.append(f"FitConfig.ci_level={self.ci_level}: must be in (0, 1), e.g. 0.9")
        return e

    def describe(self) -> str:
        n = {"params_nonembedding": "non-embedding parameters", "params_total": "total parameters",
             "params_active": "active parameters", "params_active_nonembedding": "active non-embedding parameters",
             "params_compute": "parameters a token is multiplied by (active non-embedding + output head)"}
        c = {"flops": "exact training FLOPs (matmuls + attention)", "flops_6n": "6ND (6 FLOPs per parameter per token)"}
        return (f"N = {n[self.n_col]} (`{self.n_col}`); C = {c[self.c_col]} (`{self.c_col}`); "
                f"{self.n_bootstrap} bootstrap resamples over runs (seed {self.seed}), {self.ci_level:.0%} intervals")


def check_table(runs: pd.DataFrame, cfg: FitConfig, min_runs: int, what: str, cols: tuple[str, ...] = ()) -> None:
    """Raise FitError naming every problem: bad config, missing columns, too few usable runs."""
    errs = list(cfg.errors())
    need = (cfg.n_col, "tokens", cfg.c_col, cfg.loss_col) + cols
    missing = [c for c in need if c not in runs.columns]
    if missing:
        errs.append(f"{what}: the runs table lacks column(s) {missing} (have {sorted(runs.columns)[:12]}...)")
    elif (n := len(usable(runs, cfg))) < min_runs:
        errs.append(f"{what}: {n} usable run(s) (finite positive N, D, C, loss); the fit needs at least {min_runs}")
    if errs:
        raise FitError("\n".join(errs))


def usable(runs: pd.DataFrame, cfg: FitConfig) -> pd.DataFrame:
    import pandas as pd

    cols = [cfg.n_col, "tokens", cfg.c_col, cfg.loss_col]
    x = runs[cols].apply(pd.to_numeric, errors="coerce")
    ok = np.isfinite(x).all(axis=1) & (x > 0).all(axis=1)
    return runs[ok.to_numpy()]


class ChinchillaForm:
    """The closed form that fitted and known laws share: L(N, D) = E + A/N^alpha + B/D^beta and its
    compute-optimal frontier under C = k N D (Hoffmann et al. 2022, eq. 4). Subclasses hold the
    attributes E, A, B, alpha, beta and k."""

    def predict(self, N, D):
        N, D = np.asarray(N, float), np.asarray(D, float)
        return self.E + self.A / N ** self.alpha + self.B / D ** self.beta

    @property
    def a(self) -> float:
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    @property
    def G(self) -> float:
        return (self.alpha * self.A / (self.beta * self.B)) ** (1 / (self.alpha + self.beta))

    def n_opt(self, C):
        return self.G * (np.asarray(C, float) / self.k) ** self.a

    def d_opt(self, C):
        return (np.asarray(C, float) / self.k) ** self.b / self.G

    def loss_opt(self, C):
        return self.predict(self.n_opt(C), self.d_opt(C))


PARAMS = ("E", "A", "B", "alpha", "beta")


@dataclass
class SampledLaw(ChinchillaForm):
    """A ChinchillaForm with bootstrap samples [n, 5] of PARAMS (`samples`), its FitConfig and what it was fitted
    to: intervals of its parameters and of anything it computes. The fields and methods of approach 3's fitted law
    (approach3.LossSurface, which adds the optimiser's state and the residuals) and of the same law as saved
    (analysis.lawfile.Surface), so both hold the same data and give the same intervals."""
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    k: float                          # FLOPs per parameter per token in C = k N D under this config
    config: FitConfig
    n_runs: int
    n_range: tuple[float, float]
    d_range: tuple[float, float]
    c_range: tuple[float, float]
    converged: bool
    # keyword-only, so that subclasses may add fields without defaults after these
    samples: np.ndarray = field(default_factory=lambda: np.empty((0, 5)), kw_only=True)  # bootstrap rows of PARAMS
    warnings: list[str] = field(default_factory=list, kw_only=True)

    @property
    def params(self) -> dict[str, float]:
        return {p: getattr(self, p) for p in PARAMS}

    def ci(self, name: str) -> tuple[float, float]:
        """Interval of a parameter (E, A, B, alpha, beta) or of the exponents a, b."""
        s = self.samples
        if len(s) == 0:
            return (float("nan"), float("nan"))
        if name in PARAMS:
            return ci(s[:, PARAMS.index(name)], self.config.ci_level)
        al, be = s[:, 3], s[:, 4]
        return ci({"a": be / (al + be), "b": al / (al + be)}[name], self.config.ci_level)

    def interval(self, fn: str, *args) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise bootstrap interval of n_opt / d_opt / loss_opt (C) or predict (N, D): every resample at once."""
        point = np.asarray(getattr(self, fn)(*args), float)
        if len(self.samples) == 0:
            nan = np.full(point.shape, np.nan)
            return nan, nan
        vals = getattr(ResampledLaws(*(self.samples.T[:, :, None]), k=self.k), fn)(*(np.ravel(a) for a in args))
        lvl = self.config.ci_level
        lo, hi = np.nanquantile(vals, [(1 - lvl) / 2, (1 + lvl) / 2], axis=0)
        return lo.reshape(point.shape), hi.reshape(point.shape)


@dataclass
class ResampledLaws(ChinchillaForm):
    """All bootstrap resamples as one array-valued law: the closed forms broadcast (parameters as [n] arrays give
    [n] values; as [n, 1] columns evaluated at m points, [n, m])."""
    E: np.ndarray
    A: np.ndarray
    B: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    k: float


def flops_per_param_token(runs: pd.DataFrame, cfg: FitConfig) -> float:
    """k in C = k N D under this config: 6 for 6ND with the same N; the median ratio otherwise."""
    return float(np.median(runs[cfg.c_col] / (runs[cfg.n_col] * runs["tokens"])))


def ci(samples: np.ndarray, level: float) -> tuple[float, float]:
    s = np.asarray(samples, float)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.quantile(s, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


@dataclass
class PowerLaw:
    """y = k x^a, fitted by least squares on (log x, log y). `samples`: bootstrap [n, 2] of (log k, a).
    basic: the exponent's interval is the basic bootstrap interval, the percentiles reflected about a
    (approach 2's shape methods set it: analysis/laws/approach2.py says why)."""
    k: float
    a: float
    samples: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))
    ci_level: float = 0.9
    basic: bool = False

    @classmethod
    def fit(cls, x, y) -> PowerLaw:
        lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
        if lx.size < 2 or np.ptp(lx) == 0:
            raise FitError(f"power law: needs points at 2 or more distinct x (got {lx.size})")
        a, logk = np.polyfit(lx, ly, 1)
        return cls(k=float(np.exp(logk)), a=float(a))

    def __call__(self, x):
        return self.k * np.asarray(x, float) ** self.a

    predict = __call__

    @property
    def a_ci(self) -> tuple[float, float]:
        lo, hi = ci(self.samples[:, 1], self.ci_level)
        return (2 * self.a - hi, 2 * self.a - lo) if self.basic else (lo, hi)

    @property
    def k_ci(self) -> tuple[float, float]:
        """Interval of k (laws.json stores it, so recommendations need no refit)."""
        lo, hi = ci(self.samples[:, 0], self.ci_level)
        return float(np.exp(lo)), float(np.exp(hi))

    def interval(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise bootstrap interval of y at x (nan when there are no samples)."""
        lx = np.log(np.atleast_1d(np.asarray(x, float)))
        if len(self.samples) == 0:
            nan = np.full(lx.shape, np.nan)
            return nan, nan
        ly = self.samples[:, :1] + self.samples[:, 1:] * lx[None, :]
        lo, hi = np.nanquantile(ly, [(1 - self.ci_level) / 2, (1 + self.ci_level) / 2], axis=0)
        return np.exp(lo), np.exp(hi)

    def __str__(self) -> str:
        s = f"{self.k:.4g} * C^{self.a:.4f}"
        if len(self.samples):
            lo, hi = self.a_ci
            s += f"  (exponent {self.ci_level:.0%} CI [{lo:.4f}, {hi:.4f}])"
        return s


@dataclass
class ComputeOptimal:
    """N_opt(C) and D_opt(C) power laws (approaches 1 and 2), with the points they were fitted to."""
    approach: str
    n_opt: PowerLaw
    d_opt: PowerLaw
    points: pd.DataFrame              # columns C, N_opt, D_opt (+ approach-specific ones)
    config: FitConfig
    c_range: tuple[float, float]      # compute range the fit saw
    n_runs: int
    warnings: list[str] = field(default_factory=list)

    def predict(self, C) -> tuple[np.ndarray, np.ndarray]:
        return self.n_opt(C), self.d_opt(C)

    def summary(self) -> str:
        return (f"{self.approach}: N_opt = {self.n_opt}\n{' ' * len(self.approach)}  D_opt = {self.d_opt}\n"
                f"  ({self.n_runs} runs, C in [{self.c_range[0]:.3g}, {self.c_range[1]:.3g}]; {self.config.describe()})")
