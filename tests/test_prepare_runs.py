"""bench/prepare_runs.py (the warm-cache mode of bench/gpu_sweep_efficiency.sh): the run directories it writes are the
runs `python sweep.py ... sweep.dry_run=true` plans, with the sweep's runtime, and nothing is launched."""
import os
import re
import subprocess
import sys
from pathlib import Path

from harness_util import TINY_SWEEP

from harness.rundir import load_runtime, load_spec

ROOT = Path(__file__).resolve().parents[1]
ARGS = [*TINY_SWEEP, "train.runtime.compile=regional", "eval.curve_tokens=512"]


def run(script: str, *args: str, data: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SCALEMIX_DATA": str(data), "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, script, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_prepared_runs_are_the_planned_runs(tmp_path, syn_data):
    dry = run("sweep.py", *ARGS, f"sweep.root={tmp_path / 'dry'}", "sweep.dry_run=true", data=syn_data)
    assert dry.returncode == 0, dry.stderr
    table = dry.stdout.split("\ntotal:")[0]   # the plan table (the epochs table below repeats the ids)
    planned = re.findall(r"^([0-9a-f]{12})  ", table, re.M)
    assert len(planned) == 2, dry.stdout
    out = run("bench/prepare_runs.py", *ARGS, f"sweep.root={tmp_path / 'prep'}", data=syn_data)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    sweep_dir = Path(lines[-1])
    assert sweep_dir == tmp_path / "prep" / "chinchilla"
    assert [x.split()[0] for x in lines[:-1]] == planned
    assert sorted(d.name for d in sweep_dir.iterdir()) == sorted(planned)   # no .hydra launch folder, no trunk
    for run_id in planned:
        d = sweep_dir / run_id
        assert load_spec(d / "spec.yaml").run_id == run_id   # the id hashes the spec: the same spec as planned
        rt = load_runtime(d / "runtime.yaml")
        assert rt.compile == "regional" and rt.checkpoint_every == 4   # the sweep's runtime overrides reach it
        assert not (d / "result.json").exists()
    assert not (tmp_path / "dry").exists()


def test_refused_config_writes_nothing(tmp_path, syn_data):
    out = run("bench/prepare_runs.py", *TINY_SWEEP, "data.corpus=nosuch", f"sweep.root={tmp_path}", data=syn_data)
    assert out.returncode == 2
    assert "nosuch" in out.stderr and "nothing written" in out.stderr
    assert not any(tmp_path.iterdir())
