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
    all layers, for CUDA inside torch.compile (behind the USE_FLEX guard); tiles no query attends to are
    skipped, tiles inside one document run without the mask.
tests/test_docmask.py checks the CPU path (a token's logits do not depend on the other documents of
its sequence), tests/test_docmask_flex.py the flex path against it (eager flex on the CPU, forward);
bench/gpu_docmask.sh compares them on the GPU (speed, logits, gradients).
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


# Flex's tile (query rows x key columns) and the granularity of the BlockMask built here.
BLOCK = 128


def padded_documents(documents: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """[B, T'] int64, T' = T rounded up to a multiple of `block`: the ids, then a document of their own.

    The flex kernel works in whole tiles: at a length that is not a multiple of the tile it evaluates the mask
    function on the last tile's positions past T too. torch 2.13's kernel templates wrap those indices (modulo
    T); whether every version and code path does is not something to rely on: a read past the end of the [B, T]
    ids there is a candidate cause of the H200's "illegal memory access" at T = 1023 (torch 2.11). The padded
    positions get the id after the row's last one: ids stay nondecreasing (block_mask relies on it), no real
    query attends a padded key (it is both later and another document), and every index up to the tile multiple
    is inside the tensor.
    """
    pad = -documents.shape[1] % block
    if pad == 0:
        return documents
    return torch.cat([documents, (documents[:, -1:] + 1).expand(-1, pad)], dim=1)


def _ordered(tiles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, 1, n, n] bool tiles -> (count per query tile, key tile indices with the chosen ones first), int32."""
    count = tiles.sum(-1, dtype=torch.int32)
    order = torch.argsort(tiles.to(torch.int8), dim=-1, descending=True, stable=True)
    return count, order.to(torch.int32)


def block_mask(documents: torch.Tensor):
    """The flex-attention BlockMask of dense_mask(documents), for any length T (heads broadcast).

    Built from the tiles' first and last ids rather than by create_block_mask, which evaluates the mask function
    on all T x T pairs (seconds on the CPU at T = 1024, and a generated kernel of its own when compiled): ids are
    nondecreasing along a row (document_ids counts EOD tokens), so a tile's first and last ids are its min and
    max. Key tile kb and query tile qb (kb <= qb) share a pair iff hi[kb] >= lo[qb]; the tile needs no mask
    (flex's "full" block) iff kb < qb and both tiles are one and the same document. The padded tail is its own
    document, so the last tile of a length that is not a multiple of BLOCK is never full: the kernel applies the
    mask there.
    """
    from torch.nn.attention.flex_attention import BlockMask

    B, T = documents.shape
    docs = padded_documents(documents)
    n = docs.shape[1] // BLOCK
    lo, hi = docs[:, ::BLOCK], docs[:, BLOCK - 1::BLOCK]                       # [B, n] each
    below = torch.ones(n, n, dtype=torch.bool, device=docs.device).tril()      # [q tile, k tile]: kb <= qb
    some = below & (hi.unsqueeze(1) >= lo.unsqueeze(2))                        # [B, qb, kb]
    full = below.tril(-1) & (lo.unsqueeze(1) == hi.unsqueeze(2))               # lo[kb] == hi[qb]: one document
    partial_count, partial_index = _ordered((some & ~full).unsqueeze(1))
    full_count, full_index = _ordered(full.unsqueeze(1))

    def same_document_causal(b, h, q, k):
        return (docs[b, q] == docs[b, k]) & (k <= q)

    return BlockMask.from_kv_blocks(partial_count, partial_index, full_count, full_index, BLOCK_SIZE=BLOCK,
                                    mask_mod=same_document_causal, seq_lengths=(T, T))


# The guard of the flex path. False: the dense boolean mask through SDPA on CUDA too. The first flex path crashed
# with "CUDA error: an illegal memory access" on an H200 (torch 2.11, bench/README.md); this one pads the ids
# (padded_documents) and builds the BlockMask itself. Set it to True once `bench/gpu_docmask.sh` reports flex in
# agreement with the dense mask and faster than it on the GPU.
USE_FLEX = False


def wants_flex(documents: torch.Tensor) -> bool:
    """Whether this forward takes the flex path: when allowed (USE_FLEX) on CUDA inside torch.compile, where flex
    is a fused kernel (eager flex materializes the scores; flex has no CPU backward)."""
    return USE_FLEX and documents.is_cuda and torch.compiler.is_compiling()


def attention_mask(documents: torch.Tensor):
    """What `attend` takes for this forward: a BlockMask on the flex path (wants_flex), else a dense mask."""
    return block_mask(documents) if wants_flex(documents) else dense_mask(documents)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask) -> torch.Tensor:
    """Attention of q, k, v [B, H, T, hd] under `mask` (attention_mask's result)."""
    if isinstance(mask, torch.Tensor):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    from torch.nn.attention.flex_attention import flex_attention
    return flex_attention(q.contiguous(), k.contiguous(), v.contiguous(), block_mask=mask)
