"""Compile-ahead (harness.warm, sweeps.ahead) traces the very graphs the run's own step then compiles, whole or
regional, so that the run finds them in the shared caches: same graph code, same input shapes, dtypes and count.
(It once passed one tensor as inputs, targets and domains: dynamo traced that as one graph input, a different
graph, and every run compiled its shape again.)"""
import functools

import pytest
import torch
from harness_util import make_corpus, runtime, tiny_spec

from harness.train import run
from harness.warm import compile_ahead


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def recorded_graphs(monkeypatch) -> list:
    """torch.compile with a backend that keeps (graph code, input shapes and dtypes) and runs the graph eagerly."""
    graphs = []

    def backend(gm, example_inputs):
        graphs.append((gm.code, [(tuple(x.shape), x.dtype) for x in example_inputs if isinstance(x, torch.Tensor)]))
        return gm.forward

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=backend))
    return graphs


def ahead_then_run(spec, rt, tmp_path, monkeypatch) -> tuple[list, list]:
    """(the graphs compile_ahead traced, the graphs the run then compiled itself, dynamo reset between as in a fresh
    process)."""
    graphs = recorded_graphs(monkeypatch)
    assert compile_ahead(spec, rt) is not None
    ahead = list(graphs)
    torch._dynamo.reset()
    graphs.clear()
    run(spec, rt, tmp_path / "run")
    return ahead, list(graphs)


def assert_same_graphs(ahead: list, graphs: list) -> None:
    for (code_a, inputs_a), (code_r, inputs_r) in zip(ahead, graphs):
        assert inputs_a == inputs_r
        assert code_a == code_r


@pytest.mark.parametrize("mode", ["on", "regional"])
def test_compile_ahead_traces_the_graphs_the_run_compiles(tmp_path, monkeypatch, mode):
    spec = tiny_spec(make_corpus(tmp_path / "syn"), steps=2)
    rt = runtime(compile=mode, checkpoint_every=2)
    ahead, graphs = ahead_then_run(spec, rt, tmp_path, monkeypatch)
    assert ahead and len(graphs) == len(ahead)   # evaluation runs eager: no graphs of its own
    assert_same_graphs(ahead, graphs)


@pytest.mark.parametrize("mode,eval_path", [("on", "compiled_eval"), ("regional", "regional_eval")])
def test_compile_ahead_also_traces_the_eval_graphs_the_run_compiles(tmp_path, monkeypatch, mode, eval_path):
    """Where the run evaluates through compiled graphs (harness.evaluate.compiled_eval under compile=on,
    regional_eval under compile=regional: CUDA only, here made to apply on the CPU), compile-ahead traces them too,
    at the run's eval call size (with a curve subset: its call size as well), so that a run's first eval finds them
    in the caches. Without it, the run's graphs past the training ones were never compiled ahead."""
    import harness.train
    spec = tiny_spec(make_corpus(tmp_path / "syn"), steps=2, eval={"heldout_tokens": 1024, "curve_tokens": 100,
                                                                   "every_steps": 1})
    rt = runtime(compile=mode, checkpoint_every=2)
    monkeypatch.setattr(harness.train, eval_path, lambda hw, sharded, document_mask: hw.compile)
    ahead, graphs = ahead_then_run(spec, rt, tmp_path, monkeypatch)
    # on: the step, then WindowLosses at the full set's call size (93 windows) and the curve subset's (9);
    # regional: the block and the tail with grad, then both again without grad (the eval's)
    assert len(graphs) == (3 if mode == "on" else 4)
    assert len(ahead) == len(graphs)
    assert_same_graphs(ahead, graphs)


@pytest.mark.parametrize("mode", ["on", "regional"])
def test_compile_ahead_traces_the_document_mask_step_the_run_compiles(tmp_path, monkeypatch, mode):
    """data.document_mask=on: the run's LossStep has the corpus's eod_id (its loss skips the EOD-predicted targets) and
    takes the batch's document starts as a fourth input (harness.step.step_args); compile-ahead must trace that step,
    not the unmasked one of three inputs (a graph no masked run ever looks up)."""
    spec = tiny_spec(make_corpus(tmp_path / "syn"), steps=2, data={"document_mask": "on"})
    rt = runtime(compile=mode, checkpoint_every=2)
    ahead, graphs = ahead_then_run(spec, rt, tmp_path, monkeypatch)
    assert ahead and len(graphs) == len(ahead)
    assert_same_graphs(ahead, graphs)
