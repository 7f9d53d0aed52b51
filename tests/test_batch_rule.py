"""grid.batch: one batch for the grid (rule=fixed, the default: run ids unchanged) or each run's batch halved until it
trains grid.batch.target_steps steps (rule=steps), through the plan, its table and cost, and a real CPU sweep."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness_util import compose_config

from harness.spec import SpecError
from sweeps.batching import FEW_STEPS, MIN_SEQUENCES, BatchRule
from sweeps.cost import Throughput
from sweeps.plan import plan, plan_table

ROOT = Path(__file__).resolve().parents[1]
H200 = str(ROOT / "bench/results/throughput_h200.json")
NO_LR_SWEEP = ["grid.lr_from=null"]   # the study grids' lr sweep is not here: every size at train.optim.lr


cfg = compose_config
pytestmark = pytest.mark.usefixtures("no_corpus")     # conftest: plans without a built corpus


def test_the_rule_halves_whole_sequences_until_the_target_or_the_floor():
    steps = BatchRule("steps")
    assert (steps.target_steps, steps.min_sequences) == (FEW_STEPS, MIN_SEQUENCES) == (1000, 8)
    base, T = 128 * 1024, 1024
    # the residual check's two runs (bench/README.md): 284 and 463 steps at 128 sequences -> 32 sequences
    assert steps.batch_tokens(base, T, 37_322_752) == 32 * T and 37_322_752 // (32 * T) == 1139
    assert steps.batch_tokens(base, T, 60_751_872) == 32 * T
    assert steps.batch_tokens(base, T, 131_072_000) == base                 # 1000 steps already: unchanged
    assert steps.batch_tokens(base, T, 88_300_000) == 64 * T                # 673 -> 1347 steps
    assert steps.batch_tokens(base, T, 10_000_000) == 8 * T                 # 1220 steps at the floor
    assert steps.batch_tokens(base, T, 1_000_000) == 8 * T                  # short of the target even there
    assert BatchRule("steps", min_sequences=32).batch_tokens(base, T, 10_000_000) == 32 * T
    assert BatchRule("steps", target_steps=100).batch_tokens(base, T, 10_000_000) == 64 * T
    assert BatchRule("steps").batch_tokens(96 * T, T, 1_000_000) == 12 * T   # 96 -> 48 -> 24 -> 12 (6 < 8)
    assert BatchRule("steps").batch_tokens(9 * T, T, 1_000_000) == 9 * T     # odd: no whole half
    assert BatchRule("fixed").batch_tokens(base, T, 1_000_000) == base


def test_fixed_grids_keep_main_s_run_ids():
    """The run ids of main (e5bd51a) before grid.batch existed: the CPU demo's runs are the very same specs."""
    for overrides, n, digest in ((["+grid=demo"], 18, "8fb4a8fce116ef06"),
                                 (["+grid=chinchilla", "scale=cpu"], 18, "cc66f928fdbacbae")):
        p = plan(cfg(*overrides))
        ids = sorted(r.run_id for r in p.runs)
        assert len(ids) == n and hashlib.sha256(" ".join(ids).encode()).hexdigest()[:16] == digest, overrides
        assert p.batch == BatchRule() and "batch" not in plan_table(p).splitlines()[0].split()
        assert not any("grid.batch" in w for w in p.warnings)   # 4 sequences: nothing to halve (floor 8)


def test_study2_trains_every_run_at_least_1000_steps_within_the_planned_gpu_time():
    study = plan(cfg("+grid=study", *NO_LR_SWEEP))
    p = plan(cfg("+grid=study2", *NO_LR_SWEEP))
    assert len(p.runs) == len(study.runs) == 36 and p.name == "study2"
    assert min(r.spec.steps for r in p.runs) >= 1000 and min(r.spec.steps for r in study.runs) == 78
    base = {r.label: r for r in study.runs}
    kept = [r for r in p.runs if r.spec.batch_tokens == 131072]
    assert len(kept) == 14 and all(base[r.label].run_id == r.run_id for r in kept)   # their runs can be copied
    assert all(r.spec.tokens == base[r.label].spec.tokens and r.spec.optim.lr == base[r.label].spec.optim.lr
               for r in p.runs)
    assert {r.spec.batch_size for r in p.runs} == {8, 16, 32, 64, 128}
    hours = sum(p.hours(r) for r in p.runs)
    assert hours <= 0.6 and hours > sum(study.hours(r) for r in study.runs)   # smaller batches: slower per token
    table = plan_table(p)
    assert "batch  steps" in table and "8x1024   1261" in table
    assert "lowered the batch of 22 of 36 runs" in table and "not rescaled for the smaller batch" in table
    assert "5 run(s) train at batches below the smallest measured" in table     # the 8-sequence runs (16 measured)
    assert not any("grid.batch" in w for w in p.warnings)


def test_fixed_batch_warning_fires_on_short_runs_and_names_the_rule():
    p = plan(cfg("+grid=study", *NO_LR_SWEEP))
    [w] = [w for w in p.warnings if "grid.batch" in w]
    assert "22 of 36 runs train fewer than 1000 optimizer steps" in w and "grid.batch.rule=steps" in w
    assert "'C1e+15 L6-d384 s0', 78 steps" in w
    long_runs = plan(cfg("+grid=study", *NO_LR_SWEEP, "grid.shapes.budgets=[3e16]", "train.batch_tokens=65536"))
    assert min(r.spec.steps for r in long_runs.runs) == 1663 and not any("grid.batch" in w for w in long_runs.warnings)


