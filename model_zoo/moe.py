"""A routed mixture-of-experts MLP: the dense block's SwiGLU replaced by n_experts smaller ones.

Routing is softmax token choice: router logits in fp32 (autocast off, from the un-cast input), softmax
over all experts, each token takes its top_k experts. With top_k > 1 the chosen gates are renormalised
to sum to 1 (as Mixtral); with top_k = 1 they are not (as Switch): a renormalised single gate is
identically 1 and the router would get no gradient from the language-model loss.

Losses (returned already weighted by ModelSpec.router_aux_coef / router_z_coef):
  aux = E * sum_e f_e * P_e   Switch Transformer load balancing; f_e = fraction of the N*k routed
                              assignments that chose expert e (not differentiable), P_e = mean router
                              probability of e (differentiable). 1.0 when perfectly balanced.
  z   = mean(logsumexp(logits)^2)   ST-MoE router z-loss: keeps router logits small.

Dropless by default. With capacity_factor > 0 each expert takes at most
ceil(capacity_factor * N * top_k / n_experts) assignments; first choices have priority over second
choices, then earlier tokens of the (flattened) batch over later ones. A dropped assignment contributes
zero (the residual stream carries the token) and is counted in stats["dropped"].

Fast path (no Python loop over experts): the N*k assignments are sorted by expert (stable), token rows
are gathered in that order, the experts run as one grouped GEMM over contiguous groups, and the
outputs are gathered back and summed with their gates. The permutations are gathers both ways
(forward and backward), so no atomic scatter-add and the result is deterministic. Backends:
  "grouped"  torch._grouped_mm(x_sorted, W[E], offs): CUDA sm90+ (bf16), and CPU eager (any float).
             All shapes are static (N*k rows whatever the routing), so torch.compile traces it whole.
             The weight gradient is split along the rows (split-K, `wgrad_splits` pieces per expert,
             summed in fp32): its output is only E small matrices, and without the split one busy
             expert's tiles each walk all of its rows on a few SMs while the rest of the GPU idles.
  "padded"   each expert's group padded to the largest group (or to the capacity) and one torch.bmm;
             the fallback where _grouped_mm is unavailable (older GPUs, CPU under torch.compile).
  "loop"     model_zoo.moe_reference: one matmul per expert, the readable reference the tests compare to.
  "auto"     grouped where it runs, else padded.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from model_zoo.spec import ModelSpec

IMPLS = ("auto", "grouped", "padded", "loop")
WGRAD_SPLITS = 4          # row splits of the grouped weight gradient on CUDA (bench/moe_gemm_bench.py)


# ---------------------------------------------------------------- routing


def route(logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """fp32 logits [N, E] -> (probs [N, E], expert ids [N, k], gates [N, k]), choices in descending order.

    Top-k as k rounds of argmax with the winner masked out, and each gate read through a one-hot mask:
    under torch.compile the softmax, the k choices and the gates are one fused pass over the small
    [N, E] rows, and the backward is pointwise (aten.topk is a separate kernel with a scatter backward).
    """
    probs = logits.softmax(dim=-1)
    free, ids, gates = probs.detach(), [], []
    for _ in range(top_k):
        i = free.argmax(dim=-1)
        pick = F.one_hot(i, probs.shape[-1]).bool()
        ids.append(i)
        gates.append(torch.where(pick, probs, 0.0).sum(dim=-1))
        free = free.masked_fill(pick, -1.0)
    ids, gates = torch.stack(ids, dim=-1), torch.stack(gates, dim=-1)
    if top_k > 1:
        gates = gates / gates.sum(dim=-1, keepdim=True)
    return probs, ids, gates


def load_balancing_loss(probs: torch.Tensor, load: torch.Tensor) -> torch.Tensor:
    """Switch Transformer: E * sum_e f_e * P_e, with f_e = load (fraction of assignments), P_e = mean prob."""
    return probs.shape[-1] * (load.detach() * probs.mean(dim=0)).sum()


def router_z_loss(logits: torch.Tensor) -> torch.Tensor:
    """ST-MoE: mean over tokens of logsumexp(logits)^2."""
    return torch.logsumexp(logits, dim=-1).square().mean()


def capacity(spec: ModelSpec, n_tokens: int) -> int:
    """Assignments one expert may take; 0 means dropless."""
    if spec.capacity_factor <= 0:
        return 0
    return max(1, math.ceil(spec.capacity_factor * n_tokens * spec.top_k / spec.n_experts))


# ---------------------------------------------------------------- permutations that stay gathers


class _GatherRows(torch.autograd.Function):
    """out = x[rows] where every row of x is taken exactly `copies` times.

    `inv` lists, for the copies of each row in order (copy-major: [copies, rows_x]), where it went in out.
    The backward is then a gather and a sum over copies instead of an atomic index_add_.
    """

    @staticmethod
    def forward(ctx, x, rows, inv, copies: int):
        ctx.save_for_backward(inv)
        ctx.copies = copies
        return x[rows]

    @staticmethod
    def backward(ctx, grad):
        (inv,) = ctx.saved_tensors
        g = grad[inv]
        return g.view(ctx.copies, -1, *g.shape[1:]).sum(0), None, None, None


def gather_rows(x: torch.Tensor, rows: torch.Tensor, inv: torch.Tensor, copies: int = 1) -> torch.Tensor:
    return _GatherRows.apply(x, rows, inv, copies)


class Dispatch:
    """Where each of the N*k assignments goes: sorted by expert, k-major (first choices first)."""

    def __init__(self, ids: torch.Tensor, n_experts: int, cap: int):
        n, k = ids.shape
        flat = ids.t().reshape(-1)                              # assignment a = j * N + t
        # torch's radix sort: faster on the GPU than a counting sort by one-hot cumsum (bench/README.md, MoE)
        self.sorted_expert, self.order = torch.sort(flat, stable=True)
        self.inv = torch.empty_like(self.order)
        self.inv[self.order] = torch.arange(n * k, device=ids.device)
        self.token = self.order % n                             # token of each sorted assignment
        experts = torch.arange(n_experts, device=ids.device)
        ends = torch.searchsorted(self.sorted_expert, experts, right=True)  # no atomics, static shape
        self.counts = torch.diff(ends, prepend=ends.new_zeros(1))
        self.offs = ends.to(torch.int32)
        # position of each sorted assignment within its expert's group
        self.pos = torch.arange(n * k, device=ids.device) - (ends - self.counts)[self.sorted_expert]
        self.n, self.k, self.cap = n, k, cap
        self.keep = self.pos < cap if cap else None

    def split_offs(self, splits: int) -> torch.Tensor | None:
        """Ends of `splits` near-equal row ranges per expert group ([E * splits] int32, static shape);
        None for 1 (the groups themselves)."""
        if splits == 1:
            return None
        parts = torch.arange(1, splits + 1, device=self.counts.device)
        starts = (self.offs - self.counts).unsqueeze(-1)
        return (starts + self.counts.unsqueeze(-1) * parts // splits).reshape(-1).to(torch.int32)

    def dropped_fraction(self) -> torch.Tensor:
        if self.keep is None:
            return torch.zeros((), device=self.order.device)
        return 1.0 - self.keep.float().mean()


# ---------------------------------------------------------------- expert backends


def _swiglu_rows(h: torch.Tensor) -> torch.Tensor:
    gate, up = h.chunk(2, dim=-1)
    return F.silu(gate) * up


class _GroupedLinear(torch.autograd.Function):
    """y[rows of group e] = x[rows of group e] @ weight[e].T, weight [E, out, in] cast to x's dtype.

    Backward: the input gradient is one grouped GEMM; the weight gradient is a grouped GEMM over
    `split_offs` (each expert's rows cut into several ranges, so E * splits output tiles sets share
    the GPU) whose partial products ([E * splits, out, in]) are summed in fp32 and returned in the
    weight's dtype. split_offs None: no split.
    """

    @staticmethod
    def forward(ctx, x, weight, offs, split_offs):
        w = weight.to(x.dtype)
        ctx.save_for_backward(x, w, offs, split_offs)
        ctx.weight_dtype = weight.dtype
        return torch._grouped_mm(x, w.transpose(-2, -1), offs=offs)

    @staticmethod
    def backward(ctx, grad):
        x, w, offs, split_offs = ctx.saved_tensors
        grad_x = torch._grouped_mm(grad, w, offs=offs)
        parts = torch._grouped_mm(grad.t(), x, offs=offs if split_offs is None else split_offs)
        grad_w = parts.view(w.shape[0], -1, *w.shape[1:]).sum(1, dtype=torch.float32)
        return grad_x, grad_w.to(ctx.weight_dtype), None, None


def grouped_linear(x, weight, offs, split_offs=None) -> torch.Tensor:
    return _GroupedLinear.apply(x, weight, offs, split_offs)


def experts_grouped(x_sorted, w_gate_up, w_down, d: Dispatch, splits: int = 1):
    """x_sorted [M, d] grouped by expert (group e ends at d.offs[e]) -> [M, d]."""
    split_offs = d.split_offs(splits)                       # once for both projections
    h = grouped_linear(x_sorted, w_gate_up, d.offs, split_offs)
    return grouped_linear(_swiglu_rows(h), w_down, d.offs, split_offs)


def experts_padded(x_sorted, w_gate_up, w_down, d: Dispatch):
    """Pad each group to a common length (capacity, else the largest group), one bmm per projection."""
    n_experts, dim = w_gate_up.shape[0], x_sorted.shape[-1]
    cap = d.cap or int(d.counts.max())                     # dropless: a host sync, data-dependent shape
    slot = d.sorted_expert * cap + d.pos
    if d.keep is not None:                                 # dropped rows go to a spare slot, read back as 0
        slot = torch.where(d.keep, slot, n_experts * cap)
    buf = x_sorted.new_zeros(n_experts * cap + 1, dim).index_copy(0, slot, x_sorted)
    xb = buf[:-1].view(n_experts, cap, dim)
    y = torch.bmm(_swiglu_rows(torch.bmm(xb, w_gate_up.transpose(-2, -1))), w_down.transpose(-2, -1))
    y = torch.cat([y.reshape(n_experts * cap, dim), y.new_zeros(1, dim)])
    return y[slot]


@torch.compiler.assume_constant_result
def cuda_sm(index: int | None) -> int:
    """Compute capability as 10 * major + minor (90: H100), a constant to torch.compile (no graph break)."""
    major, minor = torch.cuda.get_device_capability(index)
    return 10 * major + minor


def grouped_mm_supported(x: torch.Tensor, dim: int, hidden: int) -> bool:
    """Whether torch._grouped_mm runs here: CUDA sm90+ with 16-byte aligned rows; CPU only in eager mode."""
    if not hasattr(torch, "_grouped_mm"):
        return False
    align = 16 // x.element_size()
    if dim % align or hidden % align:
        return False
    if x.device.type == "cuda":
        return x.dtype == torch.bfloat16 and cuda_sm(x.device.index) >= 90
    if x.device.type == "cpu":
        return not torch.compiler.is_compiling()         # the CPU kernel has no fp32 meta for the compiler
    return False


# ---------------------------------------------------------------- the layer


class MoELayer(nn.Module):
    """forward(x [B, T, d]) -> (y [B, T, d], aux_loss (weighted scalar), stats (detached tensors))."""

    def __init__(self, spec: ModelSpec, impl: str = "auto"):
        super().__init__()
        spec.validate()
        if spec.family != "moe":
            raise ValueError(f"MoELayer needs model.family='moe', got {spec.family!r}")
        if impl not in IMPLS:
            raise ValueError(f"MoELayer impl={impl!r}: must be one of {IMPLS}")
        self.spec, self.impl = spec, impl
        self.wgrad_splits: int | None = None               # None: splits_for() decides by device
        d, e, h = spec.d_model, spec.n_experts, spec.expert_hidden
        self.router = nn.Linear(d, e, bias=False)
        # stacked expert weights, laid out as nn.Linear's (out, in): gate and up rows stacked
        self.w_gate_up = nn.Parameter(torch.empty(e, 2 * h, d))
        self.w_down = nn.Parameter(torch.empty(e, d, h))
        # n_shared always-on experts of width h are one SwiGLU of width n_shared * h (one matmul, same params)
        self.w_shared_gate_up = self.w_shared_down = None
        if spec.n_shared_experts:
            hs = spec.n_shared_experts * h
            self.w_shared_gate_up = nn.Parameter(torch.empty(2 * hs, d))
            self.w_shared_down = nn.Parameter(torch.empty(d, hs))
        self.reset_parameters()

    def reset_parameters(self, std: float = 0.02, out_std: float | None = None) -> None:
        """Normal(0, std) inputs, Normal(0, out_std) output projections (default std / sqrt(2 * n_layers)),
        as the dense model's GPT-2 init. Expert weights are raw Parameters, so Transformer._init_weights
        (which re-inits nn.Linear modules, the router included, with the same std) leaves them alone."""
        out_std = std / math.sqrt(2 * self.spec.n_layers) if out_std is None else out_std
        nn.init.normal_(self.router.weight, std=std)
        nn.init.normal_(self.w_gate_up, std=std)
        nn.init.normal_(self.w_down, std=out_std)
        if self.w_shared_gate_up is not None:
            nn.init.normal_(self.w_shared_gate_up, std=std)
            nn.init.normal_(self.w_shared_down, std=out_std)

    def shared(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(_swiglu_rows(F.linear(x, self.w_shared_gate_up)), self.w_shared_down)

    def splits_for(self, x: torch.Tensor) -> int:
        """Row splits of the grouped weight gradient: WGRAD_SPLITS on CUDA (see _GroupedLinear), else 1."""
        if self.wgrad_splits is not None:
            return self.wgrad_splits
        return WGRAD_SPLITS if x.device.type == "cuda" else 1

    def resolved_impl(self, x: torch.Tensor) -> str:
        if self.impl != "auto":
            return self.impl
        return "grouped" if grouped_mm_supported(x, self.spec.d_model, self.spec.expert_hidden) else "padded"

    def forward(self, x: torch.Tensor):
        if self.impl == "loop":
            return _loop_forward(self, x)
        s = self.spec
        B, T, dim = x.shape
        with torch.autocast(x.device.type, enabled=False):   # the router in fp32, also under autocast
            logits = F.linear(x.reshape(B * T, dim).float(), self.router.weight.float())
            probs, ids, gates = route(logits, s.top_k)
        xf = x.reshape(B * T, dim).to(compute_dtype(x))
        impl = self.resolved_impl(xf)
        d = Dispatch(ids, s.n_experts, capacity(s, B * T))
        load = d.counts.float() / (B * T * s.top_k)
        aux, z = load_balancing_loss(probs, load), router_z_loss(logits)

        x_sorted = gather_rows(xf, d.token, d.inv, s.top_k)
        if d.keep is not None and impl == "grouped":       # dropped rows compute SwiGLU(0) = 0
            x_sorted = torch.where(d.keep.unsqueeze(-1), x_sorted, 0)
        if impl == "grouped":
            y_sorted = experts_grouped(x_sorted, self.w_gate_up, self.w_down, d, self.splits_for(xf))
        else:
            w_gate_up, w_down = self.w_gate_up.to(xf.dtype), self.w_down.to(xf.dtype)
            y_sorted = experts_padded(x_sorted, w_gate_up, w_down, d)
        y = gather_rows(y_sorted, d.inv, d.order)          # back to k-major [k*N, d]
        # gates applied to the output, in the gather's kernel: cheaper than scaling the activations (bench/README.md)
        y = (y.view(s.top_k, B * T, dim) * gates.t().unsqueeze(-1)).sum(0).to(x.dtype)
        if self.w_shared_gate_up is not None:
            y = y + self.shared(xf)
        stats = {"load": load.detach(), "aux": aux.detach(), "z": z.detach(), "dropped": d.dropped_fraction()}
        return y.view(B, T, dim), s.router_aux_coef * aux + s.router_z_coef * z, stats


@torch.compiler.disable
def _loop_forward(layer: MoELayer, x: torch.Tensor):
    """The reference loop runs eagerly inside a compiled model (its shapes change every step)."""
    from model_zoo.moe_reference import reference_forward
    return reference_forward(layer, x)


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype the expert GEMMs run in: autocast's where it is on (it does not cover _grouped_mm)."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def set_impl(model: nn.Module, impl: str, wgrad_splits: int | None = None) -> nn.Module:
    """Switch every MoELayer in a model to one backend and weight-gradient split (benchmarks, tests)."""
    if impl not in IMPLS:
        raise ValueError(f"impl={impl!r}: must be one of {IMPLS}")
    if wgrad_splits is not None and wgrad_splits < 1:
        raise ValueError(f"wgrad_splits={wgrad_splits}: must be >= 1 (or None for the device default)")
    for m in model.modules():
        if isinstance(m, MoELayer):
            m.impl, m.wgrad_splits = impl, wgrad_splits
    return model


# FlopCounterMode has no formula for _grouped_mm: this one counts 2*M*K*N per group like mm.
def _grouped_mm_flop(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    if len(a_shape) == 2 and len(b_shape) == 3:        # [M, K] x [E, K, N] (forward, grad of input)
        return 2 * a_shape[0] * a_shape[1] * b_shape[-1]
    if len(a_shape) == 2 and len(b_shape) == 2:        # [K, M] x [M, N] -> [E, K, N] (grad of weight)
        return 2 * a_shape[0] * a_shape[1] * b_shape[1]
    if len(a_shape) == 3 and len(b_shape) == 2:        # [E, M, K] x [K*, N]
        return 2 * a_shape[1] * b_shape[0] * b_shape[1]
    return 2 * a_shape[0] * a_shape[1] * a_shape[2] * b_shape[-1]


FLOP_FORMULAS = {torch.ops.aten._grouped_mm: _grouped_mm_flop}
