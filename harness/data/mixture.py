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
  * Curriculum stages switch at an exact token: the stage's start token S (start_tokens, or
    start_frac of the run's tokens, rounded). Tokens are counted sequence by sequence (sequence n
    holds the run's target tokens n*T .. n*T+T-1), so exactly S target tokens are drawn under the
    earlier stages. When S is not a multiple of T, the sequence that straddles it is spliced: its
    first r = S mod T targets come from a window of the old stage's domain and the rest from a
    window of the new stage's domain (the first T-r targets of that window; the one target at the
    junction is the new window's first token, predicted from the old context, like the first
    token after an unmasked document boundary). That sequence takes a slot in both stages'
    apportionments (the old stage's last, the new stage's first), so every stage's counts, the
    per-domain window counters and the epoch accounting stay closed-form; a batch that holds the
    switch has B+1 slots for its B rows. At most one switch per sequence.
  * Rows are shuffled within the batch (seeded by (seed, step)) so micro-batches mix domains.
  * A run over G processes (harness.distributed): rank r's stream (rank=r, world=G) builds the same batch
    and hands out its rows [r B/G, (r+1) B/G) only (gathering no other rows' tokens), so the ranks' batches
    of a step are, together, the 1-process batch.
Random sampling draws each sequence's domain from its stage's weights and a window uniformly
(with replacement), both seeded by (seed, step) (a spliced sequence: one draw per stage); epochs
are then expected, not exact, values.

The per-target-token domain label travels with the batch (TokenBatch.domains); only a spliced
sequence has two labels.
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
    stage_start_tokens: tuple[int, ...]   # the exact start token of each stage (0 for the first)
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
                 total_tokens: int | None = None, rank: int = 0, world: int = 1):
        self.corpus, self.data, self.batch_size, self.seq_len, self.seed = corpus, data, batch_size, seq_len, seed
        self.total_tokens = total_tokens
        if batch_size % world or not 0 <= rank < world:
            raise SpecError([f"world size {world} (rank {rank}) does not divide the batch of {batch_size} sequences: "
                             f"use a world size that divides {batch_size}"])
        self.rows = range(rank * batch_size // world, (rank + 1) * batch_size // world)   # this rank's rows
        self.domains: list[str] = corpus.domains
        self._check(data)
        self.stage_weights = [self._vector(data.weights)] + [self._vector(s.weights) for s in data.stages]
        # stage j starts at target token S_j: in sequence S_j // T, after r_j = S_j % T of its targets
        self.stage_start_tokens = [0] + [self._stage_start_token(s) for s in data.stages]
        self._first_seq = [t // seq_len for t in self.stage_start_tokens]
        self._split = [t % seq_len for t in self.stage_start_tokens]
        if any(b <= a for a, b in zip(self._first_seq, self._first_seq[1:])):
            raise SpecError([f"data.stages: start tokens {self.stage_start_tokens[1:]} must fall in different "
                             f"sequences of seq_len={seq_len} tokens (at most one switch per sequence)"])
        # stage j's slots are sequences [_first_seq[j], _hi[j]): a straddled sequence is a slot of both stages
        self._hi = [f + (r > 0) for f, r in zip(self._first_seq[1:], self._split[1:])] + [None]
        # sequences from which a stage holds whole sequences (random sampling's stage lookup)
        self._full_starts = np.array([-(-t // seq_len) for t in self.stage_start_tokens])
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
                s.start_tokens <= 0 for s in data.stages):
            e.append("data.stages use start_frac: MixtureStream needs total_tokens (the run's tokens)")
        if e:
            raise SpecError(e)

    def _vector(self, pairs) -> np.ndarray:
        if not pairs:
            return np.full(len(self.domains), 1 / len(self.domains))
        w = dict(pairs)
        return np.array([float(w.get(d, 0.0)) for d in self.domains])

    def _stage_start_token(self, stage) -> int:
        start = stage.start_tokens or round(stage.start_frac * self.total_tokens)
        return max(int(start), 1)

    # ---- closed-form bookkeeping ------------------------------------------------------------
    def consumed(self, n_seq: int) -> np.ndarray:
        """Windows of each domain used by the first n_seq sequences (expected values when random); a
        spliced sequence uses two, one per stage."""
        hit = self._consumed_cache.get(n_seq)
        if hit is None:
            if len(self._consumed_cache) > 64:
                self._consumed_cache.clear()
            hit = self._consumed_cache[n_seq] = self._consumed(n_seq)
        return hit.copy()

    def _consumed(self, n_seq: int) -> np.ndarray:
        out = np.zeros(len(self.domains), dtype=np.int64)
        for alloc, lo, hi in zip(self._alloc, self._first_seq, self._hi):
            if n_seq <= lo:
                break
            out += alloc.counts((n_seq if hi is None else min(n_seq, hi)) - lo)
        return out

    def _slot_domain(self, j: int, i: int) -> int:
        """The domain of stage j's i-th slot (Sainte-Lague counts grow by one slot at a time)."""
        return int(np.argmax(self._alloc[j].counts(i + 1) - self._alloc[j].counts(i)))

    def splices(self, first: int, end: int) -> list[tuple[int, int, int, int]]:
        """(sequence, r, old domain, new domain) of each switch straddled by sequences [first, end)."""
        out = []
        for j in range(1, len(self._alloc)):
            n, r = self._first_seq[j], self._split[j]
            if r and first <= n < end:
                out.append((n, r, self._slot_domain(j - 1, n - self._first_seq[j - 1]), self._slot_domain(j, 0)))
        return out

    def domain_tokens(self, n_seq: int) -> np.ndarray:
        """Target tokens of each domain in the first n_seq sequences (expected values when random)."""
        out = self.consumed(n_seq) * self.seq_len
        for _, r, old, new in self.splices(0, n_seq):  # each half of a spliced sequence counted a whole window
            out[old] -= self.seq_len - r
            out[new] -= r
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
        toks = self.domain_tokens(-(-tokens // self.seq_len))
        caps = dict(self.data.epoch_caps)
        rows, over = [], []
        for i, d in enumerate(self.domains):
            n = int(self.windows[i])
            ep = float(used[i] / n) if n else (math.inf if used[i] else 0.0)
            rows.append(DomainPlan(d, tuple(float(w[i]) for w in self.stage_weights), n, int(used[i]),
                                   int(toks[i]), ep, caps.get(d)))
            if d in caps and ep > caps[d]:
                over.append(f"data.epoch_caps.{d}={caps[d]:g}: the mixture reads {ep:.3f} epochs of {d!r} "
                            f"({int(used[i])} sequences of {n} windows, {len(self._tokens[i])} train tokens) in "
                            f"{tokens} tokens; lower its weight, raise the cap, or use a larger corpus")
        if over:
            raise MixtureError("\n".join(over))
        return MixturePlan(tokens, self.seq_len, tuple(self.stage_start_tokens), tuple(rows))

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
        """The stage of each sequence (a straddled sequence: the stage it starts in)."""
        return np.searchsorted(self._full_starts, seq, side="right") - 1

    def batch(self, step: int) -> TokenBatch:
        B, T, D = self.batch_size, self.seq_len, len(self.domains)
        rng = np.random.default_rng([self.seed, 0, step])
        first = step * B
        splices = self.splices(first, first + B) if len(self._alloc) > 1 else []
        S = len(splices)
        if self.data.sampling == "stratified":
            k0 = self.consumed(first)
            counts = self.consumed(first + B) - k0  # B windows, plus one per splice
            old = np.array([sp[2] for sp in splices], dtype=np.int64)
            new = np.array([sp[3] for sp in splices], dtype=np.int64)
            pure = counts - np.bincount(old, minlength=D) - np.bincount(new, minlength=D)
            labels = rng.permutation(np.repeat(np.arange(D), pure))
            slots = np.concatenate([labels, old, new])  # every window of the batch, in handing-out order
            windows = np.empty(len(slots), dtype=np.int64)
            for d in np.flatnonzero(counts):
                at = np.flatnonzero(slots == d)
                windows[at] = self.window_ids(d, k0[d] + np.arange(len(at), dtype=np.int64))
            windows, old_w, new_w = windows[:B - S], windows[B - S:B], windows[B:]
        else:
            W = np.asarray(self.stage_weights)
            seqs = np.setdiff1d(np.arange(first, first + B), [sp[0] for sp in splices])  # the unspliced ones
            stage = self._stage_of(seqs) if len(W) > 1 else np.zeros(B - S, dtype=np.int64)
            labels, windows = self._draw(rng, W, stage)
            if S:  # a straddled sequence draws its two halves from the two stages
                j = self._stage_of(np.array([sp[0] for sp in splices]))
                old, old_w = self._draw(rng, W, j)
                new, new_w = self._draw(rng, W, j + 1)
        lo, hi = self.rows.start, self.rows.stop   # this rank's rows of the batch (all of it for one process)
        rows = np.empty((hi - lo, T + 1), dtype=np.int64)
        dom = np.empty((hi - lo, T), dtype=np.int64)
        pure_rows = np.arange(B)
        if S:  # the spliced rows go to seeded places among the batch's rows
            at = rng.choice(B, S, replace=False)
            pure_rows = np.setdiff1d(pure_rows, at)
            for i, (_, r, _, _), od, ow, nd, nw in zip(at, splices, old, old_w, new, new_w):
                if lo <= i < hi:
                    rows[i - lo, :r + 1] = self._tokens[od][ow * T:ow * T + r + 1]
                    rows[i - lo, r + 1:] = self._tokens[nd][nw * T:nw * T + T - r]
                    dom[i - lo, :r], dom[i - lo, r:] = od, nd
        mine = (pure_rows >= lo) & (pure_rows < hi)
        for d in range(D):
            m = (labels == d) & mine
            if m.any():
                rows[pure_rows[m] - lo] = self._tokens[d][(windows[m] * T)[:, None] + self._offsets]
        dom[pure_rows[mine] - lo] = labels[mine][:, None]
        x = torch.from_numpy(rows)
        batch = TokenBatch(x[:, :-1].contiguous(), x[:, 1:].contiguous(), torch.from_numpy(dom))
        # document masks: the varlen path's sequences built here, on the host and ahead of the step (the CUDA loop
        # builds batches in a loader process), so the compiled step needs no device-to-host read for them
        return batch.with_starts(self.corpus.eod_id) if self.data.document_mask == "on" else batch

    def _draw(self, rng, W: np.ndarray, stage: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Random sampling: a domain from each sequence's stage weights, and a window of it."""
        D = W.shape[1]
        u = rng.random(len(stage))
        labels = np.minimum((u[:, None] >= np.cumsum(W, axis=1)[stage]).sum(axis=1), D - 1)
        labels = np.where(W[stage, labels] > 0, labels, np.argmax(W[stage], axis=1))  # float rounding at the top
        return labels, (rng.random(len(stage)) * self.windows[labels]).astype(np.int64)
