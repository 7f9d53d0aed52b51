"""MoE layer contract: the fast paths equal the loop reference; routing losses, capacity and errors by hand."""
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from model_zoo.moe import FLOP_FORMULAS, MoELayer, capacity, route, set_impl
from model_zoo.moe_reference import reference_forward
from model_zoo.moe_stats import moe_metrics
from model_zoo.spec import ModelSpec, SpecError


def moe_spec(**kw) -> ModelSpec:
    base = dict(d_model=32, n_layers=2, n_heads=2, ffn_hidden=64, vocab_size=64, seq_len=16, family="moe",
                n_experts=4, top_k=2, expert_hidden=16)
    return ModelSpec(**{**base, **kw})


def run_with_grads(layer, fn, x):
    x = x.detach().clone().requires_grad_(True)
    layer.zero_grad(set_to_none=True)
    y, aux, stats = fn(x)
    # a loss that weights every output element differently, so a permuted row would show
    w = torch.linspace(-1, 1, y.numel()).view_as(y)
    ((y * w).sum() + aux).backward()
    grads = {name: p.grad.clone() for name, p in layer.named_parameters()}
    return y.detach(), aux.detach(), stats, x.grad.clone(), grads


def close(a, b, what=""):
    """fp32 agreement up to summation order: 1e-5 relative, elementwise and to the tensor's scale."""
    scale = float(b.abs().max()) if b.numel() else 0.0
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * scale + 1e-7, msg=lambda m: f"{what}: {m}")


CASES = [
    dict(n_experts=4, top_k=1, expert_hidden=16),
    dict(n_experts=4, top_k=2, expert_hidden=16),
    dict(n_experts=8, top_k=4, expert_hidden=8),                      # fine-grained: G = 8
    dict(n_experts=4, top_k=2, expert_hidden=16, n_shared_experts=2),
    dict(n_experts=4, top_k=2, expert_hidden=16, capacity_factor=1.0),
    dict(n_experts=8, top_k=1, expert_hidden=32, capacity_factor=0.5),
    dict(n_experts=3, top_k=3, expert_hidden=32, n_shared_experts=1, capacity_factor=0.75),
]


