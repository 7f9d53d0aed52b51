"""One run over G processes (harness.distributed) on CPU with gloo: the ranks' batches are the 1-process batch, a
2-process DDP or FSDP run trains what the 1-process run trains (fp32, float-summation-order tolerance), a run
resumes at another G from its checkpoint (DCP <-> .pt), and bad set-ups are refused before any compute.

The runs are forked from the test process (torch already imported: a forked rank starts in well under a second),
each rank with torchrun's environment; one test launches the real `torchrun -m harness` command line."""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys

import pytest
import torch
from harness_util import REPO, make_corpus, metrics, runtime, tiny_spec

import model_zoo
from harness import distributed, preflight
from harness.data.corpus import Corpus
from harness.data.mixture import MixtureStream
from harness.dcp import Store
from harness.memory import memory_estimate
from harness.spec import DataSpec, Runtime, SpecError, Stage

STEPS, K = 12, 6     # steps of the runs, checkpoint period (a run stopped at K resumes from there)
# fp32 on CPU: DDP/FSDP add the ranks' gradients in another order than one process does (~1e-7 relative a
# step); 12 AdamW steps keep that within this
RTOL = 1e-5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, spec_json: str, rt: dict, out: str, stop_at: int | None) -> None:
    if world > 1:
        os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from harness.spec import RunSpec
    from harness.train import run
    run(RunSpec.from_dict(json.loads(spec_json)), Runtime(**rt), out, stop_at=stop_at)


