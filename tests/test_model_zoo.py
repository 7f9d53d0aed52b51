"""The transformer: outputs, causality, RoPE, tying, init, optimizer groups, the MoE seam, learning, compile."""
import math
import sys
import time
import types
import warnings

import pytest
import torch
import torch.nn.functional as F
import torch.utils.flop_counter

import model_zoo
from harness.spec import OptimSpec
from model_zoo import CPU_RULE, ModelOutput, ModelSpec, SpecError, build
from model_zoo.dense import SwiGLU, rope, rope_tables

TINY = CPU_RULE.shape(2, vocab_size=64, seq_len=32)


def batch(spec, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, spec.vocab_size, (b, spec.seq_len), generator=g)


def test_output_contract_and_ce_matches_torch():
    torch.manual_seed(0)
    model, idx = build(TINY), batch(TINY)
    targets = idx.roll(-1, 1)
    out = model(idx, targets)
    assert isinstance(out, ModelOutput) and out.moe_stats == {}
    assert out.ce.shape == out.lse.shape == (2, TINY.seq_len)
    assert out.ce.dtype == out.lse.dtype == torch.float32 and out.ce.requires_grad
    assert out.aux_loss.shape == () and out.aux_loss.item() == 0
    logits = model(idx)
    assert logits.shape == (2, TINY.seq_len, TINY.vocab_size)
    ref = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view_as(out.ce)
    torch.testing.assert_close(out.ce, ref)
    torch.testing.assert_close(out.lse, torch.logsumexp(logits, -1))
    with pytest.raises(AssertionError, match="seq_len"):
        model(torch.zeros(1, TINY.seq_len + 1, dtype=torch.long))
    # at init the logits are small, so the loss is near log(V)
    assert abs(out.ce.mean().item() - math.log(TINY.vocab_size)) < 0.1


def test_bf16_autocast_on_cpu_keeps_losses_in_fp32():
    torch.manual_seed(0)
    spec = CPU_RULE.shape(2, vocab_size=64, seq_len=32, qk_norm=True)
    model, idx = build(spec), batch(spec)
    with warnings.catch_warnings(), torch.autocast("cpu", dtype=torch.bfloat16):
        warnings.simplefilter("error")  # e.g. a bf16 input meeting an fp32 norm weight (slow unfused path)
        out = model(idx, idx)
    assert out.ce.dtype == out.lse.dtype == torch.float32
    torch.testing.assert_close(out.ce.mean(), model(idx, idx).ce.mean(), rtol=0, atol=2e-2)
    out.ce.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_causal_a_later_token_never_changes_an_earlier_output():
    torch.manual_seed(0)
    model, idx = build(TINY), batch(TINY)
    changed = idx.clone()
    changed[:, 20:] = (changed[:, 20:] + 1) % TINY.vocab_size
    a, b = model(idx), model(changed)
    torch.testing.assert_close(a[:, :20], b[:, :20])
    assert not torch.allclose(a[:, 20:], b[:, 20:])


