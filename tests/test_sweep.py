"""Launching: the real `python sweep.py` end to end, idempotent relaunch, locks, failures, GPU packing."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from harness.rundir import RunDir
from sweeps.job import child_env, run_job
from sweeps.launch import device_ids, job_overrides, run_sweep
from sweeps.lock import RunLock, holder
from sweeps.plan import plan
from sweeps.status import run_status

ROOT = Path(__file__).resolve().parents[1]
# two runs of the smallest CPU rungs, a few steps each: the whole sweep is seconds of compute
TINY = ["+grid=chinchilla", "grid.replicates=null", "data.corpus=syn", "grid.shapes.budgets=[1e10]", "grid.shapes.sizes_per_budget=2",
        "grid.shapes.min_each_side=0", "grid.shapes.tokens_per_param=1", "grid.min_steps=2", "eval.heldout_tokens=2048", "sweep.max_parallel=2"]


@pytest.fixture(scope="module")
def data(syn_data):
    return syn_data


def env_for(data):
    return {**os.environ, "SCALEMIX_DATA": str(data), "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "1"}


def sweep(args, data, timeout=600):
    r = subprocess.run([sys.executable, "sweep.py", *args], cwd=ROOT, env=env_for(data), capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout + r.stderr


def cfg(*overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def test_sweep_runs_end_to_end_and_relaunch_is_idempotent(data, tiny_sweep, capsys, monkeypatch):
    """The session's tiny sweep (conftest.tiny_sweep, the fault suite's reference too): its runs, the analysis
    stage's reading of it, then a relaunch that reruns nothing and the status."""
    args, out = tiny_sweep.args, tiny_sweep.out
    sweep_dir = tiny_sweep.root / "chinchilla"
    results = sorted(sweep_dir.glob("*/result.json"))
    assert len(results) == 2, out
    for f in results:
        row = json.loads(f.read_text())
        assert row["run_id"] == f.parent.name and row["sweep"] == "chinchilla" and row["loss"] > 0
    assert "2/2 done" in out and f"python -m analysis.report {sweep_dir}" in out
    from analysis.results import load  # the analysis stage reads the sweep dir as the sweep left it
    tables = load(sweep_dir)
    assert sorted(tables.runs["run_id"]) == sorted(f.parent.name for f in results) and not tables.skipped
    assert len(tables.curves)
    # the grid's nominal budget travels to the runs table beside the exact FLOPs (isoFLOP groups use it)
    assert list(tables.runs["budget"]) == [1e10, 1e10] and tables.runs["label"].str.startswith("C1e+10 L").all()
    # and the N and C its grid was designed around (scale=cpu: count=compute), which the fits then use by default
    conv = tables.conventions
    assert (conv.n_col, conv.c_col, conv.recorded) == ("params_compute", "flops", True)
    assert tables.fit_config().n_col == "params_compute" and "override" in tables.fit_config(n_col="params_total").origin
    grid_files = sorted(sweep_dir.glob("*/grid.json"))
    split = tables.time_split()                                           # where the sweep's wall time went
    shares = [int(x.split("%")[0]) for x in split.split(": ")[1].split(", ")]
    assert split.split(": ")[1].startswith(f"{shares[0]}% training") and abs(sum(shares) - 100) <= 3
    assert f"wall time {split}" in tables.summary()

    mtimes = {f: f.stat().st_mtime_ns for f in results}
    jobs_before = len(list(sweep_dir.glob(".hydra/*/*_*")))
    out2 = sweep(args, data)
    assert "skipping 2 done" in out2 and "2/2 done" in out2
    assert {f: f.stat().st_mtime_ns for f in results} == mtimes           # nothing rerun
    assert sorted(sweep_dir.glob("*/grid.json")) == grid_files and all(
        json.loads(f.read_text())["budget"] == 1e10 for f in grid_files)
    assert len(list(sweep_dir.glob(".hydra/*/*_*"))) == jobs_before       # nothing launched

    monkeypatch.setenv("SCALEMIX_DATA", str(data))   # the status in this process (the CLI ran twice above)
    capsys.readouterr()
    assert run_sweep(cfg(*args, "sweep.status=true"), args, lambda *a, **k: pytest.fail("status launched")) == 0
    assert "2 runs: 2 done, 0 running, 0 failed, 0 pending" in capsys.readouterr().out


