"""A decoder-only transformer: RMSNorm, RoPE, causal SDPA attention, SwiGLU MLP, no biases.

The same architecture as bench/ref_throughput.py (so throughputs compare), plus optional QK-norm,
tied embeddings, a pluggable MoE layer in place of the MLP (model_zoo/moe.py), and per-document attention in
packed sequences (forward's `documents`, model_zoo/docmask.py).
model_zoo/counting.py counts this model's parameters and FLOPs without building it.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from model_zoo import docmask
from model_zoo.chunked_ce import chunked_head_loss, chunked_head_losses
from model_zoo.output import ModelOutput
from model_zoo.spec import ModelSpec

NORM_EPS = 1e-6   # explicit: nn.RMSNorm's default eps follows the input dtype (7.8e-3 for bf16)


def rope_tables(spec: ModelSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotary angles, [seq_len, head_dim/2], float32."""
    hd = spec.head_dim
    freqs = 1.0 / spec.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    angles = torch.outer(torch.arange(spec.seq_len, dtype=torch.float32), freqs)
    return angles.cos(), angles.sin()


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x_i, x_{i+hd/2}) of x [B, H, T, hd] by position-dependent angles."""
    a, b = x.chunk(2, -1)
    return torch.cat((a * cos - b * sin, a * sin + b * cos), -1)


class Attention(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.n_heads = spec.n_heads
        self.qkv = nn.Linear(spec.d_model, 3 * spec.d_model, bias=False)
        self.out = nn.Linear(spec.d_model, spec.d_model, bias=False)
        # QK-norm (Dehghani et al. 2023; OLMo 2) bounds the attention logits, which keeps large
        # learning rates stable. One gain vector per head dimension, shared by all heads.
        norm = (lambda: nn.RMSNorm(spec.head_dim, eps=NORM_EPS)) if spec.qk_norm else nn.Identity
        self.q_norm, self.k_norm = norm(), norm()

    def forward(self, x, cos, sin, mask=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, D // self.n_heads).transpose(1, 3).unbind(2)
        q = rope(self.q_norm(q.float()), cos, sin).to(v.dtype)   # [B, H, T, hd]; norm and rotate in fp32,
        k = rope(self.k_norm(k.float()), cos, sin).to(v.dtype)   # attend in v's (the autocast) dtype
        if mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)            # flash kernel on GPU
        else:                                                                      # per-document (docmask.py)
            y = docmask.attend(q, k, v, mask)
        return self.out(y.transpose(1, 2).reshape(B, T, D))


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)); gate and up are one d -> 2*hidden matmul."""

    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.gate_up = nn.Linear(d_model, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x):
        gate, up = self.gate_up(x).chunk(2, -1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.attn_norm = nn.RMSNorm(spec.d_model, eps=NORM_EPS)
        self.attn = Attention(spec)
        self.mlp_norm = nn.RMSNorm(spec.d_model, eps=NORM_EPS)
        self.is_moe = spec.family == "moe"
        if self.is_moe:
            from model_zoo.moe import MoELayer  # lazy: dense models never import the MoE code
            self.mlp = MoELayer(spec)           # forward(x) -> (y, aux_loss scalar, stats dict)
        else:
            self.mlp = SwiGLU(spec.d_model, spec.ffn_hidden)

    def forward(self, x, cos, sin, mask=None):
        x = x + self.attn(self.attn_norm(x), cos, sin, mask)
        if self.is_moe:
            y, aux, stats = self.mlp(self.mlp_norm(x))
            return x + y, aux, stats
        return x + self.mlp(self.mlp_norm(x)), None, {}


def token_losses(logits, targets):
    """Per-token cross-entropy and logsumexp from fp32 logits: CE = lse - logit[target], so the
    z-loss (on lse) and the CE share one logsumexp.

    The target logit is picked with a one-hot mask rather than gather: compiled, the mask's sum
    fuses into the logsumexp's pass over the logits and its backward is pointwise, whereas gather's
    backward scatters into a zero [tokens, vocab] buffer, an extra pass over the largest tensor of
    the step (measured on an H100 at d_model 128: 10.4 ms vs 15.1 ms for head + loss, forward and
    backward, where F.cross_entropy alone takes 11.5 ms).
    """
    lse = torch.logsumexp(logits, dim=-1)
    vocab = torch.arange(logits.shape[-1], device=logits.device)
    target_logit = torch.where(vocab == targets.unsqueeze(-1), logits, 0.0).sum(-1)
    return lse - target_logit, lse


def use_chunked_head(h: torch.Tensor) -> bool:
    """Eager fp32 on the CPU: the fused, chunked head and loss (model_zoo/chunked_ce.py). A compiled graph
    fuses the plain path itself, and under autocast the head's matmul must run in the autocast dtype."""
    return (h.device.type == "cpu" and h.dtype == torch.float32 and not torch.compiler.is_compiling()
            and not torch.is_autocast_enabled("cpu"))


class Regions(NamedTuple):
    """Compiled callables a training forward uses in place of the model's own blocks and tail (Transformer.regions).
    A plain tuple, not modules: the compiled wrappers hold no parameters of their own, and state_dict, the
    optimizer and evaluation see only the model."""
    blocks: list
    tail: Callable


class Transformer(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        self.embed = nn.Embedding(spec.vocab_size, spec.d_model)
        self.blocks = nn.ModuleList(Block(spec) for _ in range(spec.n_layers))
        self.norm = nn.RMSNorm(spec.d_model, eps=NORM_EPS)
        self.head = nn.Linear(spec.d_model, spec.vocab_size, bias=False)
        cos, sin = rope_tables(spec)
        self.register_buffer("cos", cos, persistent=False)   # recomputed, so not in checkpoints
        self.register_buffer("sin", sin, persistent=False)
        self.apply(self._init_weights)
        # GPT-2 init: each block adds two residual branches, so the residual stream's variance
        # grows with depth; scaling the last projection of each branch by 1/sqrt(2 L) keeps the
        # output variance at init independent of depth. (An MoE layer inits its own expert weights.)
        for name, p in self.named_parameters():
            if name.endswith(("attn.out.weight", "mlp.down.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * spec.n_layers))
        if spec.tie_embeddings:
            self.head.weight = self.embed.weight    # one tensor: the head reads the embedding matrix
        self.regions: Regions | None = None   # compiled blocks and tail for training (compile_regions)
        self.eval_regions = False   # True: the regions serve no-grad forwards too (harness.evaluate.regions_in_eval)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None, documents=None, z_loss: float | None = None, starts=None):
        """documents: None (every position attends to all earlier ones), or [B, T] document ids
        (model_zoo.docmask.document_ids): attention within each document, RoPE positions restarting
        at each document's first position. starts: None, or the batch's docmask.document_starts (the varlen path's
        sequences, built on the host; other paths ignore them). z_loss: the caller's loss is mean CE + z_loss * mean(lse^2); where the
        head is the eager CPU one, it returns that loss (ModelOutput.head_loss), computed fused."""
        T = idx.shape[1]
        assert T <= self.spec.seq_len, f"sequence of {T} tokens > model.seq_len={self.spec.seq_len}"
        if documents is None:
            cos, sin, mask = self.cos[:T], self.sin[:T], None
        else:   # [B, 1, T, hd/2]: each row's positions, broadcast over heads
            pos = docmask.positions(documents)
            cos, sin = self.cos[pos].unsqueeze(1), self.sin[pos].unsqueeze(1)
            mask = docmask.attention_mask(documents, starts)   # built once, shared by every layer
        # compiled regions serve training steps; evaluation (no grad, other batch shapes) stays eager, so it neither
        # recompiles nor changes numerics, unless the caller asks for them (eval_regions: the held-out eval at one
        # fixed call shape, whose no-grad graphs then compile once per width)
        regions = (self.regions if self.regions is not None and (torch.is_grad_enabled() or self.eval_regions)
                   else None)
        x = self.embed(idx)
        aux, stats = [], []
        for block in regions.blocks if regions else self.blocks:
            x, block_aux, block_stats = block(x, cos, sin, mask)
            aux.append(block_aux)
            stats.append(block_stats)
        head_loss = None
        if regions is None and targets is not None and z_loss is not None and use_chunked_head(x):
            # the eager CPU head with the caller's loss fused in (model_zoo/chunked_ce.py); the tail below is
            # the same head and loss unfused, which compiled regions and evaluation use
            head_loss, ce, lse = chunked_head_loss(self.norm(x), self.head.weight, targets, z_loss)
        else:
            out = (regions.tail if regions else self.tail)(x, targets)
            if targets is None:
                return out
            ce, lse = out
        if self.spec.family != "moe":
            return ModelOutput(ce, lse, torch.zeros((), device=idx.device), {}, head_loss)
        moe_stats = {key: torch.stack([s[key] for s in stats]) for key in stats[0]}
        return ModelOutput(ce, lse, torch.stack(aux).sum(), moe_stats, head_loss)

    def tail(self, x: torch.Tensor, targets: torch.Tensor | None):
        """The final norm, the head and the per-token losses: (ce, lse), or the fp32 logits without targets."""
        h = self.norm(x)
        if targets is not None and use_chunked_head(h):
            return chunked_head_losses(h, self.head.weight, targets)
        logits = self.head(h).float()   # matmul in the autocast dtype, softmax in fp32
        if targets is None:
            return logits
        return token_losses(logits, targets)

    def compile_regions(self) -> None:
        """Regional compilation (PyTorch's recipe): each block and the tail compiled on their own instead of the
        whole step. Dynamo keys compiled code on the code object and, with nn.Module parameters as graph inputs,
        guards on shapes rather than on the instance, so every block of a model, and of any model of the same
        width, runs one compiled graph: a new shape costs one block's compile, not a whole model's, and a new depth
        at a known width none."""
        self.regions = Regions([torch.compile(block) for block in self.blocks], torch.compile(self.tail))

    def configure_optimizer(self, optim, device_type: str) -> torch.optim.AdamW:
        """AdamW (settings from an OptimSpec) with weight decay on weight matrices only.

        Decayed: every >= 2-D weight (linear layers, the untied head, stacked expert matrices).
        Not decayed: RMSNorm gains (decay pulls them to 0, not to their natural value 1, fighting
        the normalisation) and the input embedding (a row only gets gradient when its token
        occurs, but is decayed every step, so rare tokens' embeddings shrink towards 0; OLMo 2
        drops embedding decay for stability). A tied head is the embedding: not decayed.
        """
        decay, no_decay = [], []
        for p in self.parameters():   # parameters() yields a tied tensor once
            (decay if p.dim() >= 2 and p is not self.embed.weight else no_decay).append(p)
        groups = [{"params": decay, "weight_decay": optim.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=optim.lr, betas=(optim.beta1, optim.beta2), eps=optim.eps,
                                 fused=device_type in ("cuda", "cpu"))   # one kernel per step, not one per tensor
