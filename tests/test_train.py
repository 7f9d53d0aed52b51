"""Training: bad input fails before a model exists; a short run learns and writes the contract files."""
import json
import time

import pytest
import torch
from harness_util import make_corpus, metrics, runtime, tiny_spec

import model_zoo
from harness.__main__ import main as cli_main
from harness.spec import RunSpec, SpecError
from harness.train import run

RESULT_KEYS = """run_id sweep family d_model n_layers n_heads ffn_hidden vocab_size seq_len n_experts top_k
expert_hidden n_shared_experts params_total params_embedding params_head params_nonembedding params_active
params_active_nonembedding tokens flops flops_6n w_alpha w_beta w_gamma loss loss_alpha loss_beta loss_gamma
train_loss lr batch_tokens schedule seed steps wall_s tokens_per_s mfu device git_sha corpus
tokenizer_sha256 corpus_sha256 time_setup_s time_warmup_s time_train_s time_eval_s time_checkpoint_s""".split()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("data") / "syn")


@pytest.fixture
def no_build(monkeypatch):
    def refuse(spec):
        raise AssertionError("a model was built for an invalid spec")
    monkeypatch.setattr(model_zoo, "build", refuse)


def with_keys(spec: RunSpec, **kw) -> RunSpec:
    d = spec.to_dict()
    for path, value in kw.items():
        *head, last = path.split("__")
        node = d
        for h in head:
            node = node[h]
        node[last] = value
    return RunSpec.from_dict(d)


@pytest.mark.parametrize("change, key", [
    ({"optim__schedule": "linear"}, "optim.schedule"),
    ({"batch_tokens": 250}, "batch_tokens=250 is not a multiple of model.seq_len"),
    ({"tokens": 0}, "tokens=0"),
    ({"tokens": -5}, "tokens=-5"),
    ({"model__n_heads": 3}, "not divisible by model.n_heads"),
    ({"data__corpus": "/nonexistent/corpus"}, "data.corpus="),
    ({"data__weights": [["alpha", 0.5], ["delta", 0.5]]}, "['delta'] not in corpus"),
    ({"model__vocab_size": 100}, "model.vocab_size=100"),
    ({"eval__downstream": ["nope"]}, "unknown task 'nope'"),
    ({"data__epoch_caps": [["alpha", 0.001]]}, "data.epoch_caps.alpha"),
])
def test_bad_input_fails_before_any_model_is_built(corpus, tmp_path, no_build, change, key):
    spec = with_keys(tiny_spec(corpus), **change)
    with pytest.raises(SpecError, match=key.replace("[", r"\[").replace("]", r"\]")):
        run(spec, runtime(), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_every_error_is_reported_at_once(corpus, tmp_path, no_build):
    spec = with_keys(tiny_spec(corpus), optim__schedule="nope", tokens=0, model__n_heads=3)
    with pytest.raises(SpecError) as e:
        run(spec, runtime(micro_batch_size=3, log_every=0), tmp_path)
    text = str(e.value)
    for key in ("optim.schedule", "tokens=0", "model.n_heads", "runtime.micro_batch_size=3", "runtime.log_every"):
        assert key in text


def test_cli_reports_a_bad_spec_with_exit_code_2(corpus, tmp_path, capsys):
    spec = with_keys(tiny_spec(corpus), optim__schedule="nope")
    assert cli_main(["--spec-json", spec.canonical_json(), "--out", str(tmp_path / "x")]) == 2
    assert "optim.schedule='nope'" in capsys.readouterr().err


def test_the_wait_for_the_final_checkpoint_is_checkpoint_time(corpus, tmp_path, monkeypatch):
    """The final checkpoint is written while the final eval runs; what is left of its write is waited for before
    result.json, and counted as checkpoint time (it was once in no part of the wall time)."""
    import time

    from harness.checkpoint import Checkpoints
    spec = tiny_spec(corpus, steps=20)
    write = Checkpoints._write

    def slow(self, step, state):
        if step == spec.steps:
            time.sleep(1.0)
        return write(self, step, state)
    monkeypatch.setattr(Checkpoints, "_write", slow)
    result = run(spec, runtime(log_every=5), tmp_path / spec.run_id, sweep="s")
    parts = [result[k] for k in ("time_setup_s", "time_warmup_s", "time_train_s", "time_eval_s", "time_checkpoint_s")]
    assert result["time_checkpoint_s"] > 0.9 and sum(parts) == pytest.approx(result["wall_s"], abs=0.05)


def test_a_short_run_learns_and_writes_the_contract(corpus, tmp_path, monkeypatch):
    spec = tiny_spec(corpus, steps=60)
    out = tmp_path / "runs" / "s" / spec.run_id
    result = run(spec, runtime(log_every=5), out, sweep="s")
    assert json.loads((out / "result.json").read_text()) == result
    assert set(RESULT_KEYS) <= set(result), set(RESULT_KEYS) - set(result)
    assert result["steps"] == 60 and result["tokens"] == 60 * 256 and result["sweep"] == "s"
    assert result["mfu"] is None and result["tokens_per_s"] > 0   # CPU: no meaningful peak
    # the wall time split: set-up, the first log window (warm-up), steady training, evals, checkpoints
    parts = [result[k] for k in ("time_setup_s", "time_warmup_s", "time_train_s", "time_eval_s",
                                 "time_checkpoint_s")]
    assert all(p > 0 for p in parts) and sum(parts) == pytest.approx(result["wall_s"], rel=0.05)
    assert result["time_train_s"] == pytest.approx(55 * 256 / result["tokens_per_s"], rel=1e-6)
    (setup,) = metrics(out, "setup")                                   # the launch's set-up, phase by phase
    phases = {k: v for k, v in setup.items() if k.endswith("_s")}
    assert set(phases) == {"device_s", "model_s", "data_s", "step_s", "heldout_s", "other_s", "resume_s", "prefetch_s",
                           "tracker_s"}
    assert sum(phases.values()) == pytest.approx(result["time_setup_s"], abs=0.05)
    c = model_zoo.count(spec.model)
    assert result["flops"] == 60 * 256 * c.flops_per_token
    train, evals = metrics(out), metrics(out, "eval")
    assert [r["step"] for r in train] == list(range(5, 61, 5))
    assert [r["step"] for r in evals] == [10, 20, 30, 40, 50, 60]
    assert train[-1]["flops"] == result["flops"] and train[-1]["tokens"] == result["tokens"]
    assert {"lr", "loss", "grad_norm", "tokens_per_s", "mfu", "elapsed_s", "train_loss_alpha"} <= set(train[0])
    # it learns: uniform guessing is ln(256) = 5.55; the Markov chains are far more predictable
    assert evals[0]["loss"] > evals[-1]["loss"] and result["loss"] < 5.0
    # the reference-mixture loss is the uniform mean of the domains' losses
    assert result["loss"] == pytest.approx(sum(result[f"loss_{d}"] for d in ("alpha", "beta", "gamma")) / 3)
    assert sorted(p.name for p in out.iterdir()) == ["ckpt", "metrics.jsonl", "result.json", "runtime.yaml",
                                                     "spec.yaml"]

    # relaunching a finished run returns its row at once, without building anything
    monkeypatch.setattr(model_zoo, "build", lambda s: pytest.fail("rebuilt a finished run"))
    t = time.perf_counter()
    assert run(spec, runtime(), out) == result
    assert time.perf_counter() - t < 1.0


def test_gradient_accumulation_matches_the_full_batch(corpus, tmp_path):
    spec = tiny_spec(corpus, steps=10)
    full = run(spec, runtime(), tmp_path / "full")
    accum = run(spec, runtime(micro_batch_size=2), tmp_path / "accum")
    a, b = metrics(tmp_path / "full"), metrics(tmp_path / "accum")
    for x, y in zip(a, b):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-5)
        assert x["train_loss_beta"] == pytest.approx(y["train_loss_beta"], rel=1e-5)
    assert full["loss"] == pytest.approx(accum["loss"], rel=1e-4)


