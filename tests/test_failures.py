"""How failures are reported (issue 15): each case of the issue's table, reproduced, now refused before
launch or recovered. No test here trains a model except the exit-code sweep (two runs that fail at once)."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from harness.data.synthetic import make_synthetic_corpus
from harness.rundir import BUSY_EXIT_CODE, RunDir, prune_oldest
from harness.spec import SpecError
from sweeps.job import failure_reason
from sweeps.launch import EXIT_DONE, EXIT_FAILED, EXIT_INCOMPLETE, prune_launches, run_sweep
from sweeps.launch import exit_code as sweep_exit_code
from sweeps.plan import plan
from sweeps.status import RunStatus, record_failure, run_status

ROOT = Path(__file__).resolve().parents[1]
TINY = ["+grid=chinchilla", "grid.replicates=null", "data.corpus=syn", "grid.shapes.budgets=[1e10]", "grid.shapes.sizes_per_budget=2",
        "grid.shapes.min_each_side=0", "grid.shapes.tokens_per_param=1", "grid.min_steps=2", "eval.heldout_tokens=2048",
        "sweep.max_parallel=2"]


@pytest.fixture(scope="module")
def data(syn_data):
    return syn_data


@pytest.fixture(autouse=True)
def data_env(data, monkeypatch):
    monkeypatch.setenv("SCALEMIX_DATA", str(data))


def cfg(*overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def env_for(data):
    return {**os.environ, "SCALEMIX_DATA": str(data), "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}


def sweep(args, data, timeout=300):
    return subprocess.run([sys.executable, "sweep.py", *args], cwd=ROOT, env=env_for(data), capture_output=True,
                          text=True, timeout=timeout)


def prepared(tmp_path, *extra):
    p = plan(cfg(*TINY, f"sweep.root={tmp_path}", *extra))
    r = p.runs[0]
    RunDir(p.run_dir(r)).prepare(r.spec, p.runtime)
    return p, r, p.run_dir(r)


# 1 ------------------------------------------------------------------ a truncated result.json

def test_truncated_result_json_is_not_done_and_the_retry_limit_still_applies(tmp_path):
    p, r, run_dir = prepared(tmp_path)
    (run_dir / "result.json").write_text('{"run_id": "' + r.run_id + '", "loss": 3.')   # cut short by a full disk
    st = run_status(run_dir, r.run_id, retries=2)
    assert st.state == "pending" and "result.json is unreadable" in st.reason and "will rerun" in st.reason
    for _ in range(3):   # three failed attempts (what crashed at every relaunch before)
        record_failure(run_dir, 1, "boom", "log")
    st = run_status(run_dir, r.run_id, retries=2)
    assert st.state == "failed" and "3 attempts, gave up" in st.reason
    # the harness no longer crashes on it: not finished, the bad file kept aside for a look, the run reruns
    assert RunDir(run_dir).finished(r.spec) is None
    assert not (run_dir / "result.json").exists() and (run_dir / "result.json.unreadable").exists()
    (run_dir / "failed.json").write_bytes(b"\x00\xff garbage")   # an unreadable failure record: attempts start over
    assert run_status(run_dir, r.run_id, retries=2).state == "pending"


# 2 ------------------------------------------------------------------ exit codes

def test_sweep_exit_status_is_nonzero_when_runs_fail_or_the_config_is_refused(tmp_path, data):
    broken = tmp_path / "data"   # a corpus whose manifest is fine but whose token shards are gone: every run fails
    make_synthetic_corpus(broken / "syn", vocab_size=2048, train_tokens=100_000, heldout_tokens=10_000)
    for shard in (broken / "syn").glob("*/train.bin"):
        shard.write_bytes(b"")
    r = sweep([*TINY, f"sweep.root={tmp_path / 'runs'}", "sweep.retries=0"], broken)
    out = r.stdout + r.stderr
    assert r.returncode == EXIT_FAILED, out[-3000:]
    assert "sweep chinchilla: 0/2 done, 2 failed" in out and "exit 1: some runs failed" in out
    r = sweep([*TINY, f"sweep.root={tmp_path / 'runs'}", "+sweep.max_paralel=2"], data)   # refused before launch
    assert r.returncode == 2 and "did you mean sweep.max_parallel?" in r.stderr, r.stderr[-2000:]
    assert sweep_exit_code({"a": RunStatus("done"), "b": RunStatus("running")}) == EXIT_INCOMPLETE
    assert sweep_exit_code({"a": RunStatus("done"), "b": RunStatus("pending", attempts=1)}) == EXIT_FAILED
    assert sweep_exit_code({"a": RunStatus("done")}) == EXIT_DONE


# 3 ------------------------------------------------------------------ inputs checked before launch

def test_seq_len_longer_than_a_split_and_a_missing_corpus_are_refused_before_launch(tmp_path, data, monkeypatch):
    with pytest.raises(SpecError) as e:
        plan(cfg("+grid=mixture", "grid.mixtures=null", "data.corpus=syn", f"sweep.root={tmp_path}",
                 "model.seq_len=16384", "train.batch_tokens=16384", "grid.shapes.tokens=32768",
                 "eval.heldout_tokens=20000"))
    msg = str(e.value)
    # the held-out splits (10000 tokens) are shorter than one window; every domain is named, no other one
    assert all(f"model.seq_len=16384: domain {d!r}" in msg for d in ("alpha", "beta", "gamma")), msg
    with pytest.raises(SpecError, match=r"eval.heldout_tokens=100: fewer than one eval window"):
        plan(cfg(*TINY, f"sweep.root={tmp_path}", "eval.heldout_tokens=100"))

    launched = []
    c = cfg(*TINY, f"sweep.root={tmp_path}", "data.corpus=no-such-corpus")
    assert plan(c).blockers                        # a dry run still shows the plan (fresh clone, no corpus yet) ...
    with pytest.raises(SystemExit) as e:           # ... but a launch is refused
        run_sweep(c, [], lambda *a, **k: launched.append(a))
    assert e.value.code == 2 and not launched and not (tmp_path / "chinchilla").exists()



@pytest.mark.parametrize("override, probe, message", [
    ("train.runtime.device=cuda", {"cuda_devices": 0},
     "train.runtime.device='cuda': CUDA is not available on this machine; use train.runtime.device=cpu or auto"),
    ("train.runtime.device=cuda:2", {"cuda_devices": 2, "compile_problem": None},
     "train.runtime.device='cuda:2': this machine has 2 CUDA device(s) (cuda:0..cuda:1)"),
    ("train.runtime.compile=on", {"cuda_devices": 0, "compile_problem": "no C++ compiler (test)"},
     "train.runtime.compile=on: torch.compile cannot work on this machine's cpu (no C++ compiler (test)); "
     "use train.runtime.compile=off"),
    ("train.runtime.precision=bf16", {"cuda_devices": 0, "cpu_bf16": False},
     "train.runtime.precision=bf16 on the CPU: this CPU has no native bf16"),
])
def test_device_compile_and_precision_this_machine_cannot_do_are_refused_before_launch(
        tmp_path, monkeypatch, capsys, override, probe, message):
    """Each was found only in every run's preflight (a retryable failure per run); a local sweep now refuses it
    before any job launches, naming the key and the fix. The machine is faked: the probes answer as given."""
    from harness import device
    for name, value in probe.items():
        monkeypatch.setattr(device, name, lambda *a, v=value: v)
    launched = []
    with pytest.raises(SystemExit) as e:
        run_sweep(cfg(*TINY, f"sweep.root={tmp_path}", override), [], lambda *a, **k: launched.append(a))
    assert e.value.code == 2 and not launched and not (tmp_path / "chinchilla").exists()
    assert message in capsys.readouterr().err
    # the same machine, the same runtime without the override: nothing to refuse (the check is not blanket)
    assert device.machine_errors(plan(cfg(*TINY, f"sweep.root={tmp_path}")).runtime) == []

def test_the_failure_reason_is_the_whole_error_not_the_last_log_line(tmp_path):
    log = tmp_path / "harness.log"
    log.write_text("step 1\nerror: invalid spec:\n  - data.weights: domain(s) ['x'] not in corpus\n"
                   "  - eval.heldout_tokens: domain 'beta' too short\n")
    assert failure_reason(log) == ("error: invalid spec: - data.weights: domain(s) ['x'] not in corpus "
                                   "- eval.heldout_tokens: domain 'beta' too short")
    log.write_text("Traceback (most recent call last):\n  File x\nValueError: shard alpha/train.bin is empty\n"
                   "[W] some teardown noise\n")
    assert failure_reason(log) == "ValueError: shard alpha/train.bin is empty"


# 4 and 7 --------------------------------------------------------- unknown keys and bad values, named

@pytest.mark.parametrize("override,message", [
    ("+model.seqlen=256", "model.seqlen: unknown key; did you mean model.seq_len?"),
    ("+sweep.max_paralel=4", "sweep.max_paralel: unknown key; did you mean sweep.max_parallel?"),
    ("+grid.shapes.sizes_per_bugdet=3", "grid.shapes.sizes_per_bugdet: unknown key; did you mean "
                                        "grid.shapes.sizes_per_budget?"),
    ("+train.optim.warmup=0.1", "train.optim.warmup: unknown key; did you mean train.optim.warmup_frac?"),
    ("+eval.every=5", "eval.every: unknown key; did you mean eval.every_steps?"),
    ("model.rule.head_dim=0", "model.rule.head_dim=0: must be >= 1"),                  # was ZeroDivisionError
    ("train.optim.lr=abc", "train.optim.lr='abc': expected a finite number"),          # was TypeError
    ("grid.shapes.budgets=[1e12,abc]", "grid.shapes.budgets[1]='abc': expected a finite number"),
    ("sweep.retries=-1", "sweep.retries=-1: must be >= 0"),
    ("train.runtime.log_every=x", "train.runtime.log_every='x': expected an integer"),
    ("grid.shapes.budgets=${scale.nope}", "grid.shapes.budgets: Interpolation key 'scale.nope' not found"),
])
def test_unknown_keys_and_bad_values_are_refused_naming_the_key(tmp_path, override, message):
    with pytest.raises(SpecError) as e:
        plan(cfg("+grid=chinchilla", f"sweep.root={tmp_path}", override))
    assert message in str(e.value)


def test_report_of_an_empty_directory_exits_nonzero_with_a_reason(tmp_path):
    r = subprocess.run([sys.executable, "-m", "analysis.report", str(tmp_path)], cwd=ROOT, capture_output=True,
                       text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"})
    assert r.returncode == 2 and "no run directories in it" in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "report").exists()


# 5 ------------------------------------------------------------------ one bad metrics.jsonl

def test_a_bad_metrics_file_is_skipped_line_by_line_not_the_whole_report(tmp_path):
    from analysis.results import load
    for i, extra in enumerate([b"", b'\xff\xfe not utf-8\n[1, 2]\n{"kind": "eval", "step": "abc", "tokens": 1, '
                                    b'"loss": 2.0}\n"a string"\n']):
        d = tmp_path / f"run{i}"
        d.mkdir()
        (d / "result.json").write_text(json.dumps({"run_id": f"run{i}", "loss": 3.0, "tokens": 100}))
        good = "".join(json.dumps({"kind": "eval", "step": s, "tokens": 10 * s, "loss": 4.0 - s}) + "\n" for s in (1, 2))
        (d / "metrics.jsonl").write_bytes(good.encode() + extra + b'{"kind": "eval", "ste')  # torn last line
    with pytest.warns(UserWarning, match=r"run1/metrics.jsonl: skipped 4 unreadable line"):
        res = load(tmp_path)
    assert len(res.runs) == 2 and len(res.curves) == 4 and res.curves["step"].tolist() == [1, 2, 1, 2]


# 6 ------------------------------------------------------------------ bring-your-own data

def test_empty_documents_are_skipped_and_named_never_a_held_out_split(tmp_path, capsys):
    from harness.data.prepare import PrepareError, prepare
    src = tmp_path / "mine"
    src.mkdir()
    for i in range(6):
        (src / f"doc{i}.txt").write_text(f"Document {i}: the quick brown fox jumps over the lazy dog. " * 20)
    (src / "empty.txt").write_text("")
    (src / "blank.txt").write_text("  \n\n ")
    recipe = {"name": "byo", "vocab_size": 300, "heldout_frac": 0.4,
              "domains": {"mine": {"sources": [{"kind": "text_dir", "path": str(src)}], "licence": "CC0"}}}
    m = prepare(recipe, tmp_path / "out", tmp_path / "cache", workers=1, progress=False)
    d = m["domains"]["mine"]
    assert d["documents"] == 6 and d["heldout_tokens"] > 100 and d["train_tokens"] > 100
    err = capsys.readouterr().err
    assert "2 empty document(s) skipped" in err and "empty.txt" in err and "blank.txt" in err
    only = tmp_path / "only"
    only.mkdir()
    (only / "a.txt").write_text("one real document")
    (only / "b.txt").write_text("")
    recipe["domains"]["mine"]["sources"][0]["path"] = str(only)
    with pytest.raises(PrepareError, match=r"1 non-empty document\(s\) found \(1 empty document\(s\) skipped: .*b.txt"):
        prepare(recipe, tmp_path / "out2", tmp_path / "cache", workers=1, progress=False)


# 8 ------------------------------------------------------------------ one trainer per run directory

def test_a_bare_harness_run_does_not_train_a_run_directory_someone_else_is_training(tmp_path):
    _, _, run_dir = prepared(tmp_path)
    with RunDir(run_dir).exclusive():     # e.g. a sweep's job is training it
        r = subprocess.run([sys.executable, "-m", "harness", str(run_dir)], cwd=ROOT, capture_output=True, text=True,
                           timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"})
    assert r.returncode == BUSY_EXIT_CODE and f"pid {os.getpid()}" in r.stderr, r.stderr[-2000:]
    assert "is training this run directory" in r.stderr
    assert not (run_dir / "metrics.jsonl").exists()      # nothing was written


# 9 ------------------------------------------------------------------ bounded growth

def test_old_launch_folders_and_wandb_runs_are_pruned(tmp_path):
    hydra = tmp_path / ".hydra"
    for i in range(14):
        (hydra / f"2026-12-01_10-00-{i:02d}" / "0_abc").mkdir(parents=True)
        os.utime(hydra / f"2026-12-01_10-00-{i:02d}", (time.time() - 100 + i,) * 2)
    removed = prune_launches(hydra, keep=10)
    assert len(removed) == 4 and sorted(p.name for p in hydra.iterdir()) == [f"2026-12-01_10-00-{i:02d}"
                                                                             for i in range(4, 14)]
    rd = RunDir(tmp_path / "run")
    for i in range(5):
        (rd.wandb_dir / f"offline-run-2026120{i}_000000-abc").mkdir(parents=True)
    assert len(rd.prune_wandb(keep=2)) == 3 and len(list(rd.wandb_dir.iterdir())) == 2
    assert prune_oldest([], 3) == []


# scale ---------------------------------------------------------------- planning and status stay fast

def test_a_1000_run_plan_and_its_status_take_well_under_5_cpu_seconds(tmp_path):
    """CPU time, not wall: the shared test machine's load would make a wall-clock bound flaky
    (bench/plan_scale.py measures both, with run directories in every state)."""
    from sweeps.status import sweep_status
    lrs = ",".join(f"{x:.1e}" for x in (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2, 5e-2))
    c = cfg("+grid=lr", "scale.lr_depths=[1,2,3,4]", f"grid.lrs=[{lrs}]", f"grid.seeds=[{','.join(map(str, range(25)))}]",
            "data.corpus=syn",
            "sweep.max_epochs=1000", f"sweep.root={tmp_path}")
    t = time.process_time()
    p = plan(c)
    st = sweep_status(p, retries=2)
    assert len(p.runs) == 1000 and len(st) == 1000 and time.process_time() - t < 5


def test_status_reads_checkpoint_names_as_the_harness_writes_them():
    """sweeps.status counts one process's .pt files (harness.checkpoint) and a sharded run's DCP directories
    (harness.dcp) as checkpoints, and nothing else."""
    from harness import checkpoint, dcp
    from sweeps.status import CHECKPOINT_NAME
    written = [checkpoint.Checkpoints("ckpt")._pt(1234).name, dcp.Store("ckpt", 1, sharded=True)._dcp(1234).name]
    assert all(checkpoint._NAME.match(n) or dcp._DIR.match(n) for n in written)
    assert all(CHECKPOINT_NAME.match(n).group(1) == "00001234" for n in written)
    assert not any(CHECKPOINT_NAME.match(n) for n in ("step_00001234.pt.tmp", ".step_00001234.dcp.tmp",
                                                      "step_00001234.sha256", "step_1234.pt"))
