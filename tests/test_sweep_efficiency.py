"""What cuts a sweep's wall time outside its runs' training (issue 12 item 1) leaves every run's result as a run
trained alone: workers started ahead of the queue (sweeps.pool.start_standby) train runs bit for bit as runs alone
do; spare and cancelled ones stop and leave nothing behind; the final checkpoint, written while the final eval runs,
holds the same tensors, and a run killed between it and result.json resumes to the same metrics; and a long-lived
worker compiles a shape once, whichever run of that shape comes first."""
import functools
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from harness_util import cli, make_corpus, metrics, runtime, tiny_spec

from harness.checkpoint import host_copy
from harness.data.synthetic import make_synthetic_corpus
from harness.rundir import RunDir
from harness.train import run
from model_zoo.spec import CPU_RULE
from sweeps import timeline
from sweeps.pool import run_pool, start_standby

STEPS = 12
RT = runtime(checkpoint_every=4)
TRAIN_KEYS = ("step", "loss", "z_loss", "grad_norm", "lr", "train_loss_alpha", "train_loss_beta", "train_loss_gamma")


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """A run trained alone in its own process (tests/test_worker.py checks runs back to back against theirs)."""
    root = tmp_path_factory.mktemp("efficiency")
    corpus = make_corpus(root / "syn")
    specs = [tiny_spec(corpus, steps=STEPS, eval={"every_steps": 4})]
    for s in specs:
        _, err = (p := cli(s, RT, root / "alone" / s.run_id)).communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    return root, specs


def final_checkpoint(run_dir) -> dict:
    return torch.load(run_dir / "ckpt" / f"step_{STEPS:08d}.pt", weights_only=True)


def assert_same_tensors(a, b):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same_tensors(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_tensors(x, y)


def assert_same_as_alone(root, run_dir):
    """Every tensor of the final checkpoint (model, optimizer, RNG states, log window), every train and eval line's
    values, and result.json's losses: equal to the run trained alone."""
    alone_dir = root / "alone" / run_dir.name
    a, b = final_checkpoint(alone_dir), final_checkpoint(run_dir)
    for key in ("model", "optimizer", "rng", "window_sums"):
        assert_same_tensors(a[key], b[key])
    assert a["step"] == b["step"] == STEPS
    train = [[r[k] for k in TRAIN_KEYS] for r in metrics(alone_dir)]
    assert train == [[r[k] for k in TRAIN_KEYS] for r in metrics(run_dir)] and len(train) == STEPS
    assert metrics(alone_dir, "eval") == metrics(run_dir, "eval")
    ra, rb = (json.loads((d / "result.json").read_text()) for d in (alone_dir, run_dir))
    losses = [k for k in ra if k.startswith("loss") or k.startswith("train_loss")]
    assert losses and {k: ra[k] for k in losses} == {k: rb[k] for k in losses}


def test_workers_started_ahead_wait_for_the_queue_then_train_runs_as_alone(alone):
    root, specs = alone
    sweep_dir = root / "ahead"
    launch = sweep_dir / ".hydra" / "launch"
    standby = start_standby(launch, 2, inductor_cache=None, threads=1, compiles=True)   # 2 started, the pool needs 1
    spare = standby.procs[1]
    for s in specs:
        RunDir(sweep_dir / s.run_id).prepare(s, RT)
    run_pool([s.run_id for s in specs], launch, sweep_dir=sweep_dir, sweep="ahead", retries=0, slots=1,
             slot_gpus=None, inductor_cache=None, threads=1, poll_s=0.05, standby=standby)
    assert spare.returncode is not None and not standby.procs          # the spare was stopped, before the queue
    events = timeline.read(launch)
    spawned = [e for e in events if e["event"] == "worker_spawn"]
    assert [e.get("standby") for e in spawned] == [True, True]           # no fresh worker was started
    ready = [e for e in events if e["event"] == "worker_ready"]
    assert len(ready) == 1 and ready[0]["pid"] == standby_pid(events)    # the started-ahead worker trained the runs
    imported = next(e for e in events if e["event"] == "worker_imported" and e["worker"] == 0)
    assert imported["compiler"] is True                                 # and had imported the compiler ahead
    for s in specs:
        assert_same_as_alone(root, sweep_dir / s.run_id)


def standby_pid(events) -> int:
    return next(e["pid"] for e in events if e["event"] == "worker_imported" and e["worker"] == 0)


def test_cancelled_workers_stop_and_leave_no_folder_behind(tmp_path):
    """A refused sweep (sweeps.launch: the machine check failed) started its workers for nothing: they stop, and
    the launch folder they were given, and the sweep folder above it, go if they were made for them."""
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "kept.txt").write_text("not ours")
    launch = tmp_path / "sweep" / ".hydra" / "launch"
    standby = start_standby(launch, 2, inductor_cache=None, threads=1)
    procs = list(standby.procs)
    assert all(p.poll() is None for p in procs) and (launch / "worker1.log").exists()
    standby.cancel()
    assert all(p.returncode is not None for p in procs)
    assert not (tmp_path / "sweep" / ".hydra").exists()
    assert (tmp_path / "sweep" / "kept.txt").exists()                    # what was there before stays
    standby = start_standby(tmp_path / "fresh" / ".hydra" / "launch", 1, inductor_cache=None, threads=1)
    standby.cancel()
    assert list(tmp_path.iterdir()) == [tmp_path / "sweep"]


