"""Fault injection: disturb a real two-run sweep, relaunch it, and compare its runs table (and eval curves)
with an undisturbed sweep's: identical, and nothing half-written is ever read as done.

    SIGKILL at a random point of the whole sweep (launcher, job wrappers and runs at once), of one run's
    trainer, and of one job wrapper (its run dies with it); truncated and garbage files in the run
    directories; a full disk and a read-only run directory (a small tmpfs, remounted: needs mount
    permission, else skipped with the reason); SIGKILL of `python -m analysis.report` in the middle of writing
    report.md, report.html, laws.json or a figure.

Random points come from SCALEMIX_FAULT_SEED (default 0), so a failure can be replayed.
"""
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness_util import TINY_SWEEP as TINY
from harness_util import locked_pid, wait_for

ROOT = Path(__file__).resolve().parents[1]
RNG = random.Random(int(os.environ.get("SCALEMIX_FAULT_SEED", 0)))
pytestmark = pytest.mark.slow           # `pytest -m slow tests/test_faults.py`: every test here runs real processes


@pytest.fixture(scope="module")
def data(syn_data):
    return syn_data


def start(root: Path, data: Path) -> subprocess.Popen:
    env = {**os.environ, "SCALEMIX_DATA": str(data), "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "sweep.py", *TINY, f"sweep.root={root}"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout=300) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def sweep(root: Path, data: Path) -> tuple[int, str]:
    return finish(start(root, data))


def table(sweep_dir: Path) -> dict:
    """What the analysis reads: each finished run's result (deterministic fields) and eval curve."""
    from analysis.results import load
    res = load(sweep_dir)
    keep = ["run_id", "loss", "steps", "tokens", "train_loss"] + [c for c in res.runs if c.startswith("loss_")]
    runs = sorted(map(tuple, res.runs[keep].itertuples(index=False)))
    curves = sorted(map(tuple, res.curves[["run_id", "step", "loss"]].itertuples(index=False)))
    return {"runs": runs, "curves": curves}


def nothing_half_written_is_done(sweep_dir: Path, reference: dict) -> None:
    """Every result.json that reads as done (a JSON object with this run's id) is the reference's, exactly."""
    want = {r[0]: r for r in reference["runs"]}
    for f in sweep_dir.glob("*/result.json"):
        try:
            row = json.loads(f.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue        # unreadable: not done (the status and the relaunch treat it so)
        if isinstance(row, dict) and row.get("run_id") == f.parent.name:
            assert row["loss"] == want[row["run_id"]][1], f


@pytest.fixture(scope="module")
def reference(tiny_sweep):
    """The undisturbed sweep (conftest.tiny_sweep: launched once a session, test_sweep's end-to-end sweep too)."""
    return {"table": table(tiny_sweep.root / "chinchilla"), "seconds": tiny_sweep.seconds, "root": tiny_sweep.root}


def relaunch_until_done(root: Path, data: Path, reference: dict, tries: int = 2) -> str:
    for _ in range(tries):
        rc, out = sweep(root, data)
        if rc == 0:
            break
    assert rc == 0, out[-3000:]
    assert table(root / "chinchilla") == reference["table"]
    return out




def test_sigkill_of_the_whole_sweep_at_a_random_point(tmp_path, data, reference):
    proc = start(tmp_path, data)
    time.sleep(RNG.uniform(0.5, reference["seconds"]))
    os.killpg(proc.pid, signal.SIGKILL)            # launcher, job wrappers and runs at once
    finish(proc)
    if (tmp_path / "chinchilla").exists():
        nothing_half_written_is_done(tmp_path / "chinchilla", reference["table"])
    relaunch_until_done(tmp_path, data, reference)


def test_sigkill_of_one_run_and_of_the_other_runs_job_wrapper_mid_training(tmp_path, data, reference):
    """One run's trainer is killed (its wrapper records the failure); the other run's job wrapper is killed
    (its trainer dies with it: no orphan keeps training the run directory)."""
    proc = start(tmp_path, data)

    def both_training():   # both runs past their first checkpoint, with the pids holding their locks
        found = []
        for d in sorted((tmp_path / "chinchilla").glob("*/")):
            if list(d.glob("ckpt/*.sha256")) and (run := locked_pid(d / ".train.lock")) and (
                    job := locked_pid(d / ".lock")):
                found.append((d, run, job))
        return found if len(found) == 2 else None
    (a, run_a, _), (b, run_b, job_b) = wait_for("both runs to checkpoint", both_training)
    os.kill(run_a, signal.SIGKILL)
    os.kill(job_b, signal.SIGKILL)
    wait_for("the orphaned run to die with its wrapper", lambda: locked_pid(b / ".train.lock") is None, 30)
    rc, out = finish(proc)
    assert rc == 1 and "failed" in out, out[-3000:]      # the killed run is a failure the sweep reports
    nothing_half_written_is_done(tmp_path / "chinchilla", reference["table"])
    relaunch_until_done(tmp_path, data, reference)


def test_truncated_and_garbage_files_in_run_directories(tmp_path, data, reference):
    shutil.copytree(reference["root"] / "chinchilla", tmp_path / "chinchilla")
    a, b = sorted(d for d in (tmp_path / "chinchilla").iterdir() if not d.name.startswith("."))
    (a / "result.json").write_text((a / "result.json").read_text()[:40])          # cut short
    (a / "failed.json").write_bytes(b"\xff\x00garbage")
    with open(a / "metrics.jsonl", "ab") as f:
        f.write(b'\xff\xfe{"kind": "eval", "step": "abc"}\n[1, 2]\n{"kind": "train", "st')
    (b / "result.json").write_bytes(os.urandom(64))                                # garbage
    (b / "spec.yaml").write_text("model: [1, 2")                                    # torn YAML
    newest = sorted((b / "ckpt").glob("*.pt"))[-1]
    newest.write_bytes(newest.read_bytes()[:100])                                   # a checkpoint cut short
    nothing_half_written_is_done(tmp_path / "chinchilla", reference["table"])
    out = relaunch_until_done(tmp_path, data, reference)
    assert "2/2 done" in out


def mount_tmpfs(path: Path, size: str) -> str | None:
    """None if mounted, else why not (no permission outside a privileged container, no mount binary)."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                           text=True, timeout=30)
    except FileNotFoundError:
        return "no mount command"
    return None if r.returncode == 0 else f"cannot mount a tmpfs here: {r.stderr.strip()}"


def remount(path: Path, opts: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{opts}", str(path)], check=True, capture_output=True, timeout=30)


def test_a_full_disk_then_a_read_only_run_directory(tmp_path, data, reference):
    root = tmp_path / "mnt"
    if why := mount_tmpfs(root, "400k"):       # room for the specs and logs, not for the checkpoints
        pytest.skip(why)
    try:
        rc, out = sweep(root, data)
        assert rc != 0, out[-3000:]                                   # reported, not a success
        nothing_half_written_is_done(root / "chinchilla", reference["table"])
        remount(root, "ro")                                           # read-only: refused with the reason
        rc, out = sweep(root, data)
        assert rc == 1 and "cannot write the run directories" in out and "Read-only file system" in out, out[-3000:]
        remount(root, "rw,size=64m")                                  # space freed, writable again
        relaunch_until_done(root, data, reference)
    finally:
        subprocess.run(["umount", "-l", str(root)], capture_output=True, timeout=30)


# `python -m analysis.report`, imported once; then, for each line on stdin ({"args": [...], "cut": name or null,
# "stderr": path}), a report in a child forked from it, whose exit status goes to stdout as a line. With a cut, the
# child's write of the file named `cut` (or of its temp file) stops half way with SIGKILL: every open() for writing
# goes through the cut, whichever way the report opens it (Path.write_*, open). A fork starts in milliseconds where
# a fresh interpreter pays seconds of imports (pandas, scipy, matplotlib) for each of the seven reports.
REPORTS = """
import builtins, io, json, os, signal, sys, traceback
from analysis.report import main
real_open, target = builtins.open, None

class Cut:
    def __init__(self, f):
        self.f = f
    def write(self, data):
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self.f.__exit__(*exc)
    def __getattr__(self, name):
        return getattr(self.f, name)

def cutting_open(file, mode="r", *a, **k):
    f = real_open(file, mode, *a, **k)
    name = os.path.basename(str(file))
    return Cut(f) if "w" in mode and (name == target or name.startswith("." + target + ".tmp")) else f

for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        err = os.open(job["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(err, 2)
        if job["cut"]:
            target = job["cut"]
            builtins.open = io.open = cutting_open
        code = 0
        try:
            main(job["args"])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


class Reports:
    """One process that imports analysis.report, then forks each report of the test (see REPORTS)."""

    def __init__(self, tmp: Path):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
        self.tmp, self.n = tmp, 0
        self.proc = subprocess.Popen([sys.executable, "-c", REPORTS], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def __call__(self, sweep_dir: Path, out: Path, bootstrap: int, cut: str | None = None) -> tuple[int, str]:
        """(the exit status, negative for a signal as subprocess gives it; the report's stderr)."""
        self.n += 1
        err = self.tmp / f"report{self.n}.stderr"
        args = [str(sweep_dir), "--out", str(out), "--bootstrap", str(bootstrap)]
        self.proc.stdin.write(json.dumps({"args": args, "cut": cut, "stderr": str(err)}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"the report process died: {self.proc.stderr.read()[-3000:]}"
        while not line.strip().lstrip("-").isdigit():   # the report's own stdout ("wrote ..."), then its status
            line = self.proc.stdout.readline()
        return int(line), err.read_text() if err.exists() else ""

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def files(out: Path) -> dict[str, bytes]:
    return {str(f.relative_to(out)): f.read_bytes() for f in sorted(out.rglob("*")) if f.is_file()}


def lr_sweep(sweep_dir: Path) -> Path:
    """Result files of a small lr sweep (3 sizes x 5 lrs, loss = f(N) + a parabola in log lr): a report of it fits
    only the lr law, so that each of the report processes below takes seconds, and writes a figure, report.md,
    report.html and laws.json like any report."""
    for n in (1e4, 1e5, 1e6):
        for lr in (1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2):
            run = sweep_dir / f"n{n:.0e}-lr{lr:.0e}"
            run.mkdir(parents=True)
            loss = 3 + 20 * n ** -0.3 + 0.05 * math.log(lr / (0.3 * n ** -0.35)) ** 2
            run.joinpath("result.json").write_text(json.dumps({"run_id": run.name, "params_nonembedding": n, "lr": lr,
                                                               "tokens": 20 * n, "flops": 120 * n * n, "loss": loss}))
    return sweep_dir


def test_sigkill_while_the_report_is_written_leaves_old_or_new_files_never_torn(tmp_path):
    """A report exists (old: no bootstrap); a new one (bootstrap intervals: other contents) is killed half way
    through writing each of its files in turn. Every file is then byte for byte the old or the new one, never
    torn, no temp file is read as the report, and a rerun completes the new report."""
    sweep_dir, out = lr_sweep(tmp_path / "lr"), tmp_path / "report"
    report = Reports(tmp_path)
    try:
        for where, boot in ((tmp_path / "new", 8), (out, 0)):
            rc, err = report(sweep_dir, where, boot)
            assert rc == 0, err[-3000:]
        new, old = files(tmp_path / "new"), files(out)
        assert new.keys() == old.keys() and new["report.md"] != old["report.md"] and new["laws.json"] != old["laws.json"]
        first_figure = new["report.md"].decode().split("](figures/")[1].split(")")[0]
        for target in (first_figure, "report.md", "report.html", "laws.json"):
            rc, err = report(sweep_dir, out, 8, cut=target)
            assert rc == -signal.SIGKILL, f"{target}: not cut ({rc}): {err[-2000:]}"
            now = files(out)
            complete = {k: v for k, v in now.items() if not Path(k).name.startswith(".")}
            assert complete.keys() == new.keys(), target
            torn = [k for k, v in complete.items() if v not in (old[k], new[k])]
            assert not torn, f"killed while writing {target}: torn {torn}"
            assert len(now) == len(complete) + 1, f"{target}: the cut write's temp file is left beside its file"
        rc, err = report(sweep_dir, out, 8)
        assert rc == 0, err[-3000:]
        assert files(out) == new                          # complete, and the killed runs' temp files are gone
    finally:
        report.close()
