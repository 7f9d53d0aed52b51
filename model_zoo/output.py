"""What a model returns when given targets (the contract between model_zoo and the trainer)."""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # annotations only: importing model_zoo (specs, counts) must not import torch
    import torch


class ModelOutput(NamedTuple):
    ce: torch.Tensor                   # [B, T] float32 per-token cross-entropy (with grad)
    lse: torch.Tensor                  # [B, T] float32 logsumexp of the logits; z-loss = coef * mean(lse**2)
    aux_loss: torch.Tensor             # scalar: MoE auxiliary losses, already times their coefficients (0: dense)
    moe_stats: dict[str, torch.Tensor] # MoE telemetry, each stacked over layers [n_layers, ...]; {} for dense
    # given a z_loss, a model may return its mean CE + z_loss * mean(lse**2) here, with the gradient (the eager CPU
    # head computes it fused, model_zoo/chunked_ce.py); ce and lse are then statistics without gradient
    head_loss: torch.Tensor | None = None
