"""Training throughput of the scalemix harness itself: harness.train.run() end to end, with everything a
real run carries (MixtureStream over a synthetic corpus, per-domain loss, z-loss, grad clipping,
metrics logging, a final eval and checkpoint), on the reference trainer's shapes, as JSON lines.

    python bench/throughput.py                          # GPU: the reference ladder d 128..768, seq 1024
    python bench/throughput.py --device cpu             # CPU: CPU_RULE depths 1..4 at seq 128 and 256,
                                                        #   each also as a bare eager loop (the CPU yardstick)
    python bench/throughput.py --compare ref.jsonl ours.jsonl   # ratio table (bench/gpu_throughput.sh)

tokens_per_s is the run's steady-state rate as result.json reports it: tokens over time of every
log window but the first (which holds compilation), eval and checkpoint time excluded. The reference
(bench/ref_throughput.py) times 30 steps after 5 warm-up steps; here 40 steps with
log_every 5 time 35 steps after the first 5.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.ref_throughput import LADDER, batch_rule  # noqa: E402
from harness.data.synthetic import make_synthetic_corpus  # noqa: E402
from harness.spec import RunSpec, Runtime  # noqa: E402
from harness.train import run  # noqa: E402
from model_zoo import count  # noqa: E402
from model_zoo.spec import CPU_RULE, ModelSpec, swiglu_hidden  # noqa: E402


def machine() -> str:
    if torch.cuda.is_available():
        return f"{platform.node()}: {torch.cuda.get_device_name()}"
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return f"{platform.node()}: {os.cpu_count()} x {cpu}, load average {os.getloadavg()[0]:.1f}"


def measure(model: ModelSpec, batch: int, steps: int, corpus: Path, rt: Runtime, out: Path) -> dict:
    T = model.seq_len
    spec = RunSpec.from_dict({"model": model.to_dict(), "tokens": steps * batch * T, "batch_tokens": batch * T,
                              "data": {"corpus": str(corpus)},
                              "eval": {"every_steps": steps, "heldout_tokens": 4 * T + 1}})
    t = time.perf_counter()
    r = run(spec, rt, out / spec.run_id)
    c = count(model)
    n_ref = c.params_nonembedding + c.params_head  # the reference counts the head in its N
    row = dict(d=model.d_model, layers=model.n_layers, heads=model.n_heads, seq=T, batch=batch, vocab=model.vocab_size,
               n_nonemb=c.params_nonembedding, tokens_per_s=r["tokens_per_s"], mfu=r["mfu"],
               ms_per_step=batch * T / r["tokens_per_s"] * 1e3, flops_per_token=c.flops_per_token,
               flops_per_token_ref=6 * n_ref + 6 * model.n_layers * model.d_model * T,
               final_train_loss=r["train_loss"], wall_s=round(time.perf_counter() - t, 1), device=r["device"],
               compile=rt.compile, torch=torch.__version__, machine=machine(),
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    # what a run costs besides its steady-state steps (startup, compile, first and final eval, checkpoint):
    # sweeps/cost.py adds it to each run's time estimate
    row["startup_s"] = round(max(0.0, row["wall_s"] - spec.tokens / r["tokens_per_s"]), 1)
    if r["mfu"] is not None:   # the same rate under the reference's FLOP convention, for a like-for-like MFU
        row["mfu_ref_convention"] = r["mfu"] * row["flops_per_token_ref"] / c.flops_per_token
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    torch._dynamo.reset()  # each shape compiles afresh, as in its own process
    return row


def bare_loop(model: ModelSpec, batch: int, steps: int, threads: int) -> float:
    """tokens/s of a bare eager loop (model, AdamW; random tokens, no stream, clip, stats or logging),
    the CPU yardstick for the harness' own overhead. Timed like the harness: all steps but the first 5."""
    import model_zoo
    from harness.spec import OptimSpec
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    m = model_zoo.build(model)
    opt = m.configure_optimizer(OptimSpec(), "cpu")
    x = torch.randint(0, model.vocab_size, (batch, model.seq_len))
    y = torch.roll(x, -1, 1)
    for i in range(steps):
        if i == 5:
            t = time.perf_counter()
        m(x, y).ce.mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return batch * model.seq_len * (steps - 5) / (time.perf_counter() - t)


