"""Sweeps with runs over several GPUs (sweeps.placement): how many GPUs a run gets, the plan's hours and wall-clock,
the local launcher's slots and torchrun jobs, a Slurm job's shape; and a real CPU sweep whose runs train over
2 processes each (gloo)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from model_zoo import count
from model_zoo.spec import GPU_RULE
from sweeps import placement
from sweeps.job import torchrun
from sweeps.launch import run_sweep
from sweeps.plan import plan, plan_table

ROOT = Path(__file__).resolve().parents[1]
GiB = 2**30


def cfg(*overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


@pytest.fixture(scope="module")
def data(syn_data):
    return syn_data


def test_a_run_gets_the_fewest_gpus_its_shards_fit():
    from harness.spec import RunSpec
    small = RunSpec(model=GPU_RULE.shape(4, vocab_size=8192, seq_len=1024), tokens=10**9, batch_tokens=2**17)
    big = RunSpec(model=GPU_RULE.shape(28, vocab_size=8192, seq_len=1024), tokens=10**9, batch_tokens=2**17)
    p_small, p_big = count(small.model).params_total, count(big.model).params_total
    assert placement.gpus_needed(small, p_small, 8, 80 * GiB) == 1
    k = placement.gpus_needed(big, p_big, 2, 16 * GiB)   # 1.1B parameters: 18 GB of state alone
    assert k is not None and k > 1 and k & (k - 1) == 0
    from harness.memory import FIT_SHARE, memory_estimate
    assert memory_estimate(big.model, p_big, 2, shards=k) <= FIT_SHARE * 16 * GiB
    assert memory_estimate(big.model, p_big, 2, shards=k // 2) > FIT_SHARE * 16 * GiB
    assert placement.gpus_needed(big, p_big, 128, 1 * GiB) is None   # one micro-batch's activations alone too big


def test_slurm_shape_slots_and_wall_clock():
    assert placement.slurm_shape(1, 8, 1) == {"nodes": 1, "tasks_per_node": 1, "gpus_per_node": 1}
    assert placement.slurm_shape(4, 8, 1) == {"nodes": 1, "tasks_per_node": 4, "gpus_per_node": 4}
    assert placement.slurm_shape(16, 8, 1) == {"nodes": 2, "tasks_per_node": 8, "gpus_per_node": 8}
    assert placement.slurm_shape(2, 8, None) == {"nodes": 1, "tasks_per_node": 2, "gpus_per_node": None}
    with pytest.raises(ValueError, match="does not split evenly"):
        placement.slurm_shape(10, 4, 1)
    assert placement.slot_devices(["0", "1", "2", "3", "4"], 2) == ["0+1", "2+3"]
    # 2 GPUs: a 2-GPU run of 1 h, then four 1-GPU runs of 1 h two at a time: 3 h
    assert placement.wall_hours([(1.0, 2)] + [(1.0, 1)] * 4, 2) == pytest.approx(3.0)
    assert placement.wall_hours([(2.0, 1), (1.0, 1), (1.0, 1)], 2) == pytest.approx(2.0)


def throughput_table(path: Path) -> Path:
    rows = [{"device": "NVIDIA H100", "flops_per_token": f, "tokens_per_s": 4e14 / f} for f in (1e6, 1e8, 1e10)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def test_plan_gives_large_runs_several_gpus_and_counts_their_hours(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALEMIX_DATA", str(tmp_path / "no-data"))
    table = throughput_table(tmp_path / "tp.jsonl")
    common = ["+grid=chinchilla", "scale=gpu", f"sweep.throughput_table={table}", "sweep.gpus=8"]
    one = plan(cfg(*common), strict=False)
    assert {r.gpus for r in one.runs} == {1}     # the GPU grid fits an 80 GB GPU
    small = plan(cfg(*common, "sweep.gpu_memory_gb=24", "sweep.multi_gpu_efficiency=0.8"), strict=False)
    multi = [r for r in small.runs if r.gpus > 1]
    single = [r for r in small.runs if r.gpus == 1]
    assert multi and single and {r.gpus for r in multi} <= {2, 4}
    assert max(r.counts.params_total for r in single) < min(r.counts.params_total for r in multi)   # the large ones
    r = multi[0]
    assert small.hours(r) == pytest.approx(one.hours(next(x for x in one.runs if x.run_id == r.run_id)) / 0.8)
    text = plan_table(small)
    assert "GPUs" in text.splitlines()[0] and "0.8 scaling efficiency" in text
    assert "h wall-clock on 8 GPUs" in text
    forced = plan(cfg(*common, "sweep.gpus_per_run=2"), strict=False)
    assert {r.gpus for r in forced.runs} == {2}
    bad = plan(cfg(*common, "sweep.gpus_per_run=3"), strict=False)   # 128 sequences do not split over 3
    assert any("sweep.gpus_per_run: 25 run(s)" in e and "3 does not divide 128 sequences" in e for e in bad.errors)


def test_local_launch_runs_multi_gpu_runs_first_on_their_own_gpus(data, tmp_path, monkeypatch):
    monkeypatch.setenv("SCALEMIX_DATA", str(data))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    c = cfg("+grid=chinchilla", "grid.replicates=null", "data.corpus=syn", f"sweep.root={tmp_path}", "sweep.gpus=4",
            "sweep.max_epochs=100", "sweep.gpus_per_run=2")
    launched = []

    def fake_launch(overrides, initial_job_idx):
        launched.append([dict(o.split("=", 1) for o in ov) for ov in overrides])
        return []
    run_sweep(c, ["+grid=chinchilla"], fake_launch)
    jobs = [o for batch in launched for o in batch]
    assert len(jobs) == len(plan(c).runs)
    assert all(o["procs"] == "2" and o["slots"] == "2" and o["slot_gpus"] == "'0+1,2+3'" for o in jobs)
    assert torchrun(tmp_path / "r", "s", 2)[:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                                                      "2", "-m"]
    too_many = cfg("+grid=chinchilla", "grid.replicates=null", "data.corpus=syn", f"sweep.root={tmp_path}",
                   "sweep.gpus=2", "sweep.max_epochs=100", "sweep.gpus_per_run=4")
    with pytest.raises(SystemExit) as e:   # refused before anything is launched
        run_sweep(too_many, ["+grid=chinchilla"], fake_launch)
    assert e.value.code == 2


def test_slurm_launch_shapes_each_phase(data, tmp_path, monkeypatch):
    monkeypatch.setenv("SCALEMIX_DATA", str(data))
    c = cfg("+grid=chinchilla", "grid.replicates=null", "data.corpus=syn", f"sweep.root={tmp_path}",
            "sweep.max_epochs=100", "sweep.gpus_per_run=16", "train.batch_tokens=2048", "hydra/launcher=slurm")
    shapes, launched = [], []
    run_sweep(c, ["+grid=chinchilla"], lambda ov, initial_job_idx: launched.append(ov) or [],
              configure=shapes.append)
    assert shapes == [{"nodes": 2, "tasks_per_node": 8, "gpus_per_node": 8}]
    assert all("procs=16" in o for ov in launched for o in ov)   # (a Slurm job's tasks ignore it: one rank each)


@pytest.mark.slow
def test_cpu_sweep_trains_each_run_over_two_processes(data, tmp_path):
    """The real sweep.py on a local launcher: each run is `torchrun --nproc_per_node 2 -m harness` on CPU (gloo,
    DDP), rank 0 writes the result. One run: a second would only repeat the same path (the order and slots of
    multi-GPU runs are test_local_launch_runs_multi_gpu_runs_first_on_their_own_gpus)."""
    args = ["+grid=chinchilla", "grid.replicates=null", "data.corpus=syn", "grid.shapes.budgets=[1e10]",
            "grid.shapes.sizes_per_budget=1", "grid.shapes.min_each_side=0", "grid.shapes.tokens_per_param=1",
            "grid.min_steps=2", "eval.heldout_tokens=2048", "sweep.gpus=0", "sweep.max_parallel=2",
            "sweep.gpus_per_run=2", f"sweep.root={tmp_path}"]
    env = {**os.environ, "SCALEMIX_DATA": str(data), "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "1"}
    r = subprocess.run([sys.executable, "sweep.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    results = sorted((tmp_path / "chinchilla").glob("*/result.json"))
    assert len(results) == 1
    for f in results:
        row = json.loads(f.read_text())
        assert (row["world_size"], row["parallel"]) == (2, "ddp") and row["loss"] > 0
        assert list((f.parent / "ckpt").glob("step_*.dcp"))


def test_status_sees_the_checkpoints_of_a_run_over_several_gpus(tmp_path):
    from sweeps.status import checkpoint_steps, run_status
    (tmp_path / "r" / "ckpt" / "step_00000010.dcp").mkdir(parents=True)
    (tmp_path / "r" / "ckpt" / "step_00000005.pt").touch()
    assert checkpoint_steps(tmp_path / "r") == [5, 10]
    assert "resumes from step 10" in run_status(tmp_path / "r", "r", retries=2).reason
