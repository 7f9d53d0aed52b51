"""Training tokens/s with per-document attention masks on vs off (data.document_mask), same shapes, same
process, compiled bf16 on one GPU; plus the flex path's agreement with the dense-mask path and the
attention work of the batches (attended pairs vs the 128 x 128 tiles flex computes).

    python bench/docmask_bench.py --out DIR [--d 128 384 768] [--budget-s 200]

Each width is measured with the harness' own compiled step (harness.step.LossStep: model, CE, z-loss,
per-domain stats; AdamW, grad clip), off and on in turn from the same initial weights, on the same batches:
random tokens with an EOD after each document, document lengths drawn from a log-normal with median
--doc-median tokens (default 400; web text's documents are a few hundred to a few thousand tokens).
tokens/s is timed over --steps steps after --warmup steps (compilation excluded). Widths that would start
after --budget-s seconds are skipped (and listed), so a call stays inside the lead's 4-minute limit.
Writes DIR/docmask.csv (one row per width and setting), DIR/ratio.txt, DIR/agreement.txt.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import model_zoo  # noqa: E402
from bench.ref_throughput import batch_rule  # noqa: E402
from harness.device import peak_flops  # noqa: E402
from harness.spec import OptimSpec  # noqa: E402
from harness.step import LossStep  # noqa: E402
from model_zoo import counting, docmask  # noqa: E402
from model_zoo.spec import ModelSpec, swiglu_hidden  # noqa: E402

VOCAB, EOD = 8192, 8191


def batches(n: int, B: int, T: int, median: float, seed: int = 0) -> list[torch.Tensor]:
    """n windows [B, T+1] cut from one stream of documents (random tokens, each document ended by EOD)."""
    rng = np.random.default_rng(seed)
    need = n * B * (T + 1)
    out, total = [], 0
    while total < need:
        length = max(1, int(rng.lognormal(np.log(median), 1.0)))
        doc = rng.integers(0, EOD, length)
        out += [doc, [EOD]]
        total += length + 1
    stream = np.concatenate(out)[:need].reshape(n, B, T + 1)
    return [torch.from_numpy(s.astype(np.int64)) for s in stream]


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def step_rate(spec: ModelSpec, data: list[torch.Tensor], eod: int | None, warmup: int, steps: int,
              device: str = "cuda") -> float:
    torch.manual_seed(0)
    model = model_zoo.build(spec).to(device)
    opt = model.configure_optimizer(OptimSpec(), device)
    step = LossStep(model, 1e-4, 1, eod_id=eod)
    step = torch.compile(step) if device == "cuda" else step   # --device cpu: an eager smoke test of this script
    dev = [d.to(device) for d in data]
    dom = torch.zeros_like(dev[0][:, 1:])
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            t = time.perf_counter()
        x = dev[i % len(dev)]
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss, _ = step(x[:, :-1], x[:, 1:], dom)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync(device)
    rate = steps * data[0].shape[0] * spec.seq_len / (time.perf_counter() - t)
    del model, opt, step
    torch._dynamo.reset()
    if device == "cuda":
        torch.cuda.empty_cache()
    return rate


def agreement(spec: ModelSpec, x: torch.Tensor, device: str = "cuda") -> str:
    """Max |flex - dense| of the logits, compiled bf16 flex path vs eager dense-mask SDPA (same weights)."""
    torch.manual_seed(0)
    model = model_zoo.build(spec).to(device).eval()
    x = x[:4, :-1].to(device)
    docs = docmask.document_ids(x, EOD)
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
        dense = model(x, documents=docs)
        flex = (torch.compile(model) if device == "cuda" else model)(x, documents=docs)
        plain = model(x)
    torch._dynamo.reset()
    gap, effect = float((flex - dense).abs().max()), float((dense - plain).abs().max())
    # bf16 logits of two kernels differ by rounding; a gap of the size of the mask's own effect is a wrong result
    verdict = "OK" if gap < max(0.25 * effect, 0.05) else "MISMATCH: the compiled flex path does not compute the dense mask's result"
    return (f"d={spec.d_model}: max |flex - dense| {gap:.3g}, max |masked - unmasked| {effect:.3g} (logits, bf16): "
            f"{verdict}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--d", type=int, nargs="*", default=[128, 384, 768])
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--doc-median", type=float, default=400)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--budget-s", type=float, default=200)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: a smoke test of this script")
    p.add_argument("--batch", type=int, help="sequences per step (default: bench/ref_throughput.py's rule)")
    p.add_argument("--flex", action="store_true", help="also the flex path (its agreement check and its speed), "
                   "after the others: a crash there leaves the process's CUDA context unusable")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    peak = peak_flops(torch.device(a.device)) if a.device == "cuda" else None
    name = torch.cuda.get_device_name() if a.device == "cuda" else "cpu"
    rows, skipped, notes = [], [], []
    for d in a.d:
        if time.perf_counter() - t0 > a.budget_s:
            skipped.append(d)
            continue
        L = d // 64
        spec = ModelSpec(d_model=d, n_layers=L, n_heads=L, ffn_hidden=swiglu_hidden(d), vocab_size=VOCAB,
                         seq_len=a.seq)
        B = a.batch or batch_rule(d, a.seq)
        data = batches(4, B, a.seq, a.doc_median)
        docs = docmask.document_ids(data[0][:, :-1], EOD).numpy()
        pairs, tiles = counting.attention_pairs(docs), counting.block_pairs(docs)
        causal = B * a.seq * (a.seq + 1) // 2
        tokens = B * a.seq
        flops = {"off": counting.training_flops(spec, tokens, causal), "on": counting.training_flops(spec, tokens, pairs)}
        try:
            if a.flex and d == a.d[0]:
                notes.append(agreement(spec, data[0], a.device))
            for mode, eod in (("off", None), ("on_dense", EOD)) + ((("on", EOD),) if a.flex else ()):
                docmask.USE_FLEX = mode == "on"   # on_dense: compiled SDPA with the boolean mask, no flex
                rate = step_rate(spec, data, eod, a.warmup, a.steps, a.device)
                docmask.USE_FLEX = False
                rows.append(dict(device=name, d=d, layers=L, batch=B, seq=a.seq, document_mask=mode, tokens_per_s=rate,
                                 flops_per_token_exact=flops[mode[:3].rstrip("_")] / tokens,
                                 mfu_exact=rate * flops[mode[:3].rstrip("_")] / tokens / peak if peak else None,
                                 attention_pair_frac=(pairs if mode != "off" else causal) / causal,
                                 flex_tile_pair_frac=tiles / causal if mode == "on" else None,
                                 doc_median=a.doc_median, torch=torch.__version__,
                                 date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
                print(rows[-1], flush=True)
        except Exception as e:   # report and go on: the lead's run should still return the other widths
            notes.append(f"d={d}: {type(e).__name__}: {e}")
            print(notes[-1], flush=True)
        write(out, rows, a, name, skipped, notes)   # after every width: a call cut short keeps what it measured
    print((out / "ratio.txt").read_text())


def write(out: Path, rows: list[dict], a, name: str, skipped: list[int], notes: list[str]) -> None:
    with open(out / "docmask.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["d"])
        w.writeheader()
        w.writerows(rows)
    by = {(r["d"], r["document_mask"]): r for r in rows}
    lines = [f"{name}, torch {torch.__version__}, seq {a.seq}, document median {a.doc_median:g} tokens, "
             f"compiled bf16, {a.steps} timed steps", f"{'d':>5} {'batch':>5} {'off tok/s':>12} {'dense tok/s':>12} "
             f"{'dense/off':>9} {'pairs':>6} {'flex tok/s':>12} {'flex/off':>8} {'tiles':>6}"]
    for d in a.d:
        if (d, "off") in by and (d, "on_dense") in by:
            off, dm, fx = by[d, "off"], by[d, "on_dense"], by.get((d, "on"))
            flex_cols = (f" {fx['tokens_per_s']:>12.4g} {fx['tokens_per_s'] / off['tokens_per_s']:>8.3f} "
                         f"{fx['flex_tile_pair_frac']:>6.3f}") if fx else ""
            lines.append(f"{d:>5} {off['batch']:>5} {off['tokens_per_s']:>12.4g} {dm['tokens_per_s']:>12.4g} "
                         f"{dm['tokens_per_s'] / off['tokens_per_s']:>9.3f} {dm['attention_pair_frac']:>6.3f}{flex_cols}")
    lines.append("target on/off >= 0.95 (on: the dense boolean mask through compiled SDPA, the default; flex "
                 "BlockMask with --flex); pairs: attended pairs / causal pairs; tiles: pairs flex computes / causal")
    lines += notes
    if skipped:
        lines.append(f"skipped (past --budget-s {a.budget_s:g} s): d {skipped}; run them in another call with --d")
    (out / "ratio.txt").write_text("\n".join(lines) + "\n")
    (out / "agreement.txt").write_text("\n".join(notes) + "\n")


if __name__ == "__main__":
    main()