def shapes(a) -> list[tuple[ModelSpec, int]]:
    if a.device == "cpu":
        out = []
        for seq in a.seqs or [128, 256]:
            for depth in a.depths or [1, 2, 3, 4]:
                m = CPU_RULE.shape(depth, vocab_size=a.vocab or 2048, seq_len=seq)
                out.append((m, a.batch or 8))
        return out
    ladder = [(d, L, h) for d, L, h in LADDER if not a.d or d in a.d]
    return [(ModelSpec(d_model=d, n_layers=L, n_heads=h, ffn_hidden=swiglu_hidden(d), vocab_size=a.vocab or 8192,
                       seq_len=a.seq), a.batch or batch_rule(d, a.seq)) for d, L, h in ladder]


def compare(ref_file: str, ours_file: str) -> None:
    """A table of harness / reference tokens/s, matched by (d, seq, batch)."""
    load = lambda f: {(r["d"], r["seq"], r["batch"]): r
                      for r in map(json.loads, filter(str.strip, Path(f).read_text().splitlines()))}
    ref, ours = load(ref_file), load(ours_file)
    print(f"{'d':>5} {'L':>3} {'batch':>5} {'ref tok/s':>12} {'harness tok/s':>14} {'ratio':>6} {'ref MFU':>8} {'MFU':>6}")
    worst = float("inf")
    for key in sorted(ref):
        if key not in ours:
            continue
        r, o = ref[key], ours[key]
        ratio = o["tokens_per_s"] / r["tokens_per_s"]
        worst = min(worst, ratio)
        print(f"{key[0]:>5} {r['layers']:>3} {key[2]:>5} {r['tokens_per_s']:>12.4g} {o['tokens_per_s']:>14.4g} "
              f"{ratio:>6.3f} {r.get('mfu') or 0:>8.3f} {o['mfu'] or 0:>6.3f}")
    print(f"worst ratio {worst:.3f} (target >= 1.0)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--d", type=int, nargs="*", help="GPU: only these widths of the ladder")
    p.add_argument("--depths", type=int, nargs="*", help="CPU: CPU_RULE depths (default 1 2 3 4)")
    p.add_argument("--seqs", type=int, nargs="*", help="CPU: sequence lengths (default 128 256)")
    p.add_argument("--seq", type=int, default=1024, help="GPU sequence length")
    p.add_argument("--vocab", type=int, help="default 8192 (GPU), 2048 (CPU, as conf/model/cpu.yaml)")
    p.add_argument("--batch", type=int, help="sequences per step (default: the reference rule on GPU; 8 on CPU)")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    p.add_argument("--compile", default="auto", choices=["auto", "on", "off"])
    p.add_argument("--compare", nargs=2, metavar=("REF_JSONL", "OURS_JSONL"))
    p.add_argument("--out", help="also append the rows to this JSON-lines file (e.g. bench/results/throughput.jsonl, "
                                 "the table sweeps/cost.py estimates run times from)")
    a = p.parse_args()
    if a.compare:
        return compare(*a.compare)
    os.environ.setdefault("WANDB_MODE", "disabled")
    rt = Runtime(device=a.device, compile=a.compile, log_every=5, checkpoint_every=a.steps, wandb="disabled",
                 progress=False, threads=a.threads)
    with tempfile.TemporaryDirectory(prefix="scalemix-bench-") as tmp:
        todo = shapes(a)
        vocab = todo[0][0].vocab_size
        corpus = make_synthetic_corpus(Path(tmp) / "syn", vocab_size=vocab, train_tokens=300_000,
                                       heldout_tokens=max(20_000, 8 * a.seq))
        for model, batch in todo:
            row = measure(model, batch, a.steps, corpus, rt, Path(tmp) / "runs")
            if a.device == "cpu":
                row["bare_tokens_per_s"] = bare_loop(model, batch, a.steps, a.threads)
                row["ratio_to_bare"] = row["tokens_per_s"] / row["bare_tokens_per_s"]
            print(json.dumps(row), flush=True)
            if a.out:
                Path(a.out).parent.mkdir(parents=True, exist_ok=True)
                with open(a.out, "a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
