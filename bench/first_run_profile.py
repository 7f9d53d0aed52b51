"""Where a sweep worker's start and its FIRST run's warm-up go, in one fresh process (issue 12 item 1).

    python bench/first_run_profile.py --json out.json                 # the device present: L4-d256 then L6-d384
    python bench/first_run_profile.py --device cpu --smoke --json o.json   # CPU plumbing: tiny shapes, seconds
    OUT=$OUT bash bench/gpu_first_run.sh                              # two fresh processes (cold, then warm caches)

A sweep worker (sweeps.worker) imports torch and the trainer, starts CUDA in its first run's Trainer (harness.device
.resolve), builds the model and optimizer, compiles the loss step on the first training step, and the first held-out
eval may compile its own graphs. This script does the same, in the worker's order and through the same code, and
marks the wall clock between each phase (each mark after a device synchronisation):

  imports   interpreter start (/proc start time, and the launcher's $LAUNCH_T when given) to this file's first line;
            then sweeps.worker, torch, torch._dynamo and the trainer modules the worker imports ahead
            (sweeps.worker.WARM_IMPORTS); then what the first compile would otherwise import itself
            (torch._inductor.compile_fx, triton), each timed; which of them an earlier stage had already loaded
  device    harness.device.resolve (on CUDA: set_device, i.e. the CUDA context), the first tensor on the device,
            the first fp32 matmul (cuBLAS's handle) and the first bf16 matmul under autocast
  per shape the model and the optimizer built as harness.train.Trainer builds them (model_zoo.build, .to(device),
            configure_optimizer, LossStep, harness.train.compile_step with runtime.compile=--compile), then the
            first training step split into: forward call (dynamo tracing + AOT autograd + Inductor's forward
            compile + the first forward execution), backward (the backward graph is compiled lazily at the first
            backward: Inductor + Triton + execution), clip_grad_norm_, the fused AdamW's first step; then steps 2
            and 3 (recompiles would show here), the steady step (mean of --steady-steps), and the first held-out
            eval as the trainer does it under these settings (harness.evaluate.compiled_eval / regional_eval: the
            warm-up compile when either is on, else the eager eval's first call, which compiles nothing)
  shapes    the second shape in the SAME process, after the first (what a later run costs once the process is warm;
            the worker's compiler settings, sweeps.worker.configure_compiler, are applied as the worker does)

Within each compiling phase, where the seconds went comes from torch itself, as deltas over the phase:
  * torch._dynamo.utils.get_compilation_metrics() (one CompilationMetrics per dynamo frame compile; fields summed
    over the new entries): entire_frame_compile_time_s (dynamo, all of it), backend_compile_time_s (AOT autograd +
    Inductor), inductor_compile_time_s, code_gen_time_s, *_cumulative_compile_time_us, triton_compile_time_us,
    FX-graph / AOTAutograd cache hits and misses. "dynamo_trace_s" = entire - backend, "aot_autograd_s" = backend -
    inductor: DERIVED here, approximate (the phases nest and the lazy backward compile has no frame of its own).
  * torch._dynamo.utils.compilation_time_metrics (seconds per dynamo_timed() region, e.g. _compile.compile_inner,
    OutputGraph.call_user_compiler, create_aot_dispatcher_function, compile_fx_inner, GraphLowering.codegen,
    async_compile.wait, PyCodeCache.load_by_key_path): the top regions per phase, by seconds. Regions nest.
  * torch._dynamo.utils.counters (unique_graphs, fxgraph_cache_hit/miss, autograd_cache_hit/miss, graph breaks).
  * "outside_compile_s" = the phase's wall - entire_frame_compile_time_s (forward) - the backward compile regions:
    first execution, lazy initialisations, kernel loads.
The table on stdout; every number in the JSON (--json), rewritten after each phase so a killed run leaves its marks.
"""
import time

T_TOP, T_TOP_WALL = time.perf_counter(), time.time()   # before any other import: the script's first line

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]   # the harness; bench/eval_profile's synthetic corpus

