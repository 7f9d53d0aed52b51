"""The loss of one micro-batch, as one module so torch.compile fuses it with the model.

loss = mean CE + z_loss * mean(lse^2) + aux_loss (MoE auxiliary losses, already weighted).
Besides the loss it returns a small stats vector that the loop sums on the device between log steps
(no host sync per step): [ce mean, z term, aux, per-domain CE sums..., per-domain token counts..., MoE stats].
"""
from __future__ import annotations

import torch
from torch import nn

from model_zoo.moe_stats import pack_stats


class LossStep(nn.Module):
    def __init__(self, model: nn.Module, z_loss: float, n_domains: int):
        super().__init__()
        self.model, self.z_loss, self.n_domains = model, z_loss, n_domains

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor, domains: torch.Tensor):
        out = self.model(inputs, targets)
        ce = out.ce.mean()
        z = self.z_loss * out.lse.float().square().mean() if self.z_loss else torch.zeros_like(ce)
        aux = torch.as_tensor(out.aux_loss, dtype=ce.dtype, device=ce.device)
        loss = ce + z + aux
        # Per-domain CE sums and token counts: a scatter-add written as a masked reduction. Compiled, it
        # is one fused reduction kernel (a scatter_add would be B*T atomic adds onto n_domains addresses,
        # serialised on the GPU, and not deterministic).
        mask = (domains.reshape(-1, 1) == torch.arange(self.n_domains, device=domains.device)).float()
        dom_sum = (out.ce.detach().float().reshape(-1, 1) * mask).sum(0)
        dom_cnt = mask.sum(0)
        stats = torch.cat([torch.stack([ce.detach(), z.detach(), aux.detach()]), dom_sum, dom_cnt,
                           pack_stats(out.moe_stats, ce.device)])   # MoE telemetry (model_zoo.moe_stats), dense: empty
        return loss, stats
