"""Attention kernels alone for per-document masks (issue 18 item 1): which kernel masks-off SDPA runs, and which
packed-document kernels torch has, timed forward + backward per layer at the document-mask benchmark's shapes.

    python bench/docmask_kernels.py --out DIR [--widths "128 384 768"] [--kernels "..."] [--tag main]
    python bench/docmask_kernels.py --out DIR --table        # DIR/kern_*.json -> DIR/kernels.txt (the table)
    python bench/docmask_kernels.py --out DIR --device cpu --widths 128 --batch 2 --seq 256 --doc-median 60  # dry run

Shapes and data as bench/docmask_bench.py --d D: H = d / 64 heads of 64, T = --seq, B = bench/ref_throughput.py's
batch rule, one window of documents with log-normal lengths (median --doc-median) and EOD after each. q, k, v, and
the output gradient are random (bf16 on CUDA, fp32 on the CPU; --dtype). Each kernel gets them in its own layout, made once
(the layout change is not timed: in the compiled model it fuses into the q/k/v projection and RoPE, see bench/README
"session 12"): [B, H, T, hd] for SDPA and flex, the packed [B * T, H, hd] for varlen and the nested tensors.

Kernels (group "off": the causal mask over the whole row, what masks off computes; "doc": the document mask):
  sdpa_default, sdpa_flash, sdpa_cudnn, sdpa_efficient (off): SDPA is_causal, default dispatch or one backend forced
      with torch.nn.attention.sdpa_kernel.
  varlen (doc): torch.nn.attention.varlen.varlen_attn, causal, max_len = T (model_zoo/docmask.py's call);
  varlen_maxlen (doc): the same with max_len = the longest document (a host value; the grid is sized by it).
  njt_default, njt_flash, njt_efficient, njt_cudnn (doc): SDPA is_causal on nested jagged tensors (torch.nested,
      layout=torch.jagged: one sequence per document, views of the packed tensor, offsets = cu_seqlens), default
      dispatch or one backend forced. cuDNN's nested path is opt-in (TORCH_CUDNN_SDPA_NESTED_TENSOR_ENABLED=1, set
      here before torch is imported; pytorch/pytorch#141178 added it forward-only); the math backend refuses
      is_causal with nested tensors (torch/nested/_internal/sdpa.py), so on the CPU njt_* are expected to error.
  sdpa_dense_mask (doc): SDPA with the boolean [B, 1, T, T] mask (model_zoo.docmask.dense_mask), default dispatch.
  varlen_compiled, njt_compiled (doc): varlen and njt_default inside torch.compile (Inductor on CUDA, the "eager"
      backend on the CPU), the document starts an input as in the model: do they compile, with how many graphs and
      graph breaks (torch._dynamo counters over the first call), and at what speed.
  flex_b128, flex_b64 (doc): flex attention with model_zoo.docmask.block_mask at tile 128 / 64, compiled on CUDA
      (torch.compile(flex_attention), as in the compiled model), eager on the CPU (forward only there: flex has no
      CPU backward; its output is checked, not timed). At 64, if the default kernel
      tiles refuse it (their BLOCK_M / BLOCK_N must divide the mask's tile), again with kernel_options BLOCK_M =
      BLOCK_N = 64; the row says which.
  flex_tma_b128 (doc): flex_b128 with kernel_options USE_TMA (Hopper's tensor-memory loads; off by default on CUDA).
  flex_opts_b128 (doc): flex_b128 with model_zoo.docmask.FLEX_KERNEL_OPTIONS, the blocks training uses (the
      autotuner's choice below, measured on an H200).
  flex_auto_b128, flex_auto_b64 (doc): flex at tile 128 / 64 compiled with mode max-autotune-no-cudagraphs: Inductor
      times its flex configs (tiles, stages, warps; forward and backward) and prints its choice ("AUTOTUNE
      flex_attention..." in the log), i.e. the ceiling of tuning flex's kernel options on this GPU.
A kernel that raises is "accepted: no" with its error's first lines (a CUDA fault can make the kernels after it in
the same process fail too: the first refusal is the one to read). Flash attention implementations registered with
torch.nn.attention (FA3 / FA4: external packages) are listed, not run.

For each accepted kernel: its output and q/k/v gradients on the first --agree-rows rows against an fp32 reference
(SDPA math backend, the dense document mask for "doc", is_causal for "off"): max |out - ref| and the gradients' max
relative gap (max |g - ref| / max |ref|, the worst of q, k, v); in bf16 set against bf16's own rounding (the same
reference computed in bf16 with SDPA's default dispatch) with bench/docmask_bench.py's factor, in fp32 against its
TOL_FP32, as its --agree check. The mask's own effect (doc reference vs off reference) shows the check can fail.
Timing: --rounds interleaved rounds (every accepted kernel in turn), each one untimed call then --calls timed
forward + backward calls (torch.autograd.grad with the fixed output gradient), ms a call: the median round; ratio
to sdpa_default's median. The kernels a call launches: torch.profiler over one forward + backward, the --top names by
device time (CPU: the aten ops by CPU time). Writes DIR/kern_<tag>.json after each width.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

# cuDNN's nested-tensor SDPA is opt-in and read from the environment by torch: set before torch is imported. It only
# adds cuDNN to the backends nested tensors may use (last in their default order), nothing for dense tensors.
os.environ.setdefault("TORCH_CUDNN_SDPA_NESTED_TENSOR_ENABLED", "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

from bench.docmask_bench import EOD, ROUNDING_FACTOR, TOL_FP32, batches, shape, sync  # noqa: E402
from bench.ref_throughput import batch_rule  # noqa: E402
from model_zoo import counting, docmask  # noqa: E402

OFF = ("sdpa_default", "sdpa_flash", "sdpa_cudnn", "sdpa_efficient")
DOC = ("varlen", "varlen_maxlen", "njt_default", "njt_flash", "njt_efficient", "njt_cudnn", "sdpa_dense_mask",
       "flex_b128", "varlen_compiled", "njt_compiled", "flex_b64", "flex_tma_b128", "flex_auto_b128", "flex_auto_b64",
       "flex_opts_b128")
KERNELS = OFF + DOC
BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION, "default": None}
# bench/gpu_docmask_kernels.sh runs the untried ones (the 64 tile, compiled nested tensors) in a second process, so
# that a fault there (a CUDA error poisons the process) cannot take the others' results with it
EXTRA = ("varlen_compiled", "njt_compiled", "flex_b64")
# flex's kernel tiles and stages beyond Inductor's default for this GPU (bench/gpu_docmask_kernels.sh TUNE=1 runs them
# in their own processes): TMA loads, and Inductor's autotuning over its flex configs, whose choice it prints to stderr
TUNED = ("flex_tma_b128", "flex_auto_b128", "flex_auto_b64", "flex_opts_b128")
EXTRA += TUNED
DEFAULT_KERNELS = " ".join(k for k in KERNELS if k not in EXTRA)


def backend(name: str):
    """The sdpa_kernel context forcing backend `name`, or nothing for the default dispatch."""
    b = BACKENDS[name]
    return contextlib.nullcontext() if b is None else sdpa_kernel([b])


class Width:
    """One width's shapes, documents and inputs in every layout, on `device`."""

    def __init__(self, d: int, a):
        self.spec = shape(d, a.seq)
        self.d, self.T, self.H, self.hd = d, a.seq, self.spec.n_heads, self.spec.head_dim
        self.B = B = a.batch or batch_rule(d, a.seq)
        self.device = a.device
        self.dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}.get(
            getattr(a, "dtype", "auto"), torch.bfloat16 if a.device == "cuda" else torch.float32)
        inputs = batches(1, B, a.seq, a.doc_median)[0][:, :a.seq]
        docs = docmask.document_ids(inputs, EOD)
        starts, _ = docmask.document_starts(inputs, EOD)
        lengths = (starts[1:] - starts[:-1]).numpy()
        self.n_docs, self.max_doc, self.min_doc = len(lengths), int(lengths.max()), int(lengths.min())
        self.median_doc = float(np.median(lengths))
        self.pair_frac = counting.attention_pairs(docs.numpy()) / (B * a.seq * (a.seq + 1) // 2)
        self.documents = docs.to(a.device)
        self.cu = starts.to(a.device)                          # int32, as varlen takes it
        self.cu_long = self.cu.long()                          # nested tensors' offsets
        g = torch.Generator().manual_seed(d)
        base = [torch.randn(B, self.T, self.H, self.hd, generator=g) for _ in range(4)]   # q, k, v, dout
        self.base = base                                       # fp32, [B, T, H, hd], on the host
        self.layouts = {"bhtd": [x.transpose(1, 2).contiguous().to(a.device, self.dtype) for x in base],
                        "packed": [x.reshape(B * self.T, self.H, self.hd).to(a.device, self.dtype) for x in base]}
        self._mask = None

    def mask(self) -> torch.Tensor:
        if self._mask is None:
            self._mask = docmask.dense_mask(self.documents)
        return self._mask

    def common(self, out: torch.Tensor, layout: str) -> torch.Tensor:
        """A kernel's output (or gradient) in its layout -> [B, T, H, hd]."""
        return out.transpose(1, 2) if layout == "bhtd" else out.reshape(self.B, self.T, self.H, self.hd)


def njt(x: torch.Tensor, w: Width, offsets: torch.Tensor | None = None) -> torch.Tensor:
    """Packed [B * T, H, hd] -> a nested jagged [N, H, j, hd] view, one sequence per document (offsets: the documents'
    starts then B * T, int64; min/max lengths given: no host read for them inside SDPA)."""
    nt = torch.nested.nested_tensor_from_jagged(x, offsets=w.cu_long if offsets is None else offsets,
                                                min_seqlen=w.min_doc, max_seqlen=w.max_doc)
    return nt.transpose(1, 2)


def nested_sdpa(q, k, v, offsets, w: Width, b: str) -> torch.Tensor:
    """Causal SDPA within each document through nested jagged tensors, backend b forced (or the default), packed
    [B * T, H, hd] in and out."""
    with backend(b):
        out = F.scaled_dot_product_attention(njt(q, w, offsets), njt(k, w, offsets), njt(v, w, offsets),
                                             is_causal=True)
    return out.transpose(1, 2).values()


def varlen(w: Width):
    """(varlen_attn, its causal keyword) as model_zoo.docmask resolves them; an error where torch has none."""
    kernel = docmask.varlen_kernel()
    if not kernel:
        raise RuntimeError(f"torch {torch.__version__} has no usable torch.nn.attention.varlen.varlen_attn")
    return kernel


def build(name: str, w: Width):
    """(layout, fn(q, k, v) -> out in that layout, a note) for kernel `name` at width w."""
    if name.startswith("sdpa_") and name != "sdpa_dense_mask":
        def fn(q, k, v, b=name[5:]):
            with backend(b):
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return "bhtd", fn, ""
    if name == "sdpa_dense_mask":
        mask = w.mask()
        return "bhtd", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask), ""
    if name.endswith("_compiled"):
        compile_ = (torch.compile if w.device == "cuda" else lambda f: torch.compile(f, backend="eager"))
        if name == "varlen_compiled":
            kernel = varlen(w)
            inner = compile_(lambda q, k, v, cu: kernel[0](q, k, v, cu, cu, w.T, w.T, **kernel[1]))
            return "packed", lambda q, k, v: inner(q, k, v, w.cu), "compiled, max_len T"
        inner = compile_(lambda q, k, v, cu: nested_sdpa(q, k, v, cu, w, "default"))
        return "packed", lambda q, k, v: inner(q, k, v, w.cu_long), "compiled"
    if name.startswith("varlen"):
        varlen_attn, causal = varlen(w)
        m = w.T if name == "varlen" else w.max_doc
        return "packed", lambda q, k, v: varlen_attn(q, k, v, w.cu, w.cu, m, m, **causal), f"max_len {m}"
    if name.startswith("njt_"):
        return "packed", lambda q, k, v, b=name[4:]: nested_sdpa(q, k, v, w.cu_long, w, b), ""
    if name.startswith("flex_"):
        from torch.nn.attention.flex_attention import flex_attention
        block = int(name.rsplit("_b", 1)[1])
        bm = docmask.block_mask(w.documents, block)
        options = ({"kernel_options": {"USE_TMA": True}} if "_tma_" in name else
                   {"kernel_options": dict(docmask.FLEX_KERNEL_OPTIONS)} if "_opts_" in name else {})
        mode = "max-autotune-no-cudagraphs" if "_auto_" in name else None
        flex = torch.compile(flex_attention, dynamic=False, mode=mode) if w.device == "cuda" else flex_attention
        note = (f"tile {block}" + (", USE_TMA" if "_tma_" in name else "")
                + (", docmask.FLEX_KERNEL_OPTIONS" if "_opts_" in name else "") + (f", {mode}" if mode else ""))
        return "bhtd", lambda q, k, v, **kw: flex(q, k, v, block_mask=bm, **{**options, **kw}), note
    raise ValueError(f"--kernels: unknown kernel {name!r}; known: {', '.join(KERNELS)}")