def test_steps_rule_names_the_runs_it_cannot_bring_to_the_target():
    p = plan(cfg("+grid=study2", *NO_LR_SWEEP, "grid.batch.min_sequences=32"))
    [w] = [w for w in p.warnings if "grid.batch" in w]
    assert w.startswith("grid.batch.rule=steps: 9 run(s) train fewer than grid.batch.target_steps=1000")
    assert "'C1e+15 L6-d384 s0' (315 steps at 32 sequences)" in w and "grid.batch.min_sequences" in w


@pytest.mark.parametrize("override, key", [
    ("grid.batch.rule=tokens", "grid.batch.rule='tokens': use fixed"),
    ("grid.batch.target_steps=0", "grid.batch.target_steps=0: must be >= 1"),
    ("grid.batch.min_sequences=0.5", "grid.batch.min_sequences=0.5: expected an integer"),
    ("+grid.batch.min_steps=500", "grid.batch.min_steps"),
])
def test_bad_values_are_refused_naming_the_key(override, key):
    with pytest.raises(SpecError) as e:
        plan(cfg("+grid=study2", *NO_LR_SWEEP, override))
    assert key in str(e.value)


def test_micro_batch_that_does_not_divide_a_lowered_batch_is_refused_before_compute():
    with pytest.raises(SpecError) as e:
        plan(cfg("+grid=study2", *NO_LR_SWEEP, "train.runtime.micro_batch_size=16"))
    msg = str(e.value)
    assert "train.runtime.micro_batch_size=16: does not divide the per-GPU batch of 5 run(s)" in msg
    assert "8 sequences over 1 GPU(s)" in msg and "grid.batch.min_sequences" in msg
    assert len(plan(cfg("+grid=study2", *NO_LR_SWEEP, "train.runtime.micro_batch_size=8")).runs) == 36
    with pytest.raises(SpecError, match="grid.cooldown_branches"):
        plan(cfg("+grid=chinchilla_wsd", "grid.batch.rule=steps"))


def test_cost_prices_a_smaller_batch_at_its_measured_speed(tmp_path):
    tp = Throughput.load(H200, "H200")
    assert tp.batch_floor == 16 and tp.speed(None) == tp.speed(128) == tp.speed(256) == 1.0
    assert tp.speed(32) == pytest.approx(0.81) and tp.speed(16) == tp.speed(8) == pytest.approx(0.70)   # clamped
    assert 0.81 < tp.speed(64) < 1.0
    fpt, tokens = 3e8, 1e8         # a large shape: FLOP-bound at 32 sequences (a step well above the floor)
    full, small = tp.hours(fpt, tokens), tp.hours(fpt, tokens, 32)
    assert (small - tp.startup_s / 3600) == pytest.approx((full - tp.startup_s / 3600) / 0.81)
    # a small shape at a small batch: bound by the measured per-step floor, steps x 7.7 ms
    assert tp.step_floor_s == pytest.approx(0.0077) and tp.seq == 1024
    steps = 1e7 / (8 * 1024)
    assert tp.hours(3e6, 1e7, 8) * 3600 - tp.startup_s == pytest.approx(steps * 0.0077)
    assert Throughput.load(H200, "H100").speed(8) == 1.0        # no rows of that kind: nothing measured
    table = json.loads(Path(H200).read_text())
    del table["batch_speed"]
    (tmp_path / "t.json").write_text(json.dumps(table))
    p = plan(cfg("+grid=study2", *NO_LR_SWEEP, f"sweep.throughput_table={tmp_path / 't.json'}"))
    assert "priced at the full batch's tokens/s, likely too fast" in plan_table(p)


def test_mixing_study_runs_train_1000_steps():
    nat = "{code:0.331562,docs:0.151278,math:0.153194,multilingual:0.210013,prose:0.153953}"
    p = plan(cfg("+grid=study_mixture", f"grid.mixtures.natural={nat}"))
    assert {(r.spec.batch_size, r.spec.steps) for r in p.runs} == {(8, 1220)}


def test_a_cpu_sweep_trains_each_run_at_its_planned_batch(syn_data, tmp_path, monkeypatch):
    args = ["+grid=chinchilla", "grid.replicates=null", "data.corpus=syn", "grid.shapes.budgets=[1e10]",
            "grid.shapes.sizes_per_budget=2", "grid.shapes.min_each_side=0", "grid.shapes.tokens_per_param=1",
            "grid.min_steps=2", "eval.heldout_tokens=2048", "eval.points=1", "sweep.max_parallel=2",
            "train.batch_tokens=2048", "grid.batch.rule=steps", "grid.batch.target_steps=30",
            "grid.batch.min_sequences=2", f"sweep.root={tmp_path}"]
    env = {**os.environ, "SCALEMIX_DATA": str(syn_data), "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    monkeypatch.setenv("SCALEMIX_DATA", str(syn_data))
    planned = {r.run_id: r.spec.batch_tokens for r in plan(cfg(*args)).runs}
    assert sorted(planned.values()) == [512, 1024]                      # 16 sequences of 128 halved to 8 and 4
    r = subprocess.run([sys.executable, "sweep.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    results = {f.parent.name: json.loads(f.read_text()) for f in (tmp_path / "chinchilla").glob("*/result.json")}
    assert {k: v["batch_tokens"] for k, v in results.items()} == planned
    assert all(v["steps"] >= 30 for v in results.values())
