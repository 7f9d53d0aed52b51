"""CPU time of the CPU demo's per-run work, by ladder size: one training step and one held-out eval.

    python bench/demo_step.py [--steps 60] [--depths 1 2 3 4 5] [--eval-batch 4]

A step is what the trainer does on the eager fp32 CPU path for the demo grid (conf/grid/demo.yaml): the loss step
(model + head + CE + z-loss + per-domain statistics) forward and backward on 4 sequences of 128 tokens, gradient
clipping, fused AdamW. An eval is harness.evaluate.HeldoutSet over 4 domains x 8192 tokens, at --eval-batch
sequences a call (the trainer's choice by default; 4 is what it used before evaluating a domain per call). Times are
process CPU time (time.process_time), one thread, after 5 warm-up steps, so that a busy machine inflates them less
than wall time. Run it from another checkout (PYTHONPATH=<it>) to compare two versions of the step path.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path.cwd()))

import model_zoo  # noqa: E402
from harness.spec import OptimSpec  # noqa: E402
from harness.step import LossStep  # noqa: E402
from model_zoo.spec import LadderRule  # noqa: E402

VOCAB, SEQ, BATCH, DOMAINS, HELDOUT = 2048, 128, 4, 4, 8192
DEMO_RULE = LadderRule(aspect=8, head_dim=8, ffn_multiple=8)   # conf/model/cpu.yaml's rule


def cpu_ms(fn, n: int) -> float:
    t = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t) / n * 1e3


def step_fn(spec):
    torch.manual_seed(0)
    model = model_zoo.build(spec)
    step = LossStep(model, 1e-4, 3)
    opt = model.configure_optimizer(OptimSpec(), "cpu")
    x = torch.randint(0, VOCAB, (BATCH, SEQ + 1))
    dom = torch.randint(0, 3, (BATCH, SEQ))

    def fn():
        loss, _ = step(x[:, :-1], x[:, 1:], dom)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return model, fn


def eval_fn(model, batch: int):
    gen = torch.Generator().manual_seed(1)
    sets = [torch.randint(0, VOCAB, (HELDOUT // SEQ, SEQ + 1), generator=gen) for _ in range(DOMAINS)]

    @torch.no_grad()
    def fn():   # HeldoutSet.evaluate's loop: the model's per-token CE, summed per domain
        model.eval()
        for xs in sets:
            total = torch.zeros((), dtype=torch.float64)
            for i in range(0, len(xs), batch):
                total += model(xs[i:i + batch, :-1], xs[i:i + batch, 1:]).ce.double().sum()
        model.train()
    return fn


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--evals", type=int, default=3)
    p.add_argument("--depths", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--eval-batch", type=int, default=2**16 // SEQ, help="sequences per eval call")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {Path.cwd()}; CPU ms (process time), one thread")
    print(f"{'model':<10}{'step ms':>9}{'eval ms':>9}")
    for depth in a.depths:
        spec = DEMO_RULE.shape(depth, vocab_size=VOCAB, seq_len=SEQ)
        model, step = step_fn(spec)
        for _ in range(5):
            step()
        ms = np.median([cpu_ms(step, a.steps // 3) for _ in range(3)])
        ev = eval_fn(model, a.eval_batch)
        ev()
        ems = np.median([cpu_ms(ev, 1) for _ in range(a.evals)])
        print(f"L{depth}-d{spec.d_model:<6}{ms:>9.2f}{ems:>9.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