# the worker's import order: its own module (python -m sweeps.worker), then WARM_IMPORTS (sweeps.worker.stand_by)
IMPORT_STAGES = ("sweeps.worker", "torch", "torch._dynamo", "harness.train", "harness.__main__", "harness.branches")
# imported by the first compile if nothing before did: timed here, so that the compile phases below exclude them
COMPILE_IMPORTS = ("torch._inductor.compile_fx", "triton")
WATCH = ("torch", "torch._dynamo", "torch._inductor", "torch._inductor.compile_fx", "triton")
# GPU: the chinchilla grid's shapes at scale=gpu (conf/scale/gpu.yaml: batch_tokens 131072 = 128 sequences of
# 1024, vocab 8192, micro-batch 0 = the whole batch; 5 domains, heldout_tokens 262144, eval.curve_tokens 32768 as
# bench/gpu_sweep_efficiency.sh ran it)
GPU = dict(shapes="4/128,6/128", seq_len=1024, vocab=8192, domains=5, heldout_tokens=262144, curve_tokens=32768,
           steady_steps=5)
# CPU plumbing in seconds: tiny shapes (the CPU ladder's rule), fp32
SMOKE = dict(device="cpu", shapes="1/4,2/4", seq_len=64, vocab=256, domains=3, heldout_tokens=2048, curve_tokens=512,
             steady_steps=2, rule="cpu", threads=1)
METRIC_FIELDS = ("entire_frame_compile_time_s", "backend_compile_time_s", "inductor_compile_time_s",
                 "code_gen_time_s", "dynamo_cumulative_compile_time_us", "aot_autograd_cumulative_compile_time_us",
                 "inductor_cumulative_compile_time_us", "inductor_code_gen_cumulative_compile_time_us",
                 "triton_compile_time_us", "backward_cumulative_compile_time_us", "joint_graph_pass_time_us",
                 "pre_grad_pass_time_us", "post_grad_pass_time_us", "runtime_triton_autotune_time_us",
                 "compile_time_autotune_time_us", "gc_time_us", "num_triton_bundles",
                 "inductor_fx_local_cache_hit_count", "inductor_fx_local_cache_miss_count",
                 "aotautograd_local_cache_hit_count", "aotautograd_local_cache_miss_count")
COUNTERS = (("stats", "unique_graphs"), ("inductor", "fxgraph_cache_hit"), ("inductor", "fxgraph_cache_miss"),
            ("inductor", "fxgraph_cache_bypass"), ("aot_autograd", "autograd_cache_hit"),
            ("aot_autograd", "autograd_cache_miss"), ("aot_autograd", "autograd_cache_bypass"),
            ("stats", "calls_captured"))


