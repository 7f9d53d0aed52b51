"""Held-out loss per domain and on the reference mixture.

The held-out set is fixed: the first `eval.heldout_tokens` tokens of each domain's held-out split,
cut into non-overlapping seq_len windows (targets shifted by one), so every eval of every run on a
corpus sees the same tokens. Loss on the reference mixture = sum over domains of w_d * loss_d, with
w the spec's data.reference_weights (default: the training weights; uniform if those are empty).
"""
from __future__ import annotations

import contextlib
import math

import numpy as np
import torch

from harness.data.corpus import Corpus
from harness.spec import DataSpec
from model_zoo import docmask


def reference_weights(data: DataSpec, domains: list[str]) -> dict[str, float]:
    w = dict(data.reference_weights or data.weights)
    return {d: w.get(d, 0.0) for d in domains} if w else {d: 1 / len(domains) for d in domains}


def heldout_windows(tokens: np.ndarray, n_tokens: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) [n, seq_len] int64 from the first n_tokens tokens; n may be 0 if too few."""
    toks = np.asarray(tokens[:min(n_tokens, len(tokens))], dtype=np.int64)
    n = (len(toks) - 1) // seq_len
    x = torch.from_numpy(toks[:n * seq_len + 1].copy())
    return x[:-1].view(n, seq_len), x[1:].view(n, seq_len)


class HeldoutSet:
    """With data.document_mask=on the model attends within documents and the targets
    model_zoo.docmask.loss_keep drops are left out of each domain's mean, as in training."""

    def __init__(self, corpus: Corpus, data: DataSpec, heldout_tokens: int, seq_len: int):
        self.sets = {d: heldout_windows(corpus.heldout(d), heldout_tokens, seq_len) for d in corpus.domains}
        self.weights = reference_weights(data, corpus.domains)
        self.eod_id = corpus.eod_id if data.document_mask == "on" else None
        self.placed: dict = {}   # device -> the windows there, copied once per run rather than once per batch per eval

    def on(self, device: torch.device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The windows on `device`. A batch copied from pageable host memory waits for the device to finish the work
        queued before it, so copying per batch kept the host from running ahead of an eval's forwards."""
        key = str(device)
        if key not in self.placed:
            self.placed[key] = {d: (xs.to(device), ys.to(device)) for d, (xs, ys) in self.sets.items()}
        return self.placed[key]

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, device: torch.device, batch_size: int,
                 autocast: contextlib.AbstractContextManager | None = None, rank: int = 0,
                 world: int = 1) -> dict[str, float]:
        """{"loss": reference-mixture loss, "loss_<domain>": mean token CE per domain}.

        Over `world` ranks each takes a contiguous share of every domain's windows and the sums are added
        across ranks; every rank makes the same number of forward calls (a short share repeats a window whose
        loss it drops), since an FSDP-sharded model's forward is a collective."""
        was_training = model.training
        model.eval()
        sums = {}
        for d, (xs, ys) in self.on(device).items():
            total = torch.zeros((), dtype=torch.float64, device=device)
            count = xs.numel()    # targets scored over all ranks' shares (a document mask drops some)
            if self.eod_id is not None:
                count -= int((~docmask.loss_keep(xs, self.eod_id)).sum())
            share = -(-len(xs) // world)
            mine = range(min(rank * share, len(xs)), min((rank + 1) * share, len(xs)))
            for i in range(0, share if world > 1 else len(xs), batch_size):
                lo, hi = mine.start + i, min(mine.start + i + batch_size, mine.stop)
                keep = hi > lo
                if not keep:   # this rank's share is used up: a stand-in window, its loss dropped
                    lo, hi = 0, 1
                x, y = xs[lo:hi], ys[lo:hi]
                with autocast or contextlib.nullcontext():
                    if self.eod_id is None:
                        out = model(x, y)
                    else:
                        out = model(x, y, docmask.document_ids(x, self.eod_id))
                if not keep:
                    continue
                if self.eod_id is None:
                    total += out.ce.double().sum()
                else:
                    total += (out.ce.double() * docmask.loss_keep(x, self.eod_id)).sum()
            sums[d] = (total, count)
        model.train(was_training)
        if world > 1:
            import torch.distributed as dist
            totals = torch.stack([t for t, _ in sums.values()])
            dist.all_reduce(totals)
            sums = {d: (t, n) for (d, (_, n)), t in zip(sums.items(), totals)}
        losses = {f"loss_{d}": (t.item() / n if n else math.nan) for d, (t, n) in sums.items()}
        losses["loss"] = math.fsum(w * losses[f"loss_{d}"] for d, w in self.weights.items() if w > 0)
        return losses
