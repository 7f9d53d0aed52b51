"""MoE training throughput against the dense model with the same active parameters.

For each dense rung (GPU_RULE: d 512 x 8 layers, d 768 x 12 layers; vocab 8192, seq 1024) the MoE twin
replaces every MLP by 8 experts of half the width, top-2 (granularity 2): two active experts are one dense
MLP, so active parameters match up to the router (d * 8 per layer). Measured like bench/model_throughput.py
(torch.compile, bf16 autocast, fused AdamW, the reference batch rule) on windows of real text (--data) or
random ids, for each MoE backend (grouped: torch._grouped_mm; padded: bmm over padded groups; loop:
per-expert loop, run eagerly inside the compiled model; grouped-sS: grouped with S weight-gradient
splits). Then torch.profiler splits one step's device time into kernel classes (routing sort / topk,
gather+scatter of the dispatch, expert GEMMs, the rest) next to the dense step.

GPU (a few minutes per width on an H100; one width per command keeps each under 10 minutes):
    python bench/moe_bench.py --data data/default --save-data sample.npy   # 10M tokens to carry along
    python bench/moe_bench.py --layers 8 --data sample.npy --out bench/results/moe_d512.json
    python bench/moe_bench.py --layers 12 --data sample.npy --out bench/results/moe_d768.json
    python bench/moe_bench.py --show bench/results/moe_d512.json bench/results/moe_d768.json
CPU smoke test (tiny shapes, no compile, fp32):
    python bench/moe_bench.py --device cpu --tiny
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import torch  # noqa: E402

from bench.ref_throughput import batch_rule  # noqa: E402
from harness.spec import OptimSpec  # noqa: E402
from model_zoo import GPU_RULE, ModelSpec, build, count  # noqa: E402
from model_zoo.moe import set_impl  # noqa: E402


def twin_specs(n_layers: int, vocab: int, seq: int, experts: int, top_k: int, tiny: bool):
    if tiny:
        dense = ModelSpec(d_model=64, n_layers=n_layers, n_heads=2, ffn_hidden=128, vocab_size=vocab, seq_len=seq)
    else:
        dense = GPU_RULE.shape(n_layers, vocab_size=vocab, seq_len=seq)
    hidden = dense.ffn_hidden // top_k        # top_k experts of this width = one dense MLP
    moe = ModelSpec(**{**dense.to_dict(), "family": "moe", "n_experts": experts, "top_k": top_k,
                       "expert_hidden": hidden})
    return dense, moe


def token_sampler(spec: ModelSpec, batch: int, device: torch.device, tokens: torch.Tensor | None):
    """() -> (inputs, targets) [batch, seq] on the device: random windows of real text, else random ids.

    Random ids make routing meaningless: with no signal in the tokens a model soon sends most of them to
    one expert (load_max 0.5 at top-2), the worst case for a grouped GEMM. Real text routes by content."""
    seq = spec.seq_len
    if tokens is None:
        def sample():
            x = torch.randint(0, spec.vocab_size, (batch, seq), device=device)
            return x, torch.roll(x, -1, 1)
        return sample
    if int(tokens.max()) >= spec.vocab_size:
        raise SystemExit(f"--data: token id {int(tokens.max())} >= vocab {spec.vocab_size}; pass --vocab")
    tokens = tokens.to(device=device, dtype=torch.long)
    window = torch.arange(seq + 1, device=device)

    def sample():
        rows = tokens[torch.randint(0, len(tokens) - seq - 1, (batch, 1), device=device) + window]
        return rows[:, :-1], rows[:, 1:]
    return sample


def load_tokens(path: Path | None, per_domain: int = 2_000_000) -> torch.Tensor | None:
    """--data as one token array: a corpus directory (the first `per_domain` training tokens of each
    domain, concatenated) or a .npy of ids (such a sample saved with --save-data, to carry to a GPU box)."""
    if path is None:
        return None
    import numpy as np
    if path.is_dir():
        from harness.data.corpus import Corpus
        corpus = Corpus(path)
        ids = np.concatenate([np.asarray(corpus.train(d)[:per_domain]) for d in corpus.domains])
    else:
        ids = np.load(path)
    return torch.from_numpy(ids.astype(np.int64))


def make_step(spec: ModelSpec, impl: str | None, batch: int, device: torch.device, compile_: bool,
              compile_mode: str | None = None, tokens: torch.Tensor | None = None,
              wgrad_splits: int | None = None):
    torch.manual_seed(0)
    model = build(spec).to(device)
    if impl:
        set_impl(model, impl, wgrad_splits)
    opt = model.configure_optimizer(OptimSpec(lr=1e-3, weight_decay=0.0), device.type)
    forward = torch.compile(model, mode=compile_mode) if compile_ else model
    cuda = device.type == "cuda"
    sample = token_sampler(spec, batch, device, tokens)

    def step():
        x, y = sample()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            out = forward(x, y)
            loss = out.ce.mean() + out.aux_loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return out

    return step


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(step, device, tokens_per_step: int, warmup: int, steps: int) -> dict:
    t0 = time.perf_counter()
    for _ in range(warmup):
        out = step()
    sync(device)
    warm_s = time.perf_counter() - t0
    t = time.perf_counter()
    for _ in range(steps):
        out = step()
    sync(device)
    dt = (time.perf_counter() - t) / steps
    row = dict(ms_per_step=dt * 1e3, tokens_per_s=tokens_per_step / dt, warmup_s=warm_s)
    if out.moe_stats:
        load = out.moe_stats["load"].float()
        row["load_max"] = float(load.max())              # largest expert share (1/E when balanced)
        row["load_max_by_layer"] = [round(float(v), 4) for v in load.max(-1).values]
        row["aux"] = float(out.moe_stats["aux"].mean())
    if device.type == "cuda":
        row["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        torch.cuda.reset_peak_memory_stats(device)
    return row


# kernel (GPU) or aten op (CPU) name -> class; first match wins. On an H100 torch's grouped GEMM is a
# CUTLASS kernel over a GroupProblemShape (pointer-array TMA); cuBLAS GEMMs are nvjet/xmma kernels.
CLASSES = [
    ("grouped gemm", ("grouped", "groupproblemshape", "ptrarray", "aten::bmm")),
    ("sort", ("sort", "radix", "searchsorted", "bucketize")),
    ("topk/softmax", ("topk", "softmax", "logsumexp")),
    ("gemm", ("gemm", "nvjet", "xmma", "cutlass", "matmul", "aten::mm", "aten::addmm", "aten::linear")),
    ("attention", ("flash", "fmha", "attention", "sdpa")),
    ("gather/scatter", ("index", "gather", "scatter", "nonzero")),
]
# aten ops whose whole device time (their kernels) is reported as a cross-check of the name classes
OPS = ("aten::_grouped_mm", "aten::sort", "aten::topk", "aten::searchsorted", "aten::mm", "aten::bmm",
       "aten::index", "aten::index_put_", "aten::embedding_dense_backward")


def classify(name: str) -> str:
    low = name.lower()
    for cls, keys in CLASSES:
        if any(k in low for k in keys):
            return cls
    return "other"


def profile(step, device, steps: int = 3) -> dict:
    """ms per step by kernel class: device kernels on GPU, aten ops (self time) on CPU."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
    cuda = device.type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch_profile(activities=acts) as prof:
        for _ in range(steps):
            step()
        sync(device)
    by_class, top, ops = defaultdict(float), defaultdict(float), {}
    for ev in prof.key_averages():
        if cuda:
            if ev.key in OPS:
                ops[ev.key] = ev.device_time_total / 1e3 / steps
            if ev.device_type != DeviceType.CUDA:      # kernels only: CPU ops would count them twice
                continue
            us = ev.self_device_time_total
        else:
            if not ev.key.startswith("aten::"):
                continue
            us = ev.self_cpu_time_total
        by_class[classify(ev.key)] += us / 1e3 / steps
        top[ev.key[:120]] += us / 1e3 / steps
    ms = dict(sorted(by_class.items(), key=lambda kv: -kv[1]))
    ms["total"] = sum(by_class.values())
    return {"ms_per_step": ms, "aten_ops_ms": ops, "top": dict(sorted(top.items(), key=lambda kv: -kv[1])[:15])}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="CPU smoke shapes: d 64, seq 64, vocab 256, 4 sequences")
    p.add_argument("--layers", type=int, nargs="+", help="GPU_RULE depths (default 8 12: d 512 and 768)")
    p.add_argument("--impls", nargs="+", default=["grouped", "loop"],
                   help="MoE backends: grouped, padded, loop; grouped-sS forces S weight-gradient splits")
    p.add_argument("--data", type=Path, help="real tokens to train on: a corpus dir (data/default) or a .npy of "
                   "ids (default: random ids)")
    p.add_argument("--save-data", type=Path, help="write --data's token sample to this .npy and exit")
    p.add_argument("--experts", type=int, default=8)
    p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--batch", type=int, help="sequences per step (default: the reference's rule)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--compile-mode", help="torch.compile mode, e.g. max-autotune-no-cudagraphs (default: default)")
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--out", type=Path, help="JSON file for all rows")
    p.add_argument("--show", type=Path, nargs="+", help="print the table of saved JSON files and exit")
    a = p.parse_args(argv)
    if a.show:
        reports = [json.loads(f.read_text()) for f in a.show]
        report = dict(env=reports[0]["env"], rows=[r for rep in reports for r in rep["rows"]])
        print_table(report)
        return report
    device = torch.device(a.device)
    if a.tiny:
        a.seq, a.batch, a.steps, a.warmup = 64, a.batch or 4, min(a.steps, 3), 1
        a.vocab = a.vocab if a.data else 256
        a.layers = a.layers or [2]
    layers = a.layers or [8, 12]
    if bad := [i for i in a.impls if i.split("-s")[0] not in ("grouped", "padded", "loop")
               or ("-s" in i and not i.split("-s")[1].isdigit())]:
        p.error(f"--impls {bad}: use grouped, padded, loop or grouped-s<splits>")
    data_tokens = load_tokens(a.data)
    if a.save_data:
        import numpy as np
        np.save(a.save_data, data_tokens.numpy().astype(np.uint16 if a.vocab <= 65536 else np.uint32))
        print(f"wrote {len(data_tokens):,} tokens to {a.save_data}")
        return None
    compile_ = not a.no_compile and device.type == "cuda"
    env = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               torch=torch.__version__, host=platform.node(), compile=compile_, compile_mode=a.compile_mode,
               data=str(a.data) if a.data else "random ids",
               device=torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu")
    rows = []
    for n_layers in layers:
        dense, moe = twin_specs(n_layers, a.vocab, a.seq, a.experts, a.top_k, a.tiny)
        batch = a.batch or batch_rule(dense.d_model, a.seq)
        tokens = batch * a.seq
        runs = [("dense", dense, None)] + [(f"moe-{impl}", moe, impl) for impl in a.impls]
        dense_tps = None
        for name, spec, impl in runs:
            splits = int(impl.split("-s")[1]) if impl and "-s" in impl else None
            step = make_step(spec, impl and impl.split("-")[0], batch, device, compile_, a.compile_mode,
                             data_tokens, splits)
            r = measure(step, device, tokens, a.warmup, a.steps)
            c = count(spec)
            dense_tps = dense_tps or r["tokens_per_s"]
            r.update(model=name, d=spec.d_model, layers=spec.n_layers, batch=batch, seq=a.seq,
                     params_active_nonembedding=c.params_active_nonembedding,
                     params_nonembedding=c.params_nonembedding, flops_per_token=c.flops_per_token,
                     ratio_vs_dense=r["tokens_per_s"] / dense_tps)
            if not a.no_profile and (impl is None or impl.startswith("grouped")):
                r["profile"] = profile(step, device)
            rows.append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "profile"}), flush=True)
            del step
            if device.type == "cuda":
                torch.cuda.empty_cache()
    report = dict(env=env, rows=rows)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(report, indent=1))
    print_table(report)
    return report