def process_start() -> float | None:
    """This process' start as unix seconds, from /proc (as sweeps.timeline.process_start; not imported from there
    so that no module is loaded before the import stages are timed)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(x.split()[1]) for x in Path("/proc/stat").read_text().splitlines() if x.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


class Record:
    """Marks (name, seconds of the phase, seconds since this file's first line) and per-phase details; the JSON is
    rewritten after each mark."""

    def __init__(self, path: str | None):
        self.path, self.t = path, T_TOP
        self.data = {"marks": [], "phases": [], "env": {}}

    def mark(self, name: str, **extra) -> float:
        now = time.perf_counter()
        dt, self.t = now - self.t, now
        self.data["marks"].append({"mark": name, "s": round(dt, 4), "since_top_s": round(now - T_TOP, 4), **extra})
        print(f"{name:<58} {dt:8.3f} s   (at {now - T_TOP:7.2f} s)"
              + (f"  {json.dumps(extra)}" if extra else ""), flush=True)
        self.save()
        return dt

    def restart(self) -> None:
        """The next mark times from now (after work that is not itself a phase: printing, bookkeeping)."""
        self.t = time.perf_counter()

    def save(self) -> None:
        if self.path:
            Path(self.path).write_text(json.dumps(self.data, indent=1, default=str) + "\n")


def loaded() -> list[str]:
    return [m for m in WATCH if m in sys.modules]


def timed_imports(rec: Record, stages) -> None:
    for name in stages:
        before = set(loaded())
        try:
            importlib.import_module(name)
            err = None
        except ImportError as e:   # triton on a CPU-only build: said, not fatal
            err = f"{type(e).__name__}: {e}"
        newly = [m for m in loaded() if m not in before]
        rec.mark(f"import {name}", **({"error": err} if err else {}), **({"also_loaded": newly} if newly else {}))


class CompileProbe:
    """torch's own compile accounting, as deltas over a phase (see the module docstring for the sources)."""

    def __init__(self):
        from torch._dynamo import utils
        self.u = utils
        self.snap()

    def snap(self) -> None:
        self.n_metrics = len(self.u.get_compilation_metrics())
        self.regions = {k: (len(v), sum(v)) for k, v in self.u.compilation_time_metrics.items()}
        self.counts = {f"{a}.{b}": self.u.counters[a][b] for a, b in COUNTERS}

    def delta(self) -> dict:
        metrics = self.u.get_compilation_metrics()[self.n_metrics:]
        sums = {}
        for m in metrics:
            for f in METRIC_FIELDS:
                v = getattr(m, f, None)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    sums[f] = sums.get(f, 0) + v
        regions = {}
        for k, v in self.u.compilation_time_metrics.items():
            n0, s0 = self.regions.get(k, (0, 0.0))
            if len(v) > n0:
                regions[k] = (len(v) - n0, round(sum(v) - s0, 4))
        counts = {k: self.u.counters[a][b] - self.counts[k] for k, (a, b) in zip(self.counts, COUNTERS)}
        self.snap()
        out = {"frames_compiled": len(metrics), "metrics": {k: round(v, 4) for k, v in sums.items()},
               "regions": dict(sorted(regions.items(), key=lambda kv: -kv[1][1])),
               "counters": {k: v for k, v in counts.items() if v}}
        if "entire_frame_compile_time_s" in sums:   # derived (approximate): see the module docstring
            ent, back = sums["entire_frame_compile_time_s"], sums.get("backend_compile_time_s", 0.0)
            out["derived"] = {"dynamo_trace_s": round(ent - back, 4),
                              "aot_autograd_s": round(back - sums.get("inductor_compile_time_s", 0.0), 4)}
        return out


def sync(dev) -> None:
    import torch
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def summary(d: dict, wall: float, top: int) -> str:
    """One line of a compiling phase's split."""
    m, parts = d["metrics"], []
    for k, label in (("entire_frame_compile_time_s", "dynamo frame"), ("backend_compile_time_s", "backend"),
                     ("inductor_compile_time_s", "inductor"), ("code_gen_time_s", "codegen")):
        if k in m:
            parts.append(f"{label} {m[k]:.2f}")
    if "triton_compile_time_us" in m:
        parts.append(f"triton {m['triton_compile_time_us'] / 1e6:.2f}")
    if "derived" in d:
        parts.append(f"[trace {d['derived']['dynamo_trace_s']:.2f}, aot {d['derived']['aot_autograd_s']:.2f}]")
    regs = ", ".join(f"{k} {s:.2f}x{n}" for k, (n, s) in list(d["regions"].items())[:top])
    line = f"      frames {d['frames_compiled']}; " + "; ".join(parts)
    if d.get("outside_compile_s") is not None:
        line += f"; outside compile {d['outside_compile_s']:.2f} of {wall:.2f}"
    if d["counters"]:
        line += f"\n      counters {json.dumps(d['counters'])}"
    return line + (f"\n      regions {regs}" if regs else "")


def backward_compile_s(regions: dict) -> float:
    """Seconds of the lazy backward compile inside a backward phase: the outermost backward compile region torch
    names (its name differs across versions), else the AOT/Inductor entry points' sum."""
    for key in ("compile_fx.<locals>.bw_compiler", "bw_compiler", "compile_fx_inner", "GraphLowering.compile_to_module"):
        if key in regions:
            return regions[key][1]
    return 0.0


def profile_shape(rec: Record, probe: CompileProbe, a, hw, layers: int, micro: int, label: str) -> dict:
    import torch
    from eval_profile import RULES, SyntheticCorpus

    import model_zoo
    from harness.evaluate import HeldoutSet, compiled_eval, eval_batch, regional_eval, regions_in_eval
    from harness.spec import DataSpec, OptimSpec
    from harness.step import LossStep
    from harness.train import compile_step
    dev, spec = hw.device, RULES[a.rule].shape(layers, vocab_size=a.vocab, seq_len=a.seq_len)
    name = f"L{layers}-d{spec.d_model}"
    p = f"{label} {name} micro {micro}:"
    row = {"shape": name, "micro": micro, "label": label, "phases": {}}
    rec.data["phases"].append(row)

    def phase(what: str, fn, compiles: bool = False):
        probe.snap()
        rec.restart()
        out = fn()
        sync(dev)
        wall = rec.mark(f"{p} {what}")
        d = probe.delta()
        d["wall_s"] = round(wall, 4)
        if compiles:
            ent = d["metrics"].get("entire_frame_compile_time_s", 0.0)
            bw = backward_compile_s(d["regions"]) if what.startswith("step 1 backward") else 0.0
            d["outside_compile_s"] = round(wall - ent - bw, 4)
            if d["frames_compiled"] or d["regions"] or d["counters"]:   # silent where nothing compiled
                print(summary(d, wall, a.top), flush=True)
        row["phases"][what] = d
        rec.save()
        return out

    torch.manual_seed(0)
    model = phase("model build + .to(device)", lambda: model_zoo.build(spec).to(dev))
    opt = phase("optimizer (configure_optimizer)", lambda: model.configure_optimizer(OptimSpec(), dev.type))
    corpus = SyntheticCorpus(a.domains, a.vocab, a.heldout_tokens)
    step = phase(f"LossStep + compile_step (compile={a.compile})",
                 lambda: compile_step(LossStep(model, OptimSpec().z_loss, a.domains), hw))
    g = torch.Generator().manual_seed(1)
    x = torch.randint(1, a.vocab, (micro, a.seq_len + 1), generator=g)
    inputs, targets = x[:, :-1].contiguous().to(dev), x[:, 1:].contiguous().to(dev)
    domains = torch.randint(0, a.domains, (micro, 1), generator=g).expand(-1, a.seq_len).contiguous().to(dev)
    sync(dev)
    state = {}

    def forward():
        with hw.autocast():
            state["loss"], _ = step(inputs, targets, domains)

    def rest_of_step():
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def train_step():
        forward()
        state["loss"].backward()
        rest_of_step()

    phase("step 1 forward (trace + AOT + inductor fwd + run)", forward, compiles=True)
    phase("step 1 backward (lazy bwd compile + run)", lambda: state["loss"].backward(), compiles=True)
    phase("step 1 clip_grad_norm_", lambda: torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0), compiles=True)
    phase("step 1 AdamW step + zero_grad", lambda: (opt.step(), opt.zero_grad(set_to_none=True)), compiles=True)
    phase("step 2 (whole)", train_step, compiles=True)
    phase("step 3 (whole)", train_step, compiles=True)
    phase(f"steady: {a.steady_steps} steps", lambda: [train_step() for _ in range(a.steady_steps)])
    row["steady_step_s"] = row["phases"][f"steady: {a.steady_steps} steps"]["wall_s"] / a.steady_steps
    first = sum(row["phases"][k]["wall_s"] for k in row["phases"] if k.startswith("step 1"))
    row["first_step_s"] = round(first, 4)
    row["first_step_minus_steady_s"] = round(first - row["steady_step_s"], 4)

    # the held-out eval as the trainer sets it up (harness.train.Trainer.__init__ / evaluate), one process
    on_compiled, on_regions = compiled_eval(hw, False, "off"), regional_eval(hw, False, "off")
    held = HeldoutSet(corpus, DataSpec(), a.heldout_tokens, a.seq_len, a.curve_tokens)
    batch = eval_batch(hw, a.seq_len, micro, on_compiled, held.domain_windows)
    row["eval"] = {"compiled_eval": on_compiled, "regional_eval": on_regions, "call_size": held.call_size(batch)}
    curve = a.curve_tokens > 0

    def warm():
        with regions_in_eval(model, on_regions):
            held.warm(model, dev, batch, hw.autocast(), compiled=on_compiled)

    def evaluate(curve_only: bool):
        with regions_in_eval(model, on_regions):
            held.evaluate(model, dev, batch, hw.autocast(), compiled=on_compiled, fixed_shape=on_regions,
                          curve=curve_only)
    if on_compiled or on_regions:
        phase("eval warm-up (trainer: compiles the eval graphs)", warm, compiles=True)
    else:
        rec.mark(f"{p} eval warm-up: none (eager eval under these settings)")
    phase("first eval (curve subset)" if curve else "first eval", lambda: evaluate(curve), compiles=True)
    phase("second eval (same)", lambda: evaluate(curve), compiles=True)
    phase("final eval (full set)", lambda: evaluate(False), compiles=True)
    return row   # the model, optimizer and held-out set go with this frame (the caller empties the CUDA cache)


