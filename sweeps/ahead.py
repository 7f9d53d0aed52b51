"""Compile ahead: while a sweep's workers train, compile the model shapes of the runs they take next.

    python -m sweeps.ahead <launch dir>/queue.json

Started by sweeps.pool beside the workers when the runs compile (on a GPU, or train.runtime.compile=on). It
goes through the queue's jobs in order, skipping the first `slots` (the workers start with those at once),
and compiles each new shape (model, micro-batch, z-loss, domains) through harness.warm.compile_ahead, which
fills the caches the workers' own torch.compile then reads (sweep.inductor_cache). It runs at a lower CPU
priority; the pool stops it when the workers are done. One line of JSON per shape in its log.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from harness.branches import trunk_dir
from harness.rundir import load_runtime, load_spec
from sweeps.jobqueue import JobQueue
from sweeps.worker import configure_compiler


def job_dir(sweep_dir: Path, job: str) -> Path:
    run = sweep_dir / job
    return run if run.is_dir() else trunk_dir(sweep_dir, job)


def shape_key(spec, runtime) -> str:
    """What the compiled graph depends on (besides the runtime's device and precision, one per sweep)."""
    return json.dumps([spec.model.to_dict(), runtime.micro_batch_size or spec.batch_size, spec.optim.z_loss,
                       spec.data.corpus, sorted(dict(spec.data.weights))], sort_keys=True, default=str)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sweeps.ahead", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("queue", help="the launch's queue.json (sweeps.jobqueue)")
    a = p.parse_args(argv)
    q = JobQueue(a.queue)
    sweep_dir, slots = Path(q.meta["sweep_dir"]), int(q.meta["slots"])
    if q.meta.get("slot_gpus"):
        os.environ["CUDA_VISIBLE_DEVICES"] = str(q.meta["slot_gpus"][0])
    os.nice(10)   # the workers' training loops come first
    from harness.warm import compile_ahead  # imports torch: after the GPU is chosen
    configure_compiler()   # each shape static, as the workers (and a run alone) compile it: the same cache entries
    seen = set()
    for i, job in enumerate(q.jobs):
        d = job_dir(sweep_dir, job)
        try:
            spec = load_spec(d / "spec.yaml")
            runtime = load_runtime(d / "runtime.yaml")
        except Exception as e:   # the worker reports a broken run directory; here it is only not compiled ahead
            print(json.dumps({"job": job, "error": f"{type(e).__name__}: {e}"}), flush=True)
            continue
        key = shape_key(spec, runtime)
        if key in seen:
            continue
        seen.add(key)
        if i < slots:
            continue
        try:
            seconds = compile_ahead(spec, runtime)
        except Exception as e:
            print(json.dumps({"job": job, "error": f"{type(e).__name__}: {e}"}), flush=True)
            continue
        print(json.dumps({"job": job, "model": f"L{spec.model.n_layers}-d{spec.model.d_model}",
                          "seconds": seconds}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
