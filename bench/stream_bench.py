"""MixtureStream throughput on one CPU core (target: >= 20M tokens/s).

    python bench/stream_bench.py [--corpus data/default] [--steps 200]

Pins itself to one core (os.sched_setaffinity) and one torch/numpy thread, builds a synthetic
corpus when none is given, and times batch(step) for a few batch shapes and both sampling modes,
with a curriculum stage (the weights reversed) starting mid-sequence half-way through the steps.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default="")
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import torch
    torch.set_num_threads(1)
    from harness.data.corpus import Corpus
    from harness.data.mixture import MixtureStream
    from harness.data.synthetic import make_synthetic_corpus
    from harness.spec import DataSpec, Stage

    if args.corpus:
        corpus = Corpus(args.corpus)
    else:
        corpus = Corpus(make_synthetic_corpus(tempfile.mkdtemp() + "/syn", vocab_size=8192,
                                              train_tokens=2_000_000, heldout_tokens=10_000))
    n = len(corpus.domains)
    w = tuple((d, 1 / n) for d in corpus.domains)
    print(f"corpus {corpus.path} ({n} domains), {platform.processor() or platform.machine()}, one core, "
          f"{time.strftime('%Y-%m-%d')}")
    print(f"{'sampling':<12}{'batch x seq':>14}{'tokens/s':>14}{'ms/batch':>10}")
    for sampling in ("stratified", "random"):
        for B, T in ((64, 256), (256, 256), (128, 1024), (512, 2048)):
            data = DataSpec(weights=w, sampling=sampling,
                            stages=(Stage(start_tokens=args.steps * B * T // 2 + T // 2,
                                          weights=w[::-1] if n > 1 else w),))
            s = MixtureStream(corpus, data, B, T, seed=0, total_tokens=args.steps * B * T)
            s.batch(0)
            t = time.perf_counter()
            for i in range(1, args.steps + 1):
                s.batch(i)
            dt = time.perf_counter() - t
            print(f"{sampling:<12}{f'{B} x {T}':>14}{args.steps * B * T / dt / 1e6:>12.1f} M{dt / args.steps * 1e3:>10.2f}")


if __name__ == "__main__":
    main()
