"""Per-document attention masks (data.document_mask) on one GPU: masks off vs the dense boolean mask vs flex vs
varlen, one variant a process, so a crash of one leaves the others measured. bench/gpu_docmask.sh runs the whole set
in one call; this script is its parts.

    python bench/docmask_bench.py --variant off|dense|flex|varlen --d 384 --out DIR [--steps 10] [--warmup 3]
                                  [--lock FILE]
    python bench/docmask_bench.py --agree flex|varlen --out DIR   # compiled kernel vs eager dense, T = 1023
    python bench/docmask_bench.py --table --out DIR   # DIR/*.json -> DIR/ratio.txt, docmask.csv, agreement.txt

--variant: the harness' own compiled step (harness.step.LossStep: model, CE, z-loss, per-domain stats; AdamW,
grad clip) in bf16 from fixed initial weights on fixed batches: random tokens with an EOD after each document,
document lengths log-normal with median --doc-median tokens (web text's documents are a few hundred to a few
thousand tokens). dense, flex, varlen: model_zoo.docmask.ATTENTION. tokens/s over --steps steps after --warmup
(compilation excluded); the first step's loss and gradient norm (before any update: the same weights and batch for
every variant) are how the variants are compared in training. --lock FILE: processes sharing FILE compile and warm
up under a shared lock and time under an exclusive one, so that a timed loop never shares the GPU (or the CPU) with
another process's compile or warm-up. --steps 0: compile and warm up only (fills inductor's cache). Writes
DIR/<variant>_d<d>.json.
--agree KIND: a 2-layer d 128 model, 4 rows of 1023 tokens (not a multiple of flex's 128-token tile): logits and
every parameter's gradient of the compiled KIND path against the eager dense-mask path, each gap set against the
mask's own effect and (bf16) against bf16's own rounding (eager dense bf16 vs fp32). fp32 and bf16 for flex; bf16
only for varlen (the flash kernels take fp16/bf16: fp32 attention there takes the dense mask, nothing to compare).
The verdict on the kernel's correctness. Writes DIR/agree_<KIND>.json.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import fcntl
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
VARIANTS = ("off", "dense", "flex", "varlen")
MASKED = VARIANTS[1:]
# --agree, fp32: the largest logit gap and relative gradient gap that count as the same result
TOL_FP32 = 1e-3
# --agree, bf16: a kernel's gap to eager dense bf16 may be this many times bf16's own rounding (eager dense bf16 vs
# fp32): two bf16 computations each within rounding of fp32 are within twice it of each other, and the kernels
# differ in accumulation order and where they round
ROUNDING_FACTOR = 4


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


@contextlib.contextmanager
def locked(path: str | None, exclusive: bool):
    """flock on `path` (shared or exclusive) for the block; nothing without a path."""
    if path is None:
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def train(spec: ModelSpec, data: list[torch.Tensor], variant: str, warmup: int, steps: int, device: str,
          lock: str | None = None) -> dict:
    """The variant's compiled training steps: tokens/s, and the first step's loss and gradient norm. Warm-up
    (compilation) under a shared `lock`, the timed steps under an exclusive one."""
    if variant != "off":
        docmask.ATTENTION = variant
    torch.manual_seed(0)
    model = model_zoo.build(spec).to(device)
    opt = model.configure_optimizer(OptimSpec(), device)
    step = LossStep(model, 1e-4, 1, eod_id=None if variant == "off" else EOD)
    step = torch.compile(step) if device == "cuda" else step   # --device cpu: an eager smoke test of this script
    dev = [x.to(device) for x in data]
    dom = torch.zeros_like(dev[0][:, 1:])
    losses, first_grad_norm = [], None

    def one(i):
        nonlocal first_grad_norm
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

    # all warm-up steps but the last under the shared lock (the first compiles); then the cached GPU memory goes
    # back, so that processes waiting for their turn hold only weights and optimizer state (the wave's processes
    # are all alive at once), and the last warm-up step, under the exclusive lock, takes it again before the clock
    shared = warmup - 1 if steps else warmup
    with locked(lock, exclusive=False):
        for i in range(shared):
            one(i)
        sync(device)
        if device == "cuda":
            torch.cuda.empty_cache()
    seconds = None
    if steps:
        with locked(lock, exclusive=True):
            one(shared)
            sync(device)
            t = time.perf_counter()
            for i in range(warmup, warmup + steps):
                one(i)
            sync(device)
            seconds = time.perf_counter() - t
    from torch._dynamo.utils import counters
    return dict(tokens_per_s=steps * data[0].shape[0] * spec.seq_len / seconds if steps else None,
                first_loss=losses[0], last_loss=losses[-1], first_grad_norm=first_grad_norm,
                peak_mem_gb=torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
                graph_breaks=sum(counters["graph_break"].values()), graphs=counters["stats"]["unique_graphs"],
                varlen_kernel=bool(docmask._VARLEN) if variant == "varlen" else None)


def variant_main(a) -> None:
    spec = shape(a.d, a.seq)
    B = a.batch or batch_rule(a.d, a.seq)
    data = batches(4, B, a.seq, a.doc_median)
    docs = docmask.document_ids(data[0][:, :-1], EOD).numpy()
    tokens, causal = B * a.seq, B * a.seq * (a.seq + 1) // 2
    pairs = causal if a.variant == "off" else counting.attention_pairs(docs)
    flops_per_token = counting.training_flops(spec, tokens, pairs) / tokens   # exact: the pairs attended
    t0 = time.perf_counter()
    got = train(spec, data, a.variant, a.warmup, a.steps, a.device, a.lock)
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
    """Compiled flex or varlen (a.agree) against eager dense at T = 1023: logits and every parameter's gradient.

    Each gap is set against the mask's own effect (dense vs no mask on the same weights): a path that got the mask
    wrong differs from dense by about that much. fp32 (flex only) must also agree to TOL_FP32 absolute (logits) and
    relative (gradients, to each tensor's largest entry); bf16 to ROUNDING_FACTOR x bf16's own rounding (eager dense
    bf16 vs eager dense fp32, the same measures).
    """
    device, T, kind = a.device, min(1023, a.seq - 1), a.agree   # 1023 on the GPU (seq 1024)
    torch.manual_seed(0)
    model = model_zoo.build(shape(128, a.seq)).to(device)
    x = batches(1, 4, T, a.doc_median, seed=1)[0][:, :T].to(device)
    docs = docmask.document_ids(x, EOD)
    weight = torch.randn(4, T, VOCAB, generator=torch.Generator().manual_seed(0)).to(device)
    compiled = torch.compile(model) if device == "cuda" else model
    docmask.ATTENTION = kind   # compiled on CUDA: the kernel; eager: the dense mask (wants_* need compiling)

    def run(fn, dtype, **kw):
        model.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bf16"):
            logits = fn(x, **kw).float()
        (logits * weight).sum().backward()
        return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    def gaps(u, v):
        return (float((u[0] - v[0]).abs().max()),
                max(float((u[1][n] - g).abs().max() / g.abs().max().clamp(min=1e-12)) for n, g in v[1].items()))

    rows, dense_fp32 = [], run(model, "fp32", documents=docs)
    for dtype in ("fp32", "bf16") if kind == "flex" else ("bf16",):
        got, dense, plain = run(compiled, dtype, documents=docs), run(model, dtype, documents=docs), run(model, dtype)
        (logit_gap, grad_gap), (logit_effect, grad_effect) = gaps(got, dense), gaps(dense, plain)
        logit_rounding, grad_rounding = gaps(dense, dense_fp32) if dtype == "bf16" else (None, None)
        ok = logit_gap < 0.1 * logit_effect and grad_gap < 0.1 * grad_effect
        if dtype == "fp32":
            ok = ok and logit_gap < TOL_FP32 and grad_gap < TOL_FP32
        else:
            ok = ok and logit_gap <= ROUNDING_FACTOR * logit_rounding and grad_gap <= ROUNDING_FACTOR * grad_rounding
        rows.append(dict(kind=kind, dtype=dtype, seq=T, rows=4, d=128, logits_max_abs_gap=logit_gap,
                         logits_mask_effect=logit_effect, logits_bf16_rounding=logit_rounding,
                         grad_max_rel_gap=grad_gap, grad_mask_effect=grad_effect, grad_bf16_rounding=grad_rounding,
                         varlen_kernel=bool(docmask._VARLEN) if kind == "varlen" else None,
                         verdict="OK" if ok else "MISMATCH"))
        if kind == "varlen" and not docmask._VARLEN and device == "cuda":
            rows[-1]["verdict"] = "NO VARLEN KERNEL (the dense mask ran)"
        print(json.dumps(rows[-1]), flush=True)
    (Path(a.out) / f"agree_{kind}.json").write_text(json.dumps(rows, indent=1) + "\n")


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
             f"{'d':>5} {'batch':>5} {'off tok/s':>10} " + " ".join(f"{v + ' tok/s':>12} {v + '/off':>10}" for v in MASKED)
             + f" {'varlen/flex':>11} {'pairs':>6} {'tiles':>6} {'mfu off':>7} {'mfu varlen':>10}"]
    agreement = []

    def rate(r, w):
        return f"{r['tokens_per_s']:>{w}.4g}" if r else f"{'-':>{w}}"

    def ratio(x, y, w):
        return f"{x['tokens_per_s'] / y['tokens_per_s']:>{w}.3f}" if x and y else f"{'-':>{w}}"

    def num(r, key, w, fmt=".3f"):
        return f"{r[key]:>{w}{fmt}}" if r and r.get(key) is not None else f"{'-':>{w}}"

    def gap(key, u, v):
        return abs(u[key] - v[key])

    for d in ds:
        off = rows.get((d, "off"))
        masked = {v: rows.get((d, v)) for v in MASKED}
        some = next((r for r in masked.values() if r), {})
        lines.append(f"{d:>5} {(off or some).get('batch', '-'):>5} {rate(off, 10)} "
                     + " ".join(f"{rate(masked[v], 12)} {ratio(masked[v], off, 10)}" for v in MASKED)
                     + f" {ratio(masked['varlen'], masked['flex'], 11)} {num(some, 'attention_pair_frac', 6)} "
                     f"{num(masked['flex'], 'flex_tile_pair_frac', 6)} {num(off, 'mfu_exact', 7)} "
                     f"{num(masked['varlen'], 'mfu_exact', 10)}")
        for u, v in (("flex", "dense"), ("varlen", "dense"), ("varlen", "flex")):
            x, y = masked[u], masked[v]
            if x and y:
                agreement.append(f"d={d} bf16 training (no verdict: at initialization the mask moves the mean loss "
                                 f"little): |{u} - {v}| first loss {gap('first_loss', x, y):.3g}, last loss "
                                 f"{gap('last_loss', x, y):.3g}, first grad norm {gap('first_grad_norm', x, y):.3g}")
        if off and some:
            agreement.append(f"d={d}: the mask's own effect in training, |masked - off|: first loss "
                             f"{gap('first_loss', some, off):.3g}, last loss {gap('last_loss', some, off):.3g}, first "
                             f"grad norm {gap('first_grad_norm', some, off):.3g}")
        if masked["varlen"]:
            r = masked["varlen"]
            agreement.append(f"d={d} varlen: kernel {'used' if r.get('varlen_kernel') else 'NOT used (the dense mask ran)'}"
                             f", graph breaks {r.get('graph_breaks')}, graphs {r.get('graphs')}, peak "
                             f"{r.get('peak_mem_gb') or 0:.1f} GB (flex {(masked['flex'] or {}).get('peak_mem_gb') or 0:.1f})")
    for kind in ("flex", "varlen"):
        f = out / f"agree_{kind}.json"
        if not f.exists() and (out / "logs" / f"agree_{kind}.log").exists():
            agreement.append(f"{kind} agreement check (--agree {kind}): no result (see logs/agree_{kind}.log)")
        if not f.exists():
            continue
        for r in json.loads(f.read_text()):
            rounding = (f"; bf16's own rounding {r['logits_bf16_rounding']:.3g} and {r['grad_bf16_rounding']:.3g}"
                        if r.get("logits_bf16_rounding") is not None else "")
            agreement.append(f"{r['dtype']}, T={r['seq']}, d={r['d']}: compiled {kind} vs eager dense: logits max "
                             f"|gap| {r['logits_max_abs_gap']:.3g} (the mask's own effect {r['logits_mask_effect']:.3g}),"
                             f" gradients max relative gap {r['grad_max_rel_gap']:.3g} (the mask's own effect "
                             f"{r['grad_mask_effect']:.3g}){rounding}: {r['verdict']}")
    lines += ["target masked/off >= 0.95; pairs: attended pairs / causal pairs; tiles: pairs in the 128 x 128 tiles "
              "flex computes / causal pairs; mfu: exact FLOPs (the attended pairs, model_zoo.counting) / peak"]
    lines += agreement
    (out / "ratio.txt").write_text("\n".join(lines) + "\n")
    (out / "agreement.txt").write_text("\n".join(agreement) + "\n")
    print((out / "ratio.txt").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--variant", choices=VARIANTS)
    what.add_argument("--agree", choices=["flex", "varlen"])
    what.add_argument("--table", action="store_true")
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--doc-median", type=float, default=400)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before the timed ones, at least 1")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, help="sequences per step (default: bench/ref_throughput.py's rule)")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: a smoke test of this script")
    p.add_argument("--lock", help="a file: warm up under its shared lock, time under its exclusive one")
    a = p.parse_args()
    if a.warmup < 1:
        p.error(f"--warmup {a.warmup}: at least 1 (the first step compiles)")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    if a.variant:
        variant_main(a)
    elif a.agree:
        agree_main(a)
    else:
        table_main(a)


if __name__ == "__main__":
    main()
