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

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, device: torch.device, batch_size: int,
                 autocast: contextlib.AbstractContextManager | None = None) -> dict[str, float]:
        """{"loss": reference-mixture loss, "loss_<domain>": mean token CE per domain}."""
        was_training = model.training
        model.eval()
        sums = {}
        for d, (xs, ys) in self.sets.items():
            total = torch.zeros((), dtype=torch.float64, device=device)
            count = xs.numel()
            for i in range(0, len(xs), batch_size):
                x, y = xs[i:i + batch_size].to(device), ys[i:i + batch_size].to(device)
                with autocast or contextlib.nullcontext():
                    if self.eod_id is None:
                        out = model(x, y)
                    else:
                        out = model(x, y, docmask.document_ids(x, self.eod_id))
                if self.eod_id is None:
                    total += out.ce.double().sum()
                else:
                    keep = docmask.loss_keep(x, self.eod_id)
                    total += (out.ce.double() * keep).sum()
                    count -= int((~keep).sum())
            sums[d] = (total, count)
        model.train(was_training)
        losses = {f"loss_{d}": (t.item() / n if n else math.nan) for d, (t, n) in sums.items()}
        losses["loss"] = math.fsum(w * losses[f"loss_{d}"] for d, w in self.weights.items() if w > 0)
        return losses
