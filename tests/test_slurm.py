"""Sweeps through a real Slurm (submitit_slurm): a small sweep, and a preempted run that resumes.

Needs the one-node cluster: `.ci/slurm.sh start` (CI does this, with SCALEMIX_REQUIRE_SLURM=1 so that a
cluster that did not come up fails the tests). Elsewhere, without a running cluster, they skip.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness_util import wait_for

from harness.data.synthetic import make_synthetic_corpus

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slurm,
              pytest.mark.skipif(shutil.which("sinfo") is None,
                                 reason="no Slurm client here (sinfo); CI starts a one-node cluster with .ci/slurm.sh")]
SLURM = ["hydra/launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.gpus_per_node=null",
         "hydra.launcher.mem_gb=null", "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=10"]
GRID = ["+grid=chinchilla", "grid.replicates=null", "data.corpus=syn", "grid.shapes.min_each_side=0", "grid.shapes.tokens_per_param=1",
        "grid.min_steps=2", "eval.heldout_tokens=2048"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    try:
        up = subprocess.run(["sinfo", "-h", "-o", "%a"], capture_output=True, text=True, timeout=5).stdout.strip()
    except subprocess.TimeoutExpired:  # no controller answering
        up = ""
    if up != "up":
        msg = "sinfo is installed but no partition is up: start the cluster with .ci/slurm.sh start"
        if os.environ.get("SCALEMIX_REQUIRE_SLURM") == "1":   # CI: the cluster must be there
            pytest.fail(msg)
        pytest.skip(msg)
    d = tmp_path_factory.mktemp("data")
    make_synthetic_corpus(d / "syn", vocab_size=2048, train_tokens=200_000, heldout_tokens=10_000)
    return d


def env_for(data):
    return {**os.environ, "SCALEMIX_DATA": str(data), "WANDB_MODE": "disabled"}


def test_small_sweep_through_submitit_slurm(data, tmp_path):
    args = [*GRID, "grid.shapes.budgets=[1e10]", "grid.shapes.sizes_per_budget=2", f"sweep.root={tmp_path}",
            *SLURM, "hydra.launcher.name=scalemix-test-sweep"]
    r = subprocess.run([sys.executable, "sweep.py", *args], cwd=ROOT, env=env_for(data), capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    sweep_dir = tmp_path / "chinchilla"
    results = sorted(sweep_dir.glob("*/result.json"))
    assert len(results) == 2
    for f in results:
        row = json.loads(f.read_text())
        assert row["run_id"] == f.parent.name and row["steps"] >= 2 and row["loss"] > 0
    assert list(sweep_dir.glob(".hydra/*/.submitit/*/*_log.out"))  # it really went through Slurm
    assert "2/2 done" in r.stdout + r.stderr


def job_ids(name: str) -> list[tuple[str, str]]:
    out = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i %T"], capture_output=True, text=True).stdout
    return [tuple(x.split()) for x in out.splitlines() if x.strip()]


def job_pids(job: str) -> list[str]:
    """The processes of `job` on this (the only) node; [] once none is left (listpids fails or lists none)."""
    r = subprocess.run(["scontrol", "listpids", job], capture_output=True, text=True)
    return r.stdout.strip().splitlines()[1:] if r.returncode == 0 else []


def train_lines(run_dir: Path) -> list[dict]:
    p = run_dir / "metrics.jsonl"
    lines = [json.loads(x) for x in p.read_text().splitlines() if x.strip()] if p.exists() else []
    return [x for x in lines if x.get("kind") == "train"]


@pytest.mark.slow
@pytest.mark.parametrize("how", ["scancel --signal=USR2", "scontrol requeue"])
def test_preempted_job_checkpoints_requeues_and_resumes_to_the_same_result(data, tmp_path, how):
    name = f"scalemix-test-preempt-{how.split()[0]}"
    args = [*GRID, "grid.shapes.budgets=[8e10]", "grid.shapes.sizes_per_budget=1", f"sweep.root={tmp_path}",
            "train.runtime.log_every=5", *SLURM, f"hydra.launcher.name={name}"]
    sweep = subprocess.Popen([sys.executable, "sweep.py", *args], cwd=ROOT, env=env_for(data),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        run_dir = wait_for("the run directory", lambda: next((tmp_path / "chinchilla").glob("*/spec.yaml"), None),
                           120, poll=0.5).parent
        wait_for("training to start", lambda: len(train_lines(run_dir)) >= 2, 300, poll=0.5)
        (job, state), = job_ids(name)
        assert state == "RUNNING"
        # USR2: submitit's signal, sent before a time limit (submitit requeues the job);
        # requeue: what an admin or a preempting job does (SIGTERM, Slurm requeues the job itself)
        subprocess.run([*how.split(), job], check=True)
        pending_since = []
        def requeued():
            # Slurm holds a requeued job for 2 minutes; start it at once, but not within the second of the
            # requeue: slurmd revokes the old instance's credential with a time stamp in whole seconds, and a new
            # instance started in that same second is killed ("Job credential revoked") and the job ends FAILED
            if (run_dir / "result.json").exists():
                return True
            if not any(s == "PENDING" for _, s in job_ids(name)) or job_pids(job):
                return False
            pending_since[:] = pending_since or [time.monotonic()]
            if time.monotonic() - pending_since[0] < 2.0:
                return False
            return subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"],
                                  capture_output=True).returncode == 0
        wait_for("the job to be requeued", requeued, 120, poll=0.5)
        out, _ = sweep.communicate(timeout=600)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            subprocess.run(["scancel", "-n", name])
    assert sweep.returncode == 0, out[-3000:]
    assert (run_dir / "result.json").exists(), out[-3000:]
    log = "".join(p.read_text() for p in (tmp_path / "chinchilla").glob(".hydra/*/*/harness.log"))
    assert "preempted" in log, log[-2000:]  # the first attempt checkpointed on the signal and exited 75
    steps = json.loads((run_dir / "result.json").read_text())["steps"]

    # the same spec trained without interruption gives the same losses, bit for bit
    ref = tmp_path / "reference"
    ref.mkdir()
    for f in ("spec.yaml", "runtime.yaml"):
        shutil.copy(run_dir / f, ref / f)
    r = subprocess.run([sys.executable, "-m", "harness", str(ref), "--sweep", "chinchilla"], cwd=ROOT,
                       env=env_for(data), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    got, want = train_lines(run_dir), train_lines(ref)
    assert [(x["step"], x["loss"]) for x in got] == [(x["step"], x["loss"]) for x in want]
    assert got[-1]["step"] == steps
    a, b = (json.loads((d / "result.json").read_text()) for d in (run_dir, ref))
    assert a["loss"] == b["loss"] and a["run_id"] == b["run_id"]


def test_a_run_over_two_slurm_tasks_trains_as_one_ddp_run(data, tmp_path):
    """sweep.gpus_per_run=2: the planner asks Slurm for one node with 2 tasks (one per GPU; here gloo on CPU); each
    task starts its rank of the run with the rendezvous taken from SLURM_*; rank 0 writes the result."""
    args = [*GRID, "grid.shapes.budgets=[1e10]", "grid.shapes.sizes_per_budget=1", f"sweep.root={tmp_path}",
            "sweep.gpus_per_run=2", *SLURM, "hydra.launcher.name=scalemix-test-2tasks"]
    r = subprocess.run([sys.executable, "sweep.py", *args], cwd=ROOT, env=env_for(data), capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    results = list((tmp_path / "chinchilla").glob("*/result.json"))
    assert len(results) == 1
    row = json.loads(results[0].read_text())
    assert (row["world_size"], row["parallel"]) == (2, "ddp") and row["loss"] > 0
    sweep_dir = tmp_path / "chinchilla"
    assert list(sweep_dir.glob(".hydra/*/*/harness.task1.log"))   # the second task ran rank 1
    submitted = "".join(p.read_text() for p in sweep_dir.glob(".hydra/*/.submitit/*/*_submission.sh"))
    assert "--ntasks-per-node=2" in submitted and "--nodes=1" in submitted
