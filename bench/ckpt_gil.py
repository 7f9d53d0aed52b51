"""How long the checkpoint writer keeps the training thread from running (issue 12 item 1).

    python bench/ckpt_gil.py [--mb 200] [--repeats 3]

harness.checkpoint.Checkpoints(background=True) writes on a thread; while it serialises, the training thread
needs the GIL to launch the next step's kernels, and on a GPU whose queue holds only a few steps a long hold
starves it. This saves a model-and-Adam-sized state of CPU tensors (--mb, in tensors of 1-16 MB as a model's)
through the real class while the main thread runs a fixed Python loop, and reports the loop's gaps: the longest,
the seconds lost in gaps over 2 ms, and the loop's speed against running alone.
"""
import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.checkpoint import Checkpoints  # noqa: E402


def state_of(mb: float) -> dict:
    g = torch.Generator().manual_seed(0)
    sizes = [(1 << 18) * (1 + i % 16) for i in range(4096)]   # 1-16 MB each, as a model's matrices
    out, total = {}, 0
    for i, n in enumerate(sizes):
        if total + n * 4 > mb * 2**20:
            break
        out[f"t{i}"] = torch.randn(n, generator=g)
        total += n * 4
    return {"model": out, "step": 1}


def loop_while(busy) -> tuple[int, list[float]]:
    gaps, last, n = [], time.perf_counter(), 0
    while busy():
        sum(range(300))
        now = time.perf_counter()
        gaps.append(now - last)
        last, n = now, n + 1
    return n, gaps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mb", type=float, default=200)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    state = state_of(a.mb)
    t0 = time.perf_counter()
    n_alone, _ = loop_while(lambda: time.perf_counter() - t0 < 0.5)
    rate_alone = n_alone / 0.5
    with tempfile.TemporaryDirectory() as d:
        ck = Checkpoints(Path(d), keep=2, background=True)
        for r in range(a.repeats):
            ck.save(r + 1, state)   # the host copy on this thread (CPU tensors: a copy), then the write queued
            t = time.perf_counter()
            writing = threading.Event()
            threading.Thread(target=lambda done=writing: (ck.wait(), done.set()), daemon=True).start()
            n, gaps = loop_while(lambda done=writing: not done.is_set())
            dt = time.perf_counter() - t
            lost = sum(g for g in gaps if g > 0.002)
            print(f"write {dt * 1000:6.0f} ms   longest gap {max(gaps) * 1000:5.1f} ms   in gaps > 2 ms "
                  f"{lost * 1000:5.0f} ms   loop speed {n / dt / rate_alone:.2f} x alone", flush=True)
        ck.close()


if __name__ == "__main__":
    main()
