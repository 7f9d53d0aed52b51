"""The MoE fast path on a real GPU (skipped without CUDA): torch._grouped_mm in bf16 under autocast agrees
with the loop reference, with empty experts and uneven groups, eagerly and compiled whole (fullgraph).
Run on the GPU box: `pytest -m gpu tests/test_moe_gpu.py`."""
import pytest
import torch

from model_zoo import ModelSpec, build
from model_zoo.moe import MoELayer, grouped_mm_supported, set_impl
from model_zoo.moe_reference import reference_forward

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

SPEC = ModelSpec(d_model=128, n_layers=2, n_heads=2, ffn_hidden=512, vocab_size=512, seq_len=128, family="moe",
                 n_experts=8, top_k=2, expert_hidden=256, n_shared_experts=1)


def layer_with_empty_experts() -> tuple[MoELayer, torch.Tensor]:
    """Experts 0-3 never chosen (their logits are -40 x0 with x0 >= 1), so their groups are empty."""
    torch.manual_seed(0)
    layer = set_impl(MoELayer(SPEC), "grouped").cuda()
    layer.reset_parameters(std=0.1, out_std=0.1)
    with torch.no_grad():
        layer.router.weight[:4, 0] = -40.0
    x = torch.randn(4, 128, SPEC.d_model, device="cuda")
    x[..., 0] = x[..., 0].abs() + 1
    return layer, x


def run(layer, fn, x):
    xi = x.clone().requires_grad_(True)
    layer.zero_grad(set_to_none=True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y, aux, stats = fn(xi)
    (y.float().square().mean() + aux).backward()
    return [y.float(), xi.grad, layer.w_gate_up.grad, layer.w_down.grad, layer.router.weight.grad], stats


def close(got, want):
    for g, w in zip(got, want):
        torch.testing.assert_close(g.float(), w.float(), rtol=3e-2, atol=3e-2 * float(w.abs().max()))


def test_grouped_matches_loop_reference_in_bf16_with_empty_experts():
    layer, x = layer_with_empty_experts()
    assert grouped_mm_supported(x.bfloat16().reshape(-1, SPEC.d_model), SPEC.d_model, SPEC.expert_hidden)
    fast, stats = run(layer, layer, x)
    ref, _ = run(layer, lambda x: reference_forward(layer, x), x)
    assert torch.all(stats["load"][:4] == 0)
    close(fast, ref)
    assert torch.all(fast[2][:4] == 0)                         # no gradient into the idle experts


def test_grouped_compiles_fullgraph_on_cuda():
    layer, x = layer_with_empty_experts()
    eager, _ = run(layer, layer, x)
    compiled, _ = run(layer, torch.compile(layer, fullgraph=True), x)
    close(compiled, eager)


def test_moe_model_bf16_compiled_step():
    torch.manual_seed(0)
    model = build(ModelSpec(**{**SPEC.to_dict(), "n_shared_experts": 0})).cuda()
    idx = torch.randint(0, SPEC.vocab_size, (4, SPEC.seq_len), device="cuda")
    compiled = torch.compile(model, fullgraph=True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = compiled(idx, idx.roll(-1, 1))
    (out.ce.mean() + out.aux_loss).backward()
    assert torch.isfinite(out.ce).all() and out.moe_stats["load"].shape == (SPEC.n_layers, SPEC.n_experts)
