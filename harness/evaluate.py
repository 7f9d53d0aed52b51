"""Held-out loss per domain and on the reference mixture.

The held-out set is fixed: the first `eval.heldout_tokens` tokens of each domain's held-out split,
cut into non-overlapping seq_len windows (targets shifted by one), so every eval of every run on a
corpus sees the same tokens. Loss on the reference mixture = sum over domains of w_d * loss_d, with
w the spec's data.reference_weights (default: the training weights; uniform if those are empty).

An eval runs every domain's windows, stacked domain after domain, through forward calls of one size (a call may
span two domains; the last one is shifted back to end at the last window, so it repeats some windows rather than
taking a smaller shape). Each call returns its windows' summed token CE (WindowLosses) into one per-window vector
on the device; the domains' sums are taken from it at the end, and read in one host copy per eval. Compiled
(`compiled_eval`), a call is one graph: the model, its head and the sums, compiled once per shape, and the fixed
call size keeps it to one shape.
"""
from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from harness.spec import DataSpec
from model_zoo import docmask

if TYPE_CHECKING:
    from harness.data.corpus import Corpus
    from harness.device import Hardware

# Tokens a forward call takes at most (sequences = EVAL_TOKENS // seq_len): bounds the eager eval's [tokens, vocab]
# float32 logits (and the temporaries of its head's loss) to a few GiB at the GPU ladder's vocabulary.
EVAL_TOKENS = 2**16
# Whether a single-process CUDA run whose training compiles as one graph (runtime.compile=on, the CUDA default) also
# compiles its eval forward (WindowLosses) once, at full call size, its compile counted as warm-up; else the eager
# eval at the training micro-batch. Measured on an H200 (bench/README.md, "Held-out eval on the H200, session 9"):
# under compile=on the compiled eval is 3.1-6.1x the eager one per eval and its compile costs 0.7-1.1 s, so a run's
# 11 evals take 1.45 s instead of 2.39 (L2-d128) and 3.46 s instead of 8.71 (L8-d512). Under compile=regional its
# compile costs 2.9-5.7 s (nothing of the training graph to reuse): 3.20 s vs 2.38 and 8.43 vs 8.69, no gain, so
# regional runs keep the eager eval. With document masks the compiled eval's flex path failed on the H200 ("operation
# not supported on global/shared address space" while autotuning): those runs keep the eager eval too.
COMPILED_EVAL = True
# Whether a single-process CUDA run under runtime.compile=regional evaluates through its compiled regions (each block
# and the head + loss, as in training; their no-grad graphs compile once per width, and every call has the eval's one
# shape) instead of eagerly. The eager eval's head materialises [tokens, vocab] float32 logits (7.5x the forward's
# cost at L2-d128 on the H200, bench/README.md "Held-out eval on the H200, session 9"), which the compiled tail fuses
# away; the whole-model compiled eval paid no gain there because it shares nothing with the regional graphs. On the
# H200 (bench/README.md, "Sweep efficiency 1.149 ..., session 14"): the 12-run grid's eval 11.5 s -> 3.2 s
# with its graphs in a warm cache; on a cold one (session 12) the wall was the same either way.
REGIONAL_EVAL = True


def reference_weights(data: DataSpec, domains: list[str]) -> dict[str, float]:
    w = dict(data.reference_weights or data.weights)
    return {d: w.get(d, 0.0) for d in domains} if w else {d: 1 / len(domains) for d in domains}


