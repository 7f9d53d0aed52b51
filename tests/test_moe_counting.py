"""count(spec) for MoE specs equals the built model's parameters and FlopCounterMode's FLOPs."""
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from model_zoo import ModelSpec, build, count
from model_zoo.moe import FLOP_FORMULAS, MoELayer, set_impl

BASE = dict(d_model=64, n_layers=2, n_heads=2, ffn_hidden=128, vocab_size=96, seq_len=16, family="moe")
SPECS = [
    ModelSpec(**BASE, n_experts=4, top_k=1, expert_hidden=128),                      # G = 1
    ModelSpec(**BASE, n_experts=8, top_k=2, expert_hidden=64),                       # G = 2
    ModelSpec(**BASE, n_experts=16, top_k=4, expert_hidden=32, n_shared_experts=2),  # G = 4, shared
    ModelSpec(**{**BASE, "tie_embeddings": True, "qk_norm": True}, n_experts=8, top_k=8, expert_hidden=32),
]
IDS = [f"E{s.n_experts}-k{s.top_k}-h{s.expert_hidden}-s{s.n_shared_experts}" for s in SPECS]


def routed_expert_params(layer: MoELayer) -> int:
    """Parameters of ONE routed expert, read off the built tensors."""
    return (layer.w_gate_up.numel() + layer.w_down.numel()) // layer.w_gate_up.shape[0]


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_param_counts_equal_the_built_model(spec):
    model, c = build(spec), count(spec)
    named = dict(model.named_parameters())
    assert c.params_total == sum(p.numel() for p in model.parameters())
    assert c.params_nonembedding == sum(p.numel() for n, p in named.items() if not n.startswith(("embed.", "head.")))
    assert all(f"blocks.{i}.mlp.router.weight" in named for i in range(spec.n_layers))
    # active: every routed expert but top_k of them is idle for a given token
    idle = sum((spec.n_experts - spec.top_k) * routed_expert_params(b.mlp) for b in model.blocks)
    assert c.params_active_nonembedding == c.params_nonembedding - idle
    assert c.params_active == c.params_total - idle
    assert c.flops_per_token_6n == 6 * c.params_active_nonembedding


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_training_flops_equal_flop_counter_exactly(spec):
    """Grouped path: the expert GEMMs run on exactly N*top_k rows (FLOP_FORMULAS teaches FlopCounterMode
    _grouped_mm); the math SDPA path counts full T x T attention, as for dense."""
    torch.manual_seed(0)
    model, c = set_impl(build(spec), "grouped"), count(spec)
    batch = 2
    idx = torch.randint(0, spec.vocab_size, (batch, spec.seq_len))
    with FlopCounterMode(display=False, custom_mapping=FLOP_FORMULAS) as counter, sdpa_kernel(SDPBackend.MATH):
        out = model(idx, idx)
        (out.ce.mean() + out.aux_loss).backward()
    assert counter.get_total_flops() == c.flops_per_token_full_attention * batch * spec.seq_len


def test_loop_reference_counts_the_same_flops_as_the_grouped_path():
    """The plain per-expert loop does the same matmuls (no padding), so it counts the same FLOPs."""
    spec = SPECS[2]
    torch.manual_seed(0)
    model = build(spec)
    idx = torch.randint(0, spec.vocab_size, (2, spec.seq_len))
    totals = {}
    for impl in ("grouped", "loop"):
        set_impl(model, impl)
        with FlopCounterMode(display=False, custom_mapping=FLOP_FORMULAS) as counter, sdpa_kernel(SDPBackend.MATH):
            model(idx, idx).ce.mean().backward()
        totals[impl] = counter.get_total_flops()
    assert totals["grouped"] == totals["loop"] > 0
