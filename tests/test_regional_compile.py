"""train.runtime.compile=regional: each block and the head + loss compiled apart (model_zoo.dense.compile_regions)
trains the same losses as the whole-step compile and as eager; one compiled block serves every block of a model and
every depth of a width; evaluation stays eager; the option is validated and resolved like the others."""
import dataclasses

import pytest
import torch
from harness_util import with_backend
from torch._dynamo.testing import CompileCounter

import model_zoo
from harness.device import Hardware, compile_mode, resolve, runtime_errors
from harness.spec import OptimSpec, Runtime
from harness.step import LossStep
from harness.train import compile_step
from model_zoo.spec import CPU_RULE

SPEC = CPU_RULE.shape(2, vocab_size=64, seq_len=16, qk_norm=True)
STEPS = 2


pytestmark = pytest.mark.usefixtures("fresh_dynamo")   # conftest


def hardware(mode: str) -> Hardware:
    return Hardware(torch.device("cpu"), torch.float32, mode != "off", None, regional=mode == "regional")


def batch(spec=SPEC, b: int = 4, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, spec.vocab_size, (b, spec.seq_len), generator=g)
    return x, x.roll(-1, 1), torch.randint(0, 2, (b, spec.seq_len), generator=g)


def train(mode: str, spec=SPEC, steps: int = STEPS):
    """(losses, statistics vectors, the first step's gradients, final weights) of `steps` AdamW steps through
    compile_step in `mode`."""
    torch.manual_seed(0)
    model = model_zoo.build(spec)
    step = compile_step(LossStep(model, 1e-4, 2), hardware(mode))
    opt = model.configure_optimizer(OptimSpec(lr=1e-2), "cpu")
    losses, stats, grads = [], [], None
    for _ in range(steps):
        loss, s = step(*batch(spec))   # one batch: the loss falls as it is learnt
        loss.backward()
        grads = grads or {k: p.grad.clone() for k, p in model.named_parameters()}
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach())
        stats.append(s)
    return torch.stack(losses), torch.stack(stats), grads, model.state_dict()


def assert_same_training(a, b, rtol: float, atol: float, weights: bool = True) -> None:
    """Losses and statistics of every step, the first step's gradients, and (weights) the final weights: AdamW
    divides by the gradients' running RMS, so a weight whose gradient is ~0 moves by up to lr on a rounding
    difference; kernels that round differently (inductor's) are compared by gradients, not weights."""
    torch.testing.assert_close(a[0], b[0], rtol=rtol, atol=atol)
    torch.testing.assert_close(a[1], b[1], rtol=rtol, atol=atol)
    assert a[2].keys() == b[2].keys() and a[3].keys() == b[3].keys()   # the compiled wrappers add no parameters
    for k in a[2]:
        torch.testing.assert_close(a[2][k], b[2][k], rtol=10 * rtol, atol=atol, msg=k)
    for k in a[3] if weights else ():
        torch.testing.assert_close(a[3][k], b[3][k], rtol=rtol, atol=atol, msg=k)


def test_regional_trains_as_whole_and_eager_aot_traced(monkeypatch):
    with_backend(monkeypatch, "aot_eager")
    eager, whole, regional = train("off"), train("on"), train("regional")
    assert eager[0][-1] < eager[0][0]   # it trains
    # the eager CPU step fuses the head's gradients into its forward (model_zoo/chunked_ce.py), which rounds
    # differently from the traced plain head: against it, gradients and losses, not AdamW's final weights
    assert_same_training(whole, eager, rtol=1e-5, atol=1e-6, weights=False)
    assert_same_training(regional, eager, rtol=1e-5, atol=1e-6, weights=False)
    assert_same_training(regional, whole, rtol=1e-5, atol=1e-6)


def test_one_block_graph_serves_every_block_and_every_depth_of_a_width(monkeypatch):
    counter = CompileCounter()
    with_backend(monkeypatch, counter)
    train("regional", steps=1)
    assert counter.frame_count == 2   # the block (all SPEC.n_layers of them) and the tail
    train("regional", dataclasses.replace(SPEC, n_layers=4), steps=1)
    assert counter.frame_count == 2   # a deeper model of the same width: nothing new to compile
    train("on", dataclasses.replace(SPEC, n_layers=4), steps=1)
    assert counter.frame_count == 3   # the whole step compiles each depth anew (the contrast)
    wider = CPU_RULE.shape(3, vocab_size=64, seq_len=16, qk_norm=True)
    assert wider.d_model != SPEC.d_model
    train("regional", wider, steps=1)
    assert counter.frame_count == 5   # a new width: its block and tail, once


def test_evaluation_runs_eager_beside_compiled_regions(monkeypatch):
    counter = CompileCounter()
    with_backend(monkeypatch, counter)
    torch.manual_seed(0)
    model = model_zoo.build(SPEC)
    step = compile_step(LossStep(model, 0.0, 2), hardware("regional"))
    assert step.model is model and model.regions is not None
    x, y, d = batch(b=3)
    with torch.no_grad():   # as harness.evaluate: other batch shapes, no graphs
        out = model(x, y)
        logits = model(x)
    assert counter.frame_count == 0
    model.regions = None
    with torch.no_grad():
        torch.testing.assert_close(out.ce, model(x, y).ce, rtol=0, atol=0)
        torch.testing.assert_close(logits, model(x), rtol=0, atol=0)


@pytest.mark.slow
def test_regional_inductor_matches_whole_and_eager():
    """The real compiler (C++ kernels on the CPU): 6 minutes at load 20 on the 2-core VM, whole and regional."""
    eager, whole, regional = train("off", steps=2), train("on", steps=2), train("regional", steps=2)
    for a, b in [(whole, eager), (regional, eager), (regional, whole)]:
        assert_same_training(a, b, rtol=1e-4, atol=1e-5, weights=False)


def test_compile_option_is_validated_and_resolved():
    assert runtime_errors(Runtime(compile="regional")) == []
    (error,) = runtime_errors(Runtime(compile="blocks"))
    assert error == "runtime.compile='blocks': use auto, on, regional or off"
    for rt, device, mode in [(Runtime(compile="regional"), "cpu", "regional"), (Runtime(compile="auto"), "cpu", "off"),
                             (Runtime(compile="on"), "cuda", "on"), (Runtime(compile="off"), "cuda", "off")]:
        assert compile_mode(rt, device) == mode
    from harness import device
    assert compile_mode(Runtime(), "cuda") == device.CUDA_AUTO_COMPILE in ("on", "regional")
    hw = resolve(Runtime(device="cpu", compile="regional"))
    assert hw.compile and hw.regional
    assert not resolve(Runtime(device="cpu")).compile
