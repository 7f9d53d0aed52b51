"""Is the CPU demo's law stable? Run the demo sweep (`+grid=demo`) and its report with two training seeds, then
check that each seed's N_opt exponent (approach 3's a, where recommendations come from) lies inside the other
seed's 90% interval, and that neither verdict is "not determined" (issue: "a CPU demo whose law is stable").

    python bench/demo_stability.py                         # seeds 0 and 10, one sweep after the other
    python bench/demo_stability.py --parallel              # both sweeps at once (a machine with many cores)
    python bench/demo_stability.py --skip-sweep            # re-read existing sweeps' reports only

Each seed's sweep lives in <root>/demo_s<seed>; its smallest budget is replicated with seed+1 (the grid's
noise measurement). Prints one row per seed and PASS or FAIL; exits 0 on PASS, 1 on FAIL.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis import lawfile  # noqa: E402


def sweep_cmd(seed: int, root: Path) -> list[str]:
    return [sys.executable, "sweep.py", "+grid=demo", f"train.seed={seed}",
            f"scale.chinchilla.replicates.seeds=[{seed + 1}]", f"sweep.name=demo_s{seed}", f"sweep.root={root}"]


def run_all(cmds: list[list[str]], parallel: bool) -> None:
    procs = []
    for cmd in cmds:
        print("$", " ".join(cmd), flush=True)
        p = subprocess.Popen(cmd, cwd=ROOT)
        if parallel:
            procs.append((cmd, p))
        elif p.wait():
            raise SystemExit(f"failed (exit {p.returncode}): {' '.join(cmd)}")
    for cmd, p in procs:
        if p.wait():
            raise SystemExit(f"failed (exit {p.returncode}): {' '.join(cmd)}")


def summary(seed: int, root: Path) -> dict:
    laws = lawfile.load(root / f"demo_s{seed}" / "report" / "laws.json")
    s = laws.surface
    row = {"seed": seed, "verdict": (laws.verdict or {}).get("level", "none")}
    if s is not None:
        row.update(a3=s.a, a3_lo=s.ci("a")[0], a3_hi=s.ci("a")[1], alpha=s.alpha, beta=s.beta, E=s.E)
    if "approach 2" in laws.power:
        a2 = laws.power["approach 2"].n_opt
        row.update(a2=a2.a, a2_lo=a2.a_ci[0], a2_hi=a2.a_ci[1])
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs=2, default=[0, 10])
    p.add_argument("--root", default="runs")
    p.add_argument("--parallel", action="store_true", help="run both seeds' sweeps at once")
    p.add_argument("--skip-sweep", action="store_true", help="only read the existing reports")
    args = p.parse_args(argv)
    root = Path(args.root).resolve()
    t0 = time.time()
    if not args.skip_sweep:
        run_all([sweep_cmd(s, root) for s in args.seeds], args.parallel)
        run_all([[sys.executable, "-m", "analysis.report", str(root / f"demo_s{s}")] for s in args.seeds],
                args.parallel)
    rows = [summary(s, root) for s in args.seeds]
    print(f"\n{'seed':>5} {'verdict':<18} {'a (approach 3) [90%]':<28} {'a (approach 2) [90%]':<28} alpha  beta")
    for r in rows:
        a3 = f"{r.get('a3', float('nan')):.3f} [{r.get('a3_lo', float('nan')):.3f}, {r.get('a3_hi', float('nan')):.3f}]"
        a2 = f"{r.get('a2', float('nan')):.3f} [{r.get('a2_lo', float('nan')):.3f}, {r.get('a2_hi', float('nan')):.3f}]"
        print(f"{r['seed']:>5} {r['verdict']:<18} {a3:<28} {a2:<28} {r.get('alpha', float('nan')):.3f} "
              f"{r.get('beta', float('nan')):.3f}")
    x, y = rows
    inside = all(k in x and k in y for k in ("a3", "a3_lo")) and (
        y["a3_lo"] <= x["a3"] <= y["a3_hi"] and x["a3_lo"] <= y["a3"] <= x["a3_hi"])
    determined = all(r["verdict"] not in ("not determined", "none") for r in rows)
    print(f"\neach seed's a inside the other's interval: {'yes' if inside else 'NO'}; "
          f"no verdict 'not determined': {'yes' if determined else 'NO'}; {time.time() - t0:.0f} s")
    ok = inside and determined
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
