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
    all layers, for CUDA inside torch.compile (ATTENTION = "flex", the default); tiles no query attends to are
    skipped, tiles inside one document run without the mask.
  * `sequences`: varlen attention (ATTENTION = "varlen", CUDA inside torch.compile): every document of every
    row is a sequence of its own for torch's flash varlen kernel (torch.nn.attention.varlen), causal inside
    it: the document mask with no masked tiles between documents. Built once per forward, shared by all layers.
    The training loop's batches carry the sequences' bounds built on the host (`document_starts`, in the data
    path, ahead of the step): the compiled step then reads them as an input (`from_starts`), one graph with no
    break and no device-to-host read. A forward without them (`sequences`) builds them on the device, eagerly.
ATTENTION picks among them; `attention_mask` resolves it for a forward, `attend` runs what it returned.
tests/test_docmask.py checks the CPU path (a token's logits do not depend on the other documents of
its sequence), tests/test_docmask_flex.py the flex path against it (eager flex on the CPU, forward),
tests/test_docmask_varlen.py the varlen plumbing (a per-document reference kernel on the CPU, eager and
compiled, forward and backward); bench/gpu_docmask.sh compares them on the GPU (speed, logits, gradients).
"""
from __future__ import annotations

import inspect
import warnings
from typing import NamedTuple

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


# Flex's tile (query rows x key columns): the granularity of the BlockMask built here, which the kernels' blocks
# (FLEX_KERNEL_OPTIONS) must divide. A 64 tile computes fewer pairs whole, and was faster still under autotuning
# (bench/README.md, "Flex tuned for document masks on the H200, session 13"), but torch 2.11's Inductor checks the
# tile against its default blocks for the GPU (128 on Hopper) before it reads kernel options, and refuses it.
BLOCK = 128

# The flex kernels' blocks, stages and warps (Inductor's Triton templates, CUDA inside torch.compile): what Inductor's
# own autotuning (mode max-autotune) chose at this tile on an H200 for head dimension 64, the same at d 128, 384 and
# 768 (bench/gpu_docmask_kernels.sh TUNE=1): forward 128 x 64, backward BLOCK_M1 32 / BLOCK_N1 64 / BLOCK_M2 64 /
# BLOCK_N2 32, 3 stages and 4 warps both ways; attention alone 1.04-1.05x masks off's cuDNN kernel, where Inductor's
# untuned Hopper defaults (forward 128 x 128, backward 64 / 128 / 128 / 64, 8 warps) took 1.47-1.50x. Named here so
# that training does not autotune (tens of seconds a shape). Other GPUs: valid, untuned. Only at the head dimension
# they were tuned for (FLEX_TUNED_HEAD_DIM, the GPU ladder's): a larger head needs more shared memory a block than
# smaller GPUs have, so other heads keep Inductor's own choice.
FLEX_KERNEL_OPTIONS = {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_M1": 32, "BLOCK_N1": 64, "BLOCK_M2": 64, "BLOCK_N2": 32,
                       "num_stages": 3, "num_warps": 4}
FLEX_TUNED_HEAD_DIM = 64


def flex_kernel_options(q: torch.Tensor) -> dict | None:
    """The kernel options flex gets for queries q [B, H, T, hd]: FLEX_KERNEL_OPTIONS on CUDA at the tuned head
    dimension, else None (Inductor's defaults; the CPU's eager flex has no Triton kernels to configure)."""
    return dict(FLEX_KERNEL_OPTIONS) if q.is_cuda and q.shape[-1] == FLEX_TUNED_HEAD_DIM else None


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


def block_mask(documents: torch.Tensor, block: int = BLOCK):
    """The flex-attention BlockMask of dense_mask(documents), for any length T (heads broadcast), in tiles of `block`
    positions (BLOCK; bench/docmask_kernels.py also tries 64).

    Built from the tiles' first and last ids rather than by create_block_mask, which evaluates the mask function
    on all T x T pairs (seconds on the CPU at T = 1024, and a generated kernel of its own when compiled): ids are
    nondecreasing along a row (document_ids counts EOD tokens), so a tile's first and last ids are its min and
    max. Key tile kb and query tile qb (kb <= qb) share a pair iff hi[kb] >= lo[qb]; the tile needs no mask
    (flex's "full" block) iff kb < qb and both tiles are one and the same document. The padded tail is its own
    document, so the last tile of a length that is not a multiple of the tile is never full: the kernel applies the
    mask there.
    """
    from torch.nn.attention.flex_attention import BlockMask

    B, T = documents.shape
    docs = padded_documents(documents, block)
    n = docs.shape[1] // block
    lo, hi = docs[:, ::block], docs[:, block - 1::block]                       # [B, n] each
    below = torch.ones(n, n, dtype=torch.bool, device=docs.device).tril()      # [q tile, k tile]: kb <= qb
    some = below & (hi.unsqueeze(1) >= lo.unsqueeze(2))                        # [B, qb, kb]
    full = below.tril(-1) & (lo.unsqueeze(1) == hi.unsqueeze(2))               # lo[kb] == hi[qb]: one document
    partial_count, partial_index = _ordered((some & ~full).unsqueeze(1))
    full_count, full_index = _ordered(full.unsqueeze(1))

    def same_document_causal(b, h, q, k):
        return (docs[b, q] == docs[b, k]) & (k <= q)

    return BlockMask.from_kv_blocks(partial_count, partial_index, full_count, full_index, BLOCK_SIZE=block,
                                    mask_mod=same_document_causal, seq_lengths=(T, T))


# The kernel compiled CUDA training uses for per-document attention (the one place it is chosen):
#   "flex":   flex attention with a BlockMask (block_mask) and the tuned kernel options (FLEX_KERNEL_OPTIONS): in
#             agreement with the dense mask (logits and gradients, fp32 and bf16, T = 1023); its mask is built inside
#             the compiled step from the document ids (one graph, no host read);
#   "varlen": torch's flash varlen kernel over the documents (sequences): in agreement with the dense mask (bf16,
#             T = 1023, within bf16's own rounding); the training loop's batches carry the sequences built on the host
#             (document_starts), so its compiled step is one graph with no host read; a forward without them builds
#             them itself (sequences: one graph break and one host read, the document count, a forward);
#   "dense":  the boolean [B, 1, T, T] mask through SDPA (the memory-efficient kernel).
# Measured in one H200 call (bench/README.md, "Flex tuned for document masks on the H200, session 13"; 3 interleaved
# rounds of 60 steps, compiled bf16, seq 1024, median document 400 tokens), tokens/s against masks off at d 128 / 384
# / 768: flex 0.978 / 0.967 / 0.972, varlen 0.956 / 0.933 / 0.945. Flex is the default: the tuned kernel is faster
# than varlen's flash kernel at every width (the untuned one was slower, session 9).
# CPU runs, eager CUDA forwards (the held-out eval) and fp32 CUDA attention under "varlen" take the dense mask.
ATTENTION = "flex"
ATTENTIONS = ("flex", "varlen", "dense")


def _checked_attention() -> str:
    if ATTENTION not in ATTENTIONS:
        raise ValueError(f"model_zoo.docmask.ATTENTION={ATTENTION!r}: must be one of {', '.join(ATTENTIONS)}")
    return ATTENTION


def _path(on_cuda: bool, compiling: bool) -> str:
    """The ATTENTION kind a forward takes: the chosen one on CUDA inside torch.compile, else "dense" (eager flex
    materializes the scores and has no CPU backward; the flash kernels are CUDA-only; the eager held-out eval keeps
    the dense mask's numerics)."""
    kind = _checked_attention()
    return kind if on_cuda and compiling else "dense"


def training_kernel(device_type: str, compiled: bool, dtype: torch.dtype) -> str:
    """Which of ATTENTIONS a training step with document masks runs on `device_type` (compiled or not) in `dtype`:
    what a run records (result.json's `attention`); the forward's own choice (_path, attention_mask, attend)."""
    kind = _path(device_type == "cuda", compiled)
    if kind == "varlen" and (dtype == torch.float32 or not varlen_kernel()):
        return "dense"   # the flash kernels take fp16 / bf16; a torch without varlen takes the dense mask
    return kind


def wants_flex(documents: torch.Tensor) -> bool:
    """Whether this forward takes the flex path: ATTENTION = "flex" on CUDA inside torch.compile."""
    return _path(documents.is_cuda, torch.compiler.is_compiling()) == "flex"


def wants_varlen(documents: torch.Tensor) -> bool:
    """Whether this forward takes the varlen path: ATTENTION = "varlen" on CUDA inside torch.compile."""
    return _path(documents.is_cuda, torch.compiler.is_compiling()) == "varlen"


def attention_mask(documents: torch.Tensor, starts: torch.Tensor | None = None):
    """What `attend` takes for this forward: Sequences on the varlen path, a BlockMask on the flex path, else (and
    where torch has no varlen kernel) a dense mask. starts: None, or the batch's `document_starts` (a device tensor
    made on the host): the varlen path's sequences without building them here (no graph break, no host read)."""
    if wants_varlen(documents):
        if starts is not None and _VARLEN is not None:   # resolved (varlen_kernel) before compiling
            return from_starts(documents, starts) if _VARLEN else dense_mask(documents)
        return sequences(documents)
    return block_mask(documents) if wants_flex(documents) else dense_mask(documents)


class Sequences(NamedTuple):
    """The varlen path's mask: the documents as sequences of the flattened [B * T] tokens."""
    cu_seqlens: torch.Tensor   # [N + 1] int32: where each of the N documents starts, then B * T
    max_len: int               # an upper bound on a document's length: T (a document never crosses a row)
    documents: torch.Tensor    # [B, T]: the ids, for the dense fallback (fp32 attention: flash takes fp16/bf16)


def causal_spelling(varlen_attn) -> dict | None:
    """The keyword that makes `varlen_attn` causal in this torch, or None if it has neither known spelling.

    torch 2.10 spells it `is_causal=True`; later versions (2.11's docs on, 2.13 here) `window_size=(-1, 0)`, the
    flash kernels' (left, right) window, with `is_causal` gone."""
    params = inspect.signature(varlen_attn).parameters
    if "window_size" in params:
        return {"window_size": (-1, 0)}
    if "is_causal" in params:
        return {"is_causal": True}
    return None


def _resolve_varlen():
    """(varlen_attn, its causal keyword), or None where torch has no usable varlen attention."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    causal = causal_spelling(varlen_attn)
    return None if causal is None else (varlen_attn, causal)


# Resolved on the first varlen forward, in `sequences` (eager: inspect and a failed import are no things to trace),
# and read by `attend` inside the compiled graph. False: torch has none (the dense mask instead).
_VARLEN: tuple | bool | None = None


def varlen_kernel():
    """(varlen_attn, its causal keyword), or False where torch has none (warned once). Resolved eagerly: by
    `sequences` on its first call, and by harness.step.LossStep when it is built, before any compile, so that a
    compiled step given `document_starts` reads the resolved value (a compile of its own would trace inspect)."""
    global _VARLEN
    if _VARLEN is None:
        _VARLEN = _resolve_varlen() or False
        if not _VARLEN:
            warnings.warn(f"model_zoo.docmask.ATTENTION='varlen': torch {torch.__version__} has no usable "
                          "torch.nn.attention.varlen.varlen_attn; per-document attention takes the dense mask "
                          "(set ATTENTION='flex' for the flex kernel)", stacklevel=3)
    return _VARLEN


@torch.compiler.disable
def sequences(documents: torch.Tensor):
    """The varlen path's Sequences for [B, T] document ids: each document of each row a sequence of the flattened
    B * T tokens (documents never cross rows, so row starts are document starts). A dense mask where torch has no
    varlen attention (warned once).

    For a forward not given the batch's `document_starts` (the training loop gives them: `from_starts`, no break and
    no host read). Eager, outside the compiled graph (torch.compiler.disable: one graph break per forward, not per
    layer): the number of documents N sets the length of cu_seqlens, so it must reach the host, one device-to-host
    sync a forward (nonzero). A fixed length padded with empty sequences would avoid it only at the worst case's length,
    N = B * T (every token an EOD): the flash kernels launch (query tiles x sequences x heads) blocks, so that is
    hundreds of thousands of empty blocks a layer. cu_seqlens is marked dynamic so that a new N does not recompile
    the layers. max_len is T, always valid (a document never exceeds its row) and a Python int, so it costs no
    sync; the kernel sizes its grid by it, and the blocks past a document's end return at once.
    """
    if not varlen_kernel():
        return dense_mask(documents)
    B, T = documents.shape
    first = torch.ones_like(documents, dtype=torch.bool)
    first[:, 1:] = documents[:, 1:] != documents[:, :-1]
    starts = first.reshape(-1).nonzero().squeeze(1)                 # the host sync: N = len(starts)
    cu = torch.cat([starts, starts.new_full((1,), B * T)]).to(torch.int32)
    import torch._dynamo as dynamo  # loaded already wherever this runs compiled
    dynamo.maybe_mark_dynamic(cu, 0)
    return Sequences(cu, T, documents)


def document_starts(inputs: torch.Tensor, eod_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The varlen sequences of a [B, T] host batch, built on the host (the data path, ahead of the step):
    (starts [N + 1] int32: where each of the N documents of the flattened B * T tokens starts, then B * T;
    row_index [B + 1] int64: where each row's first document is in starts, then N). The same bounds as
    `sequences(document_ids(inputs, eod_id))`: a document starts at a row's first position and after each EOD.
    row_index lets a batch split by rows (micro-batches, ranks) slice starts without a look at the device:
    `starts_of_rows`."""
    B, T = inputs.shape
    first = torch.ones(B, T, dtype=torch.bool)
    first[:, 1:] = inputs[:, :-1] == eod_id
    starts = torch.cat([first.reshape(-1).nonzero().squeeze(1), torch.tensor([B * T])]).to(torch.int32)
    row_index = torch.cat([torch.zeros(1, dtype=torch.int64), first.sum(1).cumsum(0)])
    return starts, row_index


def starts_of_rows(starts: torch.Tensor, row_index: torch.Tensor, lo: int, hi: int):
    """(starts, row_index) of rows lo..hi-1 of a batch: a view of starts (on any device; row_index is on the host,
    so the slice needs no device read). Its values keep their offset in the whole batch (lo * T more than the rows'
    own); `from_starts` subtracts the first, inside the compiled step."""
    a, b = int(row_index[lo]), int(row_index[hi])
    return starts[a:b + 1], row_index[lo:hi + 1] - a


def from_starts(documents: torch.Tensor, starts: torch.Tensor) -> Sequences:
    """The varlen path's Sequences from a batch's `document_starts` (rows' slices included): traced into the
    compiled step, so one graph with no break and no host read. cu_seqlens = starts less its first value (a
    micro-batch's slice starts at its rows' offset in the batch); its length N + 1 is a dynamic dimension of the
    step's input (harness.step.step_args marks it), so a batch with another N compiles nothing new."""
    return Sequences(starts - starts[:1], documents.shape[1], documents)


def attend_varlen(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, seq: Sequences) -> torch.Tensor:
    """Attention of q, k, v [B, H, T, hd] within each document, through torch's varlen kernel: [B, T, H, hd] is
    flattened to the [B * T, H, hd] packed layout the kernel takes (each row's tokens in order, so the documents
    are contiguous runs) and the output shaped back to [B, H, T, hd]."""
    B, H, T, hd = q.shape
    if q.is_cuda and q.dtype not in (torch.float16, torch.bfloat16):   # the flash kernels' dtypes
        return F.scaled_dot_product_attention(q, k, v, attn_mask=dense_mask(seq.documents))
    varlen_attn, causal = _VARLEN

    def packed(x):
        return x.transpose(1, 2).reshape(B * T, H, hd)

    y = varlen_attn(packed(q), packed(k), packed(v), seq.cu_seqlens, seq.cu_seqlens, seq.max_len, seq.max_len,
                    **causal)
    return y.view(B, T, H, hd).transpose(1, 2)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask) -> torch.Tensor:
    """Attention of q, k, v [B, H, T, hd] under `mask` (attention_mask's result)."""
    if isinstance(mask, torch.Tensor):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if isinstance(mask, Sequences):
        return attend_varlen(q, k, v, mask)
    from torch.nn.attention.flex_attention import flex_attention
    return flex_attention(q.contiguous(), k.contiguous(), v.contiguous(), block_mask=mask,
                          kernel_options=flex_kernel_options(q))
