"""CPU seconds of one `python sweep.py` launch, the way the test suite launches it: a dry run of the chinchilla grid,
and the suite's tiny sweep (tests/harness_util.TINY_SWEEP: two tiny runs on two workers) launched for real, each in a
fresh sweep root. CPU is this script's waited-for children (the launcher, the workers it waits for, their runs),
user + system; wall seconds follow the machine's load, CPU seconds much less.

    python bench/launch_cpu.py [--repo DIR] [--reps 3]     # DIR: the checkout whose sweep.py is timed (default: this)

Prints one JSON line per launch and a summary line per kind (mean, min, max). The machine check's wall time is read
from the launch's timeline (sweeps.timeline: `planned` -> `checked`).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def launch(repo: Path, args: list[str], env: dict) -> dict:
    c, t = children_cpu(), time.monotonic()
    r = subprocess.run([sys.executable, "sweep.py", *args], cwd=repo, env=env, capture_output=True, text=True,
                       timeout=900)
    row = {"rc": r.returncode, "cpu_s": round(children_cpu() - c, 2), "wall_s": round(time.monotonic() - t, 2),
           "load": round(os.getloadavg()[0], 2)}
    if r.returncode:
        row["tail"] = (r.stdout + r.stderr)[-600:]
    return row


def machine_check_s(root: Path) -> float | None:
    lines = [json.loads(x) for f in root.glob("*/.hydra/*/timeline.jsonl") for x in f.read_text().splitlines()]
    t = {x["event"]: x["t"] for x in lines if x.get("pid") == min(y["pid"] for y in lines)}
    return round(t["checked"] - t["planned"], 2) if {"checked", "planned"} <= t.keys() else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", type=Path, default=HERE, help="the checkout to time (its sweep.py and code)")
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    repo = a.repo.resolve()
    sys.path[:0] = [str(repo), str(repo / "tests")]
    from harness_util import TINY_SWEEP  # the suite's tiny sweep, as the checkout defines it

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "PYTHONPATH": str(repo), "WANDB_MODE": "disabled", "SCALEMIX_NO_PROGRESS": "1",
               "OPENBLAS_NUM_THREADS": "1", "SCALEMIX_DATA": str(tmp / "data")}
        subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                        "from harness.data.synthetic import make_synthetic_corpus as m; "
                        "m(Path(sys.argv[1]) / 'syn', vocab_size=2048, train_tokens=100_000, heldout_tokens=10_000)",
                        str(tmp / "data")], cwd=repo, env=env, check=True)
        rows = {"dry_run": [], "tiny_sweep": []}
        for i in range(a.reps):
            row = launch(repo, ["+grid=chinchilla", "sweep.dry_run=true", f"sweep.root={tmp / f'dry{i}'}"], env)
            rows["dry_run"].append(row)
            print(json.dumps({"kind": "dry_run", **row}), flush=True)
            root = tmp / f"tiny{i}"
            row = launch(repo, [*TINY_SWEEP, f"sweep.root={root}"], env)
            row["machine_check_s"] = machine_check_s(root)
            rows["tiny_sweep"].append(row)
            print(json.dumps({"kind": "tiny_sweep", **row}), flush=True)
    for kind, rs in rows.items():
        cpu = [r["cpu_s"] for r in rs]
        print(f"{repo} {kind}: CPU s mean {statistics.mean(cpu):.2f} (min {min(cpu):.2f}, max {max(cpu):.2f}) over "
              f"{len(cpu)}; load {min(r['load'] for r in rs):.1f}-{max(r['load'] for r in rs):.1f}")


if __name__ == "__main__":
    main()
