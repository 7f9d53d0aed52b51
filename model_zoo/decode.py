"""Greedy decoding with a key/value cache for model_zoo.dense.Transformer (dense or MoE).

    greedy(model, prompts, max_new_tokens, stop=None) -> one list of new token ids per prompt

The cache path reuses the model's own modules (qkv, norms, RoPE tables, MLP or MoE layer, head), so it
computes what `model(idx)` computes, one new token per step instead of the whole prefix again
(tests/test_downstream.py checks that both decode the same tokens). Prompts of equal length are decoded
as one batch: with no padding, the causal prefill and the per-token steps need no attention mask.
Positions are bounded by the RoPE tables (model.spec.seq_len): a prompt keeps its last
seq_len - max_new_tokens tokens, as lm-eval's HF model truncates a generation context.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from model_zoo.dense import rope


def _attend(attn, x: torch.Tensor, cos, sin, cache: list | None) -> torch.Tensor:
    """model_zoo.dense.Attention.forward with the keys and values of earlier positions kept in `cache`
    ([k, v], extended in place; [] before the prefill)."""
    B, T, D = x.shape
    q, k, v = attn.qkv(x).view(B, T, 3, attn.n_heads, D // attn.n_heads).transpose(1, 3).unbind(2)
    q = rope(attn.q_norm(q.float()), cos, sin).to(v.dtype)
    k = rope(attn.k_norm(k.float()), cos, sin).to(v.dtype)
    if cache:
        k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
    cache[:] = [k, v]
    # the prefill (no cache yet) is causal; a single new token attends to every cached position
    y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1)
    return attn.out(y.transpose(1, 2).reshape(B, T, D))


def forward_cached(model, idx: torch.Tensor, start: int, caches: list[list]) -> torch.Tensor:
    """Logits [B, T, V] of tokens idx at positions start..start+T-1, given the caches of positions < start.
    T > 1 only for the prefill (start == 0)."""
    assert idx.shape[1] == 1 or start == 0, "a multi-token step is the prefill, at position 0"
    cos, sin = model.cos[start:start + idx.shape[1]], model.sin[start:start + idx.shape[1]]
    x = model.embed(idx)
    for block, cache in zip(model.blocks, caches):
        x = x + _attend(block.attn, block.attn_norm(x), cos, sin, cache)
        y = block.mlp(block.mlp_norm(x))
        x = x + (y[0] if block.is_moe else y)      # an MoE layer returns (y, aux loss, stats)
    return model.head(model.norm(x)).float()


@torch.inference_mode()
def greedy(model, prompts: Sequence[Sequence[int]], max_new_tokens: int,
           stop: Callable[[int, list[int]], bool] | None = None, max_batch: int = 256) -> list[list[int]]:
    """Greedy continuations of token-id prompts (each non-empty), at most max_new_tokens each.

    stop(i, new_ids) -> True ends prompt i's decoding (checked after each token; the token is kept).
    The model must be in eval mode and on its device; runs under the caller's autocast."""
    seq_len = model.spec.seq_len
    if not 0 < max_new_tokens < seq_len:
        raise ValueError(f"max_new_tokens={max_new_tokens}: must be in [1, model.seq_len={seq_len})")
    keep = seq_len - max_new_tokens
    trimmed = [list(p)[-keep:] for p in prompts]
    if any(not p for p in trimmed):
        raise ValueError("every prompt needs at least one token (e.g. the eod token)")
    groups: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(trimmed):
        groups[len(p)].append(i)
    out: list[list[int]] = [[] for _ in prompts]
    device = model.embed.weight.device
    for length, members in groups.items():
        for b0 in range(0, len(members), max_batch):
            rows = members[b0:b0 + max_batch]
            caches = [[] for _ in model.blocks]
            logits = forward_cached(model, torch.tensor([trimmed[i] for i in rows], device=device), 0, caches)
            live = list(range(len(rows)))           # rows still decoding (positions into `rows`)
            for t in range(max_new_tokens):
                nxt = logits[:, -1].argmax(-1).tolist()
                for r in live:
                    out[rows[r]].append(nxt[r])
                live = [r for r in live if not (stop and stop(rows[r], out[rows[r]]))]
                if not live or t == max_new_tokens - 1:
                    break
                # finished rows keep decoding with the batch (cheaper than re-slicing every cache); ignored
                logits = forward_cached(model, torch.tensor(nxt, device=device)[:, None], length + t, caches)
    return out
