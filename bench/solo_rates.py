"""Each model shape of a sweep trained ALONE for a few dozen steps: its steady-state tokens/s (issue 12's baseline).

    python bench/solo_rates.py runs/<sweep> --steps 40 --compile regional on --out solo.jsonl

For every distinct shape among the sweep's runs (sweeps.ahead.shape_key: model, micro-batch, z-loss, corpus,
domains) and every --compile mode, one short run of that shape goes through the trainer itself
(harness.train.run: the data stream, the loop, logging), one after the other in this process, nothing else on the
device: --steps steps at log_every = --log-every, so the first log window (compilation, warm-up) is left out and
the rest is the steady state (result.json's tokens_per_s and time_train_s). One evaluation on the run's own held-out
set (so that its eval graphs are those the sweep's runs compile: the call size follows the set's size) and one
checkpoint at the end, neither timed as training. A sweep run's solo training time is then its
tokens / its shape's solo tokens/s (bench/worker_ratio.py --solo). One JSON line per (shape, mode) on stdout
and in --out: the shape, the mode, solo tokens/s, first-window (compile) seconds, set-up seconds.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.rundir import load_runtime, load_spec  # noqa: E402
from sweeps.ahead import job_dir, shape_key  # noqa: E402


def shapes(sweep_dir: Path) -> dict[str, tuple]:
    """shape key -> (spec, runtime, run ids of that shape) for the sweep's runs (trunks' own dirs included)."""
    out: dict[str, tuple] = {}
    for spec_file in sorted(Path(sweep_dir).glob("*/spec.yaml")):
        d = job_dir(Path(sweep_dir), spec_file.parent.name)
        spec, runtime = load_spec(d / "spec.yaml"), load_runtime(d / "runtime.yaml")
        key = shape_key(spec, runtime)
        if key not in out:
            out[key] = (spec, runtime, [])
        out[key][2].append(spec_file.parent.name)
    return out


def solo(spec, runtime, mode: str, steps: int, log_every: int, root: Path) -> dict:
    """One short run of `spec`'s shape alone, compiled as `mode`; its result row."""
    from harness.train import run
    short = dataclasses.replace(spec, tokens=steps * spec.batch_tokens,
                                eval=dataclasses.replace(spec.eval, every_steps=steps, downstream=(),
                                                         downstream_items=0, samples_tokens=0))
    rt = dataclasses.replace(runtime, compile=mode, log_every=log_every, checkpoint_every=steps, wandb="disabled",
                             progress=False)
    return run(short, rt, root / f"{spec.run_id}-{mode}", sweep="solo")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep_dir")
    p.add_argument("--steps", type=int, default=40, help="steps per solo run (the first log window is warm-up)")
    p.add_argument("--log-every", type=int, default=5, help="steps per log window")
    p.add_argument("--compile", nargs="+", default=["auto"], help="train.runtime.compile modes to measure, in order")
    p.add_argument("--root", help="where the short runs go (default: a temporary directory)")
    p.add_argument("--out", help="also append the JSON lines here")
    a = p.parse_args(argv)
    if a.steps < 3 * a.log_every:
        p.error(f"--steps {a.steps}: give at least 3 log windows (3 x --log-every = {3 * a.log_every})")
    from sweeps.worker import configure_compiler
    configure_compiler()   # as in a worker: every shape kept, each compiled static
    root = Path(a.root or tempfile.mkdtemp(prefix="solo."))
    found = shapes(Path(a.sweep_dir))
    if not found:
        print(f"no runs under {a.sweep_dir}", file=sys.stderr)
        return 1
    for mode in a.compile:   # every shape in the first mode (the ratio's) before the next: a cut-off call keeps it
        for spec, runtime, runs in found.values():
            t = time.perf_counter()
            row = solo(spec, runtime, mode, a.steps, a.log_every, root)
            m = spec.model
            line = {"shape": f"L{m.n_layers}-d{m.d_model}", "batch_tokens": spec.batch_tokens, "mode": mode,
                    "runs": runs, "solo_tokens_per_s": row["tokens_per_s"], "time_warmup_s": row["time_warmup_s"],
                    "time_setup_s": row["time_setup_s"], "time_train_s": row["time_train_s"],
                    "wall_s": round(time.perf_counter() - t, 3), "device": row.get("device")}
            print(json.dumps(line), flush=True)
            if a.out:
                with open(a.out, "a") as f:
                    f.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
