"""How high can a mixing law's held-out Spearman be on a given design? The ceiling the seed noise sets.

The held-out check ranks mixtures by their measured objective m = t + e (t the true objective, e the seed noise of
the mixture's runs, averaged over its seeds) against the law's prediction p = t + f (f the law's error). Even an exact
law (f = 0) ranks the measurements only as well as the noise lets it: over a design whose mixtures spread t with
variance s2, and a noise variance v, the correlation of m with t is sqrt(R), R = s2 / (s2 + v) the reliability of
one measurement (Spearman's attenuation, 1904); a law with its own independent parameter noise of variance u lowers
it to s2 / sqrt((s2 + v)(s2 + u)). For normal t and e the sample Spearman over n mixtures has the exact expectation
(Moran 1948)

    E[rho_S] = 6 / (pi (n + 1)) * (arcsin r + (n - 2) arcsin(r / 2)),     r the correlation above,

below its large-n limit (6 / pi) arcsin(r / 2); at n = 17 an expected 0.9 needs r = 0.935, R = 0.875: a spread of
the true objective 2.6x the noise of one mixture's measurement. The sample Spearman of one design scatters about
that expectation (sd ~0.03-0.08 at n = 17), so `ceiling` also gives its range by simulation.

    c = ceiling(spread_sd, noise_sd, n)          # a planned design: the objective's spread over its mixtures, the
                                                 # noise of one mixture's measurement, how many are held out
    c = from_heldout(law)                        # a fitted MixingLaw's k-fold check: spread and seed noise measured
    c = for_design(law, mixtures, seeds=2)       # another design, its spread predicted by a fitted law
    verdict(measured_spearman, c)                # the law's fault, or the design's?

A pure function of numbers and a fitted law (analysis/laws/mixing.py); bench/README.md, "Mixing: the Spearman
ceiling" measures it on the demo corpus.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import chi2

from analysis.laws.mixing import W_PREFIX, MixingLaw

TARGET = 0.9            # the held-out Spearman target, the default the ceiling is compared with
SIMS = 4000             # simulated designs for the range and P(Spearman >= target): its quantiles to ~0.01
MAX_SEEDS = 64          # seeds_for_target searches up to this many replicates per mixture
IQR_SD = 1.349          # interquartile range / sd of a normal distribution


def expected_spearman(r: float, n: int) -> float:
    """E[sample Spearman] of n pairs from a bivariate normal with correlation r (Moran 1948; exact)."""
    if n < 3:
        raise ValueError(f"n={n}: a Spearman correlation needs at least 3 mixtures")
    r = float(np.clip(r, -1.0, 1.0))
    return 6 / (math.pi * (n + 1)) * (math.asin(r) + (n - 2) * math.asin(r / 2))


def correlation(spread_var: float, noise_var: float, law_var: float = 0.0) -> float:
    """Correlation of a measurement (truth + noise) with a prediction (truth + the law's independent error) over
    mixtures whose truth has variance spread_var: the attenuation formula. 0 when the truth does not vary."""
    if min(spread_var, noise_var, law_var) < 0:
        raise ValueError(f"variances must be >= 0, got spread {spread_var}, noise {noise_var}, law {law_var}")
    if spread_var == 0:
        return 0.0
    return spread_var / math.sqrt((spread_var + noise_var) * (spread_var + law_var))


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman of each row pair (continuous draws: no ties)."""
    rx = np.argsort(np.argsort(x, 1), 1).astype(float)
    ry = np.argsort(np.argsort(y, 1), 1).astype(float)
    rx -= rx.mean(1, keepdims=True)
    ry -= ry.mean(1, keepdims=True)
    return (rx * ry).sum(1) / np.sqrt((rx ** 2).sum(1) * (ry ** 2).sum(1))


def simulate(truth: np.ndarray, noise_sd, law_sd: float = 0.0, sims: int = SIMS, seed: int = 0) -> np.ndarray:
    """[sims] Spearman of (truth + noise) against (truth + law error) for the given truth values (one design's
    mixtures); noise_sd a number or one per mixture (fewer seeds, more noise)."""
    rng = np.random.default_rng(seed)
    t = np.asarray(truth, float)[None]
    m = t + np.asarray(noise_sd, float) * rng.standard_normal((sims, t.shape[1]))
    p = t + law_sd * rng.standard_normal((sims, t.shape[1])) if law_sd > 0 else np.broadcast_to(t, m.shape)
    return _spearman_rows(m, p)


@dataclass(frozen=True)
class Ceiling:
    """The held-out Spearman an exact law can expect on a design (law_sd > 0: a correct law with that much parameter
    noise). The noise and spread are of one mixture's measurement, its seeds averaged."""
    n: int                        # mixtures ranked (held out)
    spread_sd: float              # sd of the true objective over them
    noise_sd: float               # sd of one mixture's measured objective about its truth (seeds averaged)
    law_sd: float                 # sd of the law's own error at them (0: an exact law)
    reliability: float            # spread_sd^2 / (spread_sd^2 + noise_sd^2)
    r: float                      # correlation of measured with predicted (attenuation)
    expected: float               # E[Spearman] (Moran's formula, normal truth)
    lo: float                     # the level interval of one design's Spearman (simulated, normal truth)
    hi: float
    p_target: float               # P(Spearman >= target)
    target: float
    level: float
    seeds: float                  # seeds per mixture behind noise_sd (mean); nan when not known
    seed_noise: float             # sd of one run's objective (noise_sd * sqrt(seeds)); nan when not known
    noise_dof: int                # degrees of freedom of the seed-noise estimate (0: given, not measured)
    expected_noise_ci: tuple[float, float] = (float("nan"), float("nan"))   # expected at the noise's chi2 interval
    seeds_for_target: int | None = None      # seeds per mixture for an expected ceiling >= target (None: unreachable)
    # the same simulated on the design's own truth values (when given), whose spacing a normal spread misses: a few
    # lopsided mixtures far from the rest make the variance large while the bulk stays hard to rank
    conditional: float = float("nan")
    cond_lo: float = float("nan")
    cond_hi: float = float("nan")
    spacing: str = ""                        # where those truth values came from
    # the range's lower end with the seed noise at the upper end of its level interval (noise_dof > 0): below it even
    # the largest noise the replicates allow cannot explain a Spearman
    lo_noisy: float = float("nan")

    @property
    def range(self) -> tuple[float, float]:
        """The range a held-out Spearman is judged against: on the design's own spacing where known."""
        return (self.cond_lo, self.cond_hi) if np.isfinite(self.cond_lo) else (self.lo, self.hi)

    def text(self) -> str:
        s = (f"an exact law expects {self.expected:.3f} ({self.level:.0%} of designs like this one: "
             f"{self.lo:.2f}-{self.hi:.2f}; P(>= {self.target:g}) {self.p_target:.0%}); reliability "
             f"{self.reliability:.3f} = spread^2 / (spread^2 + noise^2), with the true objective's sd over the {self.n} "
             f"held-out mixtures {self.spread_sd:.4g} and the noise of a mixture's measurement {self.noise_sd:.4g}")
        if np.isfinite(self.seeds):
            s += f" (seed noise {self.seed_noise:.4g} a run, {self.seeds:.2g} seeds a mixture"
            s += f", {self.noise_dof} dof" if self.noise_dof else ""
            s += ")"
        if self.noise_dof and all(np.isfinite(self.expected_noise_ci)):
            s += (f"; at the ends of the seed noise's {self.level:.0%} interval it expects "
                  f"{self.expected_noise_ci[0]:.3f}-{self.expected_noise_ci[1]:.3f}")
        if np.isfinite(self.conditional):
            s += (f"; on the spacing of {self.spacing or 'the design'} instead of a normal spread it expects "
                  f"{self.conditional:.3f} ({self.cond_lo:.2f}-{self.cond_hi:.2f})")
        return s


def seeds_for(spread_sd: float, seed_noise: float, n: int, target: float = TARGET, law_sd: float = 0.0,
              max_seeds: int = MAX_SEEDS) -> int | None:
    """The fewest seeds per mixture for which an exact law's expected Spearman reaches `target` (None: not within
    max_seeds, e.g. when the law's own noise or a flat objective caps it)."""
    for k in range(1, max_seeds + 1):
        r = correlation(spread_sd ** 2, seed_noise ** 2 / k, law_sd ** 2)
        if expected_spearman(r, n) >= target:
            return k
    return None


def ceiling(spread_sd: float, noise_sd: float, n: int, *, law_sd: float = 0.0, seeds: float = float("nan"),
            noise_dof: int = 0, truth: np.ndarray | None = None, spacing: str = "", target: float = TARGET,
            level: float = 0.9, sims: int = SIMS, seed: int = 0) -> Ceiling:
    """The Spearman ceiling of a design: n mixtures held out, the true objective's sd over them, the sd of one
    mixture's measurement (seeds averaged; `seeds` of them, if known, so that seeds_for_target can be answered),
    noise_dof of the noise estimate (its chi2 interval gives expected_noise_ci). truth: the design's own (predicted)
    objective values (rescaled to spread_sd), for a simulation on their actual spacing instead of a normal spread
    (`conditional`, `cond_lo`, `cond_hi`; `spacing` says where they came from)."""
    if not 0 < level < 1:
        raise ValueError(f"level={level}: must be in (0, 1), e.g. 0.9")
    if not (np.isfinite(spread_sd) and np.isfinite(noise_sd)) or spread_sd < 0 or noise_sd < 0:
        raise ValueError(f"spread_sd={spread_sd}, noise_sd={noise_sd}: both must be finite and >= 0 (the noise needs "
                         "seed replicates: grid.seeds=[0,1] for some mixtures)")
    r = correlation(spread_sd ** 2, noise_sd ** 2, law_sd ** 2)
    rel = spread_sd ** 2 / (spread_sd ** 2 + noise_sd ** 2) if spread_sd > 0 or noise_sd > 0 else float("nan")
    rng = np.random.default_rng(seed)
    t = rng.standard_normal((sims, n)) * spread_sd
    m = t + noise_sd * rng.standard_normal((sims, n))
    p = t + law_sd * rng.standard_normal((sims, n)) if law_sd > 0 else t
    rho = _spearman_rows(m, p)
    lo, hi = np.quantile(rho, [(1 - level) / 2, (1 + level) / 2])
    noise_ci = (float("nan"), float("nan"))
    if noise_dof > 0:
        q = chi2.ppf([(1 - level) / 2, (1 + level) / 2], noise_dof)         # large noise first: the lower ceiling
        noise_ci = tuple(expected_spearman(correlation(spread_sd ** 2, noise_sd ** 2 * noise_dof / x, law_sd ** 2), n)
                         for x in q)
    run_noise = noise_sd * math.sqrt(seeds) if np.isfinite(seeds) else float("nan")
    need = seeds_for(spread_sd, run_noise, n, target, law_sd) if np.isfinite(run_noise) and run_noise > 0 else None
    cond = cond_lo = cond_hi = lo_noisy = float("nan")
    own = _scaled(np.asarray(truth, float), spread_sd) if truth is not None else None
    if own is not None:
        sim = simulate(own, noise_sd, law_sd, sims, seed)
        cond, (cond_lo, cond_hi) = float(sim.mean()), np.quantile(sim, [(1 - level) / 2, (1 + level) / 2])
    if noise_dof > 0:
        noisy = noise_sd * math.sqrt(noise_dof / chi2.ppf((1 - level) / 2, noise_dof))
        if own is not None:
            lo_noisy = float(np.quantile(simulate(own, noisy, law_sd, sims, seed), (1 - level) / 2))
        else:
            t2 = rng.standard_normal((sims, n)) * spread_sd
            m2 = t2 + noisy * rng.standard_normal((sims, n))
            p2 = t2 + law_sd * rng.standard_normal((sims, n)) if law_sd > 0 else t2
            lo_noisy = float(np.quantile(_spearman_rows(m2, p2), (1 - level) / 2))
    return Ceiling(n, float(spread_sd), float(noise_sd), float(law_sd), float(rel), float(r), expected_spearman(r, n),
                   float(lo), float(hi), float((rho >= target).mean()), target, level, float(seeds), run_noise,
                   int(noise_dof), noise_ci, need, cond, float(cond_lo), float(cond_hi), spacing, lo_noisy)


# ------------------------------------------------------------------------------------------ from a fitted law
def pooled_seed_noise(law: MixingLaw) -> tuple[float, int]:
    """(sd of one run's objective about its mixture's mean, degrees of freedom) pooled over the mixtures with seed
    replicates at the law's fit size; (nan, 0) without replicates."""
    t = law.table
    if "_fit_size" in t:
        t = t[t["_fit_size"].to_numpy(bool)]
    W = t[[W_PREFIX + d for d in law.domains]].to_numpy(float)
    keys = np.unique(np.round(W / W.sum(1, keepdims=True), 4), axis=0, return_inverse=True)[1].ravel()
    y = pd.Series(law.objective.value(t)).groupby(keys)
    ss, dof = float((y.transform("mean") - y.obj).pow(2).sum()), int((y.size() - 1).sum())
    return (math.sqrt(ss / dof), dof) if dof else (float("nan"), 0)


def _heldout_means(law: MixingLaw) -> pd.DataFrame:
    """Per held-out mixture of the chosen family's k-fold check: measured and predicted means, runs (seeds), and the
    mixture's weights."""
    p = law.cv_predictions[law.cv_predictions["family"] == law.family]
    g = p.groupby("mixture")
    out = pd.DataFrame({"measured": g["measured"].mean(), "predicted": g["predicted"].mean(), "runs": g.size()})
    if "run_id" in law.table:
        first = g["run_id"].first()
        w = law.table.set_index(law.table["run_id"].astype(str))[[W_PREFIX + d for d in law.domains]]
        out[[W_PREFIX + d for d in law.domains]] = w.loc[first.astype(str)].to_numpy(float)
    return out


def from_heldout(law: MixingLaw, *, target: float = TARGET, sims: int = SIMS) -> Ceiling | None:
    """The ceiling of the law's own k-fold check: its held-out mixtures, their measured spread less the noise, and
    the pooled seed noise at the fit size. None without seed replicates (the noise is then unknown)."""
    h = _heldout_means(law)
    return from_measured(law, h["measured"], h["runs"], target=target, sims=sims)


def from_measured(law: MixingLaw, measured, runs, *, target: float = TARGET, sims: int = SIMS) -> Ceiling | None:
    """The ceiling of a held-out set: per mixture its measured mean objective and how many runs (seeds) it averages;
    the noise is the law's pooled seed noise, the spread var(measured) less the mean noise variance (method of
    moments), and the conditional simulation keeps the measured values' spacing (law-free). None without seed
    replicates or with fewer than 3 mixtures."""
    noise, dof = pooled_seed_noise(law)
    measured, runs = np.asarray(measured, float), np.asarray(runs, float)
    if not np.isfinite(noise) or len(measured) < 3:
        return None
    spread_var = max(float(np.var(measured, ddof=1) - (noise ** 2 / runs).mean()), 0.0)
    seeds = float(len(runs) / (1 / runs).sum())                    # harmonic mean: the seeds of the mean noise
    return ceiling(math.sqrt(spread_var), noise / math.sqrt(seeds), len(measured), seeds=seeds, noise_dof=dof,
                   truth=measured, spacing="the measured values", target=target, level=law.config.ci_level,
                   sims=sims, seed=law.config.seed)


def _scaled(values: np.ndarray, sd: float) -> np.ndarray:
    """values rescaled about their mean to standard deviation sd (their spacing kept): the truth for `simulate`."""
    s = np.std(values, ddof=1)
    return (values - values.mean()) * (sd / s) if s > 0 else np.zeros_like(values)


def for_design(law: MixingLaw, mixtures, *, seeds: int = 1, seed_noise: float | None = None, target: float = TARGET,
               sims: int = SIMS) -> Ceiling:
    """The ceiling of another design (its interior mixtures held out, as fit's k-fold check does), its spread
    predicted by a fitted law: the variance of the law's predictions over the design's mixtures less the law's own
    bootstrap variance there (what of the predicted spread is the law's noise; robust: from the interquartile range).
    Mixtures far outside the ones the law was fitted on are its extrapolations, and so is their spread. seed_noise: one run's noise (default:
    the law's pooled seed noise)."""
    W = law._W(mixtures)
    W = W[W.max(1) < 1 - 1e-6]
    if len(W) < 3:
        raise ValueError(f"for_design: {len(W)} interior mixtures; a held-out Spearman needs at least 3")
    pred = law.predict(W)
    boot = law.samples(W)
    # the bootstrap's spread by its interquartile range: far outside the fitted mixtures a few resampled laws
    # explode (the ye law's exp), and their variance would swamp the rest
    boot_var = float(((np.subtract(*np.nanquantile(boot, [0.75, 0.25], axis=0)) / IQR_SD) ** 2).mean()) \
        if len(boot) > 1 else 0.0
    spread_var = max(float(np.var(pred, ddof=1)) - boot_var, 0.0)
    dof = 0
    if seed_noise is None:
        seed_noise, dof = pooled_seed_noise(law)
    if not np.isfinite(seed_noise):
        raise ValueError("for_design: the law's runs have no seed replicates at its fit size, so the seed noise is "
                         "unknown: pass seed_noise=, or add replicates (grid.seeds=[0,1] for some mixtures)")
    return ceiling(math.sqrt(spread_var), seed_noise / math.sqrt(seeds), len(W), seeds=float(seeds), noise_dof=dof,
                   truth=pred, spacing="the law's predictions", target=target, level=law.config.ci_level, sims=sims,
                   seed=law.config.seed)


def verdict(measured: float, c: Ceiling | None) -> str:
    """Whose is a held-out Spearman: the law's (below what an exact law reaches on this design) or the design's?"""
    if c is None:
        return ("the Spearman ceiling is unknown: no seed replicates at the fit size, so the seed noise that limits "
                "the rank correlation was not measured (add grid.seeds=[0,1] for a few mixtures)")
    if not np.isfinite(measured):
        return "no held-out Spearman to compare with the ceiling"
    lo, hi = c.range
    if measured >= lo:
        what = (f"within what an exact law reaches on this design ({lo:.2f}-{hi:.2f}): the seed noise against the "
                "objective's spread limits it, not the law")
    elif not measured >= c.lo_noisy and np.isfinite(c.lo_noisy) or not c.noise_dof:
        what = (f"below what an exact law reaches on this design ({lo:.2f}-{hi:.2f}"
                + (f"; {c.lo_noisy:.2f} at the largest seed noise its {c.noise_dof} dof allow" if c.noise_dof else "")
                + "): the law misranks the mixtures beyond the seed noise (its form or fit is at fault, not the design)")
    else:
        what = (f"below what an exact law reaches on this design at the measured seed noise ({lo:.2f}-{hi:.2f}), but "
                f"not below it at the largest noise the replicates' {c.noise_dof} dof allow ({c.lo_noisy:.2f}): more "
                "seed replicates would tell whether the law or the noise is at fault")
    if c.expected < c.target:
        what += f". Even an exact law expects {c.expected:.3f} < {c.target:g} here: "
        what += (f"{c.seeds_for_target} seeds per mixture would lift that to {c.target:g}" if c.seeds_for_target
                 else f"no number of seeds up to {MAX_SEEDS} per mixture lifts it to {c.target:g}")
        what += ", or a design whose mixtures spread the objective more"
    return f"held-out Spearman {measured:.3f} is " + what
