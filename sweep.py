"""The sweep entry point (Hydra). Every default is in conf/; pick a grid:

    python sweep.py +grid=chinchilla                       # run it (again: skips done runs, resumes the rest)
    python sweep.py +grid=chinchilla sweep.dry_run=true    # the plan table with cost; launches nothing
    python sweep.py +grid=chinchilla sweep.status=true     # done / running / failed / pending, with reasons
    python sweep.py +grid=chinchilla scale=gpu hydra/launcher=slurm hydra.launcher.partition=<p>

A grid file switches Hydra to MULTIRUN; the scalemix sweeper (hydra_plugins/scalemix_sweeper) plans
the runs and launches this same script once per run with `run_id=<id>`: `main` then trains the run
whose spec.yaml the sweeper wrote to runs/<sweep>/<run_id>/.

Exit status (sweeps.launch.EXIT_*): 0 every run done; 1 some run failed (given up, or left for the
next launch to retry); 2 the config was refused before anything launched (unknown key, bad value,
corpus missing or too short: every problem listed); 3 nothing failed but some runs are not done
(running in another launch, preempted).
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig):
    if cfg.run_id is None:
        print(__doc__)
        return None
    from hydra.core.hydra_config import HydraConfig

    from sweeps.job import run_job
    sw = cfg.sweep
    if not (isinstance(cfg.run_id, str) and len(cfg.run_id) == 12):
        raise ValueError(f"run_id={cfg.run_id!r}: expected the 12-hex-digit id of a planned run, quoted "
                         "(run_id='0123abcd4567'); the sweeper passes it, a user need not")
    out = Path(HydraConfig.get().runtime.output_dir)
    return run_job(Path(sw.root) / str(sw.name) / str(cfg.run_id), sweep=str(sw.name), log_path=out / "harness.log",
                   retries=int(sw.retries), inductor_cache=sw.inductor_cache,
                   threads=int(cfg.train.runtime.threads or 0), slots=cfg.slots,
                   slot_gpus=str(cfg.slot_gpus).split(",") if cfg.slot_gpus else None, procs=cfg.get("procs"))


def exit_status(code) -> int:
    """The status sys.exit(code) would give the process (a non-int code is printed and gives 1)."""
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    try:
        main()
        status = 0
    except SystemExit as e:   # the sweeper's exit status (sweeps.launch.EXIT_*), Hydra's and argparse's
        status = exit_status(e.code)
    # every file of the launch is written and closed by now (its runs, status and timeline); only the interpreter's
    # teardown is left, and with torch imported (the machine check) it took ~0.8 s of a GPU sweep's wall
    # (bench/README.md, "Sweep efficiency ... session 14"). An uncaught exception still ends the normal way.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