def autograd_cache():
    """AOTAutograd's cache switch, None where this torch has none."""
    try:
        import torch._functorch.config as fc
        return getattr(fc, "enable_autograd_cache", None)
    except ImportError:
        return None


def prewarm_pool(rec: Record) -> None:
    """Inductor compiles kernels in its worker pool only once the pool answers (AsyncCompile.use_process_pool);
    until then, i.e. during a cold process' first compile, it compiles them in this process, one after another.
    Started and awaited here, each timed (a worker would start it and not wait)."""
    import torch._inductor.config as ic
    from torch._inductor.async_compile import AsyncCompile
    rec.restart()
    AsyncCompile.warm_pool()
    rec.mark("prewarm: AsyncCompile.warm_pool()", compile_threads=ic.compile_threads)
    if hasattr(AsyncCompile, "wait_pool_ready"):
        AsyncCompile.wait_pool_ready()
        rec.mark("prewarm: wait_pool_ready() (workers up)")
    else:
        rec.mark("prewarm: this torch has no AsyncCompile.wait_pool_ready; pool started, not awaited")


SPLIT = (("dynamo_trace_s", "derived", 1), ("aot_autograd_s", "derived", 1),
         ("inductor_compile_time_s", "metrics", 1), ("code_gen_time_s", "metrics", 1),
         ("triton_compile_time_us", "metrics", 1e-6), ("outside_compile_s", None, 1))