def prepared(data, tmp_path, *extra):
    """A planned and prepared run dir (no training)."""
    os.environ["SCALEMIX_DATA"] = str(data)
    p = plan(cfg(*TINY, f"sweep.root={tmp_path}", *extra))
    r = p.runs[0]
    RunDir(p.run_dir(r)).prepare(r.spec, p.runtime)
    return p.run_dir(r)


def test_lock_keeps_a_second_launch_off_a_running_run(data, tmp_path):
    run_dir = prepared(data, tmp_path)
    with RunLock(run_dir) as lock:
        assert lock.acquire()
        assert not RunLock(run_dir).acquire()          # a second holder, even in this process, is refused
        assert holder(run_dir) is not None
        st = run_status(run_dir, run_dir.name, retries=2)
        assert st.state == "running" and str(os.getpid()) in st.reason
        res = run_job(run_dir, "chinchilla", tmp_path / "log.txt", retries=2)
        assert res["status"] == "locked"
        assert not (tmp_path / "log.txt").exists()      # the run was not started
    assert holder(run_dir) is None


def test_failed_run_records_its_reason_is_retried_then_given_up(data, tmp_path):
    """The first attempt trains in a child process (`python -m harness`, as a Slurm job's run does), the retry in
    this process as a sweep worker trains it (sweeps.worker.InProcess): each failure is recorded the same way."""
    from sweeps.worker import InProcess, Stop
    run_dir = prepared(data, tmp_path)
    spec = (run_dir / "spec.yaml").read_text()
    (run_dir / "spec.yaml").write_text(spec.replace("corpus: syn", "corpus: no-such-corpus"))
    res = run_job(run_dir, "chinchilla", tmp_path / "log1.txt", retries=1)
    assert res["status"] == "failed" and "no-such-corpus" in res["reason"]
    st = run_status(run_dir, run_dir.name, retries=1)
    assert st.state == "pending" and "failed 1x, will retry" in st.reason and "no-such-corpus" in st.reason
    res = run_job(run_dir, "chinchilla", tmp_path / "log2.txt", retries=1, execute=InProcess(tmp_path, 0, Stop()))
    assert res["status"] == "failed" and "no-such-corpus" in res["reason"]
    assert "no-such-corpus" in (tmp_path / "log2.txt").read_text()   # the run's output went to its log
    st = run_status(run_dir, run_dir.name, retries=1)
    assert st.state == "failed" and "2 attempts, gave up" in st.reason
    res = run_job(run_dir, "chinchilla", tmp_path / "log3.txt", retries=1)   # a later launch leaves it
    assert res["status"] == "failed" and not (tmp_path / "log3.txt").exists()


