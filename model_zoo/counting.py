"""Parameter and training-FLOP counts of a ModelSpec, computed from its shape alone (no weights).

Parameter convention
--------------------
* `params_embedding`  the input token embedding, vocab_size * d_model.
* `params_head`       the output head (unembedding), d_model * vocab_size; 0 when tied, because the
                      head then reuses the embedding tensor (its FLOPs still count, below).
* `params_nonembedding` = N, everything except the input embedding AND the output head: attention,
                      MLP / MoE (router and all experts), and every RMSNorm gain (norms are
                      parameters, so they count; they are tiny: (2 L + 1) d, plus 2 L head_dim with
                      QK-norm). This is Kaplan et al. (2020)'s N, whose laws are cleaner in it.
                      Chinchilla (Hoffmann et al. 2022) fits on the total instead,
                      `params_total` = N + embedding + head; at small scale the two differ a lot
                      (see `python -m model_zoo`), so an analysis must say which one it uses
                      (`Counts.n(convention)`).
* `params_active`, `params_active_nonembedding`: the parameters one token passes through. For an MoE
                      only top_k of the n_experts routed experts are active (plus the shared
                      experts and the router); for a dense model they equal the totals.

FLOP convention (per token, training)
-------------------------------------
Training = forward + backward = 3 x forward: the backward of a matmul is two matmuls of the same
size (gradient w.r.t. the input and w.r.t. the weight). A matmul of a token with a (m x n) weight
is 2 m n FLOPs (multiply + add). The forward counts:
* every weight matmul: qkv 2*3d^2, attention output 2*d^2, SwiGLU 2*3*d*ffn, head 2*d*V per layer
  and token; for an MoE layer instead the router 2*d*E and the active experts only,
  (top_k + n_shared) * 2*3*d*expert_hidden;
* attention scores and mixing: with full (bidirectional) attention QK^T and AV are each 2*T*d per
  token and layer (T = seq_len), 4*T*d together. A causal model attends on average to half the
  keys, so `flops_per_token` counts 2*T*d (exactly T/2 keys; the mask's true mean is (T+1)/2, a
  1/T relative difference on this term we ignore, and the convention PaLM's MFU and the reference
  trainer bench/ref_throughput.py use). `flops_per_token_full_attention` counts the full 4*T*d:
  it is what torch.utils.flop_counter.FlopCounterMode reports for the math SDPA path (it counts
  the T x T bmm's, masked or not).
* Ignored: elementwise work (RMSNorm, SiLU, softmax, RoPE, residual adds, the CE), the embedding
  lookup, the optimizer. They are O(d) per token, not O(d^2).
Per-token attention FLOPs assume full-length sequences of seq_len tokens.

Per-document attention (data.document_mask=on, model_zoo/docmask.py)
--------------------------------------------------------------------
Attention work then depends on where the batch's documents end, so it is counted per batch, not per
spec: `attention_pairs` is the number of (query, key) pairs the mask allows, each query counting
itself (a query at position p of its document attends p + 1 keys; the diagonal is included, so a
window that is one document has T (T + 1) / 2 pairs, not the T^2 / 2 of the convention above).
`training_flops(spec, tokens, pairs)` = 3 x (weight matmuls per token x tokens + 4 d L per pair):
the FLOPs of the attended pairs, the useful work, and what every kernel is credited with (MFU). The
kernels execute more, in whole tiles (masking inside partial ones). Flex (docmask.ATTENTION =
"flex") computes every tile (docmask.BLOCK: 128 x 128) of a row's [T, T] grid that holds an attended
pair, tiles across a document boundary included: `block_pairs(documents, docmask.BLOCK)` pairs, a
few percent more at documents of hundreds of tokens. Varlen (the flash kernel, "varlen") never pairs
two documents: each document is its own sequence, computed in the kernel's tiles (their size is the
kernel's, by GPU and head dimension) up to its diagonal and its last token, so it executes the
attended pairs plus less than a tile row and column per query tile of each document: fewer than flex
wherever a tile straddles two documents, and for documents shorter than a tile mostly padding.
Neither overcount is in the FLOPs here; the trainer logs the attended-pair count (metrics
`flops_masked`), and bench/gpu_docmask.sh reports the attended and the flex-tile fractions for its
batches.

`flops_per_token_6n` = 6 * params_active_nonembedding is Kaplan's C = 6 N D rule: it leaves out the
head matmul and attention, and counts the tiny norm gains as if they were matmul weights.
"""
from __future__ import annotations

from dataclasses import dataclass

from model_zoo.spec import ModelSpec

CONVENTIONS = ("nonembedding", "total", "active_nonembedding", "active")


@dataclass(frozen=True)
class Counts:
    params_total: int
    params_embedding: int
    params_head: int
    params_nonembedding: int
    params_active: int
    params_active_nonembedding: int
    flops_per_token_6n: int
    flops_per_token: int
    flops_per_token_full_attention: int   # as flops_per_token, with non-causal (T x T) attention

    def n(self, convention: str = "nonembedding") -> int:
        """N under a named convention: nonembedding (Kaplan), total (Chinchilla), active_*, (MoE)."""
        if convention not in CONVENTIONS:
            raise ValueError(f"convention={convention!r}: use one of {CONVENTIONS}")
        return getattr(self, f"params_{convention}")