def compare(out: str, paths: list[str]) -> int:
    """The processes' JSONs side by side: one row per mark, one column per process; then each compiling phase's
    split (seconds; derived and raw as in the module docstring) and cache hits. Writes them all into `out`."""
    runs = {}
    for path in paths:
        if Path(path).exists():
            d = json.loads(Path(path).read_text())
            runs[d["env"]["args"].get("label") or Path(path).stem] = d
        else:
            print(f"(no {path}: that process did not run)")
    if not runs:
        print("nothing to compare")
        return 1
    Path(out).write_text(json.dumps(runs, indent=1, default=str) + "\n")
    names = []
    for d in runs.values():
        names += [m["mark"] for m in d["marks"] if m["mark"] not in names]
    width = max(len(n) for n in names)
    print(f"\n{'seconds per mark':<{width}} " + " ".join(f"{k:>9}" for k in runs))
    for n in names:
        vals = []
        for d in runs.values():
            v = next((m["s"] for m in d["marks"] if m["mark"] == n), None)
            vals.append(f"{v:9.3f}" if v is not None else f"{'-':>9}")
        print(f"{n:<{width}} " + " ".join(vals))
    print(f"{'total since the first line':<{width}} "
          + " ".join(f"{d.get('total_since_top_s', float('nan')):9.2f}" for d in runs.values()))
    print("\ncompiling phases, seconds: wall | " + ", ".join(k.removesuffix("_us") for k, _, _ in SPLIT)
          + " (nested, they do not add up; see the docstring); cache hit/miss: fxgraph, autograd")
    for label, d in runs.items():
        for row in d["phases"]:
            for what, ph in row["phases"].items():
                if not ph.get("frames_compiled") and not ph.get("regions"):
                    continue
                vals = []
                for k, src, scale in SPLIT:
                    v = ph.get(k) if src is None else ph.get(src, {}).get(k)
                    vals.append(f"{v * scale:6.2f}" if v is not None else f"{'-':>6}")
                c = ph.get("counters", {})
                hits = (f"{c.get('inductor.fxgraph_cache_hit', 0)}/{c.get('inductor.fxgraph_cache_miss', 0)} "
                        f"{c.get('aot_autograd.autograd_cache_hit', 0)}/{c.get('aot_autograd.autograd_cache_miss', 0)}")
                print(f"  {label:<8} {row['shape']:<9} {what[:44]:<44} wall {ph['wall_s']:6.2f} | "
                      + " ".join(vals) + f"   {hits}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", default=None, help="write every mark and phase here (rewritten after each)")
    p.add_argument("--device", default="auto", help="auto | cuda | cpu (harness.device.resolve)")
    p.add_argument("--compile", default="regional", help="runtime.compile: regional | on | off")
    p.add_argument("--backend", default="inductor", help="torch.compile backend (eager: a CPU dry run without "
                                                         "C++ compiles)")
    p.add_argument("--smoke", action="store_true", help="tiny CPU shapes (SMOKE) for a dry run of the plumbing")
    p.add_argument("--shapes", default=None, help="layers/micro-batch, comma-separated: the first run's shape, "
                                                  "then the later ones in the same process (default GPU: 4/128,6/128)")
    p.add_argument("--seq-len", type=int, default=None)
    p.add_argument("--vocab", type=int, default=None)
    p.add_argument("--domains", type=int, default=None)
    p.add_argument("--heldout-tokens", type=int, default=None)
    p.add_argument("--curve-tokens", type=int, default=None)
    p.add_argument("--steady-steps", type=int, default=None)
    p.add_argument("--rule", default="gpu", help="the ladder: gpu (d = 64 L) or cpu (d = 8 L)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--top", type=int, default=6, help="dynamo_timed regions printed per phase")
    p.add_argument("--prewarm-pool", action="store_true",
                   help="start Inductor's compile worker pool and wait until it is ready, timed, before CUDA starts "
                        "(what a worker could do while it waits for its queue): the first compile then finds it up")
    p.add_argument("--label", default="", help="a name for this process in the JSON (e.g. cold, warm)")
    p.add_argument("--compare", nargs="+", metavar=("OUT_JSON", "JSON"),
                   help="no profiling: print the given processes' JSONs side by side and merge them into OUT_JSON")
    a = p.parse_args(argv)
    if a.compare:
        return compare(a.compare[0], a.compare[1:])
    base = {**GPU, **(SMOKE if a.smoke else {})}
    for k, v in base.items():
        if getattr(a, k, None) in (None, "gpu", 0, "auto") or (a.smoke and k in ("rule", "threads")):
            setattr(a, k, v)
    rec = Record(a.json)
    start = process_start()
    launch = float(os.environ["LAUNCH_T"]) if os.environ.get("LAUNCH_T") else None
    rec.data["env"] = {"args": vars(a), "argv": sys.argv, "pid": os.getpid(),
                       "TORCHINDUCTOR_CACHE_DIR": os.environ.get("TORCHINDUCTOR_CACHE_DIR"),
                       "TRITON_CACHE_DIR": os.environ.get("TRITON_CACHE_DIR")}
    print(f"[{a.label or 'process'}] pid {os.getpid()}", flush=True)
    if launch is not None:   # the shell's clock just before `python`: the exec and interpreter start
        rec.data["marks"].append({"mark": "launcher to this file's first line", "s": round(T_TOP_WALL - launch, 4),
                                  "since_top_s": 0.0})
        print(f"{'launcher ($LAUNCH_T) to this file first line':<58} {T_TOP_WALL - launch:8.3f} s", flush=True)
    if start is not None:
        # coarse: /proc/stat's boot time is in whole seconds (so up to 1 s off); $LAUNCH_T above is the one to read
        rec.data["marks"].append({"mark": "process start (/proc, +-1 s) to this file's first line",
                                  "s": round(T_TOP_WALL - start, 4), "since_top_s": 0.0})
        print(f"{'process start (/proc, +-1 s) to this file first line':<58} {T_TOP_WALL - start:8.3f} s", flush=True)
    rec.restart()
    timed_imports(rec, IMPORT_STAGES)
    import torch

    from sweeps.worker import configure_compiler
    configure_compiler()   # as sweeps.worker.serve does before its first job
    rec.restart()
    timed_imports(rec, COMPILE_IMPORTS)
    import torch._inductor.config as ic
    rec.data["env"].update(torch=torch.__version__, cuda=torch.version.cuda, compile_threads=ic.compile_threads,
                           worker_start_method=getattr(ic, "worker_start_method", None),
                           fx_graph_cache=getattr(ic, "fx_graph_cache", None),
                           autograd_cache=autograd_cache())
    print(f"torch {torch.__version__} cuda {torch.version.cuda}; inductor compile_threads {ic.compile_threads}, "
          f"worker_start_method {rec.data['env']['worker_start_method']}", flush=True)

    if a.prewarm_pool:
        prewarm_pool(rec)
    from harness.device import resolve
    from harness.spec import Runtime
    cuda_before = torch.cuda.is_initialized()   # the imports must not start CUDA (sweeps.worker pins the GPU after)
    rec.restart()
    hw = resolve(Runtime(device=a.device, compile=a.compile, threads=a.threads))
    dev = hw.device
    rec.mark("harness.device.resolve (CUDA: context via set_device)", device=str(dev), compile=a.compile,
             cuda_initialized_by_imports=cuda_before,
             regional=hw.regional, dtype=str(hw.dtype))
    rec.data["env"]["device_name"] = hw.name
    torch.zeros(1, device=dev)
    sync(dev)
    rec.mark("first tensor on the device")
    m = torch.randn(1024, 1024, device=dev)
    (m @ m).sum().item()
    rec.mark("first fp32 matmul (cuBLAS handle, TF32)")
    with hw.autocast():
        (m @ m).sum().item()
    rec.mark(f"first matmul under autocast ({hw.dtype})")
    del m
    probe = CompileProbe()
    shapes = [tuple(int(v) for v in s.split("/")) for s in a.shapes.split(",") if s]
    rows = []
    from eval_profile import compile_backend  # here, after the timed imports (it imports torch and the harness)
    with compile_backend(a.backend):
        for i, (layers, micro) in enumerate(shapes):
            rows.append(profile_shape(rec, probe, a, hw, layers, micro, "first shape" if i == 0 else f"shape {i + 1}"))
            if dev.type == "cuda":   # as sweeps.worker.release_device_memory between runs
                torch.cuda.empty_cache()
    rec.restart()
    rec.data["compile_times"] = torch._dynamo.utils.compile_times(repr="str", aggregate=True)
    rec.data["total_since_top_s"] = round(time.perf_counter() - T_TOP, 3)
    rec.save()
    print("\nper shape: first step (all its phases) / steady step / difference, seconds")
    for r in rows:
        print(f"  {r['label']:<12} {r['shape']:<10} {r['first_step_s']:8.3f} {r['steady_step_s']:8.4f} "
              f"{r['first_step_minus_steady_s']:8.3f}")
    print(f"total since this file's first line: {rec.data['total_since_top_s']:.2f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