def heldout_windows(tokens: np.ndarray, n_tokens: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) [n, seq_len] int64 from the first n_tokens tokens; n may be 0 if too few."""
    toks = np.asarray(tokens[:min(n_tokens, len(tokens))], dtype=np.int64)
    n = (len(toks) - 1) // seq_len
    x = torch.from_numpy(toks[:n * seq_len + 1].copy())
    return x[:-1].view(n, seq_len), x[1:].view(n, seq_len)


def _may_compile_eval(hw: Hardware, sharded: bool, document_mask: str) -> bool:
    """Where either compiled eval may run: a CUDA run that compiles its training, in one process (a sharded model's
    forward is a collective: its eval stays eager), without document masks (the eager eval takes the dense mask)."""
    return hw.compile and hw.device.type == "cuda" and not sharded and document_mask != "on"


def compiled_eval(hw: Hardware, sharded: bool, document_mask: str = "off") -> bool:
    """Whether the trainer evaluates through the compiled WindowLosses: COMPILED_EVAL, where the runtime compiles its
    whole training step (not regional). See COMPILED_EVAL for the measurements behind each condition."""
    return COMPILED_EVAL and not hw.regional and _may_compile_eval(hw, sharded, document_mask)


def regional_eval(hw: Hardware, sharded: bool, document_mask: str = "off") -> bool:
    """Whether the trainer evaluates through the model's compiled regions: REGIONAL_EVAL, under runtime.compile
    regional (so never where compiled_eval is)."""
    return REGIONAL_EVAL and hw.regional and _may_compile_eval(hw, sharded, document_mask)


@contextlib.contextmanager
def regions_in_eval(model: torch.nn.Module, on: bool):
    """For the duration, the model's compiled regions (model_zoo.dense.Transformer.compile_regions) serve its no-grad
    forwards too, where `on`; only around the held-out eval, whose calls have one shape (other no-grad callers, the
    downstream suite, pass batches of many shapes and stay eager)."""
    if not on or not hasattr(model, "eval_regions"):
        yield
        return
    model.eval_regions = True
    try:
        yield
    finally:
        model.eval_regions = False


def eval_batch(hw: Hardware, seq_len: int, micro: int, compiled: bool, domain_windows: int) -> int:
    """Sequences a forward call of the trainer's eval, under the EVAL_TOKENS cap. Compiled: the cap (the head's loss
    is fused, no float32 logits are kept). Eager fp32 on the CPU: one domain's windows (domain_windows), as the
    per-domain calls before (the chunked head holds one chunk of logits at a time, model_zoo/chunked_ce.py, so a
    tiny model's eval costs calls more than FLOPs; one call over all domains was slower there, bench/README.md
    "Held-out eval: a profile for the GPU"). Else the training micro-batch."""
    cap = max(1, EVAL_TOKENS // seq_len)
    if compiled:
        return cap
    if hw.device.type == "cpu" and hw.dtype == torch.float32:
        return max(1, min(cap, domain_windows))
    return min(micro, cap)


class WindowLosses(torch.nn.Module):
    """(inputs, targets) [B, T] -> [B] float64: each window's summed token CE; with an eod_id (data.document_mask=on)
    the model attends within documents and the sum skips the targets model_zoo.docmask.loss_keep drops, as in
    training. A module, as harness.step.LossStep, so that torch.compile makes the whole eval forward one graph."""

    def __init__(self, model: torch.nn.Module, eod_id: int | None = None):
        super().__init__()
        self.model, self.eod_id = model, eod_id

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.eod_id is None:
            return self.model(inputs, targets).ce.double().sum(1)
        ce = self.model(inputs, targets, docmask.document_ids(inputs, self.eod_id)).ce
        return (ce.double() * docmask.loss_keep(inputs, self.eod_id)).sum(1)


@contextlib.contextmanager
def evaluating(model: torch.nn.Module):
    """Eval mode and no autograd for the duration, the model's mode restored after (a compiled graph guards on both:
    the eval's calls, warm-up included, run under the same)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


