"""Per-document attention masks (data.document_mask) on one GPU: masks off vs the dense boolean mask vs flex, one
variant a process, so a crash of one (flex's "illegal memory access", bench/README.md) leaves the others measured.
bench/gpu_docmask.sh runs the whole set in one call; this script is its parts.

    python bench/docmask_bench.py --variant off|dense|flex --d 384 --out DIR [--steps 10] [--warmup 3]
    python bench/docmask_bench.py --agree --out DIR       # compiled flex vs eager dense, fp32, T = 1023
    python bench/docmask_bench.py --table --out DIR       # DIR/*.json -> DIR/ratio.txt, docmask.csv, agreement.txt

--variant: the harness' own compiled step (harness.step.LossStep: model, CE, z-loss, per-domain stats; AdamW,
grad clip) in bf16 from fixed initial weights on fixed batches: random tokens with an EOD after each document,
document lengths log-normal with median --doc-median tokens (web text's documents are a few hundred to a few
thousand tokens). tokens/s over --steps steps after --warmup (compilation excluded); the first step's loss and
gradient norm (before any update: the same weights and batch for every variant) are how the flex and dense
variants are compared in training. --steps 0: compile and warm up only (fills inductor's cache for a later
timed run). Writes DIR/<variant>_d<d>.json.
--agree: a 2-layer d 128 model, 4 rows of 1023 tokens (not a multiple of flex's 128-token tile), fp32 and bf16:
logits and every parameter's gradient of the compiled flex path against the eager dense-mask path, each gap set
against the mask's own effect. The verdict on flex's correctness. Writes DIR/agree.json.
"""
from __future__ import annotations

import argparse
import csv
import json
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
VARIANTS = ("off", "dense", "flex")
# --agree, fp32: the largest logit gap and relative gradient gap that count as the same result
TOL_FP32 = 1e-3


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


def shape(d: int, seq: int) -> ModelSpec:
    L = d // 64
    return ModelSpec(d_model=d, n_layers=L, n_heads=L, ffn_hidden=swiglu_hidden(d), vocab_size=VOCAB, seq_len=seq)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def train(spec: ModelSpec, data: list[torch.Tensor], variant: str, warmup: int, steps: int, device: str) -> dict:
    """The variant's compiled training steps: tokens/s, and the first step's loss and gradient norm."""
    docmask.USE_FLEX = variant == "flex"   # dense: compiled SDPA with the boolean mask
    torch.manual_seed(0)
    model = model_zoo.build(spec).to(device)
    opt = model.configure_optimizer(OptimSpec(), device)
    step = LossStep(model, 1e-4, 1, eod_id=None if variant == "off" else EOD)
    step = torch.compile(step) if device == "cuda" else step   # --device cpu: an eager smoke test of this script
    dev = [x.to(device) for x in data]
    dom = torch.zeros_like(dev[0][:, 1:])
    losses, first_grad_norm, t = [], None, time.perf_counter()
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            t = time.perf_counter()
        x = dev[i % len(dev)]
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss, _ = step(x[:, :-1], x[:, 1:], dom)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i == 0:
            first_grad_norm = float(norm)
        if i == 0 or i == warmup + steps - 1:
            losses.append(float(loss.detach()))
    sync(device)
    seconds = time.perf_counter() - t
    return dict(tokens_per_s=steps * data[0].shape[0] * spec.seq_len / seconds if steps else None,
                first_loss=losses[0], last_loss=losses[-1], first_grad_norm=first_grad_norm,
                peak_mem_gb=torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None)