def layer_params(spec: ModelSpec) -> tuple[int, int]:
    """(all, active-per-token) parameters of one transformer block."""
    d, hd = spec.d_model, spec.head_dim
    attention = 4 * d * d                                   # qkv (3 d^2) + output projection (d^2)
    norms = 2 * d + (2 * hd if spec.qk_norm else 0)         # two pre-norms (+ q and k norms per head)
    if spec.family == "moe":
        expert = 3 * d * spec.expert_hidden                 # gate, up, down
        router = d * spec.n_experts
        mlp = router + (spec.n_experts + spec.n_shared_experts) * expert
        mlp_active = router + (spec.top_k + spec.n_shared_experts) * expert
    else:
        mlp = mlp_active = 3 * d * spec.ffn_hidden
    return attention + norms + mlp, attention + norms + mlp_active


def matmul_flops_per_token(spec: ModelSpec) -> int:
    """Forward FLOPs per token of the weight matmuls (active only), head included."""
    d, L = spec.d_model, spec.n_layers
    if spec.family == "moe":
        mlp = spec.d_model * spec.n_experts + (spec.top_k + spec.n_shared_experts) * 3 * d * spec.expert_hidden
    else:
        mlp = 3 * d * spec.ffn_hidden
    return 2 * (L * (4 * d * d + mlp) + d * spec.vocab_size)   # 2 FLOPs per multiply-add


def attention_flops_per_pair(spec: ModelSpec) -> int:
    """Forward FLOPs of one attended (query, key) pair over all layers: QK^T and AV, 2 d each."""
    return 4 * spec.d_model * spec.n_layers


def forward_flops_per_token(spec: ModelSpec, causal: bool = True) -> int:
    """Forward FLOPs per token: weight matmuls (active only) + attention (causal: half the keys)."""
    attention = spec.seq_len * attention_flops_per_pair(spec)     # QK^T and AV, 2*T*d each
    return matmul_flops_per_token(spec) + (attention // 2 if causal else attention)


def attention_pairs(documents) -> int:
    """(query, key) pairs a per-document causal mask allows in a [B, T] array of document ids (each row's
    ids non-decreasing, model_zoo.docmask.document_ids): sum over documents of l (l + 1) / 2."""
    import numpy as np
    docs = np.asarray(documents)
    total = 0
    for row in docs.reshape(-1, docs.shape[-1]):
        lengths = np.diff(np.flatnonzero(np.r_[True, row[1:] != row[:-1], True]))
        total += int((lengths * (lengths + 1) // 2).sum())
    return total


def block_pairs(documents, block: int = 128) -> int:
    """(query, key) pairs a block-sparse kernel computes under the same mask: every block x block tile holding
    at least one allowed pair is computed whole (flex attention's default tile is 128 x 128)."""
    import numpy as np
    docs = np.asarray(documents)
    T = docs.shape[-1]
    nb = -(-T // block)
    total = 0
    for row in docs.reshape(-1, T):
        q = np.arange(T)
        allowed = (row[:, None] == row[None, :]) & (q[None, :] <= q[:, None])
        pad = np.zeros((nb * block, nb * block), dtype=bool)
        pad[:T, :T] = allowed
        tiles = pad.reshape(nb, block, nb, block).any(axis=(1, 3))
        sizes = np.minimum(block, T - np.arange(nb) * block)
        total += int((np.outer(sizes, sizes) * tiles).sum())
    return total


def training_flops(spec: ModelSpec, tokens: int, pairs: int) -> int:
    """Training FLOPs (3 x forward) of `tokens` tokens whose attention covers `pairs` (query, key) pairs."""
    return 3 * (matmul_flops_per_token(spec) * tokens + attention_flops_per_pair(spec) * pairs)


def count(spec: ModelSpec) -> Counts:
    """Exact parameter and FLOP counts; raises SpecError on an invalid spec."""
    spec.validate()
    d, L, V = spec.d_model, spec.n_layers, spec.vocab_size
    per_layer, per_layer_active = layer_params(spec)
    embedding = V * d
    head = 0 if spec.tie_embeddings else d * V
    nonembedding = L * per_layer + d                              # + the final norm
    active_nonembedding = L * per_layer_active + d
    return Counts(
        params_total=nonembedding + embedding + head,
        params_embedding=embedding,
        params_head=head,
        params_nonembedding=nonembedding,
        params_active=active_nonembedding + embedding + head,
        params_active_nonembedding=active_nonembedding,
        flops_per_token_6n=6 * active_nonembedding,
        flops_per_token=3 * forward_flops_per_token(spec, causal=True),
        flops_per_token_full_attention=3 * forward_flops_per_token(spec, causal=False),
    )