class HeldoutSet:
    """With data.document_mask=on the model attends within documents and the targets
    model_zoo.docmask.loss_keep drops are left out of each domain's mean, as in training.

    curve_tokens > 0 (eval.curve_tokens): a second, smaller set for the evals before the last, the first
    curve_tokens tokens of each domain, i.e. a prefix of its windows (heldout_windows cuts from the start, so the
    subset's windows are the full set's first rows); an eval of the full set also reports the subset's losses
    (curve_loss*) from the same per-window sums."""

    def __init__(self, corpus: Corpus, data: DataSpec, heldout_tokens: int, seq_len: int, curve_tokens: int = 0):
        self.sets = {d: heldout_windows(corpus.heldout(d), heldout_tokens, seq_len) for d in corpus.domains}
        self.weights = reference_weights(data, corpus.domains)
        self.eod_id = corpus.eod_id if data.document_mask == "on" else None
        self.domains = list(self.sets)
        ends = np.cumsum([len(xs) for xs, _ in self.sets.values()]).tolist()
        self.bounds = list(zip([0] + ends[:-1], ends))   # each domain's rows of the stacked windows
        self.counts = self._counts(None)
        # the curve subset: each domain's first rows (as many as heldout_windows would cut from curve_tokens)
        self.curve_rows = None
        if curve_tokens:
            self.curve_rows = [min(len(xs), max(0, (min(curve_tokens, len(corpus.heldout(d))) - 1) // seq_len))
                               for d, (xs, _) in self.sets.items()]
            self.curve_counts = self._counts(self.curve_rows)
            ends = np.cumsum(self.curve_rows).tolist()
            self.curve_bounds = list(zip([0] + ends[:-1], ends))
        self.placed: dict = {}   # (device, curve) -> the windows there, copied once per run rather than per batch
        self.forwards: dict = {}  # (model id, compiled) -> its WindowLosses (one compiled wrapper per run)

    def _counts(self, rows: list[int] | None) -> list[int]:
        """Targets scored per domain (a document mask drops some), over each domain's first `rows` windows (None:
        all): counted once, on the host."""
        out = []
        for i, (xs, ys) in enumerate(self.sets.values()):
            k = len(xs) if rows is None else rows[i]
            xs, ys = xs[:k], ys[:k]
            out.append(ys.numel() - (int((~docmask.loss_keep(xs, self.eod_id)).sum()) if self.eod_id is not None else 0))
        return out

    @property
    def domain_windows(self) -> int:
        """Windows of the largest domain."""
        return max((b - a for a, b in self.bounds), default=0)

    def on(self, device: torch.device, curve: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) [n, seq_len], every domain's windows (curve: its curve subset's) stacked, on `device`.
        A batch copied from pageable host memory waits for the device to finish the work queued before it, so
        copying per batch kept the host from running ahead of an eval's forwards."""
        key = (str(device), curve)
        if key not in self.placed:
            rows = self.curve_rows if curve else [len(xs) for xs, _ in self.sets.values()]
            xs, ys = (torch.cat([s[i][:k] for s, k in zip(self.sets.values(), rows)]) for i in (0, 1))
            self.placed[key] = (xs.to(device), ys.to(device))
        return self.placed[key]

    def forward(self, model: torch.nn.Module, compiled: bool) -> torch.nn.Module:
        """The eval's forward for `model`: WindowLosses, compiled with static shapes when asked."""
        key = (id(model), compiled)
        if key not in self.forwards or self.forwards[key][0] is not model:
            f = WindowLosses(model, self.eod_id)
            self.forwards[key] = (model, torch.compile(f, dynamic=False) if compiled else f)
        return self.forwards[key][1]

    def call_size(self, batch_size: int, world: int = 1, curve: bool = False) -> int:
        """Windows a forward call: batch_size, at most a rank's share (so a call of that size fits in it)."""
        n = sum(self.curve_rows) if curve else sum(len(xs) for xs, _ in self.sets.values())
        return max(1, min(batch_size, -(-n // world)))

    def warm(self, model: torch.nn.Module, device: torch.device, batch_size: int,
             autocast: contextlib.AbstractContextManager | None = None, compiled: bool = False) -> None:
        """One forward call of each of the eval's shapes (the full set's call; the curve subset's where smaller),
        results dropped: compiles the eval's graphs (warm-up, not eval)."""
        for curve in (False, True) if self.curve_rows else (False,):
            xs, ys = self.on(device, curve)
            size = self.call_size(batch_size, curve=curve)
            if not len(xs) or (curve and size == self.call_size(batch_size)):
                continue
            with evaluating(model), autocast or contextlib.nullcontext():
                self.forward(model, compiled)(xs[:size], ys[:size])
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def evaluate(self, model: torch.nn.Module, device: torch.device, batch_size: int,
                 autocast: contextlib.AbstractContextManager | None = None, rank: int = 0,
                 world: int = 1, compiled: bool = False, fixed_shape: bool = False,
                 curve: bool = False) -> dict[str, float]:
        """{"loss": reference-mixture loss, "loss_<domain>": mean token CE per domain}; with a curve subset
        (curve_tokens) also {"curve_loss", "curve_loss_<domain>"}, the same on its windows, from the same sums.
        curve: the curve subset's windows only, {"curve_loss", "curve_loss_<domain>"} alone.

        Over `world` ranks each takes a contiguous share of the stacked windows and the per-window sums are added
        across ranks; every rank makes the same number of forward calls (a rank past its share calls on a stand-in
        whose losses it drops), since an FSDP-sharded model's forward is a collective. compiled: through the
        compiled WindowLosses (one graph per call size). fixed_shape: every call at full size, as compiled (the
        compiled regions, regions_in_eval)."""
        if curve and not self.curve_rows:
            raise ValueError("HeldoutSet.evaluate(curve=True): this set has no curve subset (curve_tokens=0)")
        xs, ys = self.on(device, curve)
        n = len(xs)
        sums = torch.zeros(n, dtype=torch.float64, device=device)   # each window's summed CE
        share = -(-n // world)
        start, stop = min(rank * share, n), min((rank + 1) * share, n)
        size = self.call_size(batch_size, world, curve)
        forward = self.forward(model, compiled)
        with evaluating(model), autocast or contextlib.nullcontext():
            for lo in range(start, start + share, size) if n else ():
                hi = min(lo + size, stop)
                if hi <= lo:   # this rank's share is used up: a stand-in, its losses dropped
                    forward(xs[:size], ys[:size])
                    continue
                # compiled: a short last call is shifted back to full size (repeats windows, keeps one shape)
                first = max(hi - size, 0) if compiled or fixed_shape else lo
                sums[lo:hi] = forward(xs[first:hi], ys[first:hi])[lo - first:]
        if world > 1:
            import torch.distributed as dist
            dist.all_reduce(sums)
        if curve:
            return self._losses(sums, self.curve_bounds, self.curve_counts, "curve_")
        losses = self._losses(sums, self.bounds, self.counts)
        if self.curve_rows:   # the subset: each domain's first rows of the same sums
            bounds = [(a, a + k) for (a, _), k in zip(self.bounds, self.curve_rows)]
            losses.update(self._losses(sums, bounds, self.curve_counts, "curve_"))
        return losses

    def _losses(self, sums: torch.Tensor, bounds: list, counts: list[int], prefix: str = "") -> dict[str, float]:
        """{prefix + "loss_<domain>": the domain's rows' CE sum / its targets, prefix + "loss": on the reference
        mixture}; one host copy."""
        totals = torch.stack([sums[a:b].sum() for a, b in bounds]).tolist() if bounds else []
        losses = {f"{prefix}loss_{d}": (t / c if c else math.nan) for d, t, c in zip(self.domains, totals, counts)}
        losses[f"{prefix}loss"] = math.fsum(w * losses[f"{prefix}loss_{d}"] for d, w in self.weights.items() if w > 0)
        return losses
