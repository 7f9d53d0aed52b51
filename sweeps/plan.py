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

from harness.branches import Branch
from harness.spec import DataSpec, EvalSpec, OptimSpec, RunSpec, Runtime, SpecError, from_plain
from model_zoo import Counts
from sweeps import batching, branching, grids, placement, schema
from sweeps.cost import Throughput, scale_lines


@dataclass(frozen=True)
class PlannedRun:
    spec: RunSpec
    label: str                      # what the grid meant by it, e.g. "C1e+11 L2-d64 lr3e-03"
    counts: Counts
    budget: float | None = None
    branch: Branch | None = None    # computed as a cooldown branch of a shared trunk (grid.cooldown_branches)
    lr_source: str = "train.optim.lr"   # where spec.optim.lr came from: grid.lrs, lr sweep, lr law (grid.lr_from)
    gpus: int = 1                   # GPUs (processes) the run trains over (sweeps.placement)

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
    blockers: list[str] = field(default_factory=list)  # stop a launch, not a dry run (e.g. the corpus is not built)
    target_flops: float | None = None   # sweep.target_flops: the final run's budget, costed beside the grid
    gpus_total: int | None = None   # GPUs the sweep spreads over, when sweep.gpus names them (the wall-clock estimate)
    efficiency: float = 1.0         # sweep.multi_gpu_efficiency: a G-GPU run's speed / (G x one GPU's)
    epochs: dict[str, dict[str, float]] = field(default_factory=dict)   # run id -> {domain: epochs it reads}
    corpus: str = ""                # the corpus the epochs were counted on (empty: not built here)
    batch: batching.BatchRule = batching.BatchRule()   # grid.batch: how each run's batch was chosen
    base_batch_tokens: int = 0      # train.batch_tokens: the grid's batch before grid.batch's rule

    def hours(self, run: PlannedRun) -> float | None:
        """Device-hours of `run` (all its GPUs together) from the measured one-GPU throughput at its batch; None if
        unmeasured."""
        h = self.throughput.hours(run.counts.flops_per_token, run.spec.tokens, run.spec.batch_size)
        return None if h is None else (h if run.gpus == 1 else h / self.efficiency)

    def run_dir(self, run: PlannedRun) -> Path:
        return self.sweep_dir / run.run_id