@pytest.mark.parametrize("bytecode_cache", [False, True], ids=["bytecode_shipped", "bytecode_cache"])
def test_a_sweep_refused_by_its_machine_check_stops_the_workers_it_started_ahead(tmp_path, monkeypatch,
                                                                                 bytecode_cache):
    import sys

    from hydra import compose, initialize_config_dir

    import sweeps.bytecode
    import sweeps.launch
    import sweeps.pool
    monkeypatch.setattr(sys, "pycache_prefix", None)   # what sweeps.bytecode.keep changes, put back after the test
    monkeypatch.setattr(sys, "dont_write_bytecode", sys.dont_write_bytecode)
    for name in ("PYTHONPYCACHEPREFIX", "PYTHONDONTWRITEBYTECODE"):
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)
    monkeypatch.setattr(sweeps.bytecode, "needed", lambda probe="torch": bytecode_cache)
    make_synthetic_corpus(tmp_path / "data" / "syn", vocab_size=2048, train_tokens=100_000, heldout_tokens=10_000)
    monkeypatch.setenv("SCALEMIX_DATA", str(tmp_path / "data"))
    started, real, compiles = [], sweeps.pool.start_standby, []
    monkeypatch.setattr(sweeps.pool, "start_standby", lambda *a, **k: compiles.append(k["compiles"]) or
                        started.append(real(*a, **k)) or started[-1])
    monkeypatch.setattr(sweeps.launch, "machine_errors", lambda rt: ["train.runtime.device: no such device (test)"])
    procs = []
    monkeypatch.setattr(sweeps.pool.Standby, "cancel", lambda self, cancel=sweeps.pool.Standby.cancel:
                        procs.extend(self.procs) or cancel(self))
    overrides = ["+grid=chinchilla", "grid.replicates=null", "data.corpus=syn", "grid.shapes.budgets=[1e10]",
                 "grid.shapes.sizes_per_budget=2", "grid.shapes.min_each_side=0", "grid.shapes.tokens_per_param=1",
                 "grid.min_steps=2", "eval.heldout_tokens=2048", "sweep.max_parallel=2", "sweep.gpus=0",
                 f"sweep.root={tmp_path / 'runs'}", f"train.runtime.compile={'regional' if bytecode_cache else 'auto'}"]
    with initialize_config_dir(config_dir=str(Path(sweeps.launch.__file__).resolve().parents[1] / "conf"),
                               version_base="1.3"):
        config = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    with pytest.raises(SystemExit) as e:
        sweeps.launch.run_sweep(config, [], lambda *a, **k: pytest.fail("launched"))
    assert e.value.code == 2
    assert len(started) == 1 and len(procs) == 2                         # 2 runs, 2 slots: 2 started ahead
    assert compiles == [bytecode_cache]              # told to import the compiler where the runs compile (not auto on CPU)
    assert all(p.returncode is not None for p in procs)                   # and stopped
    assert not (tmp_path / "runs").exists()                              # nothing left behind (inductor cache too)
    assert ("PYTHONPYCACHEPREFIX" in os.environ) == bytecode_cache        # the workers were started with the cache


