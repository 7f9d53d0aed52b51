"""The expert GEMMs of one MoE layer against the dense MLP they replace, forward + backward, on one GPU.

An 8-expert top-2 layer of expert width h does the FLOPs of a dense SwiGLU of width 2h, split into
ragged groups. This times, compiled and in bf16, for d / h of the GPU ladder's d 512 and d 768:
  dense        the dense SwiGLU MLP (F.linear) on N tokens
  grouped-sS   model_zoo.moe.experts_grouped on the k*N sorted rows, weight gradient split S ways
  grouped-aten the same with torch's own _grouped_mm autograd (no split; the layer before the split)
  layer-sS     the whole MoELayer (router, sort, gathers, experts, combine), random inputs
under two routings: balanced (every expert k*N/E rows) and skewed (one expert takes half of the
assignments, as seen when a model on random tokens collapses its router), and then each GEMM kind
(forward, input gradient, weight gradient) alone, eagerly.

    python bench/moe_gemm_bench.py --out bench/results/moe_gemm_h100.json     # ~2 min on an H100
    python bench/moe_gemm_bench.py --device cpu --tiny                         # smoke test
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from moe_bench import twin_specs  # noqa: E402  (this script's own directory is on sys.path)

from model_zoo import ModelSpec  # noqa: E402
from model_zoo.moe import Dispatch, MoELayer, _swiglu_rows, experts_grouped, set_impl  # noqa: E402


def counts_for(routing: str, rows: int, experts: int) -> list[int]:
    if routing == "balanced":
        base = [rows // experts] * experts
    else:                                       # skewed: expert 0 takes half, the rest share the other half
        base = [rows // 2] + [rows // 2 // (experts - 1)] * (experts - 1)
    base[-1] += rows - sum(base)
    return base


def dispatch_for(counts: list[int], top_k: int, device) -> Dispatch:
    """A Dispatch whose groups have exactly these sizes (ids laid out so the stable sort yields them)."""
    ids = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    ids = ids[torch.randperm(len(ids))].view(top_k, -1).t().contiguous().to(device)
    return Dispatch(ids, len(counts), 0)


def timer(fn, device, iters: int, warmup: int = 3) -> float:
    """ms per call (CUDA events on GPU)."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / iters
    import time
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t) * 1e3 / iters


def aten_experts(x_sorted, w_gate_up, w_down, d: Dispatch):
    """The expert MLP through torch's own _grouped_mm autograd (bf16 weight casts outside, no split)."""
    wg, wd = w_gate_up.to(x_sorted.dtype), w_down.to(x_sorted.dtype)
    h = torch._grouped_mm(x_sorted, wg.transpose(-2, -1), offs=d.offs)
    return torch._grouped_mm(_swiglu_rows(h), wd.transpose(-2, -1), offs=d.offs)


