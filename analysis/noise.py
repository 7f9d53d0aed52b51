"""Run-to-run noise, measured from seed replicates: runs of one configuration that differ only in `seed`.

A sweep with `grid.seeds=[0, 1]` trains every shape twice; the spread of their final losses is the noise
a law's residuals should be compared with (analysis/verdict.py). The estimate is the pooled standard
deviation of log loss over every configuration with two or more distinct seeds, with its degrees of
freedom (sum over configurations of seeds - 1) and a chi-square interval. log loss, because the fits
model noise as multiplicative (their Huber loss is on log residuals): sd 0.01 is about 1% of the loss.

Without replicates the noise is unmeasured (`Noise.measured` is False, `why` says so): callers must say
so rather than assume a value. Where the runs lie on curves that should be smooth (an isoFLOP profile: loss against
log N at one budget), `smoother` estimates it without replicates from the residual scatter of a low-degree polynomial
fitted to each curve (`Noise.source` says which reference it is): an upper estimate where the curves are not that
smooth, which a test against it turns into fewer refusals, not more.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

# What makes two runs the same experiment apart from the seed (the result.json fields written by
# harness/train.py that describe the run rather than its outcome). Mixture weights (w_<domain>) are added.
IDENTITY = ("sweep", "family", "n_layers", "d_model", "n_heads", "ffn_hidden", "vocab_size", "seq_len", "n_experts",
            "top_k", "expert_hidden", "n_shared_experts", "params_total", "params_nonembedding",
            "params_active_nonembedding", "tokens", "batch_tokens", "lr", "schedule", "steps", "corpus",
            "tokenizer_sha256")


REPLICATES, SMOOTHER = "seed replicates", "smoother"
SMOOTH_DEGREE = 3   # smoother: the polynomial's degree in x (bench/README.md, "IsoFLOP: lack of fit without replicates")


@dataclass(frozen=True)
class Noise:
    """Pooled sd of log loss between seeds of one configuration (nan when unmeasured)."""
    sd: float
    dof: int                          # degrees of freedom: sum over replicated configurations of (seeds - 1)
    configs: int                      # configurations with 2 or more distinct seeds
    runs: int                         # runs in those configurations
    ci: tuple[float, float]           # interval of sd at `level` (chi-square on dof)
    level: float
    why: str = ""                     # why it is unmeasured
    source: str = REPLICATES          # REPLICATES (seeds of one configuration) or SMOOTHER (smoother's residuals)

    @property
    def measured(self) -> bool:
        return bool(self.dof > 0 and np.isfinite(self.sd))

    def describe(self) -> str:
        if not self.measured:
            return f"run-to-run noise unmeasured ({self.why})"
        if self.source == SMOOTHER:
            return (f"residual scatter {self.sd:.2%} of the loss (sd of log loss; {self.level:.0%} interval "
                    f"{self.ci[0]:.2%} to {self.ci[1]:.2%}) of a polynomial of degree {SMOOTH_DEGREE} in log N fitted "
                    f"to each of {self.configs} curve(s) of {self.runs} runs ({self.dof} degrees of freedom; no seed "
                    "replicates)")
        return (f"run-to-run noise {self.sd:.2%} of the loss (sd of log loss; {self.level:.0%} interval "
                f"{self.ci[0]:.2%} to {self.ci[1]:.2%}) from {self.runs} runs of {self.configs} configuration(s) "
                f"trained with different seeds ({self.dof} degrees of freedom)")

    def to_dict(self) -> dict:
        return {**asdict(self), "ci": list(self.ci), "measured": self.measured}


def unmeasured(why: str, level: float = 0.9) -> Noise:
    return Noise(sd=float("nan"), dof=0, configs=0, runs=0, ci=(float("nan"), float("nan")), level=level, why=why)


def identity_columns(runs: pd.DataFrame) -> list[str]:
    return [c for c in IDENTITY if c in runs.columns] + sorted(c for c in runs.columns if c.startswith("w_"))


def estimate(runs: pd.DataFrame, loss_col: str = "loss", level: float = 0.9) -> Noise:
    """Pooled noise of log `loss_col` over configurations (identity_columns) run with 2+ distinct seeds."""
    if "seed" not in runs.columns:
        return unmeasured("the runs table has no seed column", level)
    if loss_col not in runs.columns:
        return unmeasured(f"the runs table has no {loss_col!r} column", level)
    keys = identity_columns(runs)
    if not keys:
        return unmeasured("the runs table has no columns saying which runs share a configuration", level)
    r = runs[np.isfinite(pd.to_numeric(runs[loss_col], errors="coerce")) & (runs[loss_col] > 0)]
    # a seed loaded twice (the same run in two directories) is one replicate, not two
    r = r.drop_duplicates(subset=keys + ["seed"])
    ss, dof, configs, n = 0.0, 0, 0, 0
    for _, g in r.groupby(keys, dropna=False):
        if len(g) < 2:
            continue
        x = np.log(g[loss_col].to_numpy(float))
        ss += float(((x - x.mean()) ** 2).sum())
        dof += len(x) - 1
        configs += 1
        n += len(x)
    if dof == 0:
        return unmeasured("no configuration was run with more than one seed; add replicates with grid.seeds", level)
    return _pooled(ss, dof, configs, n, level, REPLICATES)


def smoother(xs: list[np.ndarray], ys: list[np.ndarray], degree: int = SMOOTH_DEGREE, level: float = 0.9) -> Noise:
    """Noise of log y without seed replicates: the pooled residual scatter of a polynomial of `degree` in x fitted to
    each curve (xs[i], ys[i]) on its own: for isoFLOP profiles log N and the loss of each budget's runs. A curve with
    `degree` + 1 or fewer distinct x is fitted exactly at each of them, leaving only the scatter of runs repeated at
    one x (the classical pure error). The polynomial stands in for any smooth profile: where the true one is smooth
    its residuals are the noise (a cubic misses noise-free law-shaped profiles by at most 0.2% RMS over 3 decades,
    0.03% over 2); where it is not, they overstate the noise. Unmeasured where no curve leaves a residual degree of
    freedom."""
    ss, dof, curves, n = 0.0, 0, 0, 0
    for x, y in zip(xs, ys):
        x, y = np.asarray(x, float), np.asarray(y, float)
        ok = np.isfinite(x) & np.isfinite(y) & (y > 0)
        x, y = x[ok], np.log(y[ok])
        d = min(degree, len(np.unique(x)) - 1)
        if d < 0 or len(x) - d - 1 < 1:
            continue
        z = (x - x.mean()) / max(float(x.std()), 1e-12)     # (centred and scaled: a well-conditioned fit)
        r = y - np.polyval(np.polyfit(z, y, d), z)
        ss += float(r @ r)
        dof += len(x) - d - 1
        curves += 1
        n += len(x)
    if dof == 0:
        return unmeasured(f"no curve has more runs than a polynomial of degree {degree} has coefficients", level)
    return _pooled(ss, dof, curves, n, level, SMOOTHER)


def _pooled(ss: float, dof: int, configs: int, runs: int, level: float, source: str) -> Noise:
    """Noise from a pooled sum of squares of log loss on dof degrees of freedom."""
    sd = float(np.sqrt(ss / dof))
    # sd^2 dof / sigma^2 ~ chi2(dof)
    lo, hi = (sd * np.sqrt(dof / stats.chi2.ppf(q, dof)) for q in ((1 + level) / 2, (1 - level) / 2))
    return Noise(sd=sd, dof=dof, configs=configs, runs=runs, ci=(float(lo), float(hi)), level=level, source=source)
