"""Where the held-out eval's time goes, per compile mode and eval call size, and what the compiled eval saves.

    python bench/eval_profile.py --json out.json          # the device present: L2-d128 and L8-d512, seq_len 1024
    python bench/eval_profile.py --smoke --json out.json  # CPU, tiny shapes, dynamo's eager backend: seconds
    python bench/eval_profile.py --device cpu --threads 1 --rule cpu --shapes 4/4 --seq-len 128 --vocab 2048 \
        --heldout-tokens 8192 --modes off --sweep-modes off --batches 32,128,315   # the CPU demo's eval

For each shape (layers/micro-batch, GPU ladder) and each runtime.compile mode it sets the model up as the trainer does
(harness.device.resolve for the numerics, LossStep through harness.train.compile_step, the model's AdamW), on a
synthetic token stream (no corpus: random tokens, documents ~256 tokens, held-out windows through HeldoutSet as the
trainer builds them), and times, each between device synchronizations:

  train            one training step: the first (compile) and the steady mean; tokens/s
  legacy           the eval as it was up to d7b4639 (`legacy_evaluate`: eager, per-domain loop, the trainer's old
                   call size: min(micro, cap) on a GPU, cap on an fp32 CPU)
  eager            harness.evaluate's eval, eager (stacked windows, one host read), at the trainer's eager call size
                   (harness.evaluate.eval_batch: min(micro, cap) on a GPU, one domain's windows on an fp32 CPU)
  eager+inference  the same under torch.inference_mode
  compiled         harness.evaluate's eval through the compiled WindowLosses at the trainer's new call size (cap)
  train_after_eval one more training step after the evals: graphs compiled (eval mode or no_grad recompiling the
                   training graph would show here)

Per eval variant (batch: the call size asked; call: the windows a forward call took): the first eval (with the compiled variant's compile; in a run the compile is one warm-up call),
the steady eval (median of --repeats), graphs compiled during each (torch._dynamo counters: unique_graphs),
the peak device memory above the training state, the largest |loss - legacy's| over the domains and the mixture,
and `x_fwd`: the steady eval's seconds over those of the same tokens' forward at the training step's rate (a
training step ~ 3 forwards), i.e. how many times slower than the training's arithmetic the eval runs. With
--batches the modes in --sweep-modes also time the compiled and the eager eval at those call sizes. Compiles after
the first of a graph may hit inductor's on-disk cache (as a later run of a shape does in a sweep): `cold` says
whether the graph was new to this process. A table on stdout; JSON rows (--json), rewritten after every row.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import model_zoo  # noqa: E402
from harness.device import resolve  # noqa: E402
from harness.evaluate import EVAL_TOKENS, HeldoutSet, eval_batch  # noqa: E402
from harness.spec import DataSpec, OptimSpec, Runtime  # noqa: E402
from harness.step import LossStep  # noqa: E402
from harness.train import compile_step  # noqa: E402
from model_zoo import docmask  # noqa: E402
from model_zoo.spec import GPU_RULE, LadderRule  # noqa: E402

# --rule: the GPU ladder, or the CPU demo's (conf/model/cpu.yaml's rule: d_model = 8 * n_layers)
RULES = {"gpu": GPU_RULE, "cpu": LadderRule(aspect=8, head_dim=8, ffn_multiple=8)}

GPU = dict(shapes="2/128,8/16", seq_len=1024, vocab=8192, heldout_tokens=262144, domains=5, batches="16,128,256")
# a CPU run of the whole script in seconds: tiny shapes, dynamo traced but run by the eager backend (no C++ compile)
SMOKE = dict(shapes="1/4", seq_len=64, vocab=256, heldout_tokens=1024, domains=3, batches="4",
             backend="eager", device="cpu", repeats=1, train_steps=2, threads=1)


class SyntheticCorpus:
    """What HeldoutSet reads of a corpus (domains, heldout(d), eod_id): random tokens with an EOD about every
    `mean_doc` tokens (documents for data.document_mask=on)."""

    def __init__(self, n_domains: int, vocab: int, tokens: int, mean_doc: int = 256, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.domains, self.eod_id = [f"d{i}" for i in range(n_domains)], 0
        self.tokens = {}
        for d in self.domains:
            t = rng.integers(1, vocab, tokens + 1)
            t[rng.random(tokens + 1) < 1 / mean_doc] = self.eod_id
            self.tokens[d] = t

    def heldout(self, domain: str) -> np.ndarray:
        return self.tokens[domain]


@torch.no_grad()
def legacy_evaluate(held: HeldoutSet, model: torch.nn.Module, device: torch.device, batch_size: int,
                    autocast: contextlib.AbstractContextManager | None = None) -> dict[str, float]:
    """HeldoutSet.evaluate as it was up to d7b4639, one process (its world > 1 branches left out): a loop per domain,
    the model called eagerly on `batch_size` windows at a time, each domain's sum read on its own. The reference the
    profile and tests/test_eval_path.py compare the new path with."""
    was_training = model.training
    model.eval()
    sums = {}
    # per domain on the device, copied once (as the old HeldoutSet.on did), kept beside the new path's stacked copy
    cache = held.__dict__.setdefault("legacy_placed", {})
    if str(device) not in cache:
        cache[str(device)] = {d: (xs.to(device), ys.to(device)) for d, (xs, ys) in held.sets.items()}
    for d, (xs, ys) in cache[str(device)].items():
        total = torch.zeros((), dtype=torch.float64, device=device)
        count = xs.numel()
        if held.eod_id is not None:
            count -= int((~docmask.loss_keep(xs, held.eod_id)).sum())
        for lo in range(0, len(xs), batch_size):
            x, y = xs[lo:lo + batch_size], ys[lo:lo + batch_size]
            with autocast or contextlib.nullcontext():
                if held.eod_id is None:
                    out = model(x, y)
                else:
                    out = model(x, y, docmask.document_ids(x, held.eod_id))
            if held.eod_id is None:
                total += out.ce.double().sum()
            else:
                total += (out.ce.double() * docmask.loss_keep(x, held.eod_id)).sum()
        sums[d] = (total, count)
    model.train(was_training)
    losses = {f"loss_{d}": (t.item() / n if n else math.nan) for d, (t, n) in sums.items()}
    losses["loss"] = math.fsum(w * losses[f"loss_{d}"] for d, w in held.weights.items() if w > 0)
    return losses


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def graphs() -> int:
    """Graphs dynamo has handed a backend in this process so far (each compile or recompile adds one)."""
    from torch._dynamo.utils import counters
    return counters["stats"]["unique_graphs"]


def measure(fn, device: torch.device) -> tuple[float, int, float | None, object]:
    """(seconds, graphs compiled, peak device MiB above what was allocated before, fn's result)."""
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    g, t = graphs(), time.perf_counter()
    out = fn()
    sync(device)
    dt, dg = time.perf_counter() - t, graphs() - g
    peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20 if device.type == "cuda" else None
    return dt, dg, peak, out


@contextlib.contextmanager
def compile_backend(backend: str):
    """torch.compile with another backend for the duration (as tests/test_regional_compile.py does): compile_step
    and HeldoutSet.forward look torch.compile up when they call it."""
    if backend == "inductor":
        yield
        return
    original = torch.compile
    torch.compile = functools.partial(original, backend=backend)
    try:
        yield
    finally:
        torch.compile = original


class Profile:
    def __init__(self, a):
        self.a, self.rows, self.t0 = a, [], time.perf_counter()
        self.seen: set = set()   # graphs compiled in this process: (shape, variant, call size)

    def late(self) -> bool:
        return self.a.deadline_s > 0 and time.perf_counter() - self.t0 > self.a.deadline_s

    def add(self, row: dict) -> None:
        self.rows.append(row)
        print(line(row), flush=True)
        if self.a.json:
            Path(self.a.json).write_text(json.dumps({"args": vars(self.a), "rows": self.rows}, indent=1) + "\n")

    def shape(self, layers: int, micro: int, corpus: SyntheticCorpus) -> None:
        a = self.a
        for mode in a.modes.split(","):
            if self.late():
                self.add({"shape": f"L{layers}", "mode": mode, "variant": "skipped (deadline)"})
                continue
            torch._dynamo.reset()   # each mode as a fresh process sees it (inductor's disk cache stays)
            self.mode(layers, micro, mode, corpus)
            if torch.cuda.is_available():   # the mode's model and optimizer state are gone: give their memory back
                torch.cuda.empty_cache()

    def mode(self, layers: int, micro: int, mode: str, corpus: SyntheticCorpus) -> None:
        a = self.a
        hw = resolve(Runtime(device=a.device, compile=mode, precision=a.precision, threads=a.threads))
        dev = hw.device
        spec = RULES[a.rule].shape(layers, vocab_size=a.vocab, seq_len=a.seq_len)
        name = f"L{layers}-d{spec.d_model}"
        torch.manual_seed(0)
        model = model_zoo.build(spec).to(dev)
        eod = corpus.eod_id if a.docmask == "on" else None
        step = compile_step(LossStep(model, OptimSpec().z_loss, len(corpus.domains), eod_id=eod), hw)
        opt = model.configure_optimizer(OptimSpec(), dev.type)
        held = HeldoutSet(corpus, DataSpec(document_mask=a.docmask), a.heldout_tokens, a.seq_len)
        g = torch.Generator().manual_seed(1)
        x = torch.randint(1, a.vocab, (micro, a.seq_len + 1), generator=g)
        x[torch.rand(x.shape, generator=g) < 1 / 256] = corpus.eod_id
        inputs, targets = x[:, :-1].contiguous().to(dev), x[:, 1:].contiguous().to(dev)
        domains = torch.randint(0, len(corpus.domains), (micro, 1), generator=g).expand(-1, a.seq_len).to(dev)

        def train_step():
            with hw.autocast():
                loss, _ = step(inputs, targets, domains)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)

        base = {"shape": name, "micro": micro, "mode": mode, "docmask": a.docmask, "device": hw.name}
        first, g_first, _, _ = measure(train_step, dev)
        for _ in range(a.warm_steps):
            train_step()
        steady, g_steady, _, _ = measure(lambda: [train_step() for _ in range(a.train_steps)], dev)
        step_s = steady / a.train_steps
        tps = micro * a.seq_len / step_s
        self.add({**base, "variant": "train", "batch": micro, "first_s": first, "steady_s": step_s,
                  "graphs_first": g_first, "graphs_steady": g_steady, "tokens_per_s": tps})

        eval_tokens = sum(xs.numel() for xs, _ in held.sets.values())
        fwd_s = eval_tokens / (3 * tps)   # the same tokens' forward at the training step's arithmetic rate
        autocast = hw.autocast
        cap = max(1, EVAL_TOKENS // a.seq_len)
        old = cap if dev.type == "cpu" and hw.dtype == torch.float32 else min(micro, cap)   # the trainer's, before
        eager = eval_batch(hw, a.seq_len, micro, False, held.domain_windows)   # the trainer's eager eval's now

        timed = []   # (fn, row) of each variant whose first eval ran

        def variant(label: str, batch: int, fn) -> dict | None:
            """The first eval now; the steady ones after every variant's first, in turns (below)."""
            if self.late():
                self.add({**base, "variant": f"{label} skipped (deadline)", "batch": batch})
                return None
            key = (name, a.docmask, label, held.call_size(batch), a.precision)
            first, g_first, peak, losses = measure(fn, dev)
            call = min(batch, held.domain_windows) if label == "legacy" else held.call_size(batch)
            if any((r["variant"], r["call"]) == (label, call) for _, r in timed):   # --batches repeating one timed
                return None
            row = {**base, "variant": label, "batch": batch, "call": call, "first_s": first, "graphs_first": g_first,
                   "graphs_steady": 0, "cold": key not in self.seen, "peak_mib": peak, "eval_tokens": eval_tokens,
                   "losses": losses, "times": []}
            self.seen.add(key)
            if ref is not None:
                row["max_abs_diff"] = max(abs(losses[k] - ref[k]) for k in ref)
            timed.append((fn, row))
            return row

        ref = None
        legacy = variant("legacy", old, lambda: legacy_evaluate(held, model, dev, old, autocast()))
        ref = legacy["losses"] if legacy else None
        variant("eager", eager, lambda: held.evaluate(model, dev, eager, autocast()))

        def inference():
            with torch.inference_mode():
                return held.evaluate(model, dev, eager, autocast())
        held.on(dev)   # placed outside inference mode: the windows stay ordinary tensors
        variant("eager+inference", eager, inference)
        if hw.compile:
            new = eval_batch(hw, a.seq_len, micro, True, held.domain_windows)
            variant("compiled", new, lambda: held.evaluate(model, dev, new, autocast(), compiled=True))
        if mode in a.sweep_modes.split(","):
            for b in [int(s) for s in a.batches.split(",") if s]:
                if hw.compile:
                    variant("compiled", b, functools.partial(held.evaluate, model, dev, b, autocast(), compiled=True))
                variant("eager", b, functools.partial(held.evaluate, model, dev, b, autocast()))
        # steady evals in turns (legacy, eager, ..., legacy, eager, ...): a machine whose speed drifts (other jobs,
        # clocks) biases no variant against another
        for _ in range(a.repeats):
            for fn, row in timed:
                t, g, peak, _ = measure(fn, dev)
                row["times"].append(t)
                row["graphs_steady"] += g
                row["peak_mib"] = None if peak is None else max(peak, row["peak_mib"])
        for _, row in timed:
            row["steady_s"] = statistics.median(row["times"]) if row["times"] else None
            row["x_fwd"] = row["steady_s"] / fwd_s if row["times"] else None
            self.add(row)
        t, g_after, _, _ = measure(train_step, dev)   # last: the evals above compare with legacy's losses
        self.add({**base, "variant": "train_after_eval", "batch": micro, "first_s": t, "graphs_first": g_after})


def fmt(v, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec) if isinstance(v, float) else str(v)


COLUMNS = ("shape", "micro", "mode", "variant", "batch", "call", "first_s", "steady_s", "graphs_first", "graphs_steady",
           "cold", "peak_mib", "x_fwd", "max_abs_diff", "tokens_per_s")


def line(row: dict) -> str:
    specs = {"peak_mib": ".0f", "x_fwd": ".2f", "max_abs_diff": ".2e", "tokens_per_s": ".4g", "steady_s": ".4f"}
    return " | ".join(fmt(row.get(c), specs.get(c, ".3f")) for c in COLUMNS)


def summary(rows: list[dict]) -> list[str]:
    """Per shape and mode: the legacy eval's steady seconds against the compiled one's, and a run's eval cost
    (11 evals: eval.points=10 and the final one) with each, the compiled one's compile counted once."""
    out = []
    by = {(r["shape"], r["mode"], r["variant"], r.get("batch")): r for r in rows if r.get("steady_s") is not None}
    for (shape, mode, variant, batch), r in by.items():
        if variant != "legacy":
            continue
        new = [c for (s, m, v, _), c in by.items() if (s, m, v) == (shape, mode, "compiled")]
        eager = [c for (s, m, v, _), c in by.items() if (s, m, v) == (shape, mode, "eager")][:1]   # trainer's size
        best = min(new, key=lambda c: c["steady_s"]) if new else eager[0] if eager else None
        if best is None:
            continue
        per_run_old = 11 * r["steady_s"]
        per_run_new = 11 * best["steady_s"] + max(0.0, best["first_s"] - best["steady_s"])
        out.append(f"{shape} {mode}: legacy {r['steady_s']:.4f} s/eval at batch {batch}; {best['variant']} "
                   f"{best['steady_s']:.4f} s/eval at batch {best['batch']} ({r['steady_s'] / best['steady_s']:.1f}x), "
                   f"compile/first extra {best['first_s'] - best['steady_s']:.2f} s; a run's 11 evals "
                   f"{per_run_old:.2f} s -> {per_run_new:.2f} s")
    return out


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="CPU, tiny shapes, the eager backend (a test runs it)")
    p.add_argument("--shapes", help=f"layers/micro-batch, comma-separated (default {GPU['shapes']})")
    p.add_argument("--rule", default="gpu", choices=sorted(RULES), help="the model ladder the shapes are taken from")
    p.add_argument("--seq-len", type=int)
    p.add_argument("--vocab", type=int)
    p.add_argument("--heldout-tokens", type=int, help="per domain (scale=gpu: 262144)")
    p.add_argument("--domains", type=int)
    p.add_argument("--modes", default="regional,on,off", help="runtime.compile modes, in order")
    p.add_argument("--batches", help="extra call sizes for --sweep-modes (empty: none)")
    p.add_argument("--sweep-modes", default="regional", help="modes that also time --batches")
    p.add_argument("--docmask", default="off", choices=("off", "on"))
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--backend", default="inductor", help="torch.compile backend (inductor; eager, aot_eager to test)")
    p.add_argument("--repeats", type=int, default=2, help="steady evals per variant (median)")
    p.add_argument("--warm-steps", type=int, default=2)
    p.add_argument("--train-steps", type=int, default=10, help="steady training steps timed")
    p.add_argument("--deadline-s", type=float, default=0, help="> 0: skip what starts later than this")
    p.add_argument("--json")
    a = p.parse_args(argv)
    for k, v in {**GPU, **(SMOKE if a.smoke else {})}.items():
        if getattr(a, k, None) in (None, p.get_default(k)):
            setattr(a, k, v)
    return a


def main(argv: list[str] | None = None) -> list[dict]:
    a = parse(argv)
    shapes = [tuple(int(x) for x in s.split("/")) for s in a.shapes.split(",")]
    corpus = SyntheticCorpus(a.domains, a.vocab, a.heldout_tokens)
    prof = Profile(a)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    print(" | ".join(COLUMNS), flush=True)
    try:
        with compile_backend(a.backend):
            for layers, micro in shapes:
                prof.shape(layers, micro, corpus)
    finally:   # resolve() sets process-wide numerics: give the caller its own back
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        torch._dynamo.reset()
    print("\n".join(["", *summary(prof.rows)]), flush=True)
    return prof.rows


if __name__ == "__main__":
    main()