def bench_width(dense_spec: ModelSpec, moe_spec: ModelSpec, a, device, rows_out: list) -> None:
    """Every variant for one dense shape and its MoE twin; rows appended to rows_out."""
    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32
    maybe_compile = torch.compile if cuda and not a.no_compile else (lambda f, **kw: f)
    E, k = a.experts, a.top_k
    dim, H = dense_spec.d_model, dense_spec.ffn_hidden
    h, N = moe_spec.expert_hidden, a.tokens
    gen = torch.Generator().manual_seed(0)

    def param(*shape, std=0.02):
        return (torch.randn(*shape, generator=gen) * std).to(device).requires_grad_(True)

    # dense SwiGLU of width H = k * h: the same FLOPs per token as k experts of width h
    dense_gu, dense_down = param(2 * H, dim), param(dim, H)
    x_dense = torch.randn(N, dim, generator=gen).to(device, dtype).requires_grad_(True)
    g_dense = torch.randn(N, dim, generator=gen).to(device, dtype)

    def dense_mlp(x):
        return F.linear(_swiglu_rows(F.linear(x, dense_gu.to(x.dtype))), dense_down.to(x.dtype))

    w_gu, w_down = param(E, 2 * h, dim), param(E, dim, h)
    x_sorted = torch.randn(k * N, dim, generator=gen).to(device, dtype).requires_grad_(True)
    g_sorted = torch.randn(k * N, dim, generator=gen).to(device, dtype)

    def fwd_bwd(fn, x, g):
        def call():
            x.grad = None
            fn(x).backward(g)
        return call

    def row(name, routing, ms, **kw):
        r = dict(d=dim, expert_hidden=h, experts=E, top_k=k, tokens=N, name=name, routing=routing, ms=ms, **kw)
        rows_out.append(r)
        print(json.dumps(r), flush=True)

    f_dense = maybe_compile(dense_mlp)
    dense_ms = timer(fwd_bwd(f_dense, x_dense, g_dense), device, a.iters)
    row("dense", "-", dense_ms, x_dense=1.0)
    for routing in ("balanced", "skewed"):
        d = dispatch_for(counts_for(routing, k * N, E), k, device)
        variants = [(f"grouped-s{s}", lambda x, s=s, d=d: experts_grouped(x, w_gu, w_down, d, s))
                    for s in a.splits]
        variants.append(("grouped-aten", lambda x, d=d: aten_experts(x, w_gu, w_down, d)))
        for name, fn in variants:
            torch._dynamo.reset()
            ms = timer(fwd_bwd(maybe_compile(fn), x_sorted, g_sorted), device, a.iters)
            row(name, routing, ms, x_dense=dense_ms / ms)
        # each GEMM kind alone (eager): forward [M, d] x [E, d, 2h], input grad, weight grad (split s)
        wg = w_gu.detach().to(dtype)
        gh = torch.randn(k * N, 2 * h, generator=gen).to(device, dtype)
        xs = x_sorted.detach()
        row("gemm-fwd", routing, timer(partial(torch._grouped_mm, xs, wg.transpose(-2, -1), offs=d.offs),
                                       device, a.iters))
        row("gemm-dgrad", routing, timer(partial(torch._grouped_mm, gh, wg, offs=d.offs), device, a.iters))
        for s in a.splits:
            so = d.offs if s == 1 else d.split_offs(s)
            row(f"gemm-wgrad-s{s}", routing,
                timer(partial(torch._grouped_mm, gh.t(), xs, offs=so), device, a.iters))
    xd, wd = x_dense.detach(), dense_gu.detach().to(dtype)
    gd = torch.randn(N, 2 * H, generator=gen).to(device, dtype)
    row("dense-gemm-fwd", "-", timer(lambda: F.linear(xd, wd), device, a.iters))
    row("dense-gemm-dgrad", "-", timer(lambda: gd @ wd, device, a.iters))
    row("dense-gemm-wgrad", "-", timer(lambda: gd.t() @ xd, device, a.iters))

    # the whole layer on random inputs (router at init: near-balanced), against the dense MLP
    x_layer = torch.randn(N // 1024 or 1, min(N, 1024), dim, generator=gen).to(device).requires_grad_(True)
    g_layer = torch.randn(x_layer.shape, generator=gen).to(device)
    for s in a.splits:
        layer = set_impl(MoELayer(moe_spec).to(device), "grouped", wgrad_splits=s)
        torch._dynamo.reset()
        f = maybe_compile(layer)

        def layer_call(f=f):
            x_layer.grad = None
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                y, aux, _ = f(x_layer)
            (y.float() * g_layer).sum().add(aux).backward()
        ms = timer(layer_call, device, a.iters)
        row(f"layer-s{s}", "init", ms, x_dense=dense_ms / ms)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--layers", type=int, nargs="+", default=[8, 12], help="GPU_RULE depths: d 512, 768")
    p.add_argument("--experts", type=int, default=8)
    p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--tokens", type=int, default=131072, help="tokens per step (the d 512 run's 128 x 1024)")
    p.add_argument("--splits", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    device = torch.device(a.device)
    cuda = device.type == "cuda"
    compile_ = cuda and not a.no_compile
    if a.tiny:
        a.tokens, a.iters, a.splits = 256, 2, [1, 2]
    rows_out = []
    for n_layers in ([1] if a.tiny else a.layers):
        dense_spec, moe_spec = twin_specs(n_layers, 8192, 1024, a.experts, a.top_k, a.tiny)
        bench_width(dense_spec, moe_spec, a, device, rows_out)
    env = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               torch=torch.__version__, compile=compile_,
               device=torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu")
    print(json.dumps(env))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(dict(env=env, rows=rows_out), indent=1))
    return rows_out


if __name__ == "__main__":
    main()
