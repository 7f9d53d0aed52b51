"""Per-document attention masks (data.document_mask) on one GPU: masks off vs varlen (the sequences built on the
host, as the training loop now does) vs varlen_old (built on the device inside the step: a graph break and a host
read a forward) vs flex vs the dense boolean mask. bench/gpu_docmask.sh runs the whole set in one call; this script is
its parts.

    python bench/docmask_bench.py --d 384 --variants "off varlen_old varlen" --out DIR [--steps 60] [--repeats 3]
                                  [--warmup 3] [--lock FILE]
    python bench/docmask_bench.py --agree flex|varlen --out DIR   # compiled kernel vs eager dense, T = 1023
    python bench/docmask_bench.py --table --out DIR   # DIR/d*.json -> DIR/ratio.txt, docmask.csv, agreement.txt

--d: one width, every variant in this one process (each its own model from the same initial weights, optimizer
and compiled step: the harness' harness.step.LossStep, model, CE, z-loss, per-domain stats; AdamW, grad clip) in
bf16 on fixed batches: random tokens with an EOD after each document, document lengths log-normal with median
--doc-median tokens (web text's documents are a few hundred to a few thousand tokens). Timing: --repeats rounds, each
round every variant in turn (interleaved: a drift of the GPU's clock or of the host falls on all variants alike), one
untimed step then --steps timed steps a variant; tokens/s per round, the median reported with the spread, and the
ratio to masks off per round (masked round r / off round r). The first step's loss and gradient norm (before any
update: the same weights and batch for every variant) are how the variants are compared in training. Each variant's
compiled graphs and graph breaks (torch._dynamo counters around its first steps). Then (--kernel, default on) the
attention alone at this width's shape, eager, forward + backward, 20 calls each: causal SDPA (masks off's kernel) vs
the varlen op with its packing vs the varlen op on packed inputs. --lock FILE: processes sharing FILE compile and warm
up under a shared lock and time under an exclusive one, so that a timed loop never shares the GPU (or the CPU) with
another process's compile. Writes DIR/d<d>.json.
--agree KIND: a 2-layer d 128 model, 4 rows of 1023 tokens (not a multiple of flex's 128-token tile): logits and
every parameter's gradient of the compiled KIND path against the eager dense-mask path, each gap set against the
mask's own effect and (bf16) against bf16's own rounding (eager dense bf16 vs fp32). fp32 and bf16 for flex; bf16
only for varlen (the flash kernels take fp16/bf16: fp32 attention there takes the dense mask, nothing to compare),
both its ways: sequences built on the device (varlen_old) and given from the host (varlen). The verdict on the
kernel's correctness. Writes DIR/agree_<KIND>.json.
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
from harness.data.batch import TokenBatch  # noqa: E402
from harness.device import peak_flops  # noqa: E402
from harness.spec import OptimSpec  # noqa: E402
from harness.step import LossStep, step_args  # noqa: E402
from model_zoo import counting, docmask  # noqa: E402
from model_zoo.spec import ModelSpec, swiglu_hidden  # noqa: E402

VOCAB, EOD = 8192, 8191
VARIANTS = ("off", "varlen_old", "varlen", "flex", "dense")
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


class Variant:
    """One variant's model, optimizer and compiled step at one width, and its training steps."""

    def __init__(self, name: str, spec: ModelSpec, data: list[TokenBatch], device: str):
        self.name, self.device, self.data = name, device, data
        self.kind = {"varlen_old": "varlen"}.get(name, name)   # docmask.ATTENTION (off: not read)
        self.host_starts = name in ("varlen", "flex", "dense")   # the batch's starts given (only varlen reads them)
        self.select()
        torch.manual_seed(0)
        self.model = model_zoo.build(spec).to(device)
        self.opt = self.model.configure_optimizer(OptimSpec(), device)
        step = LossStep(self.model, 1e-4, 1, eod_id=None if name == "off" else EOD)
        self.step = torch.compile(step) if device == "cuda" else step   # --device cpu: an eager smoke test
        self.i, self.first_loss, self.first_grad_norm, self.last = 0, None, None, None

    def select(self) -> None:
        """Make docmask's switch this variant's (one process runs them all; dynamo guards on the switch)."""
        if self.name != "off":
            docmask.ATTENTION = self.kind

    def one(self) -> None:
        """One training step on the next batch (the loop's: forward, backward, clip, AdamW)."""
        b = self.data[self.i % len(self.data)]
        args = step_args(b) if self.host_starts else (b.inputs, b.targets, b.domains)
        with torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.device == "cuda"):
            loss, _ = self.step(*args)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if self.i == 0:
            self.first_loss, self.first_grad_norm = float(loss.detach()), float(norm)
        self.last = loss.detach()
        self.i += 1

    def timed(self, steps: int) -> float:
        """Seconds of `steps` steps after one untimed one (the switch from the previous variant's memory)."""
        self.select()
        self.one()
        sync(self.device)
        t = time.perf_counter()
        for _ in range(steps):
            self.one()
        sync(self.device)
        return time.perf_counter() - t


