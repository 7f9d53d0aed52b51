"""Benchmark: approach 3 (initialisation grid + L-BFGS-B) with 1000 bootstrap resamples on 100 runs.

    python bench/fit_bench.py [--resamples 1000] [--processes 2]

Prints the wall time of the full fit (grid, starts, bootstrap), its CPU time summed over processes, the
machine and the load average: on a shared machine the wall time depends on what else runs, the CPU
time much less (wall on an idle machine is about CPU time / processes). Record results in bench/README.md ("Analysis").
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import time

import numpy as np

from analysis.laws import approach3
from analysis.laws.common import FitConfig
from analysis.synthetic import CHINCHILLA, isoflop_table


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the bootstrap workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--resamples", type=int, default=1000)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--runs-per-budget", type=int, default=20)
    args = p.parse_args()
    runs = isoflop_table(CHINCHILLA, np.geomspace(1e18, 1e21, 5), sizes_per_budget=args.runs_per_budget,
                         noise=0.01, seed=0)
    cfg = FitConfig(n_bootstrap=args.resamples, processes=args.processes, seed=0)
    load0 = os.getloadavg()[0]
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    law = approach3.fit(runs, cfg)
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    print(law.summary())
    print(f"approach 3 + {args.resamples} bootstrap resamples on {len(runs)} runs, {args.processes} processes: "
          f"{wall:.2f} s wall, {cpu:.2f} CPU-s in all processes  ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {load0:.1f} -> {os.getloadavg()[0]:.1f}, {datetime.date.today()})")


if __name__ == "__main__":
    main()
