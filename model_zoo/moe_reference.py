"""The plain MoE layer: routing written out and a Python loop over experts.

Slow and obviously right; it reads the same parameters as model_zoo.moe.MoELayer and the tests hold
the fast paths to it (outputs and gradients). It shares no code with the fast path on purpose.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def reference_forward(layer, x: torch.Tensor):
    """Same contract as MoELayer.forward: (y [B, T, d], weighted aux loss, stats)."""
    s = layer.spec
    B, T, dim = x.shape
    n, k, n_experts = B * T, s.top_k, s.n_experts
    xf = x.reshape(n, dim)

    with torch.autocast(x.device.type, enabled=False):      # router logits in fp32
        logits = xf.float() @ layer.router.weight.float().t()
        probs = torch.softmax(logits, dim=-1)
        gates, ids = torch.topk(probs, k, dim=-1)
        if k > 1:                                      # Mixtral renormalises; top-1 keeps the raw prob (Switch)
            gates = gates / gates.sum(dim=-1, keepdim=True)
    cap = math.ceil(s.capacity_factor * n * k / n_experts) if s.capacity_factor > 0 else n * k

    y = torch.zeros(n, dim, dtype=torch.float32, device=x.device)
    counts = torch.zeros(n_experts, device=x.device)
    kept = 0
    for e in range(n_experts):
        # the assignments to expert e in priority order: all first choices, then second choices, ...
        tokens, slots = [], []
        for j in range(k):
            t = (ids[:, j] == e).nonzero().flatten()
            tokens.append(t)
            slots.append(torch.full_like(t, j))
        tokens, slots = torch.cat(tokens), torch.cat(slots)
        counts[e] = len(tokens)
        tokens, slots = tokens[:cap], slots[:cap]
        kept += len(tokens)
        w_gate, w_up = layer.w_gate_up[e].to(xf.dtype).chunk(2, dim=0)
        xe = xf[tokens]
        out = (F.silu(xe @ w_gate.t()) * (xe @ w_up.t())) @ layer.w_down[e].to(xf.dtype).t()
        y = y.index_add(0, tokens, out.float() * gates[tokens, slots].unsqueeze(-1))
    y = y.to(x.dtype)

    if layer.w_shared_gate_up is not None:
        w_gate, w_up = layer.w_shared_gate_up.chunk(2, dim=0)
        y = y + (F.silu(xf @ w_gate.t()) * (xf @ w_up.t())) @ layer.w_shared_down.t()

    load = counts / (n * k)
    aux = n_experts * (load * probs.mean(dim=0)).sum()
    z = (torch.logsumexp(logits, dim=-1) ** 2).mean()
    stats = {"load": load, "aux": aux.detach(), "z": z.detach(),
             "dropped": torch.tensor(1.0 - kept / (n * k), device=x.device)}
    return y.view(B, T, dim), s.router_aux_coef * aux + s.router_z_coef * z, stats