def kernel_times(B: int, H: int, T: int, hd: int, documents: torch.Tensor, starts: torch.Tensor,
                 calls: int = 20, device: str = "cuda") -> dict:
    """Eager attention alone at one width's shape, forward + backward, ms a call: causal SDPA (masks off's
    kernel), docmask.attend_varlen (the packing copies and the op), and the varlen op on inputs packed already."""
    q, k, v = (torch.randn(B, H, T, hd, device=device, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    seq = docmask.from_starts(documents, starts)
    packed = [x.detach().transpose(1, 2).reshape(B * T, H, hd).contiguous().requires_grad_() for x in (q, k, v)]
    varlen_attn, causal = docmask.varlen_kernel()
    fns = {"sdpa_causal": lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True),
           "varlen_with_packing": lambda: docmask.attend_varlen(q, k, v, seq),
           "varlen_op": lambda: varlen_attn(*packed, seq.cu_seqlens, seq.cu_seqlens, T, T, **causal)}
    out = {}
    for name, fn in fns.items():
        for i in range(3 + calls):
            if i == 3:
                sync(device)
                t = time.perf_counter()
            fn().sum().backward()
        sync(device)
        out[name + "_ms"] = (time.perf_counter() - t) / calls * 1e3
    return out


def width_main(a) -> None:
    spec = shape(a.d, a.seq)
    B = a.batch or batch_rule(a.d, a.seq)
    names = a.variants.split()
    bad = [v for v in names if v not in VARIANTS]
    if bad or not names:
        raise SystemExit(f"--variants {a.variants!r}: each of {', '.join(VARIANTS)}")
    if hasattr(torch._dynamo.config, "recompile_limit"):   # one process compiles every variant's step
        torch._dynamo.config.recompile_limit = 64
    else:
        torch._dynamo.config.cache_size_limit = 64
    host = [TokenBatch(x[:, :-1], x[:, 1:], torch.zeros_like(x[:, 1:])).with_starts(EOD)
            for x in batches(4, B, a.seq, a.doc_median)]
    data = [b.to(a.device) for b in host]
    docs = docmask.document_ids(host[0].inputs, EOD).numpy()
    tokens, causal = B * a.seq, B * a.seq * (a.seq + 1) // 2
    t0 = time.perf_counter()
    from torch._dynamo.utils import counters
    variants, rows, kernel = {}, {}, {}
    with locked(a.lock, exclusive=False):   # compile and warm up every variant beside the other widths' processes
        for name in names:
            g0, b0 = counters["stats"]["unique_graphs"], sum(counters["graph_break"].values())
            t = time.perf_counter()
            v = variants[name] = Variant(name, spec, data, a.device)
            for _ in range(a.warmup):
                v.one()
            sync(a.device)
            pairs = causal if name == "off" else counting.attention_pairs(docs)
            rows[name] = dict(variant=name, compile_warmup_s=time.perf_counter() - t,
                              graphs=counters["stats"]["unique_graphs"] - g0,
                              graph_breaks=sum(counters["graph_break"].values()) - b0,
                              first_loss=v.first_loss, first_grad_norm=v.first_grad_norm,
                              flops_per_token_exact=counting.training_flops(spec, tokens, pairs) / tokens,
                              attention_pair_frac=pairs / causal,
                              flex_tile_pair_frac=counting.block_pairs(docs, docmask.BLOCK) / causal if name == "flex" else None,
                              varlen_kernel=bool(docmask._VARLEN) if name.startswith("varlen") else None)
        if a.device == "cuda":
            torch.cuda.empty_cache()   # processes waiting for their turn hold weights and optimizer state only
    kernel = {}
    peak = peak_flops(torch.device(a.device)) if a.device == "cuda" else None

    def write() -> None:
        """DIR/d<d>.json with the rounds so far (after each round: a time limit that cuts the process keeps them)."""
        out = summary(a, spec, B, rows, variants, kernel, peak, time.perf_counter() - t0)
        (Path(a.out) / f"d{a.d}.json").write_text(json.dumps(out, indent=1) + "\n")
        return out

    with locked(a.lock, exclusive=True):
        for _ in range(a.repeats):
            for name in names:
                seconds = variants[name].timed(a.steps)
                rows[name].setdefault("tokens_per_s_rounds", []).append(a.steps * tokens / seconds)
            write()
        if a.kernel and a.device == "cuda" and docmask.varlen_kernel():
            kernel.update(kernel_times(B, spec.n_heads, a.seq, spec.head_dim, data[0].inputs.new_tensor(docs),
                                       data[0].starts), layers=spec.n_layers)
    print(json.dumps(write()), flush=True)


def summary(a, spec: ModelSpec, B: int, rows: dict, variants: dict, kernel: dict, peak, wall: float) -> dict:
    """One width's result: each variant's median tokens/s over its rounds, spread, ratios to off per round."""
    for name, row in rows.items():
        rounds = row["tokens_per_s_rounds"]
        row.update(tokens_per_s=float(np.median(rounds)), spread=(max(rounds) - min(rounds)) / float(np.median(rounds)),
                   last_loss=float(variants[name].last),
                   mfu_exact=float(np.median(rounds)) * row["flops_per_token_exact"] / peak if peak else None)
        if "off" in rows and name != "off":
            per_round = [m / o for m, o in zip(rounds, rows["off"]["tokens_per_s_rounds"])]
            row.update(ratio_off_rounds=per_round, ratio_off=float(np.median(per_round)))
    return dict(d=a.d, layers=spec.n_layers, heads=spec.n_heads, batch=B, seq=a.seq, steps=a.steps,
                repeats=len(next(iter(rows.values()))["tokens_per_s_rounds"]), warmup=a.warmup,
                doc_median=a.doc_median, variants=rows, kernel=kernel,
                peak_mem_gb=torch.cuda.max_memory_allocated() / 2**30 if a.device == "cuda" else None, wall_s=wall,
                device=torch.cuda.get_device_name() if a.device == "cuda" else "cpu", torch=torch.__version__,
                date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))


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

    if kind == "varlen":
        docmask.varlen_kernel()   # resolved before the compile, as harness.step.LossStep does
    starts = docmask.document_starts(x.cpu(), EOD)[0].to(device)
    torch._dynamo.maybe_mark_dynamic(starts, 0)
    # varlen both ways: the sequences built on the device in the forward (varlen_old), given from the host (varlen)
    ways = (("fp32", "flex", {}), ("bf16", "flex", {})) if kind == "flex" else (
        ("bf16", "varlen_old", {}), ("bf16", "varlen", {"starts": starts}))
    rows, dense_fp32 = [], run(model, "fp32", documents=docs)
    for dtype, name, extra in ways:
        got = run(compiled, dtype, documents=docs, **extra)
        dense, plain = run(model, dtype, documents=docs), run(model, dtype)
        (logit_gap, grad_gap), (logit_effect, grad_effect) = gaps(got, dense), gaps(dense, plain)
        logit_rounding, grad_rounding = gaps(dense, dense_fp32) if dtype == "bf16" else (None, None)
        ok = logit_gap < 0.1 * logit_effect and grad_gap < 0.1 * grad_effect
        if dtype == "fp32":
            ok = ok and logit_gap < TOL_FP32 and grad_gap < TOL_FP32
        else:
            ok = ok and logit_gap <= ROUNDING_FACTOR * logit_rounding and grad_gap <= ROUNDING_FACTOR * grad_rounding
        rows.append(dict(kind=name, dtype=dtype, seq=T, rows=4, d=128, logits_max_abs_gap=logit_gap,
                         logits_mask_effect=logit_effect, logits_bf16_rounding=logit_rounding,
                         grad_max_rel_gap=grad_gap, grad_mask_effect=grad_effect, grad_bf16_rounding=grad_rounding,
                         varlen_kernel=bool(docmask._VARLEN) if kind == "varlen" else None,
                         verdict="OK" if ok else "MISMATCH"))
        if kind == "varlen" and not docmask._VARLEN and device == "cuda":
            rows[-1]["verdict"] = "NO VARLEN KERNEL (the dense mask ran)"
        print(json.dumps(rows[-1]), flush=True)
    (Path(a.out) / f"agree_{kind}.json").write_text(json.dumps(rows, indent=1) + "\n")


