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

`chunked_head_loss` goes one step further when the loss is known in advance (the trainer's mean CE + z-loss):
it forms each chunk's logits once, in the forward, and computes the gradients there (the softmax is at hand),
so the backward only scales them by the incoming gradient. That is one matmul, one exp pass and a subtraction
per chunk fewer than forward-then-recompute.
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


class ChunkedHeadLoss(torch.autograd.Function):
    """(h [n, d], weight [V, d], targets [n], ce_weight [n], lse_sq_weight [n]) ->
    (loss = sum_i ce_weight_i ce_i + lse_sq_weight_i lse_i^2, ce [n], lse [n]); gradients flow through the loss
    only (ce and lse are its statistics), computed in the forward and scaled in the backward."""

    @staticmethod
    def forward(ctx, h, weight, targets, ce_weight, lse_sq_weight):
        n, rows = h.shape[0], chunk_rows(weight.shape[0])
        lse = h.new_empty(n)
        target_logit = h.new_empty(n)
        grad_h = torch.empty_like(h)
        grad_wt = h.new_zeros(h.shape[1], weight.shape[0])
        for i in range(0, n, rows):
            hc, sl = h[i:i + rows], slice(i, i + rows)
            logits = hc @ weight.t()
            target_logit[sl] = logits.gather(1, targets[sl, None]).squeeze(1)
            top = logits.amax(1, keepdim=True)
            e = logits.sub_(top).exp_()
            total = e.sum(1)
            lse[sl] = top.squeeze(1) + total.log()
            # d loss / d logits = (ce_w + 2 lse_w lse) softmax - ce_w onehot(target), softmax = e / total
            g = e.mul_(((ce_weight[sl] + 2 * lse_sq_weight[sl] * lse[sl]) / total)[:, None])
            g.scatter_add_(1, targets[sl, None], -ce_weight[sl, None])
            grad_wt.addmm_(hc.t(), g)
            grad_h[sl] = (weight.t() @ g.t()).t()   # [d, V] @ [V, rows]: for a thin d several times faster than
        ce = lse - target_logit                     # g @ weight, the [rows, V] @ [V, d] product (bench/README.md)
        loss = (ce_weight * ce).sum() + (lse_sq_weight * lse.square()).sum()
        ctx.save_for_backward(grad_h, grad_wt)
        ctx.mark_non_differentiable(ce, lse)
        return loss, ce, lse

    @staticmethod
    def backward(ctx, grad_loss, grad_ce, grad_lse):
        del grad_ce, grad_lse   # statistics: no gradient flows through them
        grad_h, grad_wt = ctx.saved_tensors
        return ((grad_h * grad_loss if ctx.needs_input_grad[0] else None),
                (grad_wt.t() * grad_loss if ctx.needs_input_grad[1] else None), None, None, None)


def chunked_head_loss(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, z_loss: float):
    """(mean CE + z_loss * mean lse^2, ce, lse) of the logits h @ weight^T against targets; ce and lse shaped like
    targets and without gradient."""
    t = targets.reshape(-1)
    ce_weight = h.new_full(t.shape, 1.0 / t.numel())
    loss, ce, lse = ChunkedHeadLoss.apply(h.reshape(-1, h.shape[-1]), weight, t, ce_weight, ce_weight * z_loss)
    return loss, ce.view(targets.shape), lse.view(targets.shape)