def fwd_bwd(fn, q, k, v, dout, **kw):
    """One forward + backward: (output, (dq, dk, dv))."""
    out = fn(q, k, v, **kw)
    return out, torch.autograd.grad(out, (q, k, v), dout)


def leaves(w: Width, layout: str):
    q, k, v, dout = w.layouts[layout]
    return [x.detach().requires_grad_() for x in (q, k, v)] + [dout]


def reference(w: Width, rows: int, doc: bool, dtype) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """SDPA on the first `rows` rows in `dtype` ([B, T, H, hd] out and q/k/v gradients, fp32): the math backend for
    fp32 (the reference), the default dispatch otherwise (bf16's own rounding)."""
    q, k, v, dout = (x[:rows].transpose(1, 2).to(w.device, dtype) for x in w.base)
    q, k, v = (x.detach().requires_grad_() for x in (q, k, v))
    mask = w.mask()[:rows] if doc else None
    ctx = sdpa_kernel([SDPBackend.MATH]) if dtype == torch.float32 else contextlib.nullcontext()
    with ctx:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=not doc)
    grads = torch.autograd.grad(out, (q, k, v), dout)
    return out.transpose(1, 2).float(), [g.transpose(1, 2).float() for g in grads]


def gaps(out, grads, ref) -> tuple[float, float]:
    """(max |out - ref out|, worst over q, k, v of max |g - ref g| / max |ref g|)."""
    r_out, r_grads = ref
    return (float((out - r_out).abs().max()),
            max(float((g - r).abs().max() / r.abs().max()) for g, r in zip(grads, r_grads)))


