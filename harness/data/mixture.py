"""MixtureStream: the batch at step s is a pure function of (corpus, mixture, seed, s).

Nothing is carried from one step to the next, so resuming at any step, or reading with any
number of workers, gives the same batches.

How a batch is made (stratified sampling, the default):
  * Each domain's train tokens are cut into windows of seq_len+1 tokens (stride seq_len).
    Domain d hands out its windows in a seeded order: epoch e is a permutation of its windows
    seeded by (seed, domain name, e), so the k-th window it ever hands out is a pure function
    of (seed, d, k).
  * Sequences are numbered globally (batch s holds sequences s*B .. s*B+B-1). Which domain the
    i-th sequence of a stage comes from follows the Sainte-Lague order of the stage's weights,
    a house-monotone apportionment: among the first n sequences, domain d has n*w_d of them
    within about one, every batch holds each domain's share within one sequence, and the count
    of d's sequences before any step is a closed-form function of the step. That count is the
    k at which domain d resumes, so epochs and epoch caps are exact.
  * Curriculum stages switch at an exact sequence: the first sequence at or after the stage's
    start token (start_tokens, or start_frac of the run's tokens; exact when a multiple of seq_len).
  * Rows are shuffled within the batch (seeded by (seed, step)) so micro-batches mix domains.
Random sampling draws each sequence's domain from its stage's weights and a window uniformly
(with replacement), both seeded by (seed, step); epochs are then expected, not exact, values.

The per-target-token domain label travels with the batch (TokenBatch.domains).
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from harness.data.batch import TokenBatch
from harness.data.corpus import Corpus, CorpusError
from harness.spec import DataSpec
from model_zoo.spec import SpecError


class MixtureError(CorpusError):
    """A mixture the corpus cannot serve (e.g. past an epoch cap)."""


class SainteLague:
    """Apportionment of sequence slots to domains in the Sainte-Lague (Webster) order.

    Slot j of domain d has priority (j + 0.5) / w_d; slots are handed out in increasing priority
    (ties: lower domain index first). `counts(n)` is how many of the first n slots each domain got.
    """

    def __init__(self, weights: np.ndarray):
        self.w = np.asarray(weights, dtype=np.float64)

    def _key(self, d: int, j: int) -> tuple[float, int]:
        w = self.w[d]
        return ((j + 0.5) / w if w > 0 else math.inf, d)

    def counts(self, n: int) -> np.ndarray:
        D = len(self.w)
        if n <= 0:
            return np.zeros(D, dtype=np.int64)
        g = [int(math.floor(n * w + 0.5)) for w in self.w]  # Sainte-Lague counts are the rounded quotas, up to ties
        while sum(g) < n:                          # add the next slots in priority order
            d = min(range(D), key=lambda i: self._key(i, g[i]))
            g[d] += 1
        while sum(g) > n:                          # remove the last-taken slots
            d = max((i for i in range(D) if g[i] > 0), key=lambda i: self._key(i, g[i] - 1))
            g[d] -= 1
        while True:                                # make it a prefix of the priority order
            taken = [i for i in range(D) if g[i] > 0]
            hi = max(taken, key=lambda i: self._key(i, g[i] - 1))
            lo = min(range(D), key=lambda i: self._key(i, g[i]))
            if self._key(hi, g[hi] - 1) < self._key(lo, g[lo]):
                return np.array(g, dtype=np.int64)
            g[hi] -= 1
            g[lo] += 1


@dataclass(frozen=True)
class DomainPlan:
    domain: str
    weight_by_stage: tuple[float, ...]
    windows: int               # distinct training windows (seq_len+1 tokens) the domain has
    sequences: int             # windows the run consumes
    tokens: int                # training tokens the run consumes (sequences * seq_len)
    epochs: float              # sequences / windows (expected value in random sampling)
    cap: float | None


@dataclass(frozen=True)
class MixturePlan:
    total_tokens: int
    seq_len: int
    stage_starts: tuple[int, ...]   # first sequence index of each stage
    domains: tuple[DomainPlan, ...]

    def table(self) -> str:
        rows = [f"{'domain':<14}{'weights':>20}{'windows':>12}{'sequences':>12}{'epochs':>9}{'cap':>7}"]
        for p in self.domains:
            w = "/".join(f"{x:.3g}" for x in p.weight_by_stage)
            cap = "-" if p.cap is None else f"{p.cap:g}"
            rows.append(f"{p.domain:<14}{w:>20}{p.windows:>12}{p.sequences:>12}{p.epochs:>9.3f}{cap:>7}")
        return "\n".join(rows)


class MixtureStream:
    def __init__(self, corpus: Corpus, data: DataSpec, batch_size: int, seq_len: int, seed: int,
                 total_tokens: int | None = None):
        self.corpus, self.data, self.batch_size, self.seq_len, self.seed = corpus, data, batch_size, seq_len, seed
        self.total_tokens = total_tokens
        self.domains: list[str] = corpus.domains
        self._check(data)
        self.stage_weights = [self._vector(data.weights)] + [self._vector(s.weights) for s in data.stages]
        self.stage_starts = [0] + [self._stage_start_seq(i, s) for i, s in enumerate(data.stages)]
        if any(b <= a for a, b in zip(self.stage_starts, self.stage_starts[1:])):
            raise SpecError([f"data.stages: start sequences {self.stage_starts[1:]} (seq_len={seq_len}) must "
                             "increase from stage to stage"])
        self._alloc = [SainteLague(w) for w in self.stage_weights]
        self._tokens = [np.asarray(corpus.train(d)) for d in self.domains]  # plain views: no memmap overhead
        self.windows = np.array([max(0, (len(t) - 1) // seq_len) for t in self._tokens], dtype=np.int64)
        self._dom_seed = [zlib.crc32(d.encode()) for d in self.domains]
        self._perms: dict[tuple[int, int], np.ndarray] = {}
        self._consumed_cache: dict[int, np.ndarray] = {}
        self._offsets = np.arange(seq_len + 1, dtype=np.int64)
        if empty := [d for d, n, w in zip(self.domains, self.windows, np.max(self.stage_weights, axis=0))
                     if n == 0 and w > 0]:
            raise MixtureError(f"domain(s) {empty} of corpus {corpus.name!r} have fewer than seq_len+1="
                               f"{seq_len + 1} train tokens but a positive weight")
        if total_tokens is not None and data.epoch_caps:
            self.plan(total_tokens)  # raises past a cap

    # ---- validation -------------------------------------------------------------------------
    def _check(self, data: DataSpec) -> None:
        e = data.errors()
        known = set(self.domains)
        named = [("data.weights", data.weights), ("data.epoch_caps", data.epoch_caps),
                 ("data.reference_weights", data.reference_weights)]
        named += [(f"data.stages[{i}].weights", s.weights) for i, s in enumerate(data.stages)]
        for key, pairs in named:
            if missing := [d for d, _ in pairs if d not in known]:
                e.append(f"{key}: domain(s) {missing} not in corpus {self.corpus.name!r}, which has {self.domains}")
        if data.stages and self.total_tokens is None and any(
                getattr(s, "start_tokens", 0) <= 0 for s in data.stages):
            e.append("data.stages use start_frac: MixtureStream needs total_tokens (the run's tokens)")
        if e:
            raise SpecError(e)

    def _vector(self, pairs) -> np.ndarray:
        if not pairs:
            return np.full(len(self.domains), 1 / len(self.domains))
        w = dict(pairs)
        return np.array([float(w.get(d, 0.0)) for d in self.domains])

    def _stage_start_seq(self, i: int, stage) -> int:
        start = getattr(stage, "start_tokens", 0) or round(stage.start_frac * self.total_tokens)
        seq = -(-start // self.seq_len)  # the first sequence boundary at or after `start`
        return max(seq, 1)

    # ---- closed-form bookkeeping ------------------------------------------------------------
    def consumed(self, n_seq: int) -> np.ndarray:
        """Windows of each domain used by the first n_seq sequences (expected values when random)."""
        hit = self._consumed_cache.get(n_seq)
        if hit is None:
            if len(self._consumed_cache) > 64:
                self._consumed_cache.clear()
            hit = self._consumed_cache[n_seq] = self._consumed(n_seq)
        return hit.copy()

    def _consumed(self, n_seq: int) -> np.ndarray:
        out = np.zeros(len(self.domains), dtype=np.int64)
        starts = self.stage_starts + [None]
        for j, alloc in enumerate(self._alloc):
            lo, hi = starts[j], starts[j + 1]
            if n_seq <= lo:
                break
            out += alloc.counts((n_seq if hi is None else min(n_seq, hi)) - lo)
        return out

    def epochs_needed(self, tokens: int) -> dict[str, float]:
        """Epochs of each domain a run of `tokens` training tokens reads."""
        used = self.consumed(-(-tokens // self.seq_len))
        return {d: (float(u / n) if n else (math.inf if u else 0.0)) for d, u, n in zip(self.domains, used, self.windows)}

    def plan(self, tokens: int | None = None) -> MixturePlan:
        """How many sequences and epochs of each domain a run reads; refuses past an epoch cap."""
        tokens = tokens if tokens is not None else self.total_tokens
        if tokens is None:
            raise ValueError("plan() needs the run's tokens")
        used = self.consumed(-(-tokens // self.seq_len))
        caps = dict(self.data.epoch_caps)
        rows, over = [], []
        for i, d in enumerate(self.domains):
            n = int(self.windows[i])
            ep = float(used[i] / n) if n else (math.inf if used[i] else 0.0)
            rows.append(DomainPlan(d, tuple(float(w[i]) for w in self.stage_weights), n, int(used[i]),
                                   int(used[i]) * self.seq_len, ep, caps.get(d)))
            if d in caps and ep > caps[d]:
                over.append(f"data.epoch_caps.{d}={caps[d]:g}: the mixture reads {ep:.3f} epochs of {d!r} "
                            f"({int(used[i])} sequences of {n} windows, {len(self._tokens[i])} train tokens) in "
                            f"{tokens} tokens; lower its weight, raise the cap, or use a larger corpus")
        if over:
            raise MixtureError("\n".join(over))
        return MixturePlan(tokens, self.seq_len, tuple(self.stage_starts), tuple(rows))

    # ---- sampling -----------------------------------------------------------------------------
    def _perm(self, d: int, epoch: int) -> np.ndarray:
        key = (d, epoch)
        p = self._perms.get(key)
        if p is None:
            if len(self._perms) > 4 * len(self.domains):
                self._perms.clear()
            rng = np.random.default_rng([self.seed, 1, self._dom_seed[d], epoch])
            p = self._perms[key] = rng.permutation(int(self.windows[d]))
        return p

    def window_ids(self, d: int, k: np.ndarray) -> np.ndarray:
        """The windows domain d hands out as its k-th, k+1-th, ... (k: int64 array)."""
        W = int(self.windows[d])
        if k[0] // W == k[-1] // W:  # k increases: one epoch, the usual case
            return self._perm(d, int(k[0] // W))[k - (k[0] // W) * W]
        epoch, j = np.divmod(k, W)
        out = np.empty_like(k)
        for e in np.unique(epoch):
            m = epoch == e
            out[m] = self._perm(d, int(e))[j[m]]
        return out

    def _stage_of(self, seq: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.array(self.stage_starts), seq, side="right") - 1

    def batch(self, step: int) -> TokenBatch:
        B, T, D = self.batch_size, self.seq_len, len(self.domains)
        rng = np.random.default_rng([self.seed, 0, step])
        first = step * B
        if self.data.sampling == "stratified":
            k0 = self.consumed(first)
            counts = self.consumed(first + B) - k0
            labels = rng.permutation(np.repeat(np.arange(D), counts))
            windows = np.empty(B, dtype=np.int64)
            for d in np.flatnonzero(counts):
                rows = np.flatnonzero(labels == d)
                windows[rows] = self.window_ids(d, k0[d] + np.arange(len(rows), dtype=np.int64))
        else:
            W = np.asarray(self.stage_weights)
            stage = self._stage_of(np.arange(first, first + B)) if len(W) > 1 else np.zeros(B, dtype=np.int64)
            u = rng.random(B)
            labels = np.minimum((u[:, None] >= np.cumsum(W, axis=1)[stage]).sum(axis=1), D - 1)
            labels = np.where(W[stage, labels] > 0, labels, np.argmax(W[stage], axis=1))  # float rounding at the top
            windows = (rng.random(B) * self.windows[labels]).astype(np.int64)
        rows = np.empty((B, T + 1), dtype=np.int64)
        for d in range(D):
            m = labels == d
            if m.any():
                rows[m] = self._tokens[d][(windows[m] * T)[:, None] + self._offsets]
        x = torch.from_numpy(rows)
        dom = torch.from_numpy(labels.astype(np.int64))[:, None].expand(B, T).contiguous()
        return TokenBatch(x[:, :-1].contiguous(), x[:, 1:].contiguous(), dom)
