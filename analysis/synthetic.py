"""Tables generated from a known law, for tests, fixtures and benchmarks.

`KnownLaw` is L(N, D) = E + A/N^alpha + B/D^beta. `isoflop_table` samples runs on isoFLOP lines
(C = k N D) around each budget's optimum, `curves_table` gives each run a loss curve as if every
prefix were a finished run (what approach 1's envelope reads). Noise is multiplicative (log-normal)
on the loss, as the Huber-on-log-residuals fit assumes. tests/synthetic_sweep.py writes such a law's
runs as real run directories (the committed fixture tests/fixtures/sweep_small).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from analysis.laws.common import ChinchillaForm


@dataclass(frozen=True)
class KnownLaw(ChinchillaForm):
    """A law with known parameters, to generate tables from (k: FLOPs per parameter per token)."""
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    k: float = 6.0

    def loss(self, N, D):
        return self.predict(N, D)


CHINCHILLA = KnownLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)   # Hoffmann et al. 2022, approach 3
# The fixture's law: not Chinchilla's, so that a fit cannot pass by echoing published numbers.
FIXTURE_LAW = KnownLaw(E=1.2, A=40.0, B=80.0, alpha=0.35, beta=0.32)
DOMAIN_FACTORS = {"web": 1.08, "code": 0.92}      # loss_<domain> = factor * loss; equal weights average to loss


def isoflop_table(law: KnownLaw, budgets, sizes_per_budget: int = 7, span: float = 16.0, noise: float = 0.01,
                  seed: int = 0, k: float = 6.0, shift_dex: float = 0.0, jitter_dex: float = 0.0,
                  replicates: int = 1, spacing: str = "even") -> pd.DataFrame:
    """Runs on isoFLOP lines: per budget C, sizes evenly spaced in log N over [N_opt/sqrt(span), N_opt*sqrt(span)]
    (spacing="random": drawn uniformly in log N over that window instead, each budget its own unequal gaps, as
    published isoFLOP grids have them),
    that window moved by `shift_dex` decades (an off-centre grid: > 0 towards larger N; a sequence gives each
    budget its own shift, as a planner centring its grids on a wrong exponent does) and each size moved by a
    uniform +-jitter_dex decades (grids that are not on the optimum's lattice, near-duplicate sizes);
    D = C / (k N); final loss = law * exp(noise * normal). flops = flops_6n = k N D. `replicates` > 1 trains each
    (N, D) that many times (column `seed`: 0, 1, ...), each with its own noise draw, as `grid.seeds` does."""
    if spacing not in ("even", "random"):
        raise ValueError(f"isoflop_table: spacing={spacing!r}: use 'even' or 'random'")
    rng = np.random.default_rng(seed)
    rows = []
    shifts = np.broadcast_to(np.asarray(shift_dex, float), (len(budgets),))
    for C, shift in zip(budgets, shifts):
        n_opt = replace(law, k=k).n_opt(C) * 10 ** shift
        if spacing == "even":
            sizes = n_opt * np.geomspace(span ** -0.5, span ** 0.5, sizes_per_budget)
        else:
            sizes = n_opt * span ** np.sort(rng.uniform(-0.5, 0.5, sizes_per_budget))
        for N in sizes * 10 ** rng.uniform(-jitter_dex, jitter_dex, sizes_per_budget) if jitter_dex else sizes:
            D = C / (k * N)
            for s in range(replicates):
                loss = law.loss(N, D) * np.exp(noise * rng.standard_normal())
                rows.append({"run_id": f"r{len(rows):04d}", "budget": C, "params_nonembedding": N,
                             "params_total": N * 1.15, "tokens": D, "flops": C, "flops_6n": C, "loss": loss,
                             "seed": s})
    return pd.DataFrame(rows)


def random_table(law: KnownLaw, n_runs: int, n_range=(1e6, 1e9), d_range=(1e8, 1e11), noise: float = 0.01,
                 seed: int = 0, k: float = 6.0) -> pd.DataFrame:
    """Runs at log-uniform random (N, D): the unstructured table approach 3 can fit without isoFLOP lines."""
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(*np.log(n_range), n_runs))
    D = np.exp(rng.uniform(*np.log(d_range), n_runs))
    loss = law.loss(N, D) * np.exp(noise * rng.standard_normal(n_runs))
    return pd.DataFrame({"run_id": [f"r{i:04d}" for i in range(n_runs)], "params_nonembedding": N,
                         "params_total": N * 1.15, "tokens": D, "flops": k * N * D, "flops_6n": k * N * D,
                         "loss": loss})


def curves_table(law: KnownLaw, runs: pd.DataFrame, points_per_run: int = 16, noise: float = 0.005,
                 seed: int = 0, n_col: str = "params_nonembedding", c_col: str = "flops") -> pd.DataFrame:
    """Per run, eval points at geometric token fractions; each point's loss is the law at (N, tokens so far)."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in runs.itertuples(index=False):
        r = r._asdict()
        for step, frac in enumerate(np.geomspace(1 / 32, 1, points_per_run), start=1):
            t = r["tokens"] * frac
            loss = float(law.loss(r[n_col], t) * np.exp(noise * rng.standard_normal()))
            rows.append({"run_id": r["run_id"], "step": step, "tokens": t, "flops": r[c_col] * frac, "loss": loss})
    return pd.DataFrame(rows)


def long_runs(law: KnownLaw, sizes, max_budget: float, schedule: str = "constant", evals_per_run: int = 40,
              noise: float = 0.005, seed: int = 0, k: float = 6.0, unannealed_gap: float = 0.02,
              warmup_frac: float = 0.02, cooldown_frac: float = 0.2, steps: int = 10_000,
              tokens_per_param=None, first_frac: float = 1 / 200, run_noise: float = 0.0) -> tuple[pd.DataFrame, ...]:
    """(runs, curves) of one long run per size trained to `max_budget` (as Porian et al. 2024 slice isoFLOP points
    from): the curves table's loss at t tokens is the law at (N, t), raised by `unannealed_gap` (relative) where
    the lr has not been annealed: every point of a constant run; a WSD run before the end of its cooldown (the
    gap closing linearly over the cooldown); a cosine run by the gap times the fraction of the decay left, so
    that only its final point is the law's. Runs carry schedule, steps, warmup_frac, cooldown_frac.
    tokens_per_param (a number, or one per size): each run ends at that many tokens per parameter instead of at
    max_budget (Porian et al.'s runs each end at their own length, so the large budgets see only the large models);
    evals run from first_frac of the run to its end; run_noise: a relative offset per run (its seed), shared by
    all its points, beside each point's own `noise`."""
    rng = np.random.default_rng(seed)
    runs, curves = [], []
    sizes = np.asarray(sizes, float)
    tpp = None if tokens_per_param is None else np.broadcast_to(np.asarray(tokens_per_param, float), sizes.shape)
    for i, N in enumerate(sizes):
        D = max_budget / (k * N) if tpp is None else tpp[i] * N
        C_end = max_budget if tpp is None else k * N * D
        rid = f"long{i:03d}"
        offset = np.exp(run_noise * rng.standard_normal()) if run_noise else 1.0
        eval_steps = np.unique(np.round(np.geomspace(steps * first_frac, steps, evals_per_run)).astype(int))
        for step in eval_steps:
            frac = step / steps
            if schedule == "constant":
                gap = unannealed_gap
            elif schedule == "wsd":
                cool = (frac - (1 - cooldown_frac)) / cooldown_frac
                gap = unannealed_gap * (1 - np.clip(cool, 0, 1))
            else:
                gap = unannealed_gap * (1 - frac)
            t = D * frac
            loss = float(law.loss(N, t) * (1 + gap) * offset * np.exp(noise * rng.standard_normal()))
            curves.append({"run_id": rid, "step": int(step), "tokens": t, "flops": k * N * t, "loss": loss})
        runs.append({"run_id": rid, "params_nonembedding": N, "params_total": N * 1.15, "tokens": D,
                     "flops": C_end, "flops_6n": C_end, "loss": curves[-1]["loss"], "schedule": schedule,
                     "steps": steps, "warmup_frac": warmup_frac, "cooldown_frac": cooldown_frac})
    return pd.DataFrame(runs), pd.DataFrame(curves)