def launched(fn, args, kw, device: str, top: int) -> list[str]:
    """The `top` kernels (CUDA) or aten ops (CPU) of one forward + backward by time: 'name  us'."""
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=acts) as p:
        fwd_bwd(fn, *args, **kw)
        sync(device)
    total: dict[str, float] = {}
    for e in p.events():
        if device == "cuda":
            if e.device_type != torch.autograd.DeviceType.CUDA:
                continue
            t = e.time_range.elapsed_us()   # a kernel event's own interval: its duration on the GPU
        else:
            if not e.name.startswith("aten::"):
                continue
            t = e.self_cpu_time_total
        total[e.name] = total.get(e.name, 0.0) + t
    best = sorted(total.items(), key=lambda kv: -kv[1])[:top]
    return [f"{n[:90]}  {t:.0f}us" for n, t in best]


def first_line(e: BaseException) -> str:
    """The error in one line: its first lines (a wrapped error's own reason is often the second), 300 characters."""
    text = [t.strip() for t in f"{type(e).__name__}: {e}".splitlines() if t.strip()]
    return " | ".join(text[:3])[:300]


def width_main(d: int, names: list[str], a) -> dict:
    w = Width(d, a)
    rows = min(a.agree_rows, w.B)
    refs = {doc: reference(w, rows, doc, torch.float32) for doc in (False, True)}
    rounding = ({doc: gaps(*reference(w, rows, doc, w.dtype), refs[doc]) for doc in (False, True)}
                if w.dtype != torch.float32 else None)
    mask_effect = gaps(*refs[True], refs[False])
    res, runs = {}, {}
    for name in names:
        r = res[name] = dict(kernel=name, group="off" if name in OFF else "doc", accepted=False)
        t = time.perf_counter()
        kw = {}
        from torch._dynamo.utils import counters
        g0, b0 = counters["stats"]["unique_graphs"], dict(counters["graph_break"])
        try:
            layout, fn, note = build(name, w)
            args = leaves(w, layout)
            try:
                out, grads = fwd_bwd(fn, *args)
            except Exception as e:
                if name != "flex_b64" or a.device == "cpu":
                    raise
                r["default_tiles_error"] = first_line(e)          # the kernel's tiles do not divide the mask's
                kw = {"kernel_options": {"BLOCK_M": int(name[6:]), "BLOCK_N": int(name[6:])}}
                note += ", kernel_options BLOCK_M = BLOCK_N = " + name[6:]
                out, grads = fwd_bwd(fn, *args, **kw)
            sync(a.device)
        except Exception as e:   # a kernel this torch, device or dtype does not take: recorded, the others go on
            r["error"] = first_line(e)
            if a.device == "cpu" and name.startswith("flex_"):
                # eager flex has no CPU backward: its forward still checks the block mask against the reference
                with torch.no_grad():
                    out = fn(*(x.detach() for x in args[:3]))
                r.update(forward_only=True, layout=layout, note=note)
                out_gap = float((w.common(out, layout)[:rows].float() - refs[True][0]).abs().max())
                tol = TOL_FP32 if rounding is None else ROUNDING_FACTOR * rounding[True][0]
                r.update(out_gap=out_gap, agrees_forward=out_gap <= tol)
                print(f"d={d} {name}: forward only on the CPU (backward: {r['error']}); |out - ref| {out_gap:.3g}, "
                      f"agrees {out_gap <= tol}", flush=True)
                continue
            print(f"d={d} {name}: not accepted: {r['error']}", flush=True)
            continue
        r.update(accepted=True, layout=layout, note=note, first_call_s=time.perf_counter() - t)
        if name.endswith("_compiled") or (name.startswith("flex_") and a.device == "cuda"):
            r.update(graphs=counters["stats"]["unique_graphs"] - g0,
                     graph_breaks=sum(counters["graph_break"].values()) - sum(b0.values()),
                     break_reasons=[k[:200] for k, n in counters["graph_break"].items() if n > b0.get(k, 0)][:4])
            r["note"] = ((f"{note}; " if note else "") + f"{r['graphs']} graphs, {r['graph_breaks']} breaks, first "
                         f"call {r['first_call_s']:.0f} s" + "".join(f"; break: {b}" for b in r["break_reasons"]))
        doc = r["group"] == "doc"
        out_gap, grad_gap = gaps(w.common(out, layout)[:rows].float(),
                                 [w.common(g, layout)[:rows].float() for g in grads], refs[doc])
        if rounding is None:
            ok = out_gap <= TOL_FP32 and grad_gap <= TOL_FP32
        else:
            ok = out_gap <= ROUNDING_FACTOR * rounding[doc][0] and grad_gap <= ROUNDING_FACTOR * rounding[doc][1]
        r.update(out_gap=out_gap, grad_gap=grad_gap, reference="fp32 " + ("document mask" if doc else "causal"),
                 bf16_rounding=list(rounding[doc]) if rounding else None, agrees=bool(ok))
        try:
            r["profile"] = launched(fn, args, kw, a.device, a.top)
        except Exception as e:   # the profiler is a report, not a gate
            r["profile"] = [f"profiler failed: {first_line(e)}"]
        runs[name] = (fn, args, kw)
        print(f"d={d} {name}: accepted ({note or layout}), |out - ref| {out_gap:.3g}, grads {grad_gap:.3g}, "
              f"agrees {ok}; {r['profile'][:2]}", flush=True)
    for _ in range(a.rounds):
        for name, (fn, args, kw) in runs.items():
            fwd_bwd(fn, *args, **kw)
            sync(a.device)
            t = time.perf_counter()
            for _ in range(a.calls):
                fwd_bwd(fn, *args, **kw)
            sync(a.device)
            res[name].setdefault("ms_rounds", []).append((time.perf_counter() - t) / a.calls * 1e3)
    for r in res.values():
        if r.get("ms_rounds"):
            r["ms"] = float(np.median(r["ms_rounds"]))
    base = res.get("sdpa_default", {}).get("ms")
    for r in res.values():
        r["ratio_default_off"] = r["ms"] / base if base and r.get("ms") else None
    return dict(d=d, batch=w.B, heads=w.H, head_dim=w.hd, seq=w.T, dtype=str(w.dtype).replace("torch.", ""),
                documents=w.n_docs, doc_median=w.median_doc, doc_max=w.max_doc, pair_frac=w.pair_frac,
                agree_rows=rows, mask_effect=list(mask_effect), calls=a.calls, rounds=a.rounds, kernels=res)


