"""Sweeps: grids -> validated RunSpecs -> launched runs, idempotently.

    grids.py    the axes: compute-bracketing shapes, rungs, fixed; mixtures; learning rates
    batching.py grid.batch: one batch for the grid, or each run's halved until it trains enough steps
    schema.py   every key of the composed config with its type: unknown keys refused with the nearest valid one
    plan.py     plan(cfg): every RunSpec, validated (all errors at once), and the plan table with cost
    cost.py     device-hours from bench/throughput.py's measured rows
    launch.py   run_sweep: status / dry run / launch through any Hydra launcher (local: capped by slots)
    job.py      run_job: one run under its lock, in a child `python -m harness`, signals forwarded
    status.py   done / running / failed / pending from the run directories
    lock.py     the per-run flock
    progress.py the live summary

Entry point: `python sweep.py +grid=<name>` (sweep.py, conf/, hydra_plugins/scalemix_sweeper/).
"""
