"""The held-out eval's path (harness.evaluate): stacked windows, one call size, per-window sums on the device, and the
compiled WindowLosses. Its losses are the old path's (bench/eval_profile.py's legacy_evaluate, the code up to
d7b4639) over the same windows, whatever the call size, with document masks on and off, eager and compiled; the
compiled forward compiles once per shape (a short last call included, a second run of the shape compiles nothing)
and leaves the training graphs alone; over ranks every window is scored once, every rank making as many calls; the
trainer's compiled eval logs the eager one's losses and times its compile as warm-up. bench/eval_profile.py --smoke
runs (the CPU check of the GPU profile's plumbing)."""
import functools
import json
import sys
from pathlib import Path

import pytest
import torch
from harness_util import make_corpus, metrics, runtime, tiny_spec, with_backend
from torch._dynamo.testing import CompileCounter

import model_zoo
from harness.data.corpus import Corpus
from harness.device import Hardware
from harness.evaluate import HeldoutSet
from harness.spec import DataSpec
from harness.step import LossStep
from harness.train import compile_step, run

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import eval_profile  # noqa: E402

HELDOUT = 1000   # tokens per domain: 31 windows of 32, 93 in all (no call size below divides it)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return Corpus(make_corpus(tmp_path_factory.mktemp("evalpath") / "syn"))


pytestmark = pytest.mark.usefixtures("fresh_dynamo")   # conftest


def model_for(corpus: Corpus, seed: int = 0):
    spec = tiny_spec(corpus.path)
    torch.manual_seed(seed)
    return spec, model_zoo.build(spec.model)


def held_out(corpus: Corpus, spec, document_mask: str = "off") -> HeldoutSet:
    return HeldoutSet(corpus, DataSpec(document_mask=document_mask), HELDOUT, spec.model.seq_len)


def assert_same_losses(new: dict, old: dict, rel: float = 1e-6) -> None:
    assert list(new) == list(old)
    for k in old:
        assert new[k] == pytest.approx(old[k], rel=rel), k


@pytest.mark.parametrize("document_mask", ["off", "on"])
def test_the_eval_scores_what_the_old_path_did_at_every_call_size(corpus, monkeypatch, document_mask):
    with_backend(monkeypatch, "eager")
    spec, model = model_for(corpus)
    held = held_out(corpus, spec, document_mask)
    assert held.eod_id == (corpus.eod_id if document_mask == "on" else None)
    cpu = torch.device("cpu")
    old = eval_profile.legacy_evaluate(held, model, cpu, 8)
    assert old["loss"] > 0 and len(old) == len(corpus.domains) + 1
    model.train()
    for size in (1, 7, 32, 1000):
        assert_same_losses(held.evaluate(model, cpu, size), old)
        assert_same_losses(held.evaluate(model, cpu, size, compiled=True), old)
        assert model.training   # the model's mode is given back
    if document_mask == "on":   # the mask changes the numbers (documents exist in these windows)
        assert_same_losses(held_out(corpus, spec).evaluate(model, cpu, 32),
                           eval_profile.legacy_evaluate(held_out(corpus, spec), model, cpu, 32))
        assert held_out(corpus, spec).evaluate(model, cpu, 32)["loss"] != pytest.approx(old["loss"], rel=1e-6)


