"""An MoE transformer end to end: it learns, reports its expert load, and compiles without graph breaks."""
import pytest
import torch

from model_zoo import ModelSpec, build
from model_zoo.moe import MoELayer, set_impl


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Leave no compiled graphs or dynamo counters behind for later tests that count graphs."""
    yield
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()


SPEC = ModelSpec(d_model=32, n_layers=2, n_heads=2, ffn_hidden=64, vocab_size=64, seq_len=32, family="moe",
                 n_experts=4, top_k=2, expert_hidden=32, n_shared_experts=1, capacity_factor=1.0)


def test_tiny_moe_learns_and_reports_its_load():
    torch.manual_seed(0)
    model = build(SPEC)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    idx = torch.randint(0, SPEC.vocab_size, (4, SPEC.seq_len))
    losses = []
    for _ in range(40):
        out = model(idx[:, :-1], idx[:, 1:])
        loss = out.ce.mean() + out.aux_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(out.ce.mean().item())
    assert losses[-1] < 0.5 * losses[0], losses
    s = out.moe_stats
    assert s["load"].shape == (SPEC.n_layers, SPEC.n_experts)
    torch.testing.assert_close(s["load"].sum(-1), torch.ones(SPEC.n_layers))
    assert s["aux"].shape == s["z"].shape == s["dropped"].shape == (SPEC.n_layers,)
    assert torch.all(s["aux"] >= 0.99)            # E * sum f P >= 1 up to f != P; 1 when balanced
    assert torch.all((s["dropped"] >= 0) & (s["dropped"] < 0.5))
    # every router got gradient through the gates (not only through the aux loss)
    for block in model.blocks:
        assert block.mlp.router.weight.grad.abs().sum() > 0


def test_auto_picks_grouped_in_cpu_eager():
    layer = MoELayer(SPEC)
    assert layer.resolved_impl(torch.zeros(2, SPEC.d_model)) == "grouped"


@pytest.mark.slow
@pytest.mark.parametrize("wgrad_splits", [1, 3])
def test_grouped_path_compiles_whole_under_bf16_autocast(wgrad_splits):
    """The GPU recipe on CPU: fp32 weights, bf16 autocast, _grouped_mm, torch.compile(fullgraph=True): no
    graph break (static shapes, no host sync), and compiled forward and backward agree with eager, with
    and without the split weight gradient."""
    torch.manual_seed(0)
    spec = ModelSpec(**{**SPEC.to_dict(), "capacity_factor": 0.0})
    layer = set_impl(MoELayer(spec), "grouped", wgrad_splits=wgrad_splits)
    x = torch.randn(2, 16, spec.d_model)

    def loss_and_grads(fn):
        xi = x.clone().requires_grad_(True)
        layer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y, aux, stats = fn(xi)
        (y.float().square().sum() + aux).backward()
        return y.detach().float(), xi.grad.float(), layer.w_gate_up.grad.float(), layer.w_down.grad.float(), \
            layer.router.weight.grad, stats["z"]

    compiled = torch.compile(layer, fullgraph=True, backend="inductor")
    for got, want in zip(loss_and_grads(compiled), loss_and_grads(layer)):
        torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2 * float(want.abs().max()))


def test_trainer_logs_expert_load_aux_z_and_dropped(tmp_path):
    """harness.train on a tiny MoE: metrics.jsonl carries per-layer expert load and the router losses."""
    import os
    import sys
    from pathlib import Path
    os.environ.setdefault("WANDB_MODE", "disabled")
    sys.path.insert(0, str(Path(__file__).parent))
    from harness_util import make_corpus, metrics, runtime, tiny_spec

    from harness.spec import RunSpec
    from harness.train import run

    corpus = make_corpus(tmp_path / "corpus")
    base = tiny_spec(corpus, steps=6)
    moe = {**base.model.to_dict(), "family": "moe", "n_experts": 4, "top_k": 2, "expert_hidden": 32,
           "capacity_factor": 1.0}
    spec = RunSpec.from_dict({**base.to_dict(), "model": moe})
    result = run(spec, runtime(log_every=2), tmp_path / "run")
    rows = metrics(tmp_path / "run")
    assert len(rows) == 3
    L, E = spec.model.n_layers, spec.model.n_experts
    for row in rows:
        loads = [[row[f"moe_load_l{i}_e{j}"] for j in range(E)] for i in range(L)]
        assert all(abs(sum(layer) - 1) < 1e-5 for layer in loads)          # fractions of routed assignments
        assert row["moe_aux"] >= 0.99 and row["moe_z"] > 0 and 0 <= row["moe_dropped"] < 0.5
        assert row["aux_loss"] > 0
    assert result["n_experts"] == 4 and result["params_active"] < result["params_total"]


def test_cuda_capability_check_is_a_compile_time_constant(monkeypatch):
    """grouped_mm_supported asks cuda_sm inside the compiled model: it must not break a fullgraph trace."""
    from model_zoo import moe
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: (9, 0))
    f = torch.compile(lambda t: t * 2 if moe.cuda_sm(0) >= 90 else t, fullgraph=True, backend="eager")
    torch.testing.assert_close(f(torch.ones(2)), torch.full((2,), 2.0))
