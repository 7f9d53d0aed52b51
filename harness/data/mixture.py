"""MixtureStream: the batch at step s is a pure function of (corpus, mixture, seed, s).

Nothing is carried from one step to the next, so resuming at any step, or reading with any
number of workers, gives the same batches.

(Minimal first version: weights, stratified or random sampling of packed windows.
Stages, epoch caps and the fast path are added by the data issue.)
"""
from __future__ import annotations

import numpy as np
import torch

from harness.data.batch import TokenBatch
from harness.data.corpus import Corpus
from harness.spec import DataSpec


class MixtureStream:
    def __init__(self, corpus: Corpus, data: DataSpec, batch_size: int, seq_len: int, seed: int):
        self.corpus, self.data, self.batch_size, self.seq_len, self.seed = corpus, data, batch_size, seq_len, seed
        weights = dict(data.weights) if data.weights else {d: 1 / len(corpus.domains) for d in corpus.domains}
        corpus.check_domains(weights)
        self.domains: list[str] = corpus.domains
        self.weights = np.array([weights.get(d, 0.0) for d in self.domains])

    def _domain_per_sequence(self, rng: np.random.Generator) -> np.ndarray:
        B = self.batch_size
        if self.data.sampling == "stratified":  # each batch holds each domain's share (largest remainder)
            exact = self.weights * B
            counts = np.floor(exact).astype(int)
            rest = B - counts.sum()
            counts[np.argsort(-(exact - counts), kind="stable")[:rest]] += 1
            return rng.permutation(np.repeat(np.arange(len(self.domains)), counts))
        return rng.choice(len(self.domains), size=B, p=self.weights)

    def batch(self, step: int) -> TokenBatch:
        rng = np.random.default_rng([self.seed, step])
        dom = self._domain_per_sequence(rng)
        T = self.seq_len
        rows = np.empty((self.batch_size, T + 1), dtype=np.int64)
        for i, d in enumerate(dom):
            toks = self.corpus.train(self.domains[d])
            start = int(rng.integers(0, len(toks) - T - 1))
            rows[i] = toks[start:start + T + 1]
        x = torch.from_numpy(rows)
        domains = torch.from_numpy(np.repeat(dom[:, None], T, axis=1).astype(np.int64))
        return TokenBatch(x[:, :-1].contiguous(), x[:, 1:].contiguous(), domains)