def test_the_compiled_eval_compiles_once_per_shape_and_leaves_training_graphs_alone(corpus, monkeypatch):
    counter = CompileCounter()
    with_backend(monkeypatch, counter)
    spec, model = model_for(corpus)
    held = held_out(corpus, spec)
    regional = Hardware(torch.device("cpu"), torch.float32, True, None, regional=True)
    step = compile_step(LossStep(model, 1e-4, 3), regional)
    x = torch.randint(0, 256, (4, spec.model.seq_len))

    def train_step():
        loss, _ = step(x, x.roll(-1, 1), torch.zeros_like(x))
        loss.backward()
    train_step()
    assert counter.frame_count == 2   # the block and the tail
    cpu = torch.device("cpu")
    held.warm(model, cpu, 40, compiled=True)
    assert counter.frame_count == 3   # the eval's graph
    for _ in range(2):   # 93 windows in calls of 40: the last is shifted back, not smaller
        held.evaluate(model, cpu, 40, compiled=True)
        train_step()
    assert counter.frame_count == 3
    _, again = model_for(corpus, seed=1)   # the next run of this shape in a worker, set up as the trainer does
    compile_step(LossStep(again, 1e-4, 3), regional)
    held_out(corpus, spec).evaluate(again, cpu, 40, compiled=True)
    assert counter.frame_count == 3
    held.evaluate(model, cpu, 16, compiled=True)   # another call size: a graph of its own
    assert counter.frame_count == 4


@pytest.mark.parametrize("world", [2, 3, 4])
def test_over_ranks_every_window_is_scored_once_with_as_many_calls_on_every_rank(corpus, monkeypatch, world):
    """Each rank's per-window vector (what it all-reduces) covers its own share; the shares tile the windows."""
    import torch.distributed as dist
    spec, model = model_for(corpus)
    held = held_out(corpus, spec)
    cpu = torch.device("cpu")
    vectors, calls = [], []
    monkeypatch.setattr(dist, "all_reduce", lambda t: vectors.append(t.clone()))
    n_calls = [0]
    model.register_forward_pre_hook(lambda *_: n_calls.__setitem__(0, n_calls[0] + 1))
    for rank in range(world):
        n_calls[0] = 0
        held.evaluate(model, cpu, 7, rank=rank, world=world)
        calls.append(n_calls[0])
    assert len(set(calls)) == 1
    covered = torch.stack([v != 0 for v in vectors]).sum(0)
    assert covered.tolist() == [1] * len(held.on(cpu)[0])   # every window by exactly one rank
    total = torch.stack(vectors).sum(0)
    n_calls[0] = 0
    monkeypatch.setattr(dist, "all_reduce", lambda t: t.copy_(total))   # what the reduce hands every rank
    assert_same_losses(held.evaluate(model, cpu, 7, rank=1, world=world), held.evaluate(model, cpu, 93))


def test_the_trainers_compiled_eval_logs_the_eager_losses_and_counts_its_compile_as_warm_up(corpus, monkeypatch,
                                                                                              tmp_path):
    """On the CPU the trainer's eval stays eager (compiled_eval: CUDA only); here it is made to compile."""
    import harness.train
    spec = tiny_spec(corpus.path, steps=6, eval={"every_steps": 3})
    counter = CompileCounter()
    with_backend(monkeypatch, counter)
    run(spec, runtime(compile="regional"), tmp_path / "eager")
    assert counter.frame_count == 2   # the block and the tail; the eval eager
    monkeypatch.setattr(harness.train, "compiled_eval", lambda hw, sharded, document_mask: hw.compile and not sharded)
    compiled = run(spec, runtime(compile="regional"), tmp_path / "compiled")
    assert counter.frame_count == 3   # the same block and tail, and the eval's graph, once for its 3 evals
    a, b = metrics(tmp_path / "eager", "eval"), metrics(tmp_path / "compiled", "eval")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [3, 6]
    for ra, rb in zip(a, b):
        assert_same_losses({k: v for k, v in rb.items() if k.startswith("loss")},
                           {k: v for k, v in ra.items() if k.startswith("loss")})
    assert compiled["time_warmup_s"] > 0


