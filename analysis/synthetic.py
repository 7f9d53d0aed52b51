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

from analysis.laws.approach3 import ChinchillaForm


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
                  seed: int = 0, k: float = 6.0) -> pd.DataFrame:
    """Runs on isoFLOP lines: per budget C, sizes evenly spaced in log N over [N_opt/sqrt(span), N_opt*sqrt(span)],
    D = C / (k N); final loss = law * exp(noise * normal). flops = flops_6n = k N D."""
    rng = np.random.default_rng(seed)
    rows = []
    for C in budgets:
        n_opt = replace(law, k=k).n_opt(C)
        for N in n_opt * np.geomspace(span ** -0.5, span ** 0.5, sizes_per_budget):
            D = C / (k * N)
            loss = law.loss(N, D) * np.exp(noise * rng.standard_normal())
            rows.append({"run_id": f"r{len(rows):04d}", "budget": C, "params_nonembedding": N,
                         "params_total": N * 1.15, "tokens": D, "flops": C, "flops_6n": C, "loss": loss})
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
