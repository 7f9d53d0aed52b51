"""Output head and cross-entropy fused over row chunks, for eager fp32 on the CPU.

Eagerly, `head(h)` then `token_losses(logits, targets)` makes about a dozen passes over the
[tokens, vocab] logits (matmul, logsumexp, the one-hot select, and as many again backward), each
through main memory; for the CPU ladder's tiny models that head-and-loss traffic is most of a step.
Here the logits exist one chunk of rows at a time, small enough to stay in cache, and are recomputed
in the backward instead of stored (as Liger's fused linear cross-entropy does on GPUs). The weight
gradient is accumulated as h^T @ dlogits ([d, chunk] @ [chunk, vocab]): BLAS runs that shape several
times faster than the [vocab, chunk] @ [chunk, d] product autograd would form for a thin d.

Same outputs as token_losses(h @ W^T, targets), (ce, lse) per token, up to float rounding; on CUDA
the compiled graph fuses the plain path, so the model uses this only for eager CPU without autocast.
"""
from __future__ import annotations

import torch

# Logit elements per chunk: 2^18 fp32 values = 1 MiB, within a core's L2 cache on current CPUs.
CHUNK_ELEMENTS = 1 << 18


def chunk_rows(vocab: int) -> int:
    return max(16, CHUNK_ELEMENTS // vocab)


class ChunkedHeadCE(torch.autograd.Function):
    """(h [n, d], weight [V, d], targets [n]) -> (ce [n], lse [n]), both float32."""

    @staticmethod
    def forward(ctx, h, weight, targets):
        n, rows = h.shape[0], chunk_rows(weight.shape[0])
        lse = h.new_empty(n)
        target_logit = h.new_empty(n)
        for i in range(0, n, rows):
            logits = h[i:i + rows] @ weight.t()
            lse[i:i + rows] = torch.logsumexp(logits, dim=-1)
            target_logit[i:i + rows] = logits.gather(1, targets[i:i + rows, None]).squeeze(1)
        ctx.save_for_backward(h, weight, targets, lse)
        return lse - target_logit, lse

    @staticmethod
    def backward(ctx, grad_ce, grad_lse):
        # d ce / d logits = softmax - onehot(target); d lse / d logits = softmax.
        h, weight, targets = ctx.saved_tensors[:3]
        lse = ctx.saved_tensors[3]
        n, rows = h.shape[0], chunk_rows(weight.shape[0])
        grad_h = torch.empty_like(h) if ctx.needs_input_grad[0] else None
        grad_wt = h.new_zeros(h.shape[1], weight.shape[0]) if ctx.needs_input_grad[1] else None
        grad_softmax = grad_ce + grad_lse
        for i in range(0, n, rows):
            hc, sl = h[i:i + rows], slice(i, i + rows)
            g = (hc @ weight.t()).sub_(lse[sl, None]).exp_().mul_(grad_softmax[sl, None])
            g.scatter_add_(1, targets[sl, None], -grad_ce[sl, None])
            if grad_wt is not None:
                grad_wt.addmm_(hc.t(), g)
            if grad_h is not None:
                grad_h[sl] = g @ weight
        return grad_h, (grad_wt.t() if grad_wt is not None else None), None


def chunked_head_losses(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor):
    """(ce, lse) of the logits h @ weight^T against targets, shaped like targets: h [..., d]."""
    ce, lse = ChunkedHeadCE.apply(h.reshape(-1, h.shape[-1]), weight, targets.reshape(-1))
    return ce.view(targets.shape), lse.view(targets.shape)
