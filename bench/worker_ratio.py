"""A sweep's wall time against the sum of its runs' steady-state training times (issue 12: target <= 1.15).

    python bench/worker_ratio.py runs/<sweep> --wall 212.4 [--slots 2] [--csv out.csv] [--label worker]
        [--solo solo.jsonl --solo-mode regional] [--t0 <unix s> --launch <launch dir>]

Reads each run's result.json (time_train_s: steady-state training, every launch's first log window excluded;
time_setup_s, time_warmup_s, time_eval_s, time_checkpoint_s; wall_s) and prints one line per run, the sums,
and slots x wall / sum(time_train_s): the device time the sweep held against the time its runs trained (slots:
the runs that trained at once, sweep.max_parallel). With one run per GPU at a time (sweep.jobs_per_gpu=1) a
run's time_train_s is its steady-state training time alone on the device.

--solo (bench/solo_rates.py's lines): each run's solo time is its tokens / its shape's tokens/s trained alone, and
the ratio is taken against their sum (the issue's definition). --t0 (the sweep command's start, unix seconds) with
--launch (the launch folder holding sweeps.timeline's timeline.jsonl): where the wall time outside the runs went.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.rundir import read_json_object, read_metrics  # noqa: E402

COLUMNS = ("time_train_s", "time_warmup_s", "time_setup_s", "time_eval_s", "time_checkpoint_s", "wall_s")


def rows(sweep_dir: Path) -> list[dict]:
    out = []
    for f in sorted(Path(sweep_dir).glob("*/result.json")):
        row, _ = read_json_object(f)
        if row and row.get("run_id") == f.parent.name:
            grid, _ = read_json_object(f.parent / "grid.json")
            metrics = read_metrics(f.parent / "metrics.jsonl")   # read once: the first window and the set-up
            out.append({"run_id": row["run_id"], "label": (grid or {}).get("label", ""), "flops": row.get("flops"),
                        "tokens": row.get("tokens"), "tokens_per_s": row.get("tokens_per_s"),
                        "first_window_s": first_window_s(metrics, row.get("tokens_per_s")),
                        "setup_phases": setup_phases(metrics),
                        **{k: float(row.get(k) or 0.0) for k in COLUMNS}})
    return out


def first_window_s(metrics: list[dict], tokens_per_s) -> float:
    """The training inside time_warmup_s: the first log window's tokens at the run's steady tokens/s (the trainer
    counts each launch's whole first window as warm-up; the solo time counts those tokens as training). metrics:
    the run's metrics.jsonl lines (harness.rundir.read_metrics)."""
    first = next((x for x in metrics if x.get("kind") == "train"), None)
    if not first or not tokens_per_s:
        return 0.0
    return float(first["tokens"]) / float(tokens_per_s)


def setup_phases(metrics: list[dict]) -> dict[str, float]:
    """The run's set-up by phase, summed over its launches (its metrics.jsonl "setup" lines: device, model, data,
    step, heldout, ...; harness.train's SetupClock), phase -> seconds."""
    out: dict[str, float] = {}
    for line in (x for x in metrics if x.get("kind") == "setup"):
        for k, v in line.items():
            if k.endswith("_s") and isinstance(v, (int, float)):
                out[k.removesuffix("_s")] = out.get(k.removesuffix("_s"), 0.0) + float(v)
    return out


def phase_line(phases: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in sorted(phases.items(), key=lambda kv: -kv[1]) if v >= 0.005) or "-"


def solo_times(rs: list[dict], solo_file: Path, mode: str | None) -> None:
    """Each row's solo_s: its tokens / its shape's solo tokens/s (the first --solo-mode line naming the run)."""
    rate = {}
    for line in Path(solo_file).read_text().splitlines():
        x = json.loads(line)
        if mode in (None, x["mode"]):
            for run in x["runs"]:
                rate.setdefault(run, x["solo_tokens_per_s"])
    for r in rs:
        r["solo_s"] = r["tokens"] / rate[r["run_id"]] if rate.get(r["run_id"]) else float("nan")


def outside(events: list[dict], t0: float, t1: float, rs: list[dict]) -> list[tuple[str, float]]:
    """(phase, seconds) of the sweep's wall time outside its runs' wall_s, from the launch's timeline."""
    first = {e["event"]: e["t"] for e in reversed(events)}   # each event's first time
    last = {e["event"]: e["t"] for e in events}
    # a job's span: from its start to its training command's return (job_trained where the worker wrote the run's
    # result.json beside its next run, sweeps.worker.Tail; else job_end)
    start, trained, ended = ({e["job"]: e["t"] for e in events if e["event"] == name}
                             for name in ("job_start", "job_trained", "job_end"))
    span_end = {**ended, **trained}
    in_jobs = sum(span_end[j] - t for j, t in start.items() if j in span_end)
    last_ended = max(ended, key=ended.get, default=None)   # its tail, if it had one, is on the path
    last_tail = ended[last_ended] - trained[last_ended] if last_ended in trained else 0.0
    sweep_py = first.get("sweep_start", t0)
    out = [("python start, imports, Hydra config", sweep_py - t0),
           ("planning", first.get("planned", sweep_py) - sweep_py),
           ("machine check (imports torch)", first.get("checked", sweep_py) - first.get("planned", sweep_py)),
           ("run dirs, status", first.get("launch", sweep_py) - first.get("checked", sweep_py)),
           ("worker start (process, imports) not hidden by the above", first.get("worker_ready", t0) - first.get("launch", t0)),
           ("first job waits / between jobs", first.get("job_start", t0) - first.get("worker_ready", t0)),
           ("in jobs, outside the runs (lock, checks, corpus, gc)", in_jobs - sum(r["wall_s"] for r in rs)),
           ("the last run's final checkpoint and result.json, after it returned", last_tail),
           ("worker exit", last.get("worker_exited", t1) - last.get("job_end", t1)),
           ("end of the sweep (status, summary)", last.get("finished", t1) - last.get("worker_exited", t1)),
           ("sweep process exit", t1 - last.get("finished", t1))]
    return [(k, v) for k, v in out if v > 0.0005]


def worker_start(events: list[dict]) -> str | None:
    """The first worker's own start, from its spawn to its imports done (workers started ahead: sweeps.pool's
    start_standby) or to ready, and how much of it the sweep's machine check and run-dir preparation hid."""
    spawn = next((e for e in events if e["event"] == "worker_spawn"), None)
    end = next((e for e in events if e["event"] in ("worker_imported", "worker_ready")
                and spawn and e.get("worker") == spawn.get("worker")), None)
    launch = next((e["t"] for e in events if e["event"] == "launch"), None)
    if spawn is None or end is None or launch is None:
        return None
    hidden = max(0.0, min(end["t"], launch) - spawn["t"])
    how = "started ahead (before the machine check)" if spawn.get("standby") else "started at launch"
    return (f"  (worker 0 {how}: spawn to {end['event'].removeprefix('worker_')} {end['t'] - spawn['t']:.1f} s, "
            f"{hidden:.1f} s of it before the launch, overlapped with the sweep's own work)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep_dir")
    p.add_argument("--wall", type=float, required=True, help="the sweep command's wall time, seconds")
    p.add_argument("--csv", help="also write the per-run table here")
    p.add_argument("--label", default="", help="a name for this measurement in the summary line")
    p.add_argument("--slots", type=int, default=1, help="runs that trained at once (sweep.max_parallel)")
    p.add_argument("--solo", help="bench/solo_rates.py's JSON lines: the ratio against each run's solo time")
    p.add_argument("--solo-mode", help="the compile mode of the --solo lines to use (default: the first per run)")
    p.add_argument("--t0", type=float, help="the sweep command's start (unix seconds), with --launch")
    p.add_argument("--launch", help="the launch folder (.hydra/<time>) holding timeline.jsonl")
    a = p.parse_args(argv)
    rs = rows(Path(a.sweep_dir))
    if not rs:
        print(f"no finished runs under {a.sweep_dir}", file=sys.stderr)
        return 1
    print(f"{'run':<16} {'train s':>8} {'warmup':>7} {'setup':>6} {'eval':>6} {'ckpt':>6} {'wall':>7}  tokens/s")
    for r in rs:
        print(f"{r['label'] or r['run_id']:<16} {r['time_train_s']:8.1f} {r['time_warmup_s']:7.1f} {r['time_setup_s']:6.1f} "
              f"{r['time_eval_s']:6.1f} {r['time_checkpoint_s']:6.2f} {r['wall_s']:7.1f}  {r['tokens_per_s'] or 0:.4g}")
    total = {k: sum(r[k] for r in rs) for k in COLUMNS}
    print("sum              " + " ".join(f"{k.removeprefix('time_')}={v:.1f}" for k, v in total.items()))
    fw = sum(r["first_window_s"] for r in rs)
    print(f"warm-up {total['time_warmup_s']:.1f} s = the first log windows' training at steady speed {fw:.1f} s "
          f"(in the solo sum too) + compiles, cache loads and first-step costs {total['time_warmup_s'] - fw:.1f} s")
    summed: dict[str, float] = {}
    for r in rs:
        for k, v in r["setup_phases"].items():
            summed[k] = summed.get(k, 0.0) + v
    slowest = max(rs, key=lambda r: r["time_setup_s"])
    print(f"set-up by phase, s, summed: {phase_line(summed)}; the slowest run's "
          f"({slowest['label'] or slowest['run_id']}): {phase_line(slowest['setup_phases'])}")
    if a.t0 is not None and a.launch:
        from sweeps.timeline import read
        events = read(a.launch)
        phases = outside(events, a.t0, a.t0 + a.wall, rs)
        print(f"outside the runs: {a.wall - total['wall_s'] / a.slots:.1f} s of wall"
              + "".join(f"\n  {k:<56} {v:7.1f} s" for k, v in phases))
        if line := worker_start(events):
            print(line)
    ratio = a.slots * a.wall / total["time_train_s"] if total["time_train_s"] > 0 else float("inf")
    print(f"{a.label + ': ' if a.label else ''}{len(rs)} runs, sweep wall {a.wall:.1f} s x {a.slots} slot(s), sum of "
          f"steady-state training {total['time_train_s']:.1f} s, ratio {ratio:.3f} (target <= 1.15), "
          f"training share {1 / ratio:.1%}")
    if a.solo and not Path(a.solo).is_file():
        print(f"no solo measurement ({a.solo} is missing): no ratio against the runs' time alone")
    elif a.solo:
        solo_times(rs, Path(a.solo), a.solo_mode)
        total_solo = sum(r["solo_s"] for r in rs)
        ratio = a.slots * a.wall / total_solo
        print(f"{a.label + ': ' if a.label else ''}against each run's training time ALONE (its tokens / its shape's "
              f"solo tokens/s, {a.solo_mode or 'first mode'}): sum {total_solo:.1f} s, ratio {ratio:.3f} "
              f"(target <= 1.15), training share {1 / ratio:.1%}; the runs' own steady training was "
              f"{total['time_train_s'] / total_solo:.3f} x solo")
    if a.csv:
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rs[0]))
            w.writeheader()
            w.writerows(rs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
