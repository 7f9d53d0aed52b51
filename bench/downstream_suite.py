"""Time the downstream suite per checkpoint: building the items, the full suite (first call: tokenizing included;
again: tokens memoised, as at a run's later evals), the in-training subset, the prompt battery; check that the scores
do not depend on the batching (the subset scored again one row per forward) and that KV-cache decoding gives the
tokens of a full forward per token, faster.

    python bench/downstream_suite.py [--corpus data/demo] [--device cpu] [--shapes 4x32,8x64] [--seq-len 128]
                                     [--items 500] [--subset 50] [--out DIR]

Models are randomly initialised model_zoo Transformers (scoring costs the same FLOPs whatever the weights), shapes
given as <layers>x<d_model> with head dim 8 on CPU (the demo ladder) or 64 on CUDA. Needs no lm-eval: the suite runs
through harness.scoring. Prints a table and, with --out, writes downstream_suite.csv there.
"""
from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import torch

import model_zoo
from harness.downstream import as_corpus, evaluate, prepare, samples
from harness.scoring import Scorer
from harness.spec import RunSpec
from model_zoo.spec import ModelSpec

CPU_SECONDS: dict[str, float] = {}   # process CPU time per timed call (all threads): what a shared, loaded CPU
                                     # machine can still measure when wall time mostly waits for other jobs


def timed(fn, name: str = ""):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    if name:
        CPU_SECONDS[name] = round(time.process_time() - c, 2)
    return out, time.perf_counter() - t


def measure(shape: str, corpus, device: torch.device, a) -> dict:
    from harness.downstream import load_tokenizer
    L, d = (int(x) for x in shape.split("x"))
    head_dim = 64 if device.type == "cuda" else 8
    spec = RunSpec(model=ModelSpec(d_model=d, n_layers=L, n_heads=max(1, d // head_dim), ffn_hidden=8 * (d // 3),
                                   vocab_size=corpus.vocab_size, seq_len=a.seq_len),
                   tokens=a.seq_len, batch_tokens=a.seq_len)
    torch.manual_seed(0)
    model = model_zoo.build(spec.model).to(device).eval()
    suite, build_s = timed(lambda: prepare(corpus, spec, ("suite",), a.items), "build")
    evaluate(model, corpus, spec, ("arith",), device, suite=suite.subset(4))   # warm-up (kernels, allocator)

    def full_suite():
        return evaluate(model, corpus, spec, ("suite",), device, a.items, a.max_batch_tokens, suite=suite)
    scores, full_s = timed(full_suite, "full_suite")
    again, again_s = timed(full_suite, "full_suite_again")
    subset, subset_s = timed(lambda: evaluate(model, corpus, spec, ("suite",), device, suite=suite.subset(a.subset)),
                             "subset")
    # batching must not change a score: the subset again in batches of seq_len tokens (other batch-mates, other
    # widths; bf16 on CUDA rounds differently with the shapes)
    small = evaluate(model, corpus, spec, ("suite",), device, max_batch_tokens=a.seq_len, suite=suite.subset(a.subset))
    bpb_diff = max(abs(subset[k] - small[k]) for k in subset if k.startswith("bpb_"))
    acc_diff = max(abs(subset[k] - small[k]) for k in subset if k.startswith("acc_"))
    _, battery_s = timed(lambda: samples(model, corpus, spec, device, a.battery_tokens), "battery")
    # the KV cache against a full forward per token, on the arithmetic exact-match prompts
    sc = Scorer(model, load_tokenizer(corpus), corpus.eod_id, a.seq_len, device)
    prompts = [it["context"] for it in suite.items["arith_em"][:64]]
    cached, cache_s = timed(lambda: sc.generate(prompts, (), 16))
    tok = load_tokenizer(corpus)
    with torch.inference_mode(), sc.autocast():
        full, nocache_s = timed(lambda: [sc._generate_uncached([corpus.eod_id] + sc.encode(c), 16,
                                                               lambda i, n: n[-1] == corpus.eod_id) for c in prompts])
    same = [c == tok.decode(f[:-1] if f[-1] == corpus.eod_id else f) for c, f in zip(cached, full)]
    return {"shape": f"L{L}-d{d}", "params": sum(p.numel() for p in model.parameters()),
            "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
            "tasks": len(suite.items), "items": sum(len(v) for v in suite.items.values()),
            "build_s": round(build_s, 2), "full_suite_s": round(full_s, 2), "full_suite_again_s": round(again_s, 2),
            "items_per_s": round(sum(len(v) for v in suite.items.values()) / again_s),
            "deterministic": again == scores, "max_bpb_diff_small_batches": f"{bpb_diff:.2e}",
            "max_acc_diff_small_batches": round(acc_diff, 4), f"subset{a.subset}_s": round(subset_s, 2),
            "battery_s": round(battery_s, 2), "gen64x16_kv_s": round(cache_s, 3),
            "gen64x16_nocache_s": round(nocache_s, 3), "kv_same_as_full_forward": f"{sum(same)}/{len(same)}",
            "acc_arith": round(scores["acc_arith"], 3),
            **({f"{k}_cpu_s": v for k, v in CPU_SECONDS.items()} if device.type == "cpu" else {}),
            "suite": suite.fingerprint}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default="data/demo")
    p.add_argument("--device", default="cpu")
    p.add_argument("--shapes", default="4x32,8x64", help="comma-separated <layers>x<d_model>")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--items", type=int, default=500)
    p.add_argument("--subset", type=int, default=50)
    p.add_argument("--battery-tokens", type=int, default=32)
    p.add_argument("--max-batch-tokens", type=int, default=None, help="default: harness.scoring's per device")
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    corpus = as_corpus(a.corpus)
    rows = []
    for shape in a.shapes.split(","):
        rows.append(measure(shape, corpus, torch.device(a.device), a))
        print(rows[-1], flush=True)
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        with open(a.out / "downstream_suite.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