def environment(device: str) -> dict:
    env = dict(torch=torch.__version__, cuda=torch.version.cuda, device=device)
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
        env["cudnn"] = torch.backends.cudnn.version()
    try:
        from torch.nn.attention import current_flash_attention_impl, list_flash_attention_impls
        env["flash_impls"] = f"registered {list_flash_attention_impls()}, active {current_flash_attention_impl()}"
    except ImportError:
        env["flash_impls"] = "this torch has no torch.nn.attention.list_flash_attention_impls"
    for mod in ("flash_attn_interface", "flash_attn.cute"):   # FA3's and FA4's packages: present or not
        try:
            __import__(mod)
            env[mod] = "importable"
        except Exception as e:
            env[mod] = first_line(e)
    return env


def run_main(a) -> None:
    names = a.kernels.split()
    bad = [n for n in names if n not in KERNELS]
    if bad or not names:
        raise SystemExit(f"--kernels {a.kernels!r}: unknown {bad}; each of {', '.join(KERNELS)}")
    if a.device == "cpu":
        print("cpu dry run: eager fp32; varlen, cuDNN and nested-tensor causal SDPA are CUDA-only (expected: not accepted)")
    if hasattr(torch._dynamo.config, "recompile_limit"):   # flex compiles once per width and tile
        torch._dynamo.config.recompile_limit = 64
    out = dict(tag=a.tag, env=environment(a.device), widths=[])
    print(json.dumps(out["env"]), flush=True)
    path = Path(a.out) / f"kern_{a.tag}.json"
    for d in [int(x) for x in a.widths.split()]:
        t = time.perf_counter()
        out["widths"].append(width_main(d, names, a))
        out["widths"][-1]["wall_s"] = time.perf_counter() - t
        path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


