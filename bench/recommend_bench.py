"""Benchmark: `python -m analysis.recommend laws.json --budget C`, the answer from a saved law (no refit).

    python bench/recommend_bench.py [--laws PATH] [--repeat 10]

Without --laws it first writes one: the report on the committed fixture sweep (35 runs, 1000 bootstrap resamples,
so the file holds 1000 x 5 approach-3 samples). Then it times, as separate processes (what a user waits for),
`python -c pass`, `python -c "import numpy"` (the floor: the CLI needs numpy) and the CLI itself, --repeat times
each, interleaved, and prints min / median / max wall seconds with the machine's load average; then, inside one
process per repeat, where the CLI's time goes (numpy import, the analysis modules' import, reading and checking
laws.json, the recommendation with its intervals). Record results in bench/README.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def wall(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


PHASES = """
import json, sys, time, warnings
t0 = time.perf_counter()
import numpy
t1 = time.perf_counter()
from analysis import lawfile, recommend
t2 = time.perf_counter()
laws = lawfile.load(sys.argv[1])
t3 = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    recommend.recommend(laws.surface, budget=float(sys.argv[2]))
t4 = time.perf_counter()
print(json.dumps({"import numpy": t1 - t0, "import analysis": t2 - t1, "load laws.json": t3 - t2,
                  "recommend": t4 - t3}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--laws", help="a laws.json (default: written from the fixture sweep first)")
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--budget", default="1e16")
    args = p.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCALEMIX_NO_PROGRESS": "1", "MPLBACKEND": "Agg"}
    laws = args.laws
    if laws is None:
        out = Path(tempfile.mkdtemp()) / "report"
        print("writing laws.json from the fixture sweep (1000 resamples) ...", flush=True)
        subprocess.run([sys.executable, "-m", "analysis.report", "tests/fixtures/sweep_small", "--out", str(out)],
                       cwd=ROOT, env=env, check=True, capture_output=True)
        laws = str(out / "laws.json")
    cmds = {"python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import numpy'": [sys.executable, "-c", "import numpy"],
            f"python -m analysis.recommend laws.json --budget {args.budget}":
                [sys.executable, "-m", "analysis.recommend", laws, "--budget", args.budget]}
    times: dict[str, list[float]] = {k: [] for k in cmds}
    load_before = os.getloadavg()
    for _ in range(args.repeat):
        for name, cmd in cmds.items():
            times[name].append(wall(cmd, env))
    load_after = os.getloadavg()
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
          f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} before, {load_after[0]:.1f} after; "
          f"laws.json {Path(laws).stat().st_size / 1e3:.0f} kB; {args.repeat} runs each")
    for name, t in times.items():
        print(f"  {name:<62} min {min(t):.2f} s, median {statistics.median(t):.2f} s, max {max(t):.2f} s")
    phases = [json.loads(subprocess.run([sys.executable, "-c", PHASES, laws, args.budget], cwd=ROOT, env=env, check=True,
                                        capture_output=True, text=True).stdout) for _ in range(args.repeat)]
    print("  inside the process (median s): " + ", ".join(
        f"{k} {statistics.median(p[k] for p in phases):.3f}" for k in phases[0]))


if __name__ == "__main__":
    main()
