"""Is the CPU demo's law stable? Run the demo sweep (`+grid=demo`) and its report with two training seeds, then
check that each seed's N_opt exponent (approach 3's a, where recommendations come from) lies inside the other
seed's 90% interval, and that neither verdict is "not determined" (issue: "a CPU demo whose law is stable").

    python bench/demo_stability.py                         # seeds 0 and 10, one sweep after the other
    python bench/demo_stability.py --parallel              # both sweeps at once (a machine with many cores)
    python bench/demo_stability.py --skip-sweep            # re-read existing sweeps' reports only
    python bench/demo_stability.py --parallel --set 'scale.chinchilla.budgets=[5e10,1e11,2e11,5e11]' \\
        --sweep-timeout 400 --json out.json                # a candidate design, sweeps stopped after 400 s

Each seed's sweep lives in <root>/demo_s<seed>. The grid's replicate seeds (scale.chinchilla.replicates, e.g.
[1, 2] with the default train.seed 0) are shifted by the seed, so seed 10's sweep replicates with 11, 12: every
sweep measures its own run-to-run noise on seeds of its own. Prints one row per seed (verdict, exponents, the
sweep's and the report's CPU and wall seconds) and PASS or FAIL; exits 0 on PASS, 1 on FAIL.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis import lawfile  # noqa: E402


def grid_replicate_seeds(overrides: list[str]) -> list[int]:
    """The extra seeds the demo grid replicates with (grid.replicates.seeds), as composed with `overrides`."""
    from hydra import compose, initialize_config_dir
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["+grid=demo", *overrides])
    rep = cfg.grid.get("replicates")
    base = int(cfg.train.seed)
    return [int(s) - base for s in rep.seeds] if rep and rep.get("seeds") else []


def sweep_cmd(seed: int, root: Path, overrides: list[str], offsets: list[int]) -> list[str]:
    cmd = [sys.executable, "sweep.py", "+grid=demo", *overrides, f"train.seed={seed}", f"sweep.name=demo_s{seed}",
           f"sweep.root={root}"]
    if offsets:
        cmd.append(f"scale.chinchilla.replicates.seeds=[{','.join(str(seed + o) for o in offsets)}]")
    return cmd


@dataclass
class Done:
    """What a command cost: wall seconds and CPU seconds (user + sys of it and every process it waited for)."""
    cmd: list[str]
    rc: int | None = None
    wall_s: float = float("nan")
    cpu_s: float = float("nan")
    timed_out: bool = False
    extra: dict = field(default_factory=dict)


def run_all(cmds: list[list[str]], parallel: bool, timeout: float | None = None) -> list[Done]:
    """Run `cmds` (all at once, or one after the other), each in its own process group so that a timeout stops
    its whole tree (SIGTERM: a sweep checkpoints its runs; SIGKILL 20 s later). Per-command CPU via wait4."""
    done = [Done(c) for c in cmds]
    batches = [list(range(len(cmds)))] if parallel else [[i] for i in range(len(cmds))]
    for batch in batches:
        procs = {}
        for i in batch:
            print("$", " ".join(cmds[i]), flush=True)
            procs[subprocess.Popen(cmds[i], cwd=ROOT, start_new_session=True).pid] = (i, time.time())
        deadline = time.time() + timeout if timeout else None
        termed = killed = False
        while procs:
            pid, status, ru = os.wait4(-1, os.WNOHANG)
            if pid in procs:
                i, t0 = procs.pop(pid)
                d = done[i]
                d.rc, d.wall_s, d.cpu_s = os.waitstatus_to_exitcode(status), time.time() - t0, ru.ru_utime + ru.ru_stime
                d.timed_out = termed and d.rc != 0     # stopped by us, not finished on its own
                continue
            if pid == 0:
                time.sleep(0.5)
            if deadline and time.time() > deadline and not termed:
                print(f"timeout ({timeout:.0f} s): stopping {len(procs)} command(s)", flush=True)
                for p in procs:
                    _signal_group(p, signal.SIGTERM)
                termed = True
            if deadline and time.time() > deadline + 20 and not killed:
                for p in procs:
                    _signal_group(p, signal.SIGKILL)
                killed = True
    return done


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def summary(seed: int, root: Path) -> dict:
    path = root / f"demo_s{seed}" / "report" / "laws.json"
    row = {"seed": seed, "verdict": "none"}
    if not path.exists():
        return row
    laws = lawfile.load(path)
    s = laws.surface
    v = laws.verdict or {}
    row["verdict"] = v.get("level", "none")
    row["not_ok"] = [f"{c['severity']}: {c['name']} ({c.get('law') or '-'}): {c['message']}"
                     for c in v.get("checks", []) if c.get("severity") != "ok"]
    noise = v.get("noise") or {}
    row.update(noise_sd=noise.get("sd"), noise_dof=noise.get("dof"))
    if s is not None:
        row.update(a3=s.a, a3_lo=s.ci("a")[0], a3_hi=s.ci("a")[1], alpha=s.alpha, beta=s.beta, E=s.E)
    if "approach 2" in laws.power:
        a2 = laws.power["approach 2"].n_opt
        row.update(a2=a2.a, a2_lo=a2.a_ci[0], a2_hi=a2.a_ci[1])
    return row


def fmt(x) -> str:
    return "nan" if x is None else f"{x:.3f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs=2, default=[0, 10])
    p.add_argument("--root", default="runs")
    p.add_argument("--parallel", action="store_true", help="run both seeds' sweeps at once")
    p.add_argument("--skip-sweep", action="store_true", help="only read the existing reports")
    p.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="extra sweep overrides for both seeds (a candidate design)")
    p.add_argument("--sweep-timeout", type=float, default=None,
                   help="stop the sweeps after this many seconds and report on the runs that finished")
    p.add_argument("--json", default=None, help="also write the rows, the check and the costs here")
    args = p.parse_args(argv)
    root = Path(args.root).resolve()
    t0 = time.time()
    costs = {}
    if not args.skip_sweep:
        offsets = grid_replicate_seeds(args.overrides)
        sweeps = run_all([sweep_cmd(s, root, args.overrides, offsets) for s in args.seeds], args.parallel,
                         args.sweep_timeout)
        reports = run_all([[sys.executable, "-m", "analysis.report", str(root / f"demo_s{s}")] for s in args.seeds],
                          args.parallel)
        for s, sw, rp in zip(args.seeds, sweeps, reports):
            costs[s] = {"sweep_rc": sw.rc, "sweep_timed_out": sw.timed_out, "sweep_wall_s": sw.wall_s,
                        "sweep_cpu_s": sw.cpu_s, "report_rc": rp.rc, "report_wall_s": rp.wall_s,
                        "report_cpu_s": rp.cpu_s}
    rows = [{**summary(s, root), **costs.get(s, {})} for s in args.seeds]
    print(f"\n{'seed':>5} {'verdict':<18} {'a (approach 3) [90%]':<28} {'a (approach 2) [90%]':<28} alpha  beta"
          "   noise (dof)   sweep wall/CPU s  report wall/CPU s")
    for r in rows:
        a3 = f"{fmt(r.get('a3'))} [{fmt(r.get('a3_lo'))}, {fmt(r.get('a3_hi'))}]"
        a2 = f"{fmt(r.get('a2'))} [{fmt(r.get('a2_lo'))}, {fmt(r.get('a2_hi'))}]"
        noise = f"{r['noise_sd']:.2%} ({r['noise_dof']})" if r.get("noise_sd") is not None else "unmeasured"
        cost = (f"{r['sweep_wall_s']:.0f}/{r['sweep_cpu_s']:.0f}{' TIMEOUT' if r['sweep_timed_out'] else ''}"
                f"  {r['report_wall_s']:.0f}/{r['report_cpu_s']:.0f}") if "sweep_wall_s" in r else ""
        print(f"{r['seed']:>5} {r['verdict']:<18} {a3:<28} {a2:<28} {fmt(r.get('alpha'))} {fmt(r.get('beta'))}  "
              f"{noise:<13} {cost}")
        for line in r.get("not_ok", []):
            print(f"      {line}")
    x, y = rows
    inside = all(k in x and k in y for k in ("a3", "a3_lo")) and (
        y["a3_lo"] <= x["a3"] <= y["a3_hi"] and x["a3_lo"] <= y["a3"] <= x["a3_hi"])
    determined = all(r["verdict"] not in ("not determined", "none") for r in rows)
    print(f"\neach seed's a inside the other's interval: {'yes' if inside else 'NO'}; "
          f"no verdict 'not determined': {'yes' if determined else 'NO'}; {time.time() - t0:.0f} s")
    ok = inside and determined
    print("PASS" if ok else "FAIL")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "inside": inside, "determined": determined, "pass": ok,
                                               "overrides": args.overrides, "wall_s": time.time() - t0},
                                              indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
