"""The CPU demo's grid (`make demo` = `+grid=demo`) as the planner expands it, and bench/demo_stability.py's
bookkeeping: what the design promises (bench/README.md, "CPU demo grid: budgets on the ladder's rungs")."""
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from harness.rundir import params_compute
from sweeps.plan import plan

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import demo_stability  # noqa: E402


def cfg(*overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=["+grid=demo", *overrides])


@pytest.fixture(autouse=True)
def no_corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALEMIX_DATA", str(tmp_path / "no-data"))


def n_compute(r) -> int:
    return params_compute(r.counts.params_active_nonembedding, r.spec.model.vocab_size, r.spec.model.d_model)


def test_demo_grid_puts_a_size_each_side_of_the_expected_optimum_and_measures_noise_with_two_more_seeds():
    c = cfg()
    p = plan(c)
    seed = c.train.seed
    base = [r for r in p.runs if r.spec.seed == seed]
    budgets = sorted({r.budget for r in base})
    assert len(budgets) >= 4 and budgets[-1] / budgets[0] >= 10          # the verdict's coverage check
    tpp = c.grid.shapes.tokens_per_param
    smallest_rung = min(n_compute(r) for r in p.runs)
    for C in budgets:
        runs = [r for r in base if r.budget == C]
        assert len(runs) == 3
        dn = sorted(r.spec.tokens / n_compute(r) for r in runs)
        if C == budgets[0]:     # its optimum lies at or below the ladder's smallest rung: the grid goes that low
            assert min(n_compute(r) for r in runs) == smallest_rung
        else:                   # a size on each side of D/N = tokens_per_param, the third beyond one of them
            assert dn[0] < tpp < dn[-1]
            assert any(lo < tpp < hi for lo, hi in zip(dn, dn[1:]))
    extra = [r for r in p.runs if r.spec.seed != seed]
    assert {r.budget for r in extra} == {budgets[0]}
    assert len({r.spec.seed for r in extra}) >= 2                       # >= 6 dof of noise with 3 sizes
    assert {r.run_id for r in base if r.budget == budgets[0]} != {r.run_id for r in extra}
    # the time budget: `make demo` <= 5 min on 2 idle cores was measured at this cost (bench/README.md)
    assert sum(r.flops for r in p.runs) <= 3.0e12


def test_stability_check_replicates_each_seed_with_seeds_of_its_own():
    offsets = demo_stability.grid_replicate_seeds([])
    assert offsets == [s - cfg().train.seed for s in cfg().grid.replicates.seeds] and len(offsets) >= 2
    assert demo_stability.grid_replicate_seeds(["scale.chinchilla.replicates={seeds:[1,2,3],budgets:[smallest]}"]) \
        == [1, 2, 3]
    cmd = demo_stability.sweep_cmd(10, Path("/r"), ["eval.points=3"], [1, 2])
    assert "train.seed=10" in cmd and "scale.chinchilla.replicates.seeds=[11,12]" in cmd and "eval.points=3" in cmd
    assert cmd.index("eval.points=3") < cmd.index("train.seed=10")     # the check's own keys win


def test_stability_check_stops_a_sweep_at_its_timeout_and_counts_cpu():
    slow = [sys.executable, "-c", "import time; time.sleep(60)"]
    busy = [sys.executable, "-c", "sum(range(10**6))"]
    slow_done, busy_done = demo_stability.run_all([slow, busy], parallel=True, timeout=5.0)
    assert slow_done.timed_out and slow_done.rc != 0 and slow_done.wall_s < 30
    assert busy_done.rc == 0 and not busy_done.timed_out and busy_done.cpu_s > 0