def test_local_launch_caps_parallelism_and_packs_runs_on_gpus(data, tmp_path, monkeypatch):
    monkeypatch.setenv("SCALEMIX_DATA", str(data))
    c = cfg("+grid=chinchilla", "data.corpus=syn", f"sweep.root={tmp_path}", "sweep.gpus=2", "sweep.jobs_per_gpu=2",
            "sweep.max_epochs=100", "sweep.worker=false")   # a process per run through the Hydra launcher
    launched = []

    def fake_launch(overrides, initial_job_idx):
        launched.append((initial_job_idx, [dict(o.split("=", 1) for o in ov) for ov in overrides]))
        return []
    run_sweep(c, ["+grid=chinchilla"], fake_launch)
    n = len(plan(c).runs)
    # 2 GPUs x 2 per GPU = 4 slots; jobs handed over 4 per slot at a time, each waits for a slot
    assert [len(b) for _, b in launched] == [16] * (n // 16) + ([n % 16] if n % 16 else [])
    assert [i for i, _ in launched] == list(range(0, n, 16))
    for _, batch in launched:
        assert all(o["slots"] == "4" and o["slot_gpus"] == "'0,0,1,1'" for o in batch)
        assert all(o["+grid"] == "chinchilla" for o in batch)
    ids = [o["run_id"].strip("'") for _, b in launched for o in b]
    assert sorted(ids) == sorted(r.run_id for r in plan(c).runs)
    for i in ids:   # every spec is written before launch: the job needs only its run_id
        assert (tmp_path / "chinchilla" / i / "spec.yaml").exists()

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")   # pinning names the GPUs this process was given
    assert device_ids(2) == ["3", "5"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert device_ids(2) == ["0", "1"]

    env = child_env(gpu="1", inductor_cache=str(tmp_path / "ind"), threads=1)
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["OMP_NUM_THREADS"] == "1"
    assert env["TORCHINDUCTOR_CACHE_DIR"] == str((tmp_path / "ind").resolve())


def test_run_id_overrides_stay_strings_for_hydra():
    """A hex id can look like a number (525411e98221 is a float, 123456789012 an int): it must stay a string."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    parser = OverridesParser.create()
    for rid in ("525411e98221", "123456789012", "abcdef012345"):
        o = job_overrides(["+grid=chinchilla"], rid, 2, ["1", "3"])
        parsed = {x.key_or_group: x.value() for x in parser.parse_overrides(o)}
        assert parsed["run_id"] == rid and parsed["slots"] == 2 and parsed["slot_gpus"] == "1,3"
    assert job_overrides(["+grid=chinchilla"], "abcdef012345") == ["+grid=chinchilla", "run_id='abcdef012345'"]


def test_slots_cap_concurrent_runs_and_free_on_exit(tmp_path):
    """Six jobs, two slots: never more than two hold one, every job gets one, and each slot is reused."""
    import threading
    import time

    from sweeps.lock import RunSlots
    held, peak, got, shared, guard = set(), [0], [], [], threading.Lock()

    def job():
        with RunSlots(tmp_path / ".slots", 2, poll_s=0.01) as k:
            with guard:
                if k in held:                     # two holders of one slot (an assert here would die in the thread)
                    shared.append(k)
                held.add(k)
                peak[0] = max(peak[0], len(held))
                got.append(k)
            time.sleep(0.05)
            with guard:
                held.discard(k)
    threads = [threading.Thread(target=job) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not shared and peak[0] == 2 and len(got) == 6 and set(got) == {0, 1}


def test_dry_run_launches_nothing(data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SCALEMIX_DATA", str(data))
    c = cfg(*TINY, f"sweep.root={tmp_path}", "sweep.dry_run=true")
    run_sweep(c, [], lambda *a, **k: pytest.fail("dry run launched"))
    out = capsys.readouterr().out
    assert "dry run: nothing launched" in out and "total: 2 runs" in out
    assert not (tmp_path / "chinchilla").exists()


def test_grid_json_names_the_grid_and_scale_the_sweep_was_launched_with(data, tmp_path, monkeypatch):
    """A renamed sweep (sweep.name=foo) still records `+grid=chinchilla`, so analysis can print a line that
    extends it (analysis.verdict.grid_command)."""
    monkeypatch.setenv("SCALEMIX_DATA", str(data))
    # sweep.worker=false: the runs go to the launcher given here, which starts nothing (the worker pool would
    # train them, and grid.json is written before any launch)
    c = cfg(*TINY, f"sweep.root={tmp_path}", "sweep.name=foo", "sweep.worker=false")
    run_sweep(c, [*TINY, "sweep.name=foo"], lambda overrides, initial_job_idx: [])
    metas = [json.loads(f.read_text()) for f in sorted((tmp_path / "foo").glob("*/grid.json"))]
    assert len(metas) == 2 and all(m["sweep"] == "foo" and m["grid"] == "chinchilla" and m["scale"] == "cpu"
                                   for m in metas)