def variant_main(a) -> None:
    spec = shape(a.d, a.seq)
    B = a.batch or batch_rule(a.d, a.seq)
    data = batches(4, B, a.seq, a.doc_median)
    docs = docmask.document_ids(data[0][:, :-1], EOD).numpy()
    tokens, causal = B * a.seq, B * a.seq * (a.seq + 1) // 2
    pairs = causal if a.variant == "off" else counting.attention_pairs(docs)
    flops_per_token = counting.training_flops(spec, tokens, pairs) / tokens   # exact: the pairs attended
    t0 = time.perf_counter()
    got = train(spec, data, a.variant, a.warmup, a.steps, a.device)
    peak = peak_flops(torch.device(a.device)) if a.device == "cuda" else None
    row = dict(variant=a.variant, d=a.d, layers=spec.n_layers, batch=B, seq=a.seq, **got,
               flops_per_token_exact=flops_per_token,
               mfu_exact=got["tokens_per_s"] * flops_per_token / peak if peak and got["tokens_per_s"] else None,
               attention_pair_frac=pairs / causal,
               flex_tile_pair_frac=counting.block_pairs(docs) / causal if a.variant == "flex" else None,
               wall_s=time.perf_counter() - t0, steps=a.steps, warmup=a.warmup, doc_median=a.doc_median,
               device=torch.cuda.get_device_name() if a.device == "cuda" else "cpu", torch=torch.__version__,
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    print(json.dumps(row), flush=True)
    if a.steps:
        (Path(a.out) / f"{a.variant}_d{a.d}.json").write_text(json.dumps(row, indent=1) + "\n")


def agree_main(a) -> None:
    """Compiled flex against eager dense at T = 1023, fp32 and bf16: logits and every parameter's gradient.

    Each gap is set against the mask's own effect (dense vs no mask on the same weights): a flex path that got the
    mask wrong differs from dense by about that much. fp32 must also agree to TOL_FP32 absolute (logits) and
    relative (gradients, to each tensor's largest entry).
    """
    device, T = a.device, 1023
    torch.manual_seed(0)
    model = model_zoo.build(shape(128, a.seq)).to(device)
    x = batches(1, 4, T, a.doc_median, seed=1)[0][:, :T].to(device)
    docs = docmask.document_ids(x, EOD)
    weight = torch.randn(4, T, VOCAB, generator=torch.Generator().manual_seed(0)).to(device)
    compiled = torch.compile(model) if device == "cuda" else model
    docmask.USE_FLEX = True   # compiled on CUDA: flex; eager: the dense mask (wants_flex needs compiling)

    def run(fn, dtype, **kw):
        model.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bf16"):
            logits = fn(x, **kw).float()
        (logits * weight).sum().backward()
        return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    def gaps(u, v):
        return (float((u[0] - v[0]).abs().max()),
                max(float((u[1][n] - g).abs().max() / g.abs().max().clamp(min=1e-12)) for n, g in v[1].items()))

    rows = []
    for dtype in ("fp32", "bf16"):
        flex, dense, plain = run(compiled, dtype, documents=docs), run(model, dtype, documents=docs), run(model, dtype)
        (logit_gap, grad_gap), (logit_effect, grad_effect) = gaps(flex, dense), gaps(dense, plain)
        ok = logit_gap < 0.1 * logit_effect and grad_gap < 0.1 * grad_effect
        if dtype == "fp32":
            ok = ok and logit_gap < TOL_FP32 and grad_gap < TOL_FP32
        rows.append(dict(dtype=dtype, seq=T, rows=4, d=128, logits_max_abs_gap=logit_gap,
                         logits_mask_effect=logit_effect, grad_max_rel_gap=grad_gap, grad_mask_effect=grad_effect,
                         verdict="OK" if ok else "MISMATCH"))
        print(json.dumps(rows[-1]), flush=True)
    (Path(a.out) / "agree.json").write_text(json.dumps(rows, indent=1) + "\n")


def table_main(a) -> None:
    out = Path(a.out)
    rows = {(r["d"], r["variant"]): r for r in (json.loads(f.read_text()) for f in sorted(out.glob("*_d*.json")))}
    ds = sorted({d for d, _ in rows})
    with open(out / "docmask.csv", "w", newline="") as f:
        fields = sorted({k for r in rows.values() for k in r}, key=lambda k: (k not in ("variant", "d"), k))
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows.values())
    first = next(iter(rows.values()), {})
    lines = [f"{first.get('device', '?')}, torch {first.get('torch', '?')}, seq {first.get('seq', '?')}, document "
             f"median {first.get('doc_median', '?')} tokens, compiled bf16, {first.get('steps', '?')} timed steps",
             f"{'d':>5} {'batch':>5} {'off tok/s':>11} {'dense tok/s':>11} {'dense/off':>9} {'flex tok/s':>11} "
             f"{'flex/off':>8} {'flex/dense':>10} {'pairs':>6} {'tiles':>6} {'loss gap':>9} {'last gap':>9}"]
    agreement = []

    def rate(r):
        return f"{r['tokens_per_s']:>11.4g}" if r else f"{'-':>11}"

    def ratio(x, y, w):
        return f"{x['tokens_per_s'] / y['tokens_per_s']:>{w}.3f}" if x and y else f"{'-':>{w}}"

    for d in ds:
        off, dense, flex = (rows.get((d, v)) for v in VARIANTS)
        gaps = ["-", "-"]
        if flex and dense:
            def gap(key, u, v):
                return abs(u[key] - v[key]) if u and v else float("nan")
            gaps = [f"{gap('first_loss', flex, dense):.2e}", f"{gap('last_loss', flex, dense):.2e}"]
            agreement.append(
                f"d={d} bf16 training (no verdict: at initialization the mask moves the mean loss little): |flex - "
                f"dense| first loss {gap('first_loss', flex, dense):.3g}, last loss {gap('last_loss', flex, dense):.3g}"
                f", first grad norm {gap('first_grad_norm', flex, dense):.3g}; |dense - off| the same: "
                f"{gap('first_loss', dense, off):.3g}, {gap('last_loss', dense, off):.3g}, "
                f"{gap('first_grad_norm', dense, off):.3g}")
        masked = dense or flex or {}
        lines.append(f"{d:>5} {(off or masked).get('batch', '-'):>5} {rate(off)} {rate(dense)} {ratio(dense, off, 9)} "
                     f"{rate(flex)} {ratio(flex, off, 8)} {ratio(flex, dense, 10)} "
                     f"{masked.get('attention_pair_frac', float('nan')):>6.3f} "
                     f"{(flex or {}).get('flex_tile_pair_frac') or float('nan'):>6.3f} {gaps[0]:>9} {gaps[1]:>9}")
    if (out / "agree.json").exists():
        for r in json.loads((out / "agree.json").read_text()):
            agreement.append(f"{r['dtype']}, T={r['seq']}, d={r['d']}: compiled flex vs eager dense: logits max "
                             f"|gap| {r['logits_max_abs_gap']:.3g} (the mask's own effect {r['logits_mask_effect']:.3g}),"
                             f" gradients max relative gap {r['grad_max_rel_gap']:.3g} (the mask's own effect "
                             f"{r['grad_mask_effect']:.3g}): {r['verdict']}")
    else:
        agreement.append("fp32 agreement check (--agree): no result (see logs/agree.log)")
    lines += ["target on/off >= 0.95; pairs: attended pairs / causal pairs; tiles: pairs in the 128 x 128 tiles flex "
              "computes / causal pairs; loss gap, last gap: |flex - dense| of the first step's loss (same weights, same batch) and of the last"]
    lines += agreement
    (out / "ratio.txt").write_text("\n".join(lines) + "\n")
    (out / "agreement.txt").write_text("\n".join(agreement) + "\n")
    print((out / "ratio.txt").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--variant", choices=VARIANTS)
    what.add_argument("--agree", action="store_true")
    what.add_argument("--table", action="store_true")
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--doc-median", type=float, default=400)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, help="sequences per step (default: bench/ref_throughput.py's rule)")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: a smoke test of this script")
    a = p.parse_args()
    Path(a.out).mkdir(parents=True, exist_ok=True)
    if a.variant:
        variant_main(a)
    elif a.agree:
        agree_main(a)
    else:
        table_main(a)


if __name__ == "__main__":
    main()