def table_main(a) -> None:
    """DIR/kern_*.json -> DIR/kernels.txt: a row per kernel (and file), ms and ratio at each width, agreement."""
    files = sorted(Path(a.out).glob("kern_*.json"))
    if not files:
        raise SystemExit(f"--table: no kern_*.json in {a.out} (run without --table first)")
    runs = sorted((json.loads(f.read_text()) for f in files), key=lambda r: (r["tag"] != "main", r["tag"]))
    widths = sorted({w["d"] for r in runs for w in r["widths"]})
    env = runs[0]["env"]
    lines = [f"{env.get('gpu', env['device'])}, torch {env['torch']}, cuda {env.get('cuda')}, cudnn {env.get('cudnn')}"
             f"; flash impls: {env.get('flash_impls')}; flash_attn_interface (FA3): {env.get('flash_attn_interface')}; "
             f"flash_attn.cute (FA4): {env.get('flash_attn.cute')}",
             "attention alone, forward + backward per layer (ms a call, median of interleaved rounds; ratio: to "
             "sdpa_default timed in the same process); max |diff|: output / gradients (relative) vs the fp32 "
             "reference, worst over widths"]
    for r in runs:
        for w in r["widths"]:
            lines.append(f"  [{r['tag']}] d={w['d']}: B={w['batch']} H={w['heads']} T={w['seq']} hd={w['head_dim']} "
                         f"{w['dtype']}, {w['documents']} documents (median {w['doc_median']:.0f}, max {w['doc_max']}),"
                         f" pairs {w['pair_frac']:.3f} of causal; the mask's own effect {w['mask_effect'][0]:.3g} / "
                         f"{w['mask_effect'][1]:.3g}; {w['rounds']} rounds x {w['calls']} calls, {w['wall_s']:.0f} s")
    head = (f"{'kernel':<16} {'tag':<5} {'group':<5} {'accepted':<8} "
            + " ".join(f"{'ms d' + str(d):>9} {'ratio':>6}" for d in widths) + f" {'max |diff| out / grad':>22} agrees")
    lines += [head]
    notes = []
    for r in runs:
        for name in KERNELS:
            cells = {w["d"]: w["kernels"][name] for w in r["widths"] if name in w["kernels"]}
            if not cells:
                continue
            some = next(iter(cells.values()))
            acc = [c["accepted"] for c in cells.values()]
            verdict = ("yes" if all(acc) else "some" if any(acc) else
                       "fwd only" if all(c.get("forward_only") for c in cells.values()) else "no")
            line = f"{name:<16} {r['tag'][:5]:<5} {some['group']:<5} {verdict:<8} "
            for d in widths:
                c = cells.get(d)
                line += (f"{c['ms']:>9.3f} {c['ratio_default_off']:>6.3f} " if c and c.get("ms") and c.get(
                    "ratio_default_off") else f"{c['ms']:>9.3f} {'-':>6} " if c and c.get("ms") else f"{'-':>9} {'-':>6} ")
            ok = [c for c in cells.values() if c["accepted"]]
            fwd = [c for c in cells.values() if c.get("forward_only")]
            if ok:
                line += (f"{max(c['out_gap'] for c in ok):>10.3g} / {max(c['grad_gap'] for c in ok):<9.3g} "
                         + ("yes" if all(c["agrees"] for c in ok) else "NO"))
            elif fwd:
                line += (f"{max(c['out_gap'] for c in fwd):>10.3g} / {'-':<9} "
                         + ("yes (forward)" if all(c["agrees_forward"] for c in fwd) else "NO (forward)"))
            lines.append(line)
            refused: dict[str, list[int]] = {}   # one line per distinct refusal, with the widths it was given at
            for d, c in cells.items():
                if not c["accepted"]:
                    why = ("the forward checked (above), the backward refused: " if c.get("forward_only")
                           else "") + c["error"]
                    refused.setdefault(why, []).append(d)
                else:
                    if c.get("note"):
                        notes.append(f"{name} d={d}: {c['note']}"
                                     + (f" (default tiles: {c['default_tiles_error']})" if c.get("default_tiles_error")
                                        else ""))
                    notes.append(f"{name} d={d} launches: " + "; ".join(c.get("profile", [])))
            notes += [f"{name} d={','.join(map(str, ds))}: {why}" for why, ds in refused.items()]
    lines += ["agrees: bf16 within " f"{ROUNDING_FACTOR}x bf16's own rounding (output and gradients), fp32 within "
              f"{TOL_FP32}; off kernels against the causal reference, doc kernels against the document-mask one"]
    lines += notes
    text = "\n".join(lines) + "\n"
    (Path(a.out) / "kernels.txt").write_text(text)
    print(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--table", action="store_true", help="only the table of DIR/kern_*.json")
    p.add_argument("--tag", default="main", help="this run's name: DIR/kern_<tag>.json")
    p.add_argument("--widths", default="128 384 768")
    p.add_argument("--kernels", default=DEFAULT_KERNELS, help=f"of {', '.join(KERNELS)}")
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--doc-median", type=float, default=400)
    p.add_argument("--batch", type=int, help="rows (default: bench/ref_throughput.py's rule for each width)")
    p.add_argument("--calls", type=int, default=20, help="timed calls a kernel a round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    p.add_argument("--agree-rows", type=int, default=8, help="rows checked against the fp32 reference")
    p.add_argument("--top", type=int, default=4, help="kernel names kept from the profile")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: a dry run of the plumbing")
    p.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp32"],
                   help="q, k, v's dtype (auto: bf16 on CUDA, as the compiled model attends; fp32 on the CPU)")
    a = p.parse_args()
    for key in ("calls", "rounds", "agree_rows", "top"):
        if getattr(a, key) < 1:
            p.error(f"--{key.replace('_', '-')} {getattr(a, key)}: at least 1")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    table_main(a) if a.table else run_main(a)


if __name__ == "__main__":
    main()