def table_main(a) -> None:
    """DIR/d*.json and agree_*.json -> ratio.txt (the table), docmask.csv (a row per width and variant),
    agreement.txt."""
    out = Path(a.out)
    widths = sorted((json.loads(f.read_text()) for f in out.glob("d*.json")), key=lambda w: w["d"])
    flat = [dict({k: v for k, v in w.items() if k not in ("variants", "kernel")}, **r,
                 **{f"kernel_{k}": v for k, v in w["kernel"].items()}) for w in widths for r in w["variants"].values()]
    with open(out / "docmask.csv", "w", newline="") as f:
        fields = sorted({k for r in flat for k in r}, key=lambda k: (k not in ("variant", "d"), k))
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(flat)
    first = widths[0] if widths else {}
    names = [v for v in VARIANTS if any(v in w["variants"] for w in widths)]
    masked = [v for v in names if v != "off"]
    lines = [f"{first.get('device', '?')}, torch {first.get('torch', '?')}, seq {first.get('seq', '?')}, document "
             f"median {first.get('doc_median', '?')} tokens, "
             f"{'eager fp32 (a CPU dry run)' if first.get('device') == 'cpu' else 'compiled bf16'}; "
             f"{first.get('repeats', '?')} interleaved "
             f"rounds of {first.get('steps', '?')} timed steps a variant: the median round, and [min, max] over rounds",
             f"{'d':>4} {'batch':>5} {'off tok/s':>10} {'spread':>6} "
             + " ".join(f"{v + '/off [min, max]':>29}" for v in masked)
             + (f" {'varlen/varlen_old':>17}" if {"varlen", "varlen_old"} <= set(masked) else "")
             + f" {'pairs':>5}  graphs/breaks " + ",".join(names)]
    agreement = []
    for w in widths:
        vs = w["variants"]
        off = vs.get("off")
        line = (f"{w['d']:>4} {w['batch']:>5} " + (f"{off['tokens_per_s']:>10.4g} {off['spread']:>6.1%} " if off
                                                   else f"{'-':>10} {'-':>6} "))
        for v in masked:
            r = vs.get(v)
            if r and r.get("ratio_off") is not None:
                cell = f"{r['ratio_off']:.3f} [{min(r['ratio_off_rounds']):.3f}, {max(r['ratio_off_rounds']):.3f}]"
            else:
                cell = f"{r['tokens_per_s']:.4g} tok/s" if r else "-"
            line += f" {cell:>29}"
        if "varlen" in vs and "varlen_old" in vs:
            per = [x / y for x, y in zip(vs["varlen"]["tokens_per_s_rounds"], vs["varlen_old"]["tokens_per_s_rounds"])]
            line += f" {float(np.median(per)):>17.3f}"
        some = next((vs[v] for v in masked if v in vs), None)
        line += f" {some['attention_pair_frac'] if some else 1.0:>5.3f}  "
        line += ",".join(f"{vs[v]['graphs']}/{vs[v]['graph_breaks']}" if v in vs else "-" for v in names)
        lines.append(line)
        k = w.get("kernel") or {}
        if k:
            step_ms = {v: w["batch"] * w["seq"] / vs[v]["tokens_per_s"] * 1e3 for v in vs}
            agreement.append(
                f"d={w['d']} attention alone (eager, forward + backward, B={w['batch']} H={w['heads']} T={w['seq']}), ms a "
                f"layer: causal SDPA {k['sdpa_causal_ms']:.2f}, varlen with packing {k['varlen_with_packing_ms']:.2f}, "
                f"varlen op alone {k['varlen_op_ms']:.2f}; x {k['layers']} layers: "
                f"{(k['varlen_with_packing_ms'] - k['sdpa_causal_ms']) * k['layers']:+.1f} ms a step vs causal; steps "
                + ", ".join(f"{v} {ms:.1f} ms" for v, ms in step_ms.items()))
        for v in masked:
            if v in vs:
                r = vs[v]
                gap = f", |{v} - off| first loss {abs(r['first_loss'] - off['first_loss']):.3g}" if off else ""
                agreement.append(f"d={w['d']} {v}: first loss {r['first_loss']:.5f}, first grad norm "
                                 f"{r['first_grad_norm']:.4g}{gap} (the mask's own effect), compile + warm-up "
                                 f"{r['compile_warmup_s']:.0f} s"
                                 + ("" if r.get("varlen_kernel") in (None, True) else ", VARLEN KERNEL NOT USED"))
        if {"varlen", "varlen_old"} <= set(vs):
            x, y = vs["varlen"], vs["varlen_old"]
            agreement.append(f"d={w['d']} |varlen - varlen_old|: first loss {abs(x['first_loss'] - y['first_loss']):.3g}"
                             f", first grad norm {abs(x['first_grad_norm'] - y['first_grad_norm']):.3g}, last loss "
                             f"{abs(x['last_loss'] - y['last_loss']):.3g} (the same steps; bf16 rounding only)")
        agreement.append(f"d={w['d']}: peak memory {w['peak_mem_gb'] or 0:.1f} GB (all variants in one process), "
                         f"process {w['wall_s']:.0f} s")
    for kind in ("flex", "varlen"):
        f = out / f"agree_{kind}.json"
        if not f.exists() and (out / "logs" / f"agree_{kind}.log").exists():
            agreement.append(f"{kind} agreement check (--agree {kind}): no result (see logs/agree_{kind}.log)")
        if not f.exists():
            continue
        for r in json.loads(f.read_text()):
            rounding = (f"; bf16's own rounding {r['logits_bf16_rounding']:.3g} and {r['grad_bf16_rounding']:.3g}"
                        if r.get("logits_bf16_rounding") is not None else "")
            agreement.append(f"{r['dtype']}, T={r['seq']}, d={r['d']}: compiled {r['kind']} vs eager dense: logits max "
                             f"|gap| {r['logits_max_abs_gap']:.3g} (the mask's own effect {r['logits_mask_effect']:.3g}),"
                             f" gradients max relative gap {r['grad_max_rel_gap']:.3g} (the mask's own effect "
                             f"{r['grad_mask_effect']:.3g}){rounding}: {r['verdict']}")
    lines += ["target masked/off >= 0.95; spread: (max - min) / median of off's rounds; pairs: attended pairs / "
              "causal pairs; graphs/breaks: compiled graphs and graph breaks of each variant's step (forward)"]
    lines += agreement
    (out / "ratio.txt").write_text("\n".join(lines) + "\n")
    (out / "agreement.txt").write_text("\n".join(agreement) + "\n")
    print((out / "ratio.txt").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--d", type=int, help="one width: every variant of --variants, interleaved rounds")
    what.add_argument("--agree", choices=["flex", "varlen"])
    what.add_argument("--table", action="store_true")
    p.add_argument("--variants", default="off varlen_old varlen", help=f"of {', '.join(VARIANTS)}")
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--doc-median", type=float, default=400)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before the timed ones, at least 1")
    p.add_argument("--steps", type=int, default=60, help="timed steps a variant a round")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    p.add_argument("--no-kernel", dest="kernel", action="store_false", help="skip the attention-alone timing")
    p.add_argument("--batch", type=int, help="sequences per step (default: bench/ref_throughput.py's rule)")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: a smoke test of this script")
    p.add_argument("--lock", help="a file: warm up under its shared lock, time under its exclusive one")
    a = p.parse_args()
    if a.warmup < 1:
        p.error(f"--warmup {a.warmup}: at least 1 (the first step compiles)")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    if a.d:
        width_main(a)
    elif a.agree:
        agree_main(a)
    else:
        table_main(a)


if __name__ == "__main__":
    main()
