"""The yardstick for scalemix's training speed: a plain nanoGPT-style decoder (RMSNorm, RoPE, SwiGLU,
SDPA) trained with torch.compile, bf16 autocast and fused AdamW on random tokens, with nothing else.

It imports nothing from scalemix on purpose: it measures what the GPU does for a bare loop, and
bench/gpu_throughput.sh runs it next to the harness (bench/throughput.py) on the same GPU and shapes
and prints the harness / reference tokens/s ratio. Its flops_per_token is 6 N (N: every weight but the
embedding, head included) plus causal attention, 6 L d T.

    python bench/ref_throughput.py                       # the ladder below, one JSON line per shape
    python bench/ref_throughput.py --d 512 --layers 8 --heads 8 --batch 64 --seq 1024
    python bench/ref_throughput.py --procs 4 --d 256 --layers 4 --heads 4 --batch 64   # 4 copies on one GPU
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

# (d_model, layers, heads): 64-wide heads, d_model = 64 * layers (bench/throughput.py's GPU ladder)
LADDER = [(128, 2, 2), (192, 3, 3), (256, 4, 4), (384, 6, 6), (512, 8, 8), (640, 10, 10), (768, 12, 12)]


def rope(x, cos, sin):
    a, b = x.chunk(2, -1)
    return torch.cat((a * cos - b * sin, a * sin + b * cos), -1)


class Block(nn.Module):
    def __init__(self, d: int, h: int):
        super().__init__()
        self.h, hid = h, 256 * ((8 * d // 3 + 255) // 256)   # SwiGLU width 8d/3, rounded up to 256
        self.ln1, self.ln2 = nn.RMSNorm(d), nn.RMSNorm(d)
        self.qkv, self.o = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
        self.up, self.down = nn.Linear(d, 2 * hid, bias=False), nn.Linear(hid, d, bias=False)

    def forward(self, x, cos, sin):
        B, T, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.h, D // self.h).transpose(1, 3).unbind(2)
        y = F.scaled_dot_product_attention(rope(q, cos, sin), rope(k, cos, sin), v, is_causal=True)
        x = x + self.o(y.transpose(1, 2).reshape(B, T, D))
        a, b = self.up(self.ln2(x)).chunk(2, -1)
        return x + self.down(F.silu(a) * b)


class GPT(nn.Module):
    def __init__(self, vocab: int, d: int, layers: int, heads: int, seq: int):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln, self.head = nn.RMSNorm(d), nn.Linear(d, vocab, bias=False)
        f = 1.0 / 10000 ** (torch.arange(0, d // heads, 2).float() / (d // heads))
        ang = torch.outer(torch.arange(seq).float(), f)
        self.register_buffer("cos", ang.cos(), persistent=False)
        self.register_buffer("sin", ang.sin(), persistent=False)

    def forward(self, idx, tgt):
        x = self.emb(idx)
        for b in self.blocks:
            x = b(x, self.cos, self.sin)
        logits = self.head(self.ln(x)).float()
        return F.cross_entropy(logits.view(-1, logits.size(-1)), tgt.view(-1))


def batch_rule(d: int, seq: int) -> int:
    """Sequences per step: 2^18 * 256 / d tokens (fewer sequences for wide models), 8 to 256 of them."""
    return min(256, max(8, 2**18 // seq * 256 // d))


def measure(vocab: int, d: int, layers: int, heads: int, seq: int, batch: int, steps: int, compile_: bool) -> dict:
    m = GPT(vocab, d, layers, heads, seq).cuda()
    n = sum(p.numel() for name, p in m.named_parameters() if not name.startswith("emb"))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, fused=True)
    f = torch.compile(m) if compile_ else m

    def step():
        x = torch.randint(0, vocab, (batch, seq), device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = f(x, torch.roll(x, -1, 1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(5):   # compilation and warm-up, not timed
        step()
    torch.cuda.synchronize()
    barrier = os.environ.get("REF_BARRIER")   # set by --procs: all copies start timing together
    if barrier:
        open(os.path.join(barrier, str(os.getpid())), "w").close()
        while len(os.listdir(barrier)) < int(os.environ["REF_PROCS"]):
            time.sleep(0.01)
    t, done = time.perf_counter(), 0
    while done < steps or (barrier and time.perf_counter() - t < 10):   # copies time a common 10 s window
        step()
        done += 1
        if barrier:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t) / done
    return dict(d=d, layers=layers, heads=heads, seq=seq, batch=batch, n_nonemb=n, tokens_per_s=batch * seq / dt,
                flops_per_token=6 * n + 6 * layers * d * seq, ms_per_step=dt * 1e3)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d", type=int)
    p.add_argument("--layers", type=int)
    p.add_argument("--heads", type=int)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--batch", type=int, help="sequences per step (default: batch_rule)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--procs", type=int, default=1, help="copies trained at once on the same GPU")
    p.add_argument("--peak", type=float, help="peak FLOP/s: adds mfu to each row (bench/gpu_throughput.sh passes "
                                              "harness.device's figure for this GPU)")
    a = p.parse_args(argv)
    if a.d and not (a.layers and a.heads):
        p.error("--d needs --layers and --heads")
    if a.procs > 1:   # aggregate throughput of independent copies sharing one GPU
        child = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--procs", "1"]
        env = dict(os.environ, REF_BARRIER=tempfile.mkdtemp(), REF_PROCS=str(a.procs))
        procs = [subprocess.Popen(child, stdout=subprocess.PIPE, text=True, env=env) for _ in range(a.procs)]
        rows = [json.loads(q.communicate()[0].strip().splitlines()[-1]) for q in procs]
        row = dict(rows[0], procs=a.procs, tokens_per_s=sum(r["tokens_per_s"] for r in rows))
        if a.peak:
            row["mfu"] = row["tokens_per_s"] * row["flops_per_token"] / a.peak
        print(json.dumps(row))
        return
    for d, layers, heads in [(a.d, a.layers, a.heads)] if a.d else LADDER:
        r = measure(a.vocab, d, layers, heads, a.seq, a.batch or batch_rule(d, a.seq), a.steps, not a.no_compile)
        if a.peak:
            r["mfu"] = r["tokens_per_s"] * r["flops_per_token"] / a.peak
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