def plain_cfg(cfg) -> dict:
    """An OmegaConf config (resolved) or a plain dict, as plain Python containers; SpecError naming the
    key of an interpolation that cannot be resolved."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException
    if not OmegaConf.is_config(cfg):
        return cfg
    out, errors = {}, []
    for k in cfg:
        if k == "hydra":  # hydra's own node holds job-time values: leave it out
            continue
        try:
            node = cfg._get_node(k)
            out[k] = OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(node) else cfg[k]
        except OmegaConfBaseException as e:
            errors.append(f"{getattr(e, 'full_key', None) or k}: {str(e).splitlines()[0]}")
    if errors:
        raise SpecError(errors)
    return out


def plan(cfg, strict: bool = True) -> Plan:
    """Every run of the sweep the config describes; SpecError listing every problem otherwise
    (strict=False: the runs that could be built, with the problems in `Plan.errors`)."""
    if not cfg.get("grid"):
        raise SpecError(["grid: no grid chosen; run e.g. `python sweep.py +grid=chinchilla` "
                         "(grids: conf/grid/*.yaml)"])
    c = plain_cfg(cfg)
    if bad := schema.errors(c):   # unknown keys and wrong types: nothing below could read them safely
        raise SpecError(bad)
    errors: list[str] = []
    g, sw = c["grid"], c["sweep"]
    rungs = grids.ladder_rungs(c["model"], errors)
    data = build(DataSpec, c["data"], "data", errors)
    optim = build(OptimSpec, c["train"]["optim"], "train.optim", errors)
    evals = build(EvalSpec, c["eval"], "eval", errors)
    runtime = build(Runtime, c["train"]["runtime"], "train.runtime", errors) or Runtime()
    shapes = grids.moe_shapes(g.get("moe"), grids.shapes(g["shapes"], rungs, errors), errors)
    branches = g.get("cooldown_branches")
    if branches:
        errors += (bad := branching.config_errors(branches))
        shapes = shapes if bad else branching.expand(branches, shapes)
    domains = [d for d, _ in data.weights] if data and data.weights else corpus_domains(data)
    mixtures = grids.mixtures(g.get("mixtures"), domains, errors)
    lrs = [grids.LrChoice(float(x), "grid.lrs") for x in g.get("lrs") or []]
    lr_warnings: list[str] = []
    lr_sweep = grids.lr_from(g["lr_from"], errors, lr_warnings) if g.get("lr_from") else None
    seeds = g.get("seeds") or [c["train"].get("seed", 0)]
    grid_budgets = sorted({s.budget for s in shapes if s.budget})
    replicate_seeds, replicate_budgets = replicates(g.get("replicates"), seeds, grid_budgets, errors)
    base_batch = int(c["train"]["batch_tokens"])
    batch = batching.rule_from(g.get("batch"), errors)
    if branches and batch.rule != "fixed":
        errors.append(f"grid.batch.rule={batch.rule}: not with grid.cooldown_branches (a trunk and its branches share "
                      "one batch, and their lengths differ): set grid.batch.rule=fixed")
    if stray := sorted(replicate_budgets - {s.budget for s in shapes}):
        errors.append(f"grid.replicates.budgets: {stray} are not budgets of this grid "
                      f"({sorted({s.budget for s in shapes if s.budget})})")
    runs: list[PlannedRun] = []
    if None not in (data, optim, evals):
        for shape in shapes:
            n = shape.rung.counts.params_nonembedding
            base = (lr_sweep.choose(n, shape.tokens, errors, lr_warnings) if lr_sweep
                    else grids.LrChoice(optim.lr, "train.optim.lr"))
            for mix in mixtures:
                for lr in lrs or ([base] if base else []):
                    extra = replicate_seeds if shape.budget in replicate_budgets else []
                    for seed in seeds + extra:
                        runs.append(planned(shape, mix, lr, seed, data, optim, evals,
                                            batch.batch_tokens(base_batch, shape.rung.spec.seq_len, shape.tokens),
                                            show_lr=bool(lrs), show_seed=len(seeds) > 1 or bool(extra)))
    if branches:
        runs = branching.assign(branches, runs, errors)
    runs = placement.assign(runs, sw, runtime.micro_batch_size if runtime else 0, errors)
    errors += batching.micro_batch_errors(runs, runtime.micro_batch_size if runtime else 0)
    for r in runs:
        errors += [e for e in r.spec.errors() if e not in errors]
    min_steps = int(g.get("min_steps", 1))
    short = [r.label for r in runs if r.spec.steps < min_steps]
    if short:
        errors.append(f"grid.min_steps={min_steps}: {len(short)} run(s) would train fewer steps "
                      f"(e.g. {short[0]}): raise grid.shapes budgets/tokens, lower train.batch_tokens "
                      "or set grid.batch.rule=steps")
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        errors.append("grid: two runs of the grid are identical (same RunSpec); remove the duplicate axis values")
    blockers: list[str] = []
    epochs: dict[str, dict[str, float]] = {}
    warnings = lr_warnings + batching.warnings(batch, runs, base_batch)
    warnings += corpus_errors(runs, sw, errors, blockers, epochs) if runs else []
    if errors and strict:
        raise SpecError(errors)
    root = Path(sw["root"])
    return Plan(name=str(sw["name"]), sweep_dir=root / str(sw["name"]), runs=runs, runtime=runtime,
                throughput=Throughput.load(sw.get("throughput_table"), sw.get("device_kind", "")),
                price_per_gpu_hour=float(sw.get("price_per_gpu_hour", 0)), warnings=warnings, errors=errors,
                blockers=blockers, gpus_total=gpus_total(sw), efficiency=float(sw.get("multi_gpu_efficiency", 1.0)),
                target_flops=float(sw["target_flops"]) if sw.get("target_flops") else None,
                epochs=epochs, corpus=str(runs[0].spec.data.corpus) if epochs else "", batch=batch,
                base_batch_tokens=base_batch)


def gpus_total(sw: dict) -> int | None:
    """The GPUs a local sweep spreads over, when sweep.gpus names a number (auto: known only at launch)."""
    g = sw.get("gpus")
    return int(g) if isinstance(g, int) and g > 0 else None


def replicates(cfg: dict | None, seeds: list, grid_budgets: list[float], errors: list[str]
               ) -> tuple[list[int], set[float]]:
    """grid.replicates = {seeds: [...], budgets: [...]}: the runs of those budgets again with those extra seeds,
    so that the analysis measures run-to-run noise without replicating the whole grid. A budget may be named
    `smallest` or `largest` (of the grid's), which stays right when the budgets are overridden."""
    if not cfg:
        return [], set()
    unknown = set(cfg) - {"seeds", "budgets"}
    if unknown:
        errors.append(f"grid.replicates: unknown key(s) {sorted(unknown)}; use {{seeds: [1], budgets: [1e11]}}")
    extra = [int(s) for s in cfg.get("seeds") or [] if int(s) not in seeds]
    named = {"smallest": grid_budgets[:1], "largest": grid_budgets[-1:]}
    budgets = set()
    for b in cfg.get("budgets") or []:
        if b in named:
            budgets.update(named[b])
        else:
            try:
                budgets.add(float(b))
            except (TypeError, ValueError):
                errors.append(f"grid.replicates.budgets: {b!r} is neither a budget (FLOPs) nor smallest / largest")
    if not extra or not budgets:
        errors.append("grid.replicates: give both seeds (not already in grid.seeds) and budgets, "
                      "e.g. {seeds: [1], budgets: [smallest]}, or set it to null")
    return extra, budgets


def build(cls, d: dict, key: str, errors: list[str]):
    try:
        return from_plain(cls, d, key)
    except SpecError as e:
        errors += e.errors
        return None


def planned(shape, mix, lr: grids.LrChoice, seed, data, optim, evals, batch_tokens, show_lr, show_seed) -> PlannedRun:
    spec = RunSpec(model=shape.rung.spec, tokens=shape.tokens, batch_tokens=int(batch_tokens),
                   optim=OptimSpec(**{**optim.__dict__, "lr": lr.lr}),
                   data=DataSpec(**{**data.__dict__, "weights": mix.weights}) if mix.weights else data,
                   eval=evals, seed=int(seed))
    parts = ([f"C{shape.budget:.2g}"] if shape.budget else []) + [shape.rung.name]
    parts += [mix.name] if mix.weights else []
    parts += [f"lr{lr.lr:.2g}"] if show_lr else []   # 2 digits: lrs 1.4x apart keep apart
    parts += [f"s{seed}"] if show_seed else []
    return PlannedRun(spec, " ".join(parts), shape.rung.counts, shape.budget, lr_source=lr.source)


# -------------------------------------------------------------------------------- corpus checks

def open_corpus(data: DataSpec | None):
    from harness.data.corpus import data_root
    from harness.data.corpus import open_corpus as open_named
    return open_named(data.corpus, data_root()) if data is not None else None


def corpus_domains(data: DataSpec | None) -> list[str]:
    corpus = open_corpus(data)
    return corpus.domains if corpus else []


FREE_EPOCHS = 4   # Muennighoff et al. 2023: up to ~4 epochs, repeated data is about as good as fresh


def domain_epochs(data: DataSpec, tokens: int, train_tokens: dict[str, int]) -> dict[str, float]:
    """Epochs of each domain a run of `tokens` reads: its weights (uniform when none), stage by stage
    (MixtureStream.plan() counts the same to within a window per domain)."""
    starts = [0] + [min(tokens, st.start_tokens or round(st.start_frac * tokens)) for st in data.stages]
    spans = [b - a for a, b in zip(starts, starts[1:] + [tokens])]
    read = dict.fromkeys(train_tokens, 0.0)
    for span, weights in zip(spans, [data.weights, *(st.weights for st in data.stages)]):
        for d, w in (weights or [(d, 1 / len(train_tokens)) for d in train_tokens]):
            read[d] = read.get(d, 0.0) + w * span
    return {d: r / max(1, train_tokens.get(d, 0)) for d, r in read.items()}


def corpus_errors(runs: list[PlannedRun], sw: dict, errors: list[str], blockers: list[str] | None = None,
                  epochs_out: dict | None = None) -> list[str]:
    """Check vocab, sequence length and data repetition against the corpus manifest. Returns warnings and
    fills epochs_out (run id -> {domain: epochs}); a corpus that is absent or unreadable is a blocker: a dry
    run shows the plan, a launch is refused."""
    from harness.data.corpus import Corpus, CorpusError, data_root, resolve_corpus_path
    data = runs[0].spec.data
    try:
        corpus = Corpus(resolve_corpus_path(data.corpus, data_root()))
    except (CorpusError, OSError, ValueError, KeyError) as e:   # absent, or a manifest cut short / garbage
        why = str(e) if isinstance(e, CorpusError) else f"data.corpus={data.corpus!r}: unreadable manifest ({e})"
        if blockers is not None:
            blockers.append(why)
        return [f"{why}; vocab, sequence length and repetition not checked, and a launch is refused until it is built"]
    vocab = {r.spec.model.vocab_size for r in runs}
    if vocab != {corpus.vocab_size}:
        errors.append(f"model.vocab_size={sorted(vocab)} but corpus {corpus.name!r} has vocab_size="
                      f"{corpus.vocab_size}: set model.vocab_size={corpus.vocab_size}")
    domains = corpus.manifest["domains"]
    unknown = sorted({d for r in runs for d, _ in r.spec.data.weights if d not in domains})
    if unknown:
        errors.append(f"data.weights: domain(s) {unknown} not in corpus {corpus.name!r} ({sorted(domains)})")
        return []
    errors += split_errors(runs, corpus)
    if any(r.spec.data.document_mask == "on" for r in runs):
        from harness.data.corpus import document_mask_errors
        errors += document_mask_errors(corpus)
    caps = dict(data.epoch_caps)
    cap = {d: float(caps.get(d, sw.get("max_epochs", math.inf))) for d in domains}   # repeats allowed per domain
    over: dict[str, list[tuple[float, str]]] = {}
    worst_repeat = (0.0, "", "")
    train_tokens = {d: int(info["train_tokens"]) for d, info in domains.items()}
    for r in runs:
        per_domain = domain_epochs(r.spec.data, r.spec.tokens, train_tokens)
        if epochs_out is not None:
            epochs_out[r.run_id] = per_domain
        for d, epochs in per_domain.items():
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


def split_errors(runs: list[PlannedRun], corpus) -> list[str]:
    """A training window is seq_len + 1 tokens: every domain a run trains on needs that many train tokens,
    and every domain (all are evaluated) that many held-out tokens within eval.heldout_tokens."""
    out = []
    domains = corpus.manifest["domains"]
    for seq_len, heldout in sorted({(r.spec.model.seq_len, r.spec.eval.heldout_tokens) for r in runs}):
        need = seq_len + 1
        trained = {d for r in runs if r.spec.model.seq_len == seq_len
                   for w in [r.spec.data.weights, *(s.weights for s in r.spec.data.stages)]
                   for d, x in (w or [(d, 1.0) for d in domains]) if x > 0}
        for d in sorted(domains):
            n_train, n_held = int(domains[d].get("train_tokens", 0)), int(domains[d].get("heldout_tokens", 0))
            if d in trained and n_train < need:
                out.append(f"model.seq_len={seq_len}: domain {d!r} of corpus {corpus.name!r} has {n_train} train "
                           f"tokens, fewer than one window of seq_len + 1 = {need}: lower model.seq_len, give the "
                           f"domain weight 0 in data.weights, or add text to it")
            if n_held < need:
                out.append(f"model.seq_len={seq_len}: domain {d!r} of corpus {corpus.name!r} has {n_held} held-out "
                           f"tokens, fewer than one eval window of seq_len + 1 = {need}: lower model.seq_len or "
                           "rebuild the corpus with a larger held-out split")
            elif heldout < need:
                out.append(f"eval.heldout_tokens={heldout}: fewer than one eval window of model.seq_len + 1 = "
                           f"{need}: raise it to at least {need}")
    return list(dict.fromkeys(out))   # one line per problem, not per domain


# ---------------------------------------------------------------------------------- the table

def plan_table(p: Plan, statuses: dict | None = None) -> str:
    """One row per run: id, N, D, tokens/param, lr and where it came from, (the batch and steps, where grid.batch
    gave runs different batches), FLOPs, estimated device-hours, cost, status; then totals."""
    from sweeps.table import render, si
    rows, hours, cost, known = [], 0.0, 0.0, True
    per_run_batch = len({r.spec.batch_tokens for r in p.runs}) > 1
    for r in p.runs:
        h = p.hours(r)
        known &= h is not None
        hours += h or 0.0
        cost += (h or 0.0) * p.price_per_gpu_hour
        n = r.counts.params_nonembedding
        batch_cells = [f"{r.spec.batch_size}x{r.spec.model.seq_len}", str(r.spec.steps)] if per_run_batch else []
        rows.append([r.run_id, r.label, si(n), si(r.counts.params_total), si(r.spec.tokens),
                     f"{r.spec.tokens / n:.2g}", f"{r.spec.optim.lr:.3g}", r.lr_source, *batch_cells, f"{r.flops:.2e}",
                     str(r.gpus), f"{h:.3g}" if h is not None else "unmeasured",
                     f"{h * p.price_per_gpu_hour:.2f}" if h is not None else "-",
                     statuses[r.run_id].state if statuses else "planned"])
    unit = "GPU-h" if p.throughput.device_kind.lower() != "cpu" else "CPU-h"
    batch_cols = ["batch", "steps"] if per_run_batch else []
    header = ["run id", "run", "N", "N total", "D", "D/N", "lr", "lr from", *batch_cols, "FLOPs", "GPUs",
              f"est {unit}", "cost $", "status"]
    left = {"run id", "run", "lr from", "status"}
    table = render(header, rows, right={i for i, h in enumerate(header) if h not in left})
    total_flops = sum(r.flops for r in p.runs)
    est = (f"{hours:.3g} {unit} ({p.throughput.device_kind}), ${cost:,.2f} at ${p.price_per_gpu_hour:g}/h"
           if known else f"{unit} unmeasured for device kind {p.throughput.device_kind!r} "
                         f"(no rows in the throughput table: run bench/ to measure)")
    if known and any(r.gpus > 1 for r in p.runs):
        est += (f"; runs over several GPUs at {p.efficiency:g} scaling efficiency (sweep.multi_gpu_efficiency"
                + (", 1 = perfect: measure it with bench/gpu_multigpu.sh)" if p.efficiency == 1 else ")"))
    if known and p.gpus_total and unit == "GPU-h":
        need = max(r.gpus for r in p.runs)
        if need > p.gpus_total:
            est += f"; a run needs {need} GPUs but sweep.gpus={p.gpus_total}"
        else:
            wall = placement.wall_hours([(p.hours(r) / r.gpus, r.gpus) for r in p.runs], p.gpus_total)
            est += f"; about {wall:.3g} h wall-clock on {p.gpus_total} GPUs (longest first)"
    lines = [table, f"total: {len(p.runs)} runs, {si(sum(r.spec.tokens for r in p.runs))} tokens, "
                    f"{total_flops:.3e} FLOPs, {est}",
             f"sweep dir: {p.sweep_dir}   N = non-embedding parameters (Kaplan); N total adds embedding and head"]
    masks = sorted({r.spec.data.document_mask for r in p.runs})
    lines += [f"attention: data.document_mask={'/'.join(masks)}"
              + (" (per-document causal attention; FLOPs above count the full causal window)" if "on" in masks else "")]
    lines += branching.summary(p)
    lines += batching.summary(p.batch, p.runs, p.base_batch_tokens)
    lowered, tp = [r.spec.batch_size for r in p.runs if r.spec.batch_tokens != p.base_batch_tokens], p.throughput
    if known and lowered and tp.batch_floor is None:
        lines.append(f"est {unit}: the throughput table measured no smaller batch (no batch_speed section): the "
                     f"{len(lowered)} run(s) at a lowered batch are priced at the full batch's tokens/s, likely too fast")
    elif known and (below := tp.below_measured_batch(lowered)):
        lines.append(f"est {unit}: {below} run(s) train at batches below the smallest measured in the throughput table "
                     f"({tp.batch_floor} sequences): priced at its tokens/s ({tp.speed(tp.batch_floor):.2f}x the full "
                     "batch's), unmeasured there and likely slower")
    lines += scale_lines(p.throughput, p.price_per_gpu_hour, p.target_flops, total_flops)
    lines += epochs_table(p)
    return "\n".join(lines + [f"warning: {w}" for w in p.warnings] + [f"error: {e}" for e in p.errors])


def epochs_table(p: Plan) -> list[str]:
    """How many times each run reads each domain of the corpus (FREE_EPOCHS and past are marked)."""
    from sweeps.table import render
    if not p.epochs:
        return ["epochs per domain: not counted (the corpus is not built here)"]
    domains = sorted({d for e in p.epochs.values() for d in e})
    rows = []
    for r in p.runs:
        e = p.epochs.get(r.run_id, {})
        worst = max(e.values(), default=0.0)
        rows.append([r.run_id, r.label, *(f"{e.get(d, 0.0):.3g}" for d in domains),
                     f"{worst:.3g}" + (" *" if worst > FREE_EPOCHS else "")])
    table = render(["run id", "run", *domains, "max"], rows, right=set(range(2, len(domains) + 3)))
    return ["", f"epochs per domain of corpus {p.corpus!r} (train tokens read / the domain's train tokens; "
                f"* past {FREE_EPOCHS}):", table]