def train(spec, out, world: int = 1, stop_at: int | None = None, **rt) -> None:
    """Train `spec` in `out` over `world` forked processes (one process: the plain path unless rt sets parallel)."""
    ctx, port = mp.get_context("fork"), free_port()
    procs = [ctx.Process(target=_rank, args=(r, world, port, spec.canonical_json(), vars(runtime(**rt)), str(out),
                                             stop_at)) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * world, f"ranks exited {[p.exitcode for p in procs]}"


def final_params(spec, run_dir) -> dict[str, torch.Tensor]:
    """The model of the run's newest checkpoint (.pt or DCP), loaded the way a one-process resume loads it."""
    model = model_zoo.build(spec.model)
    opt = model.configure_optimizer(spec.optim, "cpu")
    assert Store(run_dir / "ckpt", 2, sharded=False).load_latest(model, opt)["step"] == STEPS
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_curves_close(a_dir, b_dir, exact: bool = False):
    for kind, keys in (("train", ("loss", "grad_norm", "train_loss_alpha")), ("eval", ("loss", "loss_beta"))):
        la, lb = metrics(a_dir, kind), metrics(b_dir, kind)
        assert [r["step"] for r in la] == [r["step"] for r in lb] and la
        for ra, rb in zip(la, lb):
            for k in keys:
                if exact:
                    assert ra[k] == rb[k], (kind, ra["step"], k)
                else:
                    assert ra[k] == pytest.approx(rb[k], rel=RTOL), (kind, ra["step"], k)


def assert_params_close(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=RTOL, atol=1e-6, msg=k)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The corpus, the spec and the uninterrupted one-process reference run."""
    root = tmp_path_factory.mktemp("dist")
    corpus = make_corpus(root / "syn")
    spec = tiny_spec(corpus, steps=STEPS, eval={"every_steps": K})
    train(spec, root / "plain", checkpoint_every=K)
    return root, spec


# -------------------------------------------------------------------------------------------- data


@pytest.mark.parametrize("data", [
    DataSpec(),
    DataSpec(sampling="random"),
    DataSpec(weights=(("alpha", 1.0),), stages=(Stage(start_tokens=16 * 8 * 3 + 5, weights=(("beta", 1.0),)),)),
], ids=["stratified", "random", "spliced-stage"])
@pytest.mark.parametrize("world", [2, 4])
def test_the_ranks_batches_are_the_one_process_batch(tmp_path, data, world):
    corpus = Corpus(make_corpus(tmp_path / "syn"))
    one = MixtureStream(corpus, data, 8, 16, seed=3, total_tokens=10_000)
    ranks = [MixtureStream(corpus, data, 8, 16, seed=3, total_tokens=10_000, rank=r, world=world) for r in range(world)]
    for step in range(6):   # step 3 holds the spliced sequence of the staged mixture
        b = one.batch(step)
        parts = [s.batch(step) for s in ranks]
        for name in ("inputs", "targets", "domains"):
            assert torch.equal(torch.cat([getattr(p, name) for p in parts]), getattr(b, name)), (step, name)
    with pytest.raises(SpecError, match="does not divide the batch of 8"):
        MixtureStream(corpus, data, 8, 16, seed=3, total_tokens=10_000, rank=0, world=3)


# -------------------------------------------------------------------------------------------- training


def test_two_process_ddp_run_through_torchrun_equals_the_one_process_run(setup):
    root, spec = setup
    out = root / "ddp2"
    rt = vars(runtime(checkpoint_every=K, parallel="ddp"))
    env = dict(os.environ, WANDB_MODE="disabled", PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                        "--master_port", str(free_port()), "-m", "harness", "--spec-json", spec.canonical_json(),
                        "--runtime-json", json.dumps(rt), "--out", str(out)],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_curves_close(out, root / "plain")
    result = json.loads((out / "result.json").read_text())
    assert (result["world_size"], result["parallel"]) == (2, "ddp")
    assert result["loss"] == pytest.approx(json.loads((root / "plain" / "result.json").read_text())["loss"], rel=RTOL)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == len(
        (root / "plain" / "metrics.jsonl").read_text().splitlines())   # rank 0 alone wrote, once per row
    assert sorted(p.name for p in (out / "ckpt").iterdir()) == [f"step_{K:08d}.dcp", f"step_{STEPS:08d}.dcp"]
    assert_params_close(final_params(spec, out), final_params(spec, root / "plain"))


def test_fsdp_at_two_processes_resumed_in_one_process_continues_the_run(setup):
    """FSDP over 2 ranks to step K (a DCP checkpoint), then the plain one-process path to the end."""
    root, spec = setup
    out = root / "fsdp2to1"
    train(spec, out, world=2, stop_at=K, checkpoint_every=K, parallel="fsdp")
    assert (out / "ckpt" / f"step_{K:08d}.dcp" / "complete.json").exists()
    train(spec, out, world=1, checkpoint_every=K, parallel="none")
    assert (out / "ckpt" / f"step_{STEPS:08d}.pt").exists()
    assert_curves_close(out, root / "plain")
    assert_params_close(final_params(spec, out), final_params(spec, root / "plain"))


def test_one_process_checkpoint_resumed_over_two_fsdp_processes(setup):
    """The plain path to step K (a .pt), then FSDP over 2 ranks: each rank takes its shard of the full state."""
    root, spec = setup
    out = root / "1to2"
    train(spec, out, world=1, stop_at=K, checkpoint_every=K)
    assert (out / "ckpt" / f"step_{K:08d}.pt").exists()
    train(spec, out, world=2, checkpoint_every=K, parallel="fsdp")
    assert_curves_close(out, root / "plain")
    assert_params_close(final_params(spec, out), final_params(spec, root / "plain"))


@pytest.mark.slow
def test_ddp_resumed_at_the_same_world_size_is_bit_exact(setup):
    root, spec = setup
    straight, resumed = root / "ddp2_straight", root / "ddp2_resumed"
    train(spec, straight, world=2, checkpoint_every=K, parallel="ddp")
    train(spec, resumed, world=2, stop_at=K, checkpoint_every=K, parallel="ddp")
    train(spec, resumed, world=2, checkpoint_every=K, parallel="ddp")
    assert_curves_close(resumed, straight, exact=True)
    a, b = final_params(spec, resumed), final_params(spec, straight)
    assert all(torch.equal(a[k], b[k]) for k in a)


# -------------------------------------------------------------------------------------------- bad input


def test_bad_setups_are_refused_before_any_compute(setup, monkeypatch):
    root, spec = setup   # a batch of 8 sequences
    env = {"RANK": "0", "WORLD_SIZE": "3", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}
    with pytest.raises(SpecError, match="WORLD_SIZE=3 does not divide the batch of 8 sequences"):
        preflight.check(spec, runtime(), env)
    with pytest.raises(SpecError, match="micro_batch_size=3 does not divide a rank's share"):
        preflight.check(spec, runtime(micro_batch_size=3), {**env, "WORLD_SIZE": "2"})
    with pytest.raises(SpecError, match="runtime.parallel=none in a run of WORLD_SIZE=2"):
        preflight.check(spec, runtime(parallel="none"), {**env, "WORLD_SIZE": "2"})
    with pytest.raises(SpecError, match="runtime.parallel='zero3'"):
        preflight.check(spec, runtime(parallel="zero3"), {})
    # more GPUs asked for on this node than it has
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    two = {**env, "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}
    errors = distributed.setup_errors(spec, runtime(device="auto"), two)
    assert any("2 GPUs requested on this node" in e and "1 present" in e for e in errors), errors


def test_a_world_without_a_rendezvous_is_refused(setup):
    with pytest.raises(SpecError, match=r"no rendezvous \(MASTER_ADDR, MASTER_PORT not set\)"):
        distributed.rendezvous_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    with pytest.raises(SpecError, match=r"no rendezvous \(MASTER_ADDR not set\)"):   # Slurm tasks with no node list
        distributed.rendezvous_env({"SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": "0", "SLURM_JOB_ID": "7"})
    root, spec = setup   # the command line says so and exits 2 without training
    env = dict(os.environ, WANDB_MODE="disabled", PYTHONPATH=str(REPO), RANK="0", WORLD_SIZE="2", LOCAL_RANK="0")
    env.pop("MASTER_ADDR", None)
    r = subprocess.run([sys.executable, "-m", "harness", "--spec-json", spec.canonical_json(), "--runtime-json",
                        json.dumps(vars(runtime())), "--out", str(root / "norv")], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "no rendezvous" in r.stderr, r.stderr[-2000:]
    assert not (root / "norv" / "metrics.jsonl").exists()


def test_slurm_environment_gives_the_rendezvous():
    env = {"SLURM_STEP_NUM_TASKS": "4", "SLURM_NTASKS": "4", "SLURM_PROCID": "3", "SLURM_LOCALID": "1",
           "SLURM_STEP_NUM_NODES": "2", "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_JOB_ID": "1234"}
    got = distributed.rendezvous_env(env)
    assert got == {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                   "MASTER_PORT": str(20000 + 1234), "MASTER_ADDR": got["MASTER_ADDR"]}
    assert got["MASTER_ADDR"] == "gpu07"   # the job's first node (scontrol's answer where installed, else ours)
    assert distributed.parse_nodelist("a[1-3,10],b,gpu[007-008]") == ["a1", "a2", "a3", "a10", "b", "gpu007", "gpu008"]
    assert distributed.rendezvous_env({"SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0"}) == {}   # one task
    # a batch script's own process (not started by srun) is one process, whatever the job's task count
    assert distributed.rendezvous_env({"SLURM_NTASKS": "4", "SLURM_PROCID": "0", "SLURM_JOB_NODELIST": "a1"}) == {}


def test_auto_picks_ddp_while_a_replica_fits_and_fsdp_beyond(setup):
    root, spec = setup
    need = memory_estimate(spec.model, model_zoo.count(spec.model).params_total, 4)
    assert need > 16 * model_zoo.count(spec.model).params_total
    assert distributed.choose_parallel("auto", 1, need, 10 * need) == "none"
    assert distributed.choose_parallel("auto", 2, need, 10 * need) == "ddp"
    assert distributed.choose_parallel("auto", 2, need, need) == "fsdp"
    assert distributed.choose_parallel("auto", 2, need, None) == "ddp"   # CPU: no device limit known
    assert distributed.choose_parallel("fsdp", 2, need, 10 * need) == "fsdp"


@pytest.mark.slow
def test_a_signal_to_one_rank_stops_every_rank_at_the_same_step_and_the_run_resumes(setup, tmp_path):
    """Slurm or torchrun may signal ranks apart: the ranks agree at the next log step, all checkpoint there (one
    DCP checkpoint) and stop; the relaunch resumes and ends where an uninterrupted run does, bit for bit."""
    import signal
    import time
    root, _ = setup
    spec = tiny_spec(root / "syn", steps=40, eval={"every_steps": 20})
    straight, out = tmp_path / "straight", tmp_path / "preempted"
    train(spec, straight, world=2, checkpoint_every=20, parallel="ddp", log_every=2)
    ctx, port = mp.get_context("fork"), free_port()
    rt = vars(runtime(checkpoint_every=20, parallel="ddp", log_every=2))
    procs = [ctx.Process(target=_rank, args=(r, 2, port, spec.canonical_json(), rt, str(out), None)) for r in range(2)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + 300
    while not ((out / "metrics.jsonl").exists() and len(metrics(out)) >= 3):
        assert time.monotonic() < deadline and all(p.is_alive() for p in procs), "the run ended before the signal"
        time.sleep(0.02)
    os.kill(procs[1].pid, signal.SIGUSR1)   # rank 1 only
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [1, 1]   # both raised Preempted (python -m harness: exit 75)
    stopped = sorted(int(p.name[5:13]) for p in (out / "ckpt").glob("step_*.dcp"))
    assert stopped and stopped[-1] < 40 and stopped[-1] % 2 == 0, stopped   # at a log step, before the end
    assert not (out / "result.json").exists()
    train(spec, out, world=2, checkpoint_every=20, parallel="ddp", log_every=2)
    la, lb = metrics(out), metrics(straight)
    assert [(r["step"], r["loss"], r["grad_norm"]) for r in la] == [(r["step"], r["loss"], r["grad_norm"]) for r in lb]
    assert len(la) == 20
