"""The GPU study of record: its grids as the planner expands them (conf/grid/study*.yaml, conf/scale/study.yaml), and
the state bench/gpu_study.sh carries between device calls (bench/study_state.py). The whole cycle on the CPU, a call
cut off mid-run and resumed on a cold machine, is `python bench/study_toy.py` (bench/README.md, "GPU study")."""
import json
import math
import sys
import tarfile
from pathlib import Path

import pytest
from harness_util import compose_config

from harness.rundir import params_compute
from harness.spec import SpecError
from sweeps.plan import plan

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import study_state  # noqa: E402

# the large corpus's train tokens per domain (its manifest; bench/README.md, "Large corpus")
LARGE = {"code": 52_171_547, "docs": 23_803_690, "math": 24_105_271, "multilingual": 33_045_941, "prose": 24_224_902}


cfg = compose_config
pytestmark = pytest.mark.usefixtures("no_corpus")     # conftest: plans without a built corpus


def test_study_grid_brackets_five_budgets_with_six_sizes_within_the_corpus():
    c = cfg("+grid=study", "grid.lr_from=null")
    p = plan(c)
    base = [r for r in p.runs if r.spec.seed == c.train.seed]
    budgets = sorted({r.budget for r in base})
    assert len(budgets) >= 5 and budgets[0] == 1e15 and budgets[-1] >= 3e16
    for C in budgets:
        runs = [r for r in base if r.budget == C]
        assert len(runs) == 6 and len({r.spec.model.n_layers for r in runs}) == 6
        n = [params_compute(r.counts.params_active_nonembedding, r.spec.model.vocab_size, r.spec.model.d_model)
             for r in runs]
        tpp = [r.spec.tokens / x for r, x in zip(runs, n)]
        assert min(tpp) < 20 < max(tpp)           # the expected optimum (D = 20 N, compute N) inside the sizes
        assert sum(t > 20 for t in tpp) >= 2 and sum(t < 20 for t in tpp) >= 2
    assert {r.budget for r in p.runs if r.spec.seed != c.train.seed} == {1e15}   # seed replicates: noise
    weights = dict(p.runs[0].spec.data.weights)
    epochs = [max(r.spec.tokens * weights[d] / LARGE[d] for d in LARGE) for r in p.runs]
    assert max(epochs) < 5 and sum(e > 4 for e in epochs) == 1      # one run at 4.85 (scale/study.yaml says why)
    assert p.throughput.measured and "throughput_h200" in p.throughput.source
    hours = sum(p.throughput.hours(r.counts.flops_per_token, r.spec.tokens) for r in p.runs)
    assert 0.2 < hours < 0.7                       # the estimate the scale file and bench/README quote: ~0.46 h


def test_study_lr_sweep_covers_the_small_sizes_cheaply():
    p = plan(cfg("+grid=study_lr"))
    c = cfg("+grid=study_lr")
    assert len(p.runs) == len(c.scale.lr_depths) * len(c.scale.lrs) == 25
    assert sorted({r.spec.model.n_layers for r in p.runs}) == [1, 2, 3, 4, 5]
    lrs = sorted({r.spec.optim.lr for r in p.runs})
    assert len(lrs) == 5 and all(math.isclose(b / a, 2) for a, b in zip(lrs, lrs[1:]))
    assert min(r.spec.steps for r in p.runs) >= c.grid.min_steps
    hours = sum(p.throughput.hours(r.counts.flops_per_token, r.spec.tokens) for r in p.runs)
    assert hours < 0.2                             # a few GPU-minutes (estimate ~0.15 h, sequential)


def test_study_downstream_grid_scores_the_suite_at_four_budgets_with_enough_steps():
    """Issue 17's GPU grid: 4 budgets x 4 sizes on the large corpus, the downstream suite at every run's end, each
    run >= 1000 steps (grid.batch.rule=steps), within one device call's GPU time at 2 runs a GPU."""
    c = cfg("+grid=study_downstream", "grid.lr_from=null")
    p = plan(c)
    assert c.eval.downstream and len(p.runs) == 16
    assert sorted({r.budget for r in p.runs}) == [1e15, 2.3e15, 5.5e15, 1.3e16]     # 3 to fit, the largest held out
    assert all(len([r for r in p.runs if r.budget == b]) == 4 for b in {r.budget for r in p.runs})
    assert min(r.spec.steps for r in p.runs) >= 1000
    assert all(r.spec.eval.downstream for r in p.runs)
    hours = sum(p.hours(r) for r in p.runs)
    assert hours * 3600 / 2 < 480, hours          # planned 0.158 H200-h, each run as if alone


def test_study_big_run_needs_its_shape_from_the_law():
    p = plan(cfg("+grid=study_big", "grid.shapes.depth=10", "grid.shapes.tokens=200000000", "grid.lr_from=null"))
    assert len(p.runs) == 1 and p.runs[0].spec.model.n_layers == 10 and p.sweep_dir.name == "study-big"
    with pytest.raises(SpecError, match="grid.shapes.depth"):      # not given: named before anything runs
        plan(cfg("+grid=study_big", "grid.lr_from=null"))