@pytest.mark.parametrize("impl", ["grouped", "grouped-split3", "padded"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_fast_path_matches_loop_reference(impl, case):
    """grouped-split3: the weight gradient as 3 row ranges per expert (split-K), some of them empty."""
    torch.manual_seed(0)
    spec = moe_spec(**case)
    layer = set_impl(MoELayer(spec), impl.split("-")[0], wgrad_splits=3 if "split" in impl else None)
    layer.reset_parameters(std=0.3, out_std=0.3)                      # outputs O(1), so tolerances mean something
    with torch.no_grad():
        layer.router.weight.mul_(5)                                   # uneven routing: groups of different sizes
    x = torch.randn(3, 16, spec.d_model)
    fast = run_with_grads(layer, layer, x)
    ref = run_with_grads(layer, lambda x: reference_forward(layer, x), x)
    for a, b in [(fast[0], ref[0]), (fast[1], ref[1]), (fast[3], ref[3])]:
        close(a, b)
    for key in ("load", "aux", "z", "dropped"):
        close(fast[2][key].float(), ref[2][key].float())
    assert fast[4].keys() == ref[4].keys()
    for name in fast[4]:
        close(fast[4][name], ref[4][name], what=f"grad {name}")
    if spec.capacity_factor:
        assert fast[2]["dropped"] > 0                                  # the case really exercises dropping


def known_router_layer(top_k: int, capacity_factor: float = 0.0) -> tuple[MoELayer, torch.Tensor]:
    """E=2 experts on d=4; logits of the 4 tokens are [0, ln3], [0, -ln3], [0, ln3], [0, ln3]."""
    spec = ModelSpec(d_model=4, n_layers=1, n_heads=2, ffn_hidden=8, family="moe", n_experts=2, top_k=top_k,
                     expert_hidden=4, capacity_factor=capacity_factor, router_aux_coef=0.01, router_z_coef=0.001)
    layer = MoELayer(spec, impl="grouped")
    layer.reset_parameters(std=0.5, out_std=0.5)
    with torch.no_grad():
        layer.router.weight.zero_()
        layer.router.weight[1, 0] = 1.0
    x = torch.randn(1, 4, 4)
    x[0, :, 0] = torch.tensor([1.0, -1.0, 1.0, 1.0]) * math.log(3)
    return layer, x


def expert_out(layer, e, x):
    gate, up = layer.w_gate_up[e].chunk(2, dim=0)
    return (torch.nn.functional.silu(x @ gate.t()) * (x @ up.t())) @ layer.w_down[e].t()


def test_aux_and_z_loss_by_hand():
    layer, x = known_router_layer(top_k=1)
    y, aux, stats = layer(x)
    # top-1 choices: e1, e0, e1, e1 -> f = [1/4, 3/4]; mean probs P = [0.375, 0.625]
    assert torch.allclose(stats["load"], torch.tensor([0.25, 0.75]))
    assert stats["aux"].item() == pytest.approx(2 * (0.25 * 0.375 + 0.75 * 0.625), rel=1e-6)   # 1.125
    z = (3 * math.log(1 + 3) ** 2 + math.log(1 + 1 / 3) ** 2) / 4        # mean of logsumexp^2
    assert stats["z"].item() == pytest.approx(z, rel=1e-6)
    assert aux.item() == pytest.approx(0.01 * 1.125 + 0.001 * z, rel=1e-6)
    # top-1 keeps the raw gate (0.75), it is not renormalised to 1
    torch.testing.assert_close(y[0, 0], 0.75 * expert_out(layer, 1, x[0, 0]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(y[0, 1], 0.75 * expert_out(layer, 0, x[0, 1]), rtol=1e-5, atol=1e-6)


def test_topk_gates_are_renormalised():
    logits = torch.randn(10, 8)
    probs, ids, gates = route(logits, 3)
    torch.testing.assert_close(gates.sum(-1), torch.ones(10))
    torch.testing.assert_close(gates, probs.gather(1, ids) / probs.gather(1, ids).sum(-1, keepdim=True))


@pytest.mark.parametrize("impl", ["grouped", "padded", "loop"])
def test_capacity_drops_the_latest_tokens(impl):
    layer, x = known_router_layer(top_k=1, capacity_factor=1.0)     # capacity ceil(1 * 4 * 1 / 2) = 2
    set_impl(layer, impl)
    assert capacity(layer.spec, 4) == 2
    y, _, stats = layer(x)
    assert stats["dropped"].item() == pytest.approx(0.25)             # expert 1 got 3, keeps 2
    assert torch.all(y[0, 3] == 0)                                    # the last token to choose expert 1
    assert torch.all(y[0, :3].abs().sum(-1) > 0)


def test_flops_of_grouped_path_are_the_active_ones():
    torch.manual_seed(0)
    spec = moe_spec(n_experts=8, top_k=2, expert_hidden=16, n_shared_experts=1)
    layer = MoELayer(spec, impl="grouped")
    x = torch.randn(2, 16, spec.d_model, requires_grad=True)
    n, d, h = 32, spec.d_model, spec.expert_hidden
    with FlopCounterMode(display=False, custom_mapping=FLOP_FORMULAS) as fc:
        y, aux, _ = layer(x)
    forward = 2 * n * d * spec.n_experts + 2 * n * (spec.top_k + spec.n_shared_experts) * 3 * d * h
    assert fc.get_total_flops() == forward
    with FlopCounterMode(display=False, custom_mapping=FLOP_FORMULAS) as fc:
        (y.sum() + aux).backward()
    assert fc.get_total_flops() == 2 * forward


def test_bad_input_is_rejected_with_the_key_named():
    cases = {
        "top_k": dict(n_experts=4, top_k=5),
        "n_experts": dict(n_experts=0, top_k=1),
        "expert_hidden": dict(expert_hidden=24),                     # 64 % 24 != 0
    }
    for key, kw in cases.items():
        spec = moe_spec(**kw)
        errors = spec.errors()
        assert any(f"model.{key}" in e for e in errors), (key, errors)
        with pytest.raises(SpecError, match=f"model.{key}"):
            MoELayer(spec)
    with pytest.raises(ValueError, match="impl"):
        MoELayer(moe_spec(), impl="fast")
    with pytest.raises(ValueError, match="family"):
        MoELayer(ModelSpec(d_model=32, n_layers=2, n_heads=2, ffn_hidden=64))


def test_moe_metrics_are_flat_floats():
    stats = {"load": torch.tensor([[0.5, 0.25, 0.25, 0.0], [0.25] * 4]), "aux": torch.tensor([1.2, 1.0]),
             "z": torch.tensor([3.0, 1.0]), "dropped": torch.tensor([0.0, 0.1])}
    m = moe_metrics(stats)
    assert m["moe_aux"] == pytest.approx(1.1) and m["moe_dropped"] == pytest.approx(0.05)
    assert m["moe_load_max"] == 0.5 and m["moe_load_l1_e3"] == 0.25 and len(m) == 4 + 8
    assert moe_metrics({}) == {}


@pytest.mark.parametrize("impl", ["grouped", "loop"])
def test_router_runs_in_fp32_under_autocast(impl):
    torch.manual_seed(0)
    layer = MoELayer(moe_spec(), impl=impl)
    x = torch.randn(2, 16, 32)
    logits = x.reshape(-1, 32) @ layer.router.weight.t()                  # fp32, from the un-cast input
    want_z = torch.logsumexp(logits, -1).square().mean()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, _, stats = layer(x)
    torch.testing.assert_close(stats["z"], want_z, rtol=1e-6, atol=0)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