def test_final_checkpoint_written_during_the_final_eval_resumes_to_the_same_metrics(alone, tmp_path):
    """The final checkpoint is queued before the final eval: it holds the previous eval as last_eval. A run killed
    after that eval was logged but before result.json resumes from it, logs the final eval once, and ends as the
    run alone did."""
    root, specs = alone
    spec, = specs
    done = root / "alone" / spec.run_id
    state = final_checkpoint(done)
    assert state["last_eval"]["step"] < STEPS == state["step"]            # taken before the final eval
    killed = tmp_path / spec.run_id
    shutil.copytree(done, killed)
    (killed / "result.json").unlink()
    assert metrics(killed, "eval")[-1]["step"] == STEPS                   # the final eval was logged
    run(spec, RT, killed)
    assert [r["step"] for r in metrics(killed, "eval")] == [4, 8, 12]      # once each
    assert_same_as_alone(root, killed)


def test_host_copy_is_a_snapshot():
    x = {"a": torch.arange(4.0), "b": [torch.ones(2), 3], "c": (torch.zeros(1),)}
    snap = host_copy(x)
    x["a"].add_(1)
    x["b"][0].zero_()
    assert torch.equal(snap["a"], torch.arange(4.0)) and torch.equal(snap["b"][0], torch.ones(2))
    assert snap["b"][1] == 3 and isinstance(snap["c"], tuple)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_host_copy_of_device_tensors_is_pinned_complete_and_equal():
    x = {"w": torch.randn(1024, 257, device="cuda"), "t": torch.randn(3, 5, device="cuda").t()}
    snap = host_copy(x)
    expect = {k: v.cpu() for k, v in x.items()}
    x["w"].zero_()
    assert all(v.is_pinned() and v.device.type == "cpu" for v in snap.values())
    assert all(torch.equal(snap[k], expect[k]) for k in x)


@pytest.mark.parametrize("mode,graphs", [("on", 1), ("regional", 2)])
def test_a_worker_compiles_each_shape_once(tmp_path, monkeypatch, mode, graphs):
    """Runs trained one after another in one process (a long-lived worker, sweeps.worker's compiler settings): the
    second run of a shape (another seed and learning rate) compiles nothing; a new shape compiles its own graphs.
    Counted as the graphs dynamo hands the backend (which runs them eagerly)."""
    import torch._dynamo.config as dynamo

    from sweeps.worker import configure_compiler
    for key in ("recompile_limit", "accumulated_recompile_limit", "automatic_dynamic_shapes"):
        monkeypatch.setattr(dynamo, key, getattr(dynamo, key))   # put back after the test
    configure_compiler()
    seen = []

    def backend(gm, example_inputs):
        seen.append(gm.code)
        return gm.forward

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=backend))
    torch._dynamo.reset()
    corpus = make_corpus(tmp_path / "syn")
    rt = runtime(compile=mode, checkpoint_every=2)
    first = tiny_spec(corpus, steps=2)
    same_shape = tiny_spec(corpus, steps=2, seed=1, optim={"lr": 1e-3})
    other = tiny_spec(corpus, steps=2, model=CPU_RULE.shape(3, vocab_size=256, seq_len=32).to_dict())
    counts = []
    try:
        for s in (first, same_shape, other):
            run(s, rt, tmp_path / s.run_id)
            counts.append(len(seen))
    finally:
        torch._dynamo.reset()
    assert counts == [graphs, graphs, 2 * graphs]


def test_a_worker_frees_each_run_before_freezing_what_survives(alone, tmp_path, monkeypatch):
    """sweeps.worker.freeze_survivors: after a run the worker collects its garbage, then freezes what is alive, so the
    next run's collections skip torch's and the imports' objects; the run's trainer (model, optimizer) is freed
    first, not frozen alive."""
    import gc
    import weakref

    import harness.train
    from sweeps.job import run_job
    from sweeps.worker import InProcess, Stop
    root, specs = alone
    refs = []
    init = harness.train.Trainer.__init__

    def recording(self, *a, **kw):
        refs.append(weakref.ref(self))
        self.cycle = self   # only the cyclic collector frees it, as a model held in a cycle (closures, hooks)
        init(self, *a, **kw)
    monkeypatch.setattr(harness.train.Trainer, "__init__", recording)
    run_dir = tmp_path / specs[0].run_id
    RunDir(run_dir).prepare(specs[0], RT)
    gc.unfreeze()
    try:
        with Stop() as stop:
            res = run_job(run_dir, sweep="s", log_path=tmp_path / "job.log", retries=0,
                          execute=InProcess(tmp_path, 0, stop))
        assert res["status"] == "done" and len(refs) == 1
        assert refs[0]() is None                 # the trainer was collected before the freeze
        assert gc.get_freeze_count() > 0         # and the survivors are frozen
    finally:
        gc.unfreeze()   # this test process goes on with other tests
    assert_same_as_alone(root, run_dir)