def print_table(report: dict) -> None:
    env = report["env"]
    print(f"\n{env['device']}  torch {env['torch']}  compile={env['compile']}  {env['date']}")
    print(f"{'d':>5} {'L':>3} {'model':<12} {'N_active':>10} {'tok/s':>11} {'x dense':>8} {'ms/step':>9}")
    for r in report["rows"]:
        print(f"{r['d']:>5} {r['layers']:>3} {r['model']:<12} {r['params_active_nonembedding']:>10,} "
              f"{r['tokens_per_s']:>11,.0f} {r['ratio_vs_dense']:>8.2f} {r['ms_per_step']:>9.1f}")
    profiled = [r for r in report["rows"] if "profile" in r]
    if profiled:
        classes = sorted({k for r in profiled for k in r["profile"]["ms_per_step"]} - {"total"})
        print(f"\nprofiled ms/step by kernel class\n{'d':>5} {'model':<12} "
              + " ".join(f"{c:>14}" for c in classes) + f" {'total':>9}")
        by_d = defaultdict(dict)
        for r in profiled:
            by_d[r["d"]][r["model"]] = r["profile"]["ms_per_step"]
        for d, models in by_d.items():
            if "dense" in models and "moe-grouped" in models:
                models["moe - dense"] = {c: models["moe-grouped"].get(c, 0.0) - models["dense"].get(c, 0.0)
                                         for c in [*classes, "total"]}
            for model, ms in models.items():
                print(f"{d:>5} {model:<12} " + " ".join(f"{ms.get(c, 0.0):>14.2f}" for c in classes)
                      + f" {ms['total']:>9.2f}")


if __name__ == "__main__":
    main()
