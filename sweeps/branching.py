"""grid.cooldown_branches: the grid's WSD runs at several lengths, computed as branches of shared trunks.

    cooldown_branches:
      multipliers: [0.25, 0.5, 1, 2, 4]   # each shape's D times each (a compute-grid shape's budget C too)
      fork: true                          # false: the very same runs (same specs, same run ids), each trained
                                          # on its own: the check that a branch equals its independent run

Runs that differ only in length share one constant-lr trunk (harness.branches); each run forks from it at
the start of its own cooldown. For that, a group's warmup is fixed in steps: train.optim.warmup_steps, or
else warmup_frac of the group's shortest run (so no run warms up for longer than warmup_frac of itself),
written into every spec as optim.warmup_steps (warmup_frac 0): an independent run of the same spec has
the same lr at every step. A compute-grid shape at m x D is an isoFLOP point of budget m x C (its
`budget`), so the extra lengths also give approach 2 more isoFLOP curves.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from harness.branches import Branch, branch_errors, start_step, trunk_of
from harness.spec import RunSpec
from sweeps.grids import Shape

KEYS = {"multipliers", "fork"}


def config_errors(cfg: dict) -> list[str]:
    e = [f"grid.cooldown_branches.{k}: unknown key (known: {sorted(KEYS)})" for k in sorted(set(cfg) - KEYS)]
    mult = cfg.get("multipliers")
    if not isinstance(mult, (list, tuple)) or not mult or not all(
            isinstance(m, (int, float)) and not isinstance(m, bool) and m > 0 for m in mult):
        e.append(f"grid.cooldown_branches.multipliers={mult!r}: give a list of positive numbers, e.g. [0.5, 1, 2] "
                 "(the run lengths as multiples of each shape's D)")
    if not isinstance(cfg.get("fork", True), bool):
        e.append(f"grid.cooldown_branches.fork={cfg.get('fork')!r}: true (branches of shared trunks) or false "
                 "(the same runs trained independently)")
    return e


def expand(cfg: dict, shapes: list[Shape]) -> list[Shape]:
    """Each shape at each multiple of its length; a compute-grid shape at m x its budget (D = mC / FLOPs per
    token, so a shape that another budget already has at that length appears once)."""
    out, seen = [], set()
    for s in shapes:
        for m in sorted(float(x) for x in cfg["multipliers"]):
            if s.budget:
                shape = Shape(s.rung, int(m * s.budget / s.rung.counts.flops_per_token), m * s.budget)
            else:
                shape = Shape(s.rung, int(m * s.tokens))
            if (shape.rung.spec, shape.tokens) not in seen:
                seen.add((shape.rung.spec, shape.tokens))
                out.append(shape)
    return out


def group_key(spec: RunSpec) -> str:
    """Runs with the same key differ only in length (and cooldown): one trunk serves them."""
    return trunk_of(dataclasses.replace(spec, optim=dataclasses.replace(spec.optim, warmup_steps=0)), 0).canonical_json()


def assign(cfg: dict, runs: list, errors: list[str]) -> list:
    """The planned runs with each group's warmup fixed in steps and, with fork (the default), the trunk
    and branch point each is computed from (PlannedRun.branch)."""
    groups: dict[str, list] = {}
    for r in runs:
        groups.setdefault(group_key(r.spec), []).append(r)
    out = []
    for group in groups.values():
        o = group[0].spec.optim
        warm = o.warmup_steps or int(o.warmup_frac * min(r.spec.steps for r in group))
        optim = dataclasses.replace(o, warmup_steps=warm, warmup_frac=0.0)
        specs = [dataclasses.replace(r.spec, optim=optim) for r in group]
        longest = max(specs, key=lambda s: s.tokens)
        trunk = trunk_of(longest, longest.tokens)
        for e in [f"grid.cooldown_branches: {x}" for s in specs for x in branch_errors(s)] + \
                 [f"grid.cooldown_branches: trunk {trunk.run_id}: {x}" for x in trunk.errors()]:
            if e not in errors:
                errors.append(e)
        for r, spec in zip(group, specs):
            label = r.label if r.budget or len(group) == 1 else f"{r.label} D{spec.tokens}"
            branch = Branch(trunk, start_step(spec)) if cfg.get("fork", True) else None
            out.append(dataclasses.replace(r, spec=spec, label=label, branch=branch))
    return out


def trunks(runs: Iterable) -> dict[str, tuple[RunSpec, list]]:
    """trunk run id -> (trunk spec, its branches in fork order)."""
    out: dict[str, tuple[RunSpec, list]] = {}
    for r in runs:
        if r.branch:
            out.setdefault(r.branch.trunk.run_id, (r.branch.trunk, []))[1].append(r)
    for _, branches in out.values():
        branches.sort(key=lambda r: r.branch.start_step)
    return out


def summary(p) -> list[str]:
    """The plan table's lines on branching: each trunk, and the compute with and without it."""
    from sweeps.table import si
    groups = trunks(p.runs)
    if not groups:
        return []
    lines = [f"cooldown branches: {len(groups)} trunk(s) (constant lr, runs/{p.name}/.trunks/) for "
             f"{sum(len(b) for _, b in groups.values())} runs, each forked at the start of its cooldown"]
    trunk_flops = trunk_hours = 0.0
    known = True
    for tid, (_, branches) in groups.items():
        fpt, end, seqs = branches[0].counts.flops_per_token, branches[-1].branch.start_tokens, branches[0].spec.batch_size
        trunk_flops += fpt * end
        starts = [0] + [b.branch.start_tokens for b in branches]
        for a, b in zip(starts, starts[1:]):   # each segment is advanced in its branch's process: a start-up each
            h = p.throughput.hours(fpt, b - a, seqs) if b > a else 0.0
            known &= h is not None
            trunk_hours += h or 0.0
        lines.append(f"  trunk {tid} {branches[-1].label}: to {si(end)} tokens ({fpt * end:.2e} FLOPs), "
                     f"forks at " + " ".join(si(b.branch.start_tokens) for b in branches))
    rest_flops = rest_hours = 0.0
    for r in p.runs:   # each branch's cooldown, and any run not branched
        tokens = r.spec.tokens - (r.branch.start_tokens if r.branch else 0)
        h = p.throughput.hours(r.counts.flops_per_token, tokens, r.spec.batch_size)
        known &= h is not None
        rest_flops += r.counts.flops_per_token * tokens
        rest_hours += h or 0.0
    alone = sum(r.flops for r in p.runs)
    spent = trunk_flops + rest_flops
    line = (f"compute with branches: {spent:.3e} FLOPs (trunks {trunk_flops:.3e} + cooldowns {rest_flops:.3e}) "
            f"vs {alone:.3e} as independent runs: {1 - spent / alone:.0%} saved")
    if known:
        hours = sum(p.throughput.hours(r.counts.flops_per_token, r.spec.tokens, r.spec.batch_size) for r in p.runs)
        line += f"; est {trunk_hours + rest_hours:.3g} vs {hours:.3g} device-hours"
    return lines + [line]