def test_rope_scores_depend_on_relative_position_only():
    spec = ModelSpec(d_model=16, n_layers=1, n_heads=1, ffn_hidden=32, seq_len=64)
    cos, sin = rope_tables(spec)
    q, k = torch.randn(2, 1, 1, 16).unbind(0)

    def score(m, n):  # q at position m, k at position n
        return (rope(q, cos[m:m + 1], sin[m:m + 1]) * rope(k, cos[n:n + 1], sin[n:n + 1])).sum()

    torch.testing.assert_close(score(5, 2), score(40, 37), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(score(5, 2), score(5, 4))
    torch.testing.assert_close(score(0, 0), (q * k).sum())   # position 0 is the identity


def test_tied_embeddings_share_one_tensor():
    spec = CPU_RULE.shape(2, vocab_size=64, seq_len=32, tie_embeddings=True)
    model = build(spec)
    assert model.head.weight is model.embed.weight
    assert sum(1 for n, _ in model.named_parameters() if n.endswith("weight") and "embed" in n) == 1
    opt = model.configure_optimizer(OptimSpec(lr=1e-2), "cpu")
    model(batch(spec), batch(spec, seed=1)).ce.mean().backward()
    opt.step()
    assert model.head.weight.data_ptr() == model.embed.weight.data_ptr()
    untied = build(CPU_RULE.shape(2, vocab_size=64, seq_len=32))
    assert untied.head.weight.data_ptr() != untied.embed.weight.data_ptr()


def test_init_scales_residual_projections_by_depth():
    torch.manual_seed(0)
    spec = CPU_RULE.shape(6)   # d 192, 6 layers
    model = build(spec)
    residual = torch.cat([torch.cat([b.attn.out.weight.flatten(), b.mlp.down.weight.flatten()])
                          for b in model.blocks])
    other = torch.cat([b.attn.qkv.weight.flatten() for b in model.blocks])
    assert residual.std().item() == pytest.approx(0.02 / math.sqrt(12), rel=0.02)
    assert other.std().item() == pytest.approx(0.02, rel=0.02)
    assert model.embed.weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert all(torch.equal(b.attn_norm.weight, torch.ones(spec.d_model)) for b in model.blocks)


def test_optimizer_decays_weight_matrices_only():
    spec = CPU_RULE.shape(2, vocab_size=64, seq_len=32, qk_norm=True)
    model = build(spec)
    opt = model.configure_optimizer(OptimSpec(lr=1e-3, weight_decay=0.1, beta2=0.99), "cpu")
    decay, no_decay = opt.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert {names[id(p)] for p in no_decay["params"]} == {
        "embed.weight", "norm.weight", *(f"blocks.{i}.{m}.weight" for i in range(2)
                                         for m in ("attn_norm", "mlp_norm", "attn.q_norm", "attn.k_norm"))}
    assert all(p.dim() == 2 for p in decay["params"]) and any(names[id(p)] == "head.weight" for p in decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert opt.defaults["betas"] == (0.9, 0.99) and opt.defaults["fused"]   # one fused kernel on CPU and CUDA


def test_bad_shape_raises_spec_error_naming_keys_before_building(monkeypatch):
    def never(*a, **k):
        raise AssertionError("a model was built from an invalid spec")
    monkeypatch.setattr("model_zoo.dense.Transformer.__init__", never)
    bad = ModelSpec(d_model=100, n_layers=0, n_heads=3, ffn_hidden=128)
    with pytest.raises(SpecError) as err:
        build(bad)
    assert "model.n_heads" in str(err.value) and "model.n_layers" in str(err.value)
    with pytest.raises(SpecError, match="model.top_k"):
        build(ModelSpec(d_model=64, n_layers=2, n_heads=2, ffn_hidden=128, family="moe", n_experts=4,
                        top_k=5, expert_hidden=64))


def test_moe_layer_plugs_in_and_its_losses_and_stats_are_collected(monkeypatch):
    """The seam to model_zoo/moe.py, with a stand-in MoELayer (the real one is tested in test_moe.py)."""
    class FakeMoE(torch.nn.Module):
        def __init__(self, spec):
            super().__init__()
            self.mlp = SwiGLU(spec.d_model, spec.expert_hidden)
            self.n_experts = spec.n_experts

        def forward(self, x):
            load = torch.full((self.n_experts,), 1.0 / self.n_experts)
            return self.mlp(x), x.pow(2).mean() * 0 + 0.5, {"load": load, "dropped": torch.tensor(0.0)}

    monkeypatch.setitem(sys.modules, "model_zoo.moe", types.SimpleNamespace(MoELayer=FakeMoE))
    spec = ModelSpec(d_model=64, n_layers=3, n_heads=2, ffn_hidden=128, vocab_size=64, seq_len=16, family="moe",
                     n_experts=4, top_k=1, expert_hidden=64)
    out = build(spec)(batch(spec), batch(spec, seed=1))
    assert out.aux_loss.item() == pytest.approx(1.5)     # summed over 3 layers
    assert out.moe_stats["load"].shape == (3, 4) and out.moe_stats["dropped"].shape == (3,)


def test_tiny_model_overfits_a_repeated_batch():
    torch.manual_seed(0)
    model = build(TINY)
    opt = model.configure_optimizer(OptimSpec(lr=1e-2, weight_decay=0.0), "cpu")
    idx = batch(TINY, b=4)
    targets = idx.roll(-1, 1)
    losses = []
    for _ in range(50):
        loss = model(idx, targets).ce.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 4.0           # ~log(64): random targets
    assert losses[-1] < 0.5, losses  # memorised


@pytest.mark.slow
def test_compiled_model_matches_eager_forward_and_backward():
    torch.manual_seed(0)
    spec = CPU_RULE.shape(2, vocab_size=64, seq_len=32, qk_norm=True, tie_embeddings=True)
    model, idx = build(spec), batch(spec)
    compiled = torch.compile(model, fullgraph=True)  # fullgraph: a graph break is an error
    t = time.time()
    out_c = compiled(idx, idx.roll(-1, 1))
    (out_c.ce.mean() + 1e-4 * out_c.lse.pow(2).mean()).backward()
    grads_c = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    out_e = model(idx, idx.roll(-1, 1))
    (out_e.ce.mean() + 1e-4 * out_e.lse.pow(2).mean()).backward()
    torch.testing.assert_close(out_c.ce, out_e.ce, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out_c.lse, out_e.lse, rtol=1e-4, atol=1e-4)
    for gc, p in zip(grads_c, model.parameters()):
        torch.testing.assert_close(gc, p.grad, rtol=1e-3, atol=1e-5)
    print(f"compile + first step: {time.time() - t:.1f}s")


def test_exports():
    assert set(model_zoo.__all__) >= {"ModelSpec", "SpecError", "LadderRule", "GPU_RULE", "CPU_RULE", "ladder",
                                      "build", "count", "Counts", "ModelOutput"}


def test_dense_forward_traces_as_one_graph():
    """Fast check that the dense path has no graph break (dynamo only; the inductor test above is slow)."""
    torch._dynamo.reset()
    model, idx = build(TINY), batch(TINY)
    out = torch.compile(model, backend="eager", fullgraph=True)(idx, idx)
    torch.testing.assert_close(out.ce, model(idx, idx).ce)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@cuda
def test_cuda_bf16_compiled_step_matches_fp32_eager():
    torch.manual_seed(0)
    spec = model_zoo.GPU_RULE.shape(2, vocab_size=512, seq_len=128, qk_norm=True)
    model = build(spec).cuda()
    idx = batch(spec, b=4).cuda()
    with torch.no_grad():
        ref = model(idx, idx.roll(-1, 1))
    compiled = torch.compile(model, fullgraph=True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = compiled(idx, idx.roll(-1, 1))
    assert out.ce.dtype == out.lse.dtype == torch.float32
    torch.testing.assert_close(out.ce.mean(), ref.ce.mean(), rtol=2e-2, atol=2e-2)
    opt = model.configure_optimizer(OptimSpec(), "cuda")
    assert opt.defaults["fused"]
    out.ce.mean().backward()
    opt.step()


@pytest.mark.gpu
@cuda
def test_cuda_flop_counter_counts_fused_attention_as_full_with_recompute():
    """On CUDA the flash/efficient SDPA kernels are counted as full T x T attention: 4 T d forward and
    10 T d backward (the backward recomputes QK^T) per layer and token, against our 3 x 2 T d causal."""
    spec = model_zoo.GPU_RULE.shape(2, vocab_size=512, seq_len=256)
    model, c = build(spec).cuda(), model_zoo.count(spec)
    idx = batch(spec, b=2).cuda()
    with torch.utils.flop_counter.FlopCounterMode(display=False) as counter:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(idx, idx)
        out.ce.mean().backward()
    tokens = idx.numel()
    attention_full = 3 * spec.n_layers * 4 * spec.seq_len * spec.d_model
    matmuls = c.flops_per_token_full_attention - attention_full
    assert counter.get_total_flops() == (matmuls + 14 * spec.n_layers * spec.seq_len * spec.d_model) * tokens
