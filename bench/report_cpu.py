"""Where a report's CPU time goes: `python bench/report_cpu.py runs/demo [--processes 1] [--render]`.

CPU seconds (this process and its reaped children: bootstrap workers) of each phase of `python -m analysis.report`
on a finished sweep: imports, loading, each fit (approach 3 with its bootstrap), the noise and the verdict, and with
--render the whole render (sections, figures, files) into a temporary directory. CPU seconds rather than wall time,
so that it can be compared on a shared machine (bench/README.md, "make demo in five minutes").
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path


def cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sweep_dir")
    p.add_argument("--processes", type=int, default=None, help="FitConfig.processes (default: the report's)")
    p.add_argument("--render", action="store_true", help="also render the report (into a temporary directory)")
    args = p.parse_args()
    os.environ.setdefault("SCALEMIX_NO_PROGRESS", "1")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    times: dict[str, float] = {}
    wall0, t = time.perf_counter(), cpu()
    from analysis import noise, report, results, validate, verdict
    from analysis.laws import approach1, approach2, approach3
    from analysis.report_blocks import Context
    times["imports"] = cpu() - t

    def timed(name, fn):
        t0 = cpu()
        out = fn()
        times[name] = cpu() - t0
        return out

    warnings.simplefilter("ignore")
    res = timed("load", lambda: results.load(args.sweep_dir))
    cfg = res.fit_config(**({"processes": args.processes} if args.processes else {}))
    ctx = Context(res, cfg)
    ctx.fits["approach 1"] = timed("approach 1", lambda: approach1.fit(ctx.runs, ctx.curves, cfg))
    ctx.fits["approach 2"] = timed("approach 2", lambda: approach2.fit(ctx.runs, cfg))
    ctx.fits["approach 3"] = timed("approach 3 (with its bootstrap)", lambda: approach3.fit(ctx.runs, cfg))
    ctx.holdout = timed("holdout", lambda: validate.holdout_largest_budget(ctx.runs, cfg))
    measured = timed("noise", lambda: noise.estimate(res.runs, cfg.loss_col, cfg.ci_level))
    ctx.verdict = timed("verdict", lambda: verdict.judge(ctx.fits, ctx.runs, cfg, noise=measured,
                                                         failures=ctx.failures))
    if args.render:
        with tempfile.TemporaryDirectory() as out:
            timed("render (sections, figures, files)", lambda: report.render(ctx, Path(out), "report"))
    total = sum(times.values())
    print(f"code: {Path(report.__file__).parents[1]}")
    for name, v in times.items():
        print(f"{name:36s} {v:7.2f} CPU-s")
    print(f"{'total':36s} {total:7.2f} CPU-s   (wall {time.perf_counter() - wall0:.1f} s, load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
