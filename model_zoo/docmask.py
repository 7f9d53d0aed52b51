"""Per-document attention in packed sequences (data.document_mask=on).

A training window is a slice of the token stream, where each document is followed by the corpus'
end-of-document (EOD) token. With document masks each position attends causally within its own
document only, and its RoPE position counts from the start of that document (in the window).

Conventions (the same as torchtitan's document mask):
  * An EOD token belongs to the document it ends: position i is in document
    `documents[i]` = number of EOD tokens among inputs[0 .. i-1]. So "end of this document" is a
    target predicted with the document's own context, and the first document of a window (cut
    mid-document by the window) starts at position 0 without its earlier context, as with masks off.
  * The dropped target (`loss_keep`): the target at an EOD input position is the next document's
    first token. Under the mask that position's context is the previous document only, so the
    prediction has no context of its own: the loss skips it (and the held-out eval too). Every other
    target keeps its whole in-window document context. With masks off nothing is dropped.

Implementations of one function:
  * `dense_mask`: a boolean [B, 1, T, T] mask for scaled_dot_product_attention. Used on CPU, and
    on CUDA when not compiling (the eager held-out eval; the memory-efficient kernel takes a mask).
  * `block_mask`: a flex-attention BlockMask (Dong et al. 2024), built once per forward and shared by
    all layers, used on CUDA inside torch.compile; blocks no query attends to are skipped.
tests/test_docmask.py checks the CPU path (a token's logits do not depend on the other documents of
its sequence); bench/gpu_docmask.sh compares the flex path with the dense one on the GPU.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def document_ids(inputs: torch.Tensor, eod_id: int) -> torch.Tensor:
    """[B, T] int64: the document of each position, counted from 0 in each row (EOD ends its document)."""
    ends = (inputs == eod_id).long()
    return ends.cumsum(1) - ends


def loss_keep(inputs: torch.Tensor, eod_id: int) -> torch.Tensor:
    """[B, T] bool: the targets the loss keeps (all but those predicted at an EOD input, see above)."""
    return inputs != eod_id


def positions(documents: torch.Tensor) -> torch.Tensor:
    """[B, T] int64: each position's offset from the first position of its document in the row."""
    T = documents.shape[1]
    idx = torch.arange(T, device=documents.device).expand_as(documents)
    first = torch.ones_like(documents, dtype=torch.bool)
    first[:, 1:] = documents[:, 1:] != documents[:, :-1]
    return idx - torch.where(first, idx, 0).cummax(1).values


def dense_mask(documents: torch.Tensor) -> torch.Tensor:
    """[B, 1, T, T] bool, True where query q may attend key k: same document and k <= q."""
    T = documents.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool, device=documents.device).tril()
    return ((documents.unsqueeze(2) == documents.unsqueeze(1)) & causal).unsqueeze(1)


def block_mask(documents: torch.Tensor, n_heads: int | None = None):
    """The flex-attention BlockMask of the same mask (CUDA; heads broadcast)."""
    from torch.nn.attention.flex_attention import create_block_mask

    def same_document_causal(b, h, q, k):
        return (documents[b, q] == documents[b, k]) & (k <= q)

    B, T = documents.shape
    return create_block_mask(same_document_causal, B, None, T, T, device=documents.device)


# False: the dense boolean mask through SDPA on CUDA too. Off by default: the compiled flex path crashed with
# "CUDA error: an illegal memory access" on an H200 (torch 2.11, bench/gpu_docmask.sh, bench/README.md) and is
# not trusted until it runs there; bench/docmask_bench.py --flex measures it.
USE_FLEX = False


def attention_mask(documents: torch.Tensor):
    """What `attend` takes for this forward: a BlockMask when compiling on CUDA, else a dense mask."""
    if USE_FLEX and documents.is_cuda and torch.compiler.is_compiling():
        return block_mask(documents)
    return dense_mask(documents)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask) -> torch.Tensor:
    """Attention of q, k, v [B, H, T, hd] under `mask` (attention_mask's result)."""
    if isinstance(mask, torch.Tensor):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    from torch.nn.attention.flex_attention import flex_attention
    return flex_attention(q.contiguous(), k.contiguous(), v.contiguous(), block_mask=mask)
