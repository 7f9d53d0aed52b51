"""Greedy decoding with a key/value cache for model_zoo.dense.Transformer (dense or MoE).

    greedy(model, prompts, max_new_tokens, stop=None) -> one list of new token ids per prompt

The cache path reuses the model's own modules (qkv, norms, RoPE tables, MLP or MoE layer, head), so it
computes what `model(idx)` computes, one new token per step instead of the whole prefix again
(tests/test_downstream.py checks that both decode the same tokens). Prompts of any lengths are decoded as one
batch (up to max_batch rows, sorted by length so that batch-mates need little padding): each row is left-padded to
the batch's longest prompt, its RoPE positions start at its first real token and an attention mask hides the
padding. The next token is picked on the device and fed straight back: the host looks at the tokens (for `stop`)
only every `check_every` steps, not once per token. Greedy decoding is deterministic, so tokens decoded past a
row's stop are simply dropped: the output is what stopping at once would give.
Positions are bounded by the RoPE tables (model.spec.seq_len): a prompt keeps its last
seq_len - max_new_tokens tokens, as lm-eval's HF model truncates a generation context.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from model_zoo.dense import rope


def _attend(attn, x: torch.Tensor, cos, sin, cache: list, at: int, mask: torch.Tensor, slots: int) -> torch.Tensor:
    """model_zoo.dense.Attention.forward for the tokens x written at cache slots at..at+T-1: keys and values are
    kept in `cache` ([] before the prefill, then [k, v] of [B, H, slots, hd], written in place); mask
    [B, 1, T, at + T] says which slots each token attends to."""
    B, T, D = x.shape
    q, k, v = attn.qkv(x).view(B, T, 3, attn.n_heads, D // attn.n_heads).transpose(1, 3).unbind(2)
    q = rope(attn.q_norm(q.float()), cos, sin).to(v.dtype)
    k = rope(attn.k_norm(k.float()), cos, sin).to(v.dtype)
    if not cache:
        cache[:] = [k.new_zeros(B, attn.n_heads, slots, k.shape[-1]) for _ in "kv"]
    cache[0][:, :, at:at + T], cache[1][:, :, at:at + T] = k, v
    y = F.scaled_dot_product_attention(q, cache[0][:, :, :at + T], cache[1][:, :, :at + T], attn_mask=mask)
    return attn.out(y.transpose(1, 2).reshape(B, T, D))


def forward_cached(model, idx: torch.Tensor, at: int, positions: torch.Tensor, mask: torch.Tensor,
                   caches: list[list], slots: int = 0) -> torch.Tensor:
    """Logits [B, T, V] of tokens idx [B, T] written at cache slots at..at+T-1, at RoPE positions [B, T], with
    attention mask [B, 1, T, at + T] (True: attend). Empty caches are allocated with `slots` slots."""
    cos, sin = model.cos[positions].unsqueeze(1), model.sin[positions].unsqueeze(1)   # [B, 1, T, hd/2]
    x = model.embed(idx)
    for block, cache in zip(model.blocks, caches):
        x = x + _attend(block.attn, block.attn_norm(x), cos, sin, cache, at, mask, slots)
        y = block.mlp(block.mlp_norm(x))
        x = x + (y[0] if block.is_moe else y)      # an MoE layer returns (y, aux loss, stats)
    return model.head(model.norm(x)).float()


def _decode_batch(model, prompts: list[list[int]], max_new_tokens: int, stop, check_every: int) -> list[list[int]]:
    device = model.embed.weight.device
    B, P = len(prompts), max(len(p) for p in prompts)
    slots = P + max_new_tokens - 1                  # the last new token is picked, never fed back
    idx = torch.tensor([[0] * (P - len(p)) + p for p in prompts], device=device)
    pad = torch.tensor([P - len(p) for p in prompts], device=device)[:, None]    # [B, 1] left padding
    slot = torch.arange(slots, device=device)
    positions = (slot[None, :] - pad).clamp(min=0)                                # [B, slots]
    real = slot[None, :] >= pad                                                   # [B, slots]: not padding
    # prefill: causal over real tokens; a padding query attends to itself only (a query with no key gives NaN)
    mask = (slot[:P, None] >= slot[None, :P]) & real[:, None, :P] | torch.eye(P, dtype=torch.bool, device=device)
    caches: list[list] = [[] for _ in model.blocks]
    logits = forward_cached(model, idx, 0, positions[:, :P], mask[:, None], caches, slots)
    new = torch.empty(B, max_new_tokens, dtype=torch.long, device=device)
    ends: list[int | None] = [None] * B     # per row: the index of the token after which it stopped
    seen = 0                                # tokens already shown to `stop`
    for t in range(max_new_tokens):
        new[:, t] = logits[:, -1].argmax(-1)
        last = t == max_new_tokens - 1
        if stop is not None and (t + 1 - seen >= check_every or last):
            host = new[:, :t + 1].tolist()
            for r in range(B):
                for j in range(seen, t + 1):
                    if ends[r] is None and stop(r, host[r][:j + 1]):
                        ends[r] = j
            seen = t + 1
            if all(e is not None for e in ends):
                break
        if last:
            break
        at = P + t
        logits = forward_cached(model, new[:, t:t + 1], at, positions[:, at:at + 1], real[:, None, None, :at + 1],
                                caches)
    rows = new[:, :seen].tolist() if stop is not None else new.tolist()
    return [row[:e + 1] if e is not None else row for row, e in zip(rows, ends)]


@torch.inference_mode()
def greedy(model, prompts: Sequence[Sequence[int]], max_new_tokens: int,
           stop: Callable[[int, list[int]], bool] | None = None, max_batch: int = 256,
           check_every: int = 8) -> list[list[int]]:
    """Greedy continuations of token-id prompts (each non-empty), at most max_new_tokens each.

    stop(i, new_ids) -> True ends prompt i's decoding (asked of every prefix of its new tokens in order; the
    token that stops it is kept). The model must be in eval mode and on its device; runs under the caller's
    autocast."""
    seq_len = model.spec.seq_len
    if not 0 < max_new_tokens < seq_len:
        raise ValueError(f"max_new_tokens={max_new_tokens}: must be in [1, model.seq_len={seq_len})")
    keep = seq_len - max_new_tokens
    trimmed = [list(p)[-keep:] for p in prompts]
    if any(not p for p in trimmed):
        raise ValueError("every prompt needs at least one token (e.g. the eod token)")
    order = sorted(range(len(trimmed)), key=lambda i: -len(trimmed[i]))   # stable: deterministic batches
    out: list[list[int]] = [[] for _ in prompts]
    for b0 in range(0, len(order), max_batch):
        members = order[b0:b0 + max_batch]
        local_stop = None if stop is None else (lambda r, ids, m=members: stop(m[r], ids))
        for i, ids in zip(members, _decode_batch(model, [trimmed[i] for i in members], max_new_tokens,
                                                 local_stop, check_every)):
            out[i] = ids
    return out