def test_the_regional_eval_logs_the_eager_losses_and_compiles_each_region_once_more(corpus, monkeypatch, tmp_path):
    """harness.evaluate.REGIONAL_EVAL (on by default, CUDA only; here made to apply on the CPU): under regional compile
    the held-out eval runs through the compiled regions, whose no-grad graphs compile once (as warm-up) and serve
    every eval, at one call shape; the losses are the eager eval's."""
    import harness.train
    spec = tiny_spec(corpus.path, steps=6, eval={"every_steps": 2})
    counter = CompileCounter()
    with_backend(monkeypatch, counter)
    run(spec, runtime(compile="regional"), tmp_path / "eager")
    assert counter.frame_count == 2   # the block and the tail, for training; the eval eager
    monkeypatch.setattr(harness.train, "regional_eval", lambda hw, sharded, document_mask: hw.regional)
    regional = run(spec, runtime(compile="regional"), tmp_path / "regional")
    assert counter.frame_count == 4   # the same two for training, and each once more without grad, for its 3 evals
    a, b = metrics(tmp_path / "eager", "eval"), metrics(tmp_path / "regional", "eval")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [2, 4, 6]
    for ra, rb in zip(a, b):
        assert_same_losses({k: v for k, v in rb.items() if k.startswith("loss")},
                           {k: v for k, v in ra.items() if k.startswith("loss")})
    assert regional["time_warmup_s"] > 0


def test_the_regional_eval_is_on_for_cuda_regional_runs_only(monkeypatch):
    from types import SimpleNamespace

    from harness import evaluate
    cuda = torch.device("cuda")
    hw = SimpleNamespace(device=cuda, compile=True, regional=True)
    assert evaluate.REGIONAL_EVAL is True and evaluate.regional_eval(hw, sharded=False)
    monkeypatch.setattr(evaluate, "REGIONAL_EVAL", False)
    assert not evaluate.regional_eval(hw, sharded=False)
    monkeypatch.setattr(evaluate, "REGIONAL_EVAL", True)
    assert not evaluate.regional_eval(SimpleNamespace(device=cuda, compile=True, regional=False), sharded=False)
    assert not evaluate.regional_eval(hw, sharded=True)
    assert not evaluate.regional_eval(hw, sharded=False, document_mask="on")
    assert not evaluate.regional_eval(SimpleNamespace(device=torch.device("cpu"), compile=True, regional=True),
                                      sharded=False)


def test_the_compiled_eval_is_chosen_only_where_the_h200_profile_measured_a_gain():
    """compiled_eval's rule (harness.evaluate.COMPILED_EVAL): CUDA, whole-step compile, one process, no document
    masks; regional compile, a sharded model, document masks and the CPU keep the eager eval."""
    from types import SimpleNamespace

    from harness.evaluate import compiled_eval
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    def hw(device=cuda, compile=True, regional=False):
        return SimpleNamespace(device=device, compile=compile, regional=regional)
    assert compiled_eval(hw(), sharded=False)
    assert not compiled_eval(hw(regional=True), sharded=False)
    assert not compiled_eval(hw(compile=False), sharded=False)
    assert not compiled_eval(hw(device=cpu), sharded=False)
    assert not compiled_eval(hw(), sharded=True)
    assert not compiled_eval(hw(), sharded=False, document_mask="on")


def test_the_profile_smoke_runs_and_checks_what_it_measures(tmp_path):
    out = tmp_path / "profile.json"
    rows = eval_profile.main(["--smoke", "--json", str(out)])
    assert json.loads(out.read_text())["rows"] == json.loads(json.dumps(rows))
    evals = [r for r in rows if r["variant"] in ("legacy", "eager", "eager+inference", "compiled")]
    assert {r["mode"] for r in evals} == {"regional", "on", "off"}
    assert {(r["mode"], r["variant"]) for r in evals if r["variant"] == "compiled"} == {("regional", "compiled"),
                                                                                       ("on", "compiled")}
    for r in evals:
        assert r["graphs_steady"] == 0 and r["steady_s"] > 0
        assert r["graphs_first"] == (1 if r["variant"] == "compiled" else 0)
        assert r["variant"] == "legacy" or r["max_abs_diff"] < 1e-5
    assert all(r["graphs_first"] == 0 for r in rows if r["variant"] == "train_after_eval")
    assert not isinstance(torch.compile, functools.partial)   # the backend override was put back
