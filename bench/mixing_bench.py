"""Benchmark: a data-mixing law fitted to 500 mixtures x 17 domains with 1000 bootstrap resamples.

    python bench/mixing_bench.py [--mixtures 500] [--domains 17] [--resamples 1000] [--repeats 3] [--truth ye]
                                 [--auto-only]

Times `analysis.laws.mixing.fit` (every family that applies, 5-fold held-out-mixture selection, then the chosen
family's bootstrap; no recommendation) on a table generated from Ye et al.'s law (--truth additive: from Shukor et
al.'s additive law at one size, where auto picks that law; --truth power: from the power law in
effective data, where auto picks that), and then each family alone. Every family draws
--resamples resamples here (one size; across sizes a size law would draw min(resamples, --joint-bootstrap)); the line
says how many. The resamples of the additive, ye and power laws run on ADD_BOOT_THREADS threads (the header says
how many; before commit 31a0504 only the additive law's did).
Prints wall and CPU seconds and the load average: on a shared machine the wall time depends on what else runs,
the CPU time much less. Record results in bench/README.md ("Data-mixing laws").
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import time

import analysis.laws.mixing as mixing
from analysis.laws.mixing import (
    MixingConfig,
    fit,
    synthetic_joint_table,
    synthetic_power_table,
    synthetic_ye_table,
)


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(table, **kwargs) -> tuple[float, float, object]:
    load, c, t = os.getloadavg()[0], cpu_seconds(), time.perf_counter()
    law = fit(table, "uniform", **kwargs)
    return time.perf_counter() - t, cpu_seconds() - c, law, load


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mixtures", type=int, default=500)
    p.add_argument("--domains", type=int, default=17)
    p.add_argument("--resamples", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--truth", choices=("ye", "additive", "power"), default="ye", help="the law the table is generated from")
    p.add_argument("--joint-bootstrap", type=int, default=MixingConfig.joint_bootstrap,
                   help="MixingConfig.joint_bootstrap: the resamples of a size law across sizes (before 2026-12-02 "
                        "also of the additive law at one size)")
    p.add_argument("--auto-only", action="store_true", help="time law='auto' only (not each family alone)")
    args = p.parse_args()
    if args.truth == "ye":
        table, _ = synthetic_ye_table(args.mixtures, args.domains, noise=0.003, seed=0)
    elif args.truth == "power":
        table, _ = synthetic_power_table(args.mixtures, args.domains, noise=0.003, seed=0)
    else:
        table, _ = synthetic_joint_table(args.mixtures, args.domains, [(1e6, 1e8)], noise=0.003, seed=0)
    cfg = MixingConfig(n_bootstrap=args.resamples, recommend_resamples=0, joint_bootstrap=args.joint_bootstrap)
    print(f"{args.mixtures} mixtures x {args.domains} domains ({args.truth} truth), {args.resamples} resamples "
          f"({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {datetime.date.today()}, "
          f"resamples on {getattr(mixing, 'ADD_BOOT_THREADS', 1)} thread(s))")
    alone = () if args.auto_only else ("loglinear", "ridge", "ye", "power", "additive")
    for label, kw in [("auto (CV selection + bootstrap)", {}), *[(f"{f} only", {"law": f}) for f in alone]]:
        for _ in range(args.repeats):
            wall, cpu, law, load = timed(table, config=cfg, **kw)
            print(f"  {label:<34} {wall:6.2f} s wall  {cpu:6.2f} CPU-s  load {load:5.1f}  -> {law.family}, "
                  f"CV mean error {law.cv['mean_rel_error'].iloc[0]:.3%}, {law._n_boot()} resamples")


if __name__ == "__main__":
    main()