# ---------------------------------------------------------------- the carried state
def run_dir(root: Path, sweep: str, name: str, done: bool, ckpts: dict[int, int] | None = None) -> Path:
    d = root / sweep / name
    (d / "ckpt").mkdir(parents=True)
    (d / "spec.yaml").write_text("tokens: 1000\nbatch_tokens: 10\n")
    (d / "metrics.jsonl").write_text(json.dumps({"kind": "train", "step": 1}) + "\n")
    if done:
        (d / "result.json").write_text(json.dumps({"loss": 3.0}))
    for step, nbytes in (ckpts or {}).items():
        (d / "ckpt" / f"step_{step:08d}.pt").write_bytes(bytes(range(256)) * (nbytes // 256))
        (d / "ckpt" / f"step_{step:08d}.sha256").write_text("{}")
    return d


def members(path: Path) -> set[str]:
    with tarfile.open(path) as tar:
        return {m.name for m in tar.getmembers()}


def test_pack_keeps_finished_runs_light_and_unfinished_runs_resumable(tmp_path):
    root = tmp_path / "runs"
    done1 = run_dir(root, "study", "done1", True, {100: 4096})
    (done1 / "downstream.json").write_text("{}")     # scores given after the run (gpu_study.sh posthoc)
    run_dir(root, "study", "cut", False, {40: 4096, 80: 4096})
    big = run_dir(root, "study", "huge", False, {50: 3 * 2**20})
    (big / "ckpt" / "step_00000060.pt").write_bytes(b"torn")        # no sidecar: not a complete checkpoint
    run_dir(root, "study-lr", "lr1", True)
    (root / "study" / "report").mkdir()
    (root / "study" / "report" / "laws.json").write_text("{}")
    study_state.ledger_add(root, {"phase": "grid", "wall_s": 500.0, "rc": 124})
    info = study_state.pack(root, ["study-lr", "study", "study-big"], tmp_path / "out" / "study.tgz", max_mib=1.0)
    names = members(tmp_path / "out" / "study.tgz")
    assert {"study/done1/result.json", "study/done1/downstream.json"} <= names
    assert not any(n.startswith("study/done1/ckpt") for n in names)
    assert {"study/cut/ckpt/step_00000080.pt", "study/cut/ckpt/step_00000080.sha256"} <= names
    assert "study/cut/ckpt/step_00000040.pt" not in names                   # the latest checkpoint only
    assert not any(n.startswith("study/huge/ckpt") for n in names)          # 3 MiB > the 1 MiB budget
    assert info["checkpoints_left_out"] == [{"run": "study/huge", "step": 50, "steps": 100, "mib": 3.0}]
    assert {"study/report/laws.json", "study-lr/lr1/result.json", study_state.LEDGER} <= names
    lines = study_state.progress(root, ["study-lr", "study"], {"study": 36})
    assert lines[0] == "study-lr: 1/1 runs done"
    assert lines[1].startswith("study: 1/36 runs done; unfinished: cut at step 80/100, huge at step 50/100")
    assert lines[2] == "GPU-seconds spent in study calls: 500 over 1 call(s) (grid 500)"


def test_restore_merges_without_losing_newer_local_state(tmp_path):
    src = tmp_path / "src"
    run_dir(src, "study", "a_done_there", True)
    run_dir(src, "study", "b_later_there", False, {90: 512})
    run_dir(src, "study", "c_later_here", False, {30: 512})
    run_dir(src, "study", "d_missing_here", False, {20: 512})
    study_state.ledger_add(src, {"phase": "grid", "wall_s": 1.0, "rc": 0})
    study_state.pack(src, ["study"], tmp_path / "s.tgz")
    here = tmp_path / "here"
    run_dir(here, "study", "a_done_there", False, {10: 512})
    run_dir(here, "study", "b_later_there", False, {40: 512})
    run_dir(here, "study", "c_later_here", False, {70: 512})
    info = study_state.restore(tmp_path / "s.tgz", here)
    assert info == {"taken": 3, "kept_local": 1}
    assert (here / "study" / "a_done_there" / "result.json").is_file()
    assert study_state.latest_checkpoint(here / "study" / "b_later_there")[0] == 90
    assert study_state.latest_checkpoint(here / "study" / "c_later_here")[0] == 70
    assert study_state.latest_checkpoint(here / "study" / "d_missing_here")[0] == 20
    assert (here / study_state.LEDGER).is_file()
    assert not [p for p in here.iterdir() if p.name.startswith("tmp")]      # no temporary directory left behind


def test_command_line_errors_name_the_fix(tmp_path, capsys):
    assert study_state.main(["restore", str(tmp_path / "absent.tgz"), "--root", str(tmp_path)]) == 2
    assert "carry the previous call's study.tgz" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        study_state.main(["progress", "--root", str(tmp_path), "--sweeps", "study", "--planned", "study=x"])
    assert "give sweep=number" in capsys.readouterr().err
