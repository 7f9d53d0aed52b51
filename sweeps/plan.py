"""The planner: composed config -> every RunSpec of the sweep, validated, with its cost.

`plan(cfg)` is a pure function of the config (and, for checks only, the corpus manifest): it
builds no model, so a grid of hundreds of runs plans in well under a second. Every problem
found is collected, each naming its key, and raised together as one SpecError before anything
is launched.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from harness.spec import DataSpec, EvalSpec, OptimSpec, RunSpec, Runtime, SpecError, from_plain
from model_zoo import Counts
from sweeps import grids
from sweeps.cost import Throughput


@dataclass(frozen=True)
class PlannedRun:
    spec: RunSpec
    label: str                      # what the grid meant by it, e.g. "C1e+11 L2-d64 lr3e-03"
    counts: Counts
    budget: float | None = None

    @property
    def run_id(self) -> str:
        return self.spec.run_id

    @property
    def flops(self) -> int:
        return self.counts.flops_per_token * self.spec.tokens


@dataclass
class Plan:
    name: str                       # the sweep name: runs/<name>/
    sweep_dir: Path
    runs: list[PlannedRun]
    runtime: Runtime
    throughput: Throughput
    price_per_gpu_hour: float
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)   # only with plan(strict=False): the dry run shows both

    def run_dir(self, run: PlannedRun) -> Path:
        return self.sweep_dir / run.run_id


def plain_cfg(cfg) -> dict:
    """An OmegaConf config (resolved) or a plain dict, as plain Python containers."""
    try:
        from omegaconf import OmegaConf
        if OmegaConf.is_config(cfg):  # hydra's own node holds job-time values: leave it out
            return {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
                    for k in cfg if k != "hydra"}
    except ImportError:
        pass
    return cfg


def plan(cfg, strict: bool = True) -> Plan:
    """Every run of the sweep the config describes; SpecError listing every problem otherwise
    (strict=False: the runs that could be built, with the problems in `Plan.errors`)."""
    if not cfg.get("grid"):
        raise SpecError(["grid: no grid chosen; run e.g. `python sweep.py +grid=chinchilla` "
                         "(grids: conf/grid/*.yaml)"])
    c = plain_cfg(cfg)
    errors: list[str] = []
    g, sw = c["grid"], c["sweep"]
    rungs = grids.ladder_rungs(c["model"], errors)
    data = build(DataSpec, c["data"], "data", errors)
    optim = build(OptimSpec, c["train"]["optim"], "train.optim", errors)
    evals = build(EvalSpec, c["eval"], "eval", errors)
    runtime = build(Runtime, c["train"]["runtime"], "train.runtime", errors) or Runtime()
    shapes = grids.moe_shapes(g.get("moe"), grids.shapes(g["shapes"], rungs, errors), errors)
    domains = [d for d, _ in data.weights] if data and data.weights else corpus_domains(data)
    mixtures = grids.mixtures(g.get("mixtures"), domains, errors)
    lrs = [float(x) for x in g.get("lrs") or []]
    lr_table = grids.best_lrs(g["lr_from"]) if g.get("lr_from") else {}
    if g.get("lr_from") and not lr_table:
        errors.append(f"grid.lr_from={g['lr_from']!r}: no result.json found there; run the lr grid first "
                      "(python sweep.py +grid=lr) or unset grid.lr_from")
    seeds = g.get("seeds") or [c["train"].get("seed", 0)]
    runs: list[PlannedRun] = []
    if None not in (data, optim, evals):
        for shape in shapes:
            n = shape.rung.counts.params_nonembedding
            base_lr = grids.lr_for(n, lr_table) if lr_table else optim.lr
            for mix in mixtures:
                for lr in lrs or [base_lr]:
                    for seed in seeds:
                        runs.append(planned(shape, mix, lr, seed, data, optim, evals, c["train"]["batch_tokens"],
                                            show_lr=bool(lrs), show_seed=len(seeds) > 1))
    for r in runs:
        errors += [e for e in r.spec.errors() if e not in errors]
    min_steps = int(g.get("min_steps", 1))
    short = [r.label for r in runs if r.spec.steps < min_steps]
    if short:
        errors.append(f"grid.min_steps={min_steps}: {len(short)} run(s) would train fewer steps "
                      f"(e.g. {short[0]}): raise grid.shapes budgets/tokens or lower train.batch_tokens")
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        errors.append("grid: two runs of the grid are identical (same RunSpec); remove the duplicate axis values")
    warnings = corpus_errors(runs, sw, errors) if runs else []
    if errors and strict:
        raise SpecError(errors)
    root = Path(sw["root"])
    return Plan(name=str(sw["name"]), sweep_dir=root / str(sw["name"]), runs=runs, runtime=runtime,
                throughput=Throughput.load(sw.get("throughput_table"), sw.get("device_kind", "")),
                price_per_gpu_hour=float(sw.get("price_per_gpu_hour", 0)), warnings=warnings, errors=errors)


def build(cls, d: dict, key: str, errors: list[str]):
    try:
        return from_plain(cls, d)
    except (SpecError, TypeError) as e:
        errors += [f"{key}: {x}" for x in getattr(e, "errors", [str(e)])]
        return None


def planned(shape, mix, lr, seed, data, optim, evals, batch_tokens, show_lr, show_seed) -> PlannedRun:
    spec = RunSpec(model=shape.rung.spec, tokens=shape.tokens, batch_tokens=int(batch_tokens),
                   optim=OptimSpec(**{**optim.__dict__, "lr": lr}),
                   data=DataSpec(**{**data.__dict__, "weights": mix.weights}) if mix.weights else data,
                   eval=evals, seed=int(seed))
    parts = ([f"C{shape.budget:.2g}"] if shape.budget else []) + [shape.rung.name]
    parts += [mix.name] if mix.weights else []
    parts += [f"lr{lr:.0e}"] if show_lr else []
    parts += [f"s{seed}"] if show_seed else []
    return PlannedRun(spec, " ".join(parts), shape.rung.counts, shape.budget)


# -------------------------------------------------------------------------------- corpus checks

def open_corpus(data: DataSpec | None):
    from harness.data.corpus import data_root
    from harness.data.corpus import open_corpus as open_named
    return open_named(data.corpus, data_root()) if data is not None else None


def corpus_domains(data: DataSpec | None) -> list[str]:
    corpus = open_corpus(data)
    return corpus.domains if corpus else []


FREE_EPOCHS = 4   # Muennighoff et al. 2023: up to ~4 epochs, repeated data is about as good as fresh


def corpus_errors(runs: list[PlannedRun], sw: dict, errors: list[str]) -> list[str]:
    """Check vocab and data repetition against the corpus manifest. Returns warnings (corpus absent)."""
    data = runs[0].spec.data
    corpus = open_corpus(data)
    if corpus is None:
        from harness.data.corpus import build_hint, data_root
        return [f"data.corpus={data.corpus!r} is not built under {data_root()}: vocab and repetition not checked "
                f"(build it with {build_hint(data.corpus)}); the launch will refuse to start without it"]
    vocab = {r.spec.model.vocab_size for r in runs}
    if vocab != {corpus.vocab_size}:
        errors.append(f"model.vocab_size={sorted(vocab)} but corpus {corpus.name!r} has vocab_size="
                      f"{corpus.vocab_size}: set model.vocab_size={corpus.vocab_size}")
    domains = corpus.manifest["domains"]
    unknown = sorted({d for r in runs for d, _ in r.spec.data.weights if d not in domains})
    if unknown:
        errors.append(f"data.weights: domain(s) {unknown} not in corpus {corpus.name!r} ({sorted(domains)})")
        return []
    caps = dict(data.epoch_caps)
    cap = {d: float(caps.get(d, sw.get("max_epochs", math.inf))) for d in domains}   # repeats allowed per domain
    over: dict[str, list[tuple[float, str]]] = {}
    worst_repeat = (0.0, "", "")
    for r in runs:
        weights = dict(r.spec.data.weights) or {d: 1 / len(domains) for d in domains}
        for d, w in weights.items():
            epochs = w * r.spec.tokens / max(1, int(domains[d]["train_tokens"]))
            worst_repeat = max(worst_repeat, (epochs, d, r.label))
            if epochs > cap[d]:
                over.setdefault(d, []).append((epochs, r.label))
    if worst_repeat[0] > FREE_EPOCHS and not over:
        epochs, d, label = worst_repeat
        warnings = [f"run {label!r} repeats domain {d!r} {epochs:.1f} times: past about {FREE_EPOCHS} epochs "
                    "repeated tokens are worth less than fresh ones (Muennighoff et al. 2023), which biases the "
                    "largest budgets' losses upward; a larger corpus removes this"]
    else:
        warnings = []
    for d, bad in sorted(over.items()):
        key = "data.epoch_caps" if d in caps else "sweep.max_epochs"
        epochs, label = max(bad)
        errors.append(f"{key}: {len(bad)} run(s) repeat domain {d!r} past its cap of "
                      f"{cap[d]:g} epochs (worst: {label!r}, {epochs:.2f} times): "
                      f"the budget is too large for corpus {corpus.name!r} ({int(domains[d]['train_tokens']):,} tokens); "
                      f"lower the budget, build a larger corpus, or raise the cap")
    return warnings


# ---------------------------------------------------------------------------------- the table

def plan_table(p: Plan, statuses: dict | None = None) -> str:
    """One row per run: id, N, D, tokens/param, FLOPs, estimated device-hours, cost, status; then totals."""
    from sweeps.table import render, si
    rows, hours, cost, known = [], 0.0, 0.0, True
    for r in p.runs:
        h = p.throughput.hours(r.counts.flops_per_token, r.spec.tokens)
        known &= h is not None
        hours += h or 0.0
        cost += (h or 0.0) * p.price_per_gpu_hour
        n = r.counts.params_nonembedding
        rows.append([r.run_id, r.label, si(n), si(r.counts.params_total), si(r.spec.tokens),
                     f"{r.spec.tokens / n:.2g}", f"{r.flops:.2e}", f"{h:.3g}" if h is not None else "unmeasured",
                     f"{h * p.price_per_gpu_hour:.2f}" if h is not None else "-",
                     statuses[r.run_id].state if statuses else "planned"])
    unit = "GPU-h" if p.throughput.device_kind.lower() != "cpu" else "CPU-h"
    table = render(["run id", "run", "N", "N total", "D", "D/N", "FLOPs", f"est {unit}", "cost $", "status"],
                   rows, right={2, 3, 4, 5, 6, 7, 8})
    total_flops = sum(r.flops for r in p.runs)
    est = (f"{hours:.3g} {unit} ({p.throughput.device_kind}), ${cost:,.2f} at ${p.price_per_gpu_hour:g}/h"
           if known else f"{unit} unmeasured for device kind {p.throughput.device_kind!r} "
                         f"(no rows in the throughput table: run bench/ to measure)")
    lines = [table, f"total: {len(p.runs)} runs, {si(sum(r.spec.tokens for r in p.runs))} tokens, "
                    f"{total_flops:.3e} FLOPs, {est}",
             f"sweep dir: {p.sweep_dir}   N = non-embedding parameters (Kaplan); N total adds embedding and head"]
    return "\n".join(lines + [f"warning: {w}" for w in p.warnings] + [f"error: {e}" for e in p.errors])
