"""Training throughput of model_zoo's transformer alone, measured exactly as bench/ref_throughput.py
measures its reference model (random tokens, torch.compile, bf16 autocast, fused AdamW, same batch
rule, same step count), so that the two print comparable JSON lines: the model's share of the gap
between the harness (bench/throughput.py) and the reference. Run both in one job:

    python bench/ref_throughput.py --d 512 --layers 8 --heads 8
    python bench/model_throughput.py --layers 8          # GPU_RULE rung L8-d512 (same shape)

The loss here is the mean CE only (no z-loss), as in the reference. MFU uses count(spec).flops_per_token.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.ref_throughput import batch_rule  # noqa: E402
from harness.device import peak_flops  # noqa: E402
from harness.spec import OptimSpec  # noqa: E402
from model_zoo import GPU_RULE, build, count  # noqa: E402


def measure(spec, batch: int, steps: int, compile_: bool) -> dict:
    model = build(spec).cuda()
    opt = model.configure_optimizer(OptimSpec(lr=1e-3, weight_decay=0.0), "cuda")
    forward = torch.compile(model) if compile_ else model

    def step():
        x = torch.randint(0, spec.vocab_size, (batch, spec.seq_len), device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = forward(x, torch.roll(x, -1, 1)).ce.mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t) / steps
    c = count(spec)
    return dict(d=spec.d_model, layers=spec.n_layers, heads=spec.n_heads, seq=spec.seq_len, batch=batch,
                n_nonemb=c.params_nonembedding, tokens_per_s=batch * spec.seq_len / dt,
                flops_per_token=c.flops_per_token, ms_per_step=dt * 1e3)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, nargs="+", default=[2, 3, 4, 6, 8, 10, 12], help="GPU_RULE depths")
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--batch", type=int, help="sequences per step (default: the reference's rule)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--peak", type=float, help="FLOP/s for MFU (default: harness.device's figure for this GPU)")
    a = p.parse_args(argv)
    peak = a.peak or peak_flops(torch.device("cuda"))
    for n_layers in a.layers:
        spec = GPU_RULE.shape(n_layers, vocab_size=a.vocab, seq_len=a.seq)
        r = measure(spec, a.batch or batch_rule(spec.d_model, a.seq), a.steps, not a.no_compile)
        r["mfu"] = r["tokens_per_s"] * r["flops_per_token"] / peak if peak else None
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