def test_wandb_offline_writes_inside_the_run_dir(corpus, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    spec = tiny_spec(corpus, steps=4)
    run(spec, runtime(wandb="offline"), tmp_path / "r")
    assert list((tmp_path / "r" / "wandb").glob(f"offline-run-*-{spec.run_id}"))


def test_per_domain_train_loss_uses_the_domain_labels(corpus, tmp_path):
    # all weight on one domain: only its per-domain train loss exists, and it equals the loss
    spec = with_keys(tiny_spec(corpus, steps=3), data__weights=[["alpha", 0.0], ["beta", 1.0], ["gamma", 0.0]])
    run(spec, runtime(), tmp_path)
    for row in metrics(tmp_path):
        assert row["train_loss_alpha"] is None and row["train_loss_gamma"] is None
        assert row["train_loss_beta"] == pytest.approx(row["loss"], rel=1e-6)


def test_downstream_accuracies_land_in_the_result(corpus, tmp_path):
    """The full suite at the end (result columns), its fixed subset at every eval, the prompt battery at each
    checkpoint (harness.downstream.InTraining)."""
    spec = tiny_spec(corpus, steps=4, eval={"downstream": ["arith"], "heldout_tokens": 1024, "every_steps": 2,
                                            "downstream_items": 5, "samples_tokens": 3})
    result = run(spec, runtime(checkpoint_every=2), tmp_path)
    assert 0 <= result["acc_arith"] <= 1 and result["n_items_arith"] == 500 and result["se_arith"] > 0
    [end] = metrics(tmp_path, "downstream")
    assert end["step"] == 4 and {k: end[k] for k in result if k.endswith("_arith")} == \
        {k: v for k, v in result.items() if k.endswith("_arith")}
    subset = metrics(tmp_path, "downstream_subset")
    assert [r["step"] for r in subset] == [2, 4] and all(r["n_items_arith"] == 5 for r in subset)
    battery = metrics(tmp_path, "samples")
    assert [r["step"] for r in battery] == [2, 4]
    assert all(len(s["prompt"]) > 0 and isinstance(s["completion"], str) for s in battery[0]["samples"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_compiled_bf16_run_resumes_in_process(corpus, tmp_path):
    """The GPU path end to end: compile, bf16 autocast, fused AdamW, side-stream prefetch, deferred logs.
    CUDA kernels (flash-attention backward, atomic scatter-adds) are not bit-deterministic even between
    two straight runs, so here the resumed curve must match the straight one closely, not bit for bit."""
    import os
    import signal
    import threading

    from harness.signals import Preempted
    spec = tiny_spec(corpus, steps=30)
    rt = runtime(device="cuda", compile="auto", checkpoint_every=10)
    straight = run(spec, rt, tmp_path / "a")
    assert straight["mfu"] is None or 0 < straight["mfu"] < 1

    def kill_at_step_12():
        while not any(r["step"] >= 12 for r in _safe_metrics(tmp_path / "b")):
            threading.Event().wait(0.01)
        os.kill(os.getpid(), signal.SIGUSR1)
    th = threading.Thread(target=kill_at_step_12, daemon=True)
    th.start()
    with pytest.raises(Preempted):
        run(spec, rt, tmp_path / "b")
    run(spec, rt, tmp_path / "b")
    la, lb = metrics(tmp_path / "a"), metrics(tmp_path / "b")
    assert [r["step"] for r in la] == [r["step"] for r in lb] == list(range(1, 31))
    for ra, rb in zip(la, lb):
        assert ra["loss"] == pytest.approx(rb["loss"], rel=2e-2), ra["step"]


def _safe_metrics(run_dir):
    try:
        return metrics(run_dir)
    except (FileNotFoundError, ValueError):
        return []


def test_cli_runs_the_spec_yaml_in_a_run_dir(corpus, tmp_path, capsys):
    """How launchers start a run: write spec.yaml (+ runtime.yaml), then `python -m harness <run_dir>`."""
    from harness.rundir import RunDir
    spec = tiny_spec(corpus, steps=4)
    run_dir = tmp_path / "runs" / "mysweep" / spec.run_id
    RunDir(run_dir).prepare(spec, runtime())
    assert cli_main([str(run_dir)]) == 0
    result = json.loads((run_dir / "result.json").read_text())
    assert result["run_id"] == spec.run_id and result["sweep"] == "mysweep"
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run_id"] == spec.run_id


def test_the_loss_step_compiles_as_one_graph_without_recompiles():
    """torch.compile sees model + loss + stats as one graph (fullgraph), and later steps reuse it.
    aot_eager traces forward and backward as the GPU path does, without needing a C++/Triton toolchain."""
    import torch._dynamo

    import model_zoo
    from harness.step import LossStep
    from model_zoo.spec import CPU_RULE
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()      # reset() keeps the counts of graphs compiled by earlier tests
    model = model_zoo.build(CPU_RULE.shape(2, vocab_size=256, seq_len=32))
    eager = LossStep(model, 1e-4, 3)
    compiled = torch.compile(eager, backend="aot_eager", fullgraph=True)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.randint(0, 256, (4, 32), generator=g)
        dom = torch.randint(0, 3, (4, 1), generator=g).expand(4, 32).contiguous()
        loss, stats = compiled(x, torch.roll(x, -1, 1), dom)
        loss.backward()
        ref_loss, ref_stats = eager(x, torch.roll(x, -1, 1), dom)
        assert torch.allclose(loss, ref_loss, rtol=1e-5) and torch.allclose(stats, ref_stats, rtol=1e-5)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
    torch._dynamo.reset()


def test_heldout_loss_does_not_depend_on_the_eval_batch(corpus):
    """The trainer evaluates a whole domain per call on the CPU (one call instead of one per micro-batch)."""
    from harness.data.corpus import Corpus
    from harness.evaluate import HeldoutSet
    spec = tiny_spec(corpus)
    torch.manual_seed(0)
    model = model_zoo.build(spec.model)
    held = HeldoutSet(Corpus(corpus), spec.data, 1024, spec.model.seq_len)
    small, whole = (held.evaluate(model, torch.device("cpu"), b) for b in (4, 2**16 // spec.model.seq_len))
    assert small.keys() == whole.keys()
    for k in small:
        assert whole[k] == pytest.approx(small[k], rel=1e-6)
