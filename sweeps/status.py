"""What each run of a sweep is doing, from its run directory alone (files are the truth).

    done      result.json present and matching the spec
    running   another process holds the run's lock (sweeps.lock)
    failed    failed.json records sweep.retries + 1 failed attempts: later launches leave it
    pending   not started, interrupted (resumes from its checkpoint), or failed with retries left

`failed.json` is the job wrapper's small failure record (sweeps.job): attempts, exit code, and the
log's error message as the reason.
A result.json that cannot be read (torn, garbage, another run's) does not count as done: the run
reruns, and the retry limit applies to it as to any failure.
"""
from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from harness.data.corpus import current_tokenizer_sha256, data_root, stale_result_reason
from harness.rundir import atomic_write_bytes, last_metrics_line, read_json_object
from sweeps.lock import holder

FAILED = "failed.json"
CHECKPOINT_NAME = re.compile(r"^step_(\d{8})\.(pt|dcp)$")   # harness.checkpoint's files, harness.dcp's directories
STATES = ("done", "running", "failed", "pending")


@dataclass(frozen=True)
class RunStatus:
    state: str
    reason: str = ""
    tokens: int = 0                 # trained so far (last metrics line)
    tokens_per_s: float = 0.0
    attempts: int = 0


def failure(run_dir: Path) -> dict:
    """The failure record; {} when there is none, or it is unreadable (then the attempts start over)."""
    rec, _ = read_json_object(Path(run_dir) / FAILED)
    return rec or {}


def record_failure(run_dir: Path, rc: int, reason: str, log: str) -> dict:
    rec = failure(run_dir)
    rec = {"attempts": rec.get("attempts", 0) + 1, "rc": rc, "reason": reason, "log": log,
           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write_bytes(Path(run_dir) / FAILED, (json.dumps(rec, indent=1) + "\n").encode())
    return rec


def clear_failure(run_dir: Path) -> None:
    (Path(run_dir) / FAILED).unlink(missing_ok=True)


def last_train_line(run_dir: Path) -> dict:
    """The newest {"kind": "train"} metrics line (reads only the file's tail)."""
    return last_metrics_line(Path(run_dir) / "metrics.jsonl", "train")


def checkpoint_steps(run_dir: Path) -> list[int]:
    """Steps with a checkpoint file, from the file names (harness.checkpoint's would import torch: seconds)."""
    ckpt = Path(run_dir) / "ckpt"
    if not ckpt.is_dir():
        return []
    return sorted(int(m.group(1)) for p in ckpt.iterdir() if (m := CHECKPOINT_NAME.match(p.name)))


def run_status(run_dir: Path, run_id: str, retries: int, check_lock: bool = True,
               tokenizer_sha256: str | None = None) -> RunStatus:
    """check_lock=False: the caller holds the run's lock itself. tokenizer_sha256: the corpus'
    current tokenizer; a result trained with another one is reported failed (stale), not done."""
    run_dir = Path(run_dir)
    result = run_dir / "result.json"
    note = ""   # a result.json that does not count: said in the reason, and the retry limit still applies
    if result.exists():
        row, note = read_json_object(result)
        if row is not None and row.get("run_id") == run_id:
            if why := stale_result_reason(row, tokenizer_sha256):
                return RunStatus("failed", why)
            return RunStatus("done")
        note = note or f"result.json is run {row.get('run_id')!r}'s, not this spec's"
    line = last_train_line(run_dir)
    tokens, tps = line.get("tokens", 0), line.get("tokens_per_s", 0.0)
    tokens, tps = (int(tokens) if isinstance(tokens, (int, float)) else 0,
                   float(tps) if isinstance(tps, (int, float)) else 0.0)
    if check_lock and (who := holder(run_dir)):
        return RunStatus("running", f"held by {who}; step {line.get('step', 0)}", tokens, tps)
    rec = failure(run_dir)
    attempts = rec.get("attempts", 0)
    if attempts > retries:
        return RunStatus("failed", f"{attempts} attempts, gave up (sweep.retries={retries}): {rec.get('reason', '')}",
                         tokens, attempts=attempts)
    steps = checkpoint_steps(run_dir)
    why = [f"{note}: will rerun"] if note else []
    if attempts:
        why.append(f"failed {attempts}x, will retry: {rec.get('reason', '')}")
    if steps:
        why.append(f"interrupted: resumes from step {steps[-1]}")
    return RunStatus("pending", "; ".join(why) or "not started", tokens, attempts=attempts)


def sweep_status(plan, retries: int) -> dict[str, RunStatus]:
    shas = {c: current_tokenizer_sha256(c, data_root()) for c in {r.spec.data.corpus for r in plan.runs}}
    return {r.run_id: run_status(plan.run_dir(r), r.run_id, retries, tokenizer_sha256=shas[r.spec.data.corpus])
            for r in plan.runs}


def counts(statuses: dict[str, RunStatus]) -> Counter:
    return Counter(s.state for s in statuses.values())


def status_table(plan, statuses: dict[str, RunStatus]) -> str:
    from sweeps.table import render
    rows = [[r.run_id, r.label, str(getattr(r, "gpus", 1)), statuses[r.run_id].state,
             f"{statuses[r.run_id].tokens / r.spec.tokens:.0%}" if statuses[r.run_id].state != "done" else "100%",
             statuses[r.run_id].reason] for r in plan.runs]
    c = counts(statuses)
    summary = ", ".join(f"{c.get(s, 0)} {s}" for s in STATES)
    busy = sum(getattr(r, "gpus", 1) for r in plan.runs if statuses[r.run_id].state == "running")
    summary += f"; {busy} GPU(s) busy" if busy and any(getattr(r, "gpus", 1) > 1 for r in plan.runs) else ""
    return (render(["run id", "run", "GPUs", "state", "progress", "reason"], rows)
            + f"\n{plan.name}: {len(plan.runs)} runs: {summary}   ({plan.sweep_dir})")
