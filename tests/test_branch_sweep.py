"""grid.cooldown_branches: the planner's trunks, warmups, budgets and compute saved (no training), and one
real `python sweep.py +grid=chinchilla_wsd` whose branch rows add up and whose relaunch reruns nothing."""
import json
import math

import pytest
from test_plan import cfg, no_corpus  # noqa: F401  (no_corpus: an autouse fixture)
from test_sweep import data, sweep  # noqa: F401  (data: a module fixture)

from harness.branches import start_step, trunk_of
from harness.schedule import lr_at
from harness.spec import SpecError
from sweeps.plan import plan, plan_table

TINY = ["+grid=chinchilla_wsd", "data.corpus=syn", "grid.shapes.budgets=[1e10]", "grid.shapes.sizes_per_budget=1",
        "grid.shapes.min_each_side=0", "grid.shapes.tokens_per_param=1", "grid.min_steps=2",
        "eval.heldout_tokens=2048", "grid.cooldown_branches.multipliers=[0.5,1]", "sweep.max_parallel=2"]


def test_plan_groups_each_size_under_one_trunk_with_one_warmup():
    p = plan(cfg("+grid=chinchilla_wsd"))
    c = cfg("+grid=chinchilla_wsd")
    mult = list(c.grid.cooldown_branches.multipliers)
    budgets = {float(b) for b in c.grid.shapes.budgets}
    sizes = {r.spec.model for r in p.runs}
    assert {r.branch.trunk.run_id for r in p.runs} and len({r.branch.trunk.run_id for r in p.runs}) == len(sizes)
    for r in p.runs:
        s, trunk = r.spec, r.branch.trunk
        assert s.optim.schedule == "wsd" and s.optim.warmup_frac == 0 and s.optim.warmup_steps > 0
        assert trunk.optim.schedule == "constant" and trunk.optim.warmup_steps == s.optim.warmup_steps
        assert trunk == trunk_of(s, trunk.tokens) and r.branch.start_step == start_step(s) < trunk.steps
        assert any(math.isclose(r.budget, m * C) for m in mult for C in budgets)   # m x D is an isoFLOP point of m x C
        assert abs(r.flops - r.budget) <= r.counts.flops_per_token
        # the fork keeps the lr path: up to the fork the trunk's, after it the run's own
        assert [lr_at(trunk.optim, i, trunk.steps) for i in range(r.branch.start_step)] == \
               [lr_at(s.optim, i, s.steps) for i in range(r.branch.start_step)]
    for model in sizes:   # warmup_frac of the group's shortest run, in steps
        group = [r.spec for r in p.runs if r.spec.model == model]
        assert {g.optim.warmup_steps for g in group} == {int(0.02 * min(g.steps for g in group))}
    # forks off: the very same runs (ids), each trained on its own
    alone = plan(cfg("+grid=chinchilla_wsd", "grid.cooldown_branches.fork=false"))
    assert [r.run_id for r in alone.runs] == [r.run_id for r in p.runs] and not any(r.branch for r in alone.runs)


def test_plan_table_shows_the_compute_saved():
    p = plan(cfg("+grid=chinchilla_wsd"))
    trunk_flops = {}
    for r in p.runs:
        t = r.branch.trunk.run_id
        trunk_flops[t] = max(trunk_flops.get(t, 0), r.counts.flops_per_token * r.branch.start_tokens)
    cooldowns = sum(r.flops - r.counts.flops_per_token * r.branch.start_tokens for r in p.runs)
    spent, alone = sum(trunk_flops.values()) + cooldowns, sum(r.flops for r in p.runs)
    assert spent < 0.6 * alone
    table = plan_table(p)
    assert f"compute with branches: {spent:.3e} FLOPs" in table and f"vs {alone:.3e} as independent runs" in table
    assert f"{1 - spent / alone:.0%} saved" in table and table.count("  trunk ") == len(trunk_flops)
    assert "compute with branches" not in plan_table(plan(cfg("+grid=chinchilla")))    # the cosine path unchanged


@pytest.mark.parametrize("override, message", [
    ("train.optim.schedule=cosine", "grid.cooldown_branches: optim.schedule='cosine': cooldown branches need "
                                    "schedule=wsd"),
    ("grid.cooldown_branches.multipliers=[0,1]", "grid.cooldown_branches.multipliers=[0, 1]: give a list of "
                                                  "positive numbers"),
    ("+grid.cooldown_branches.every=2", "grid.cooldown_branches.every: unknown key"),
    ("data.stages=[{start_frac: 0.5, weights: {a: 1}}]", "data.stages[0].start_frac=0.5: a stage placed by fraction"),
])
def test_bad_branch_config_is_refused_naming_the_key(override, message):
    with pytest.raises(SpecError) as e:
        plan(cfg("+grid=chinchilla_wsd", override))
    assert message in str(e.value)


@pytest.mark.slow   # two sweep launches, each a Hydra job and two training processes: 185 s at load 27 on 2 cores
def test_sweep_runs_trunks_then_branches_and_the_rows_add_up(data, tmp_path):  # noqa: F811
    args = [*TINY, f"sweep.root={tmp_path}"]
    out = sweep(args, data)
    sweep_dir = tmp_path / "chinchilla_wsd"
    rows = [json.loads(f.read_text()) for f in sorted(sweep_dir.glob("*/result.json"))]
    assert len(rows) == 2 and "2/2 done" in out, out
    trunks = {r["trunk_run_id"] for r in rows}
    assert len(trunks) == 1 and {p.name for p in (sweep_dir / ".trunks").iterdir()} == trunks
    for r in rows:
        assert r["flops_trunk_share"] + r["flops_spent"] == r["flops"] == r["tokens"] * (r["flops"] // r["tokens"])
        assert r["branch_start_tokens"] == r["branch_start_step"] * r["batch_tokens"] < r["tokens"]
    spent = sum(max(r["flops_trunk_share"] for r in rows if r["trunk_run_id"] == t) for t in trunks) + \
        sum(r["flops_spent"] for r in rows)
    assert spent < sum(r["flops"] for r in rows)
    from analysis.results import load  # the trunks are not result rows, nor unfinished runs
    tables = load(sweep_dir)
    assert len(tables.runs) == 2 and not tables.skipped
    out2 = sweep(args, data)
    assert "skipping 2 done" in out2 and "2/2 done" in out2
