"""How the planner picks an unswept size's lr from an lr sweep (sweeps.grids.LrSweep): between two swept sizes the
line between their optima, past the swept sizes the power law through those within LOCAL_SPAN of the nearest end;
and the GPU study's second lr sweep (grid/study_lr_big.yaml) and its superseded runs (bench/study_state.py)."""
import math
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from sweeps.grids import LOCAL_SPAN, LrSweep
from sweeps.plan import plan

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import study_state  # noqa: E402


def sweep_of(points: dict[float, float], edge: dict[float, str] | None = None) -> LrSweep:
    """An LrSweep whose swept sizes N have optimum lr points[N] (at D = 10 N); no global law."""
    rows = [{"N": n, "D": 10 * n, "lr_opt": lr, "lr_best": lr, "edge": (edge or {}).get(n, ""), "note": ""}
            for n, lr in points.items()]
    return LrSweep("runs/lr", pd.DataFrame(rows), law=None)


def test_between_two_swept_sizes_the_line_between_their_optima():
    s = sweep_of({1e6: 4e-3, 4e6: 1e-3, 1.6e7: 8e-4})
    c = s.choose(int(2e6), int(2e7), [], [])
    assert c.source == "lr sweep, interpolated" and c.lr == pytest.approx(2e-3, rel=5e-3)   # halfway in log N
    assert s.choose(int(8e6), int(8e7), [], []).lr == pytest.approx(math.sqrt(1e-3 * 8e-4), rel=5e-3)
    # a size at the grid's edge is no anchor: 4e6 is skipped, 2e6 lies between 1e6 and 1.6e7
    e = sweep_of({1e6: 4e-3, 4e6: 1e-4, 1.6e7: 8e-4}, edge={4e6: "low"})
    assert e.choose(int(4e6 * 0.999), int(4e7), [], []).lr == pytest.approx(
        math.exp(0.5 * math.log(4e-3) + 0.5 * math.log(8e-4)), rel=5e-3)


def test_past_the_swept_sizes_the_trend_at_that_end_not_across_all_sizes():
    # the smallest size sits far above the trend of the others (as the study's 1-layer model did): 5x past the
    # largest, the local law follows the top sizes' slope (-0.1), the law through all sizes would not
    top = {n: 2e-3 * (n / 1e6) ** -0.1 for n in (1e6, 2e6, 4e6, 8e6)}
    s = sweep_of({1e4: 2e-2, **top})
    c = s.choose(int(4e7), int(4e8), [], [])
    assert c.source == "lr law" and c.lr == pytest.approx(2e-3 * 40 ** -0.1, rel=5e-3)
    # below the smallest swept size, the trend at the bottom end (only 1e4 within LOCAL_SPAN: the two nearest)
    lo = s.choose(int(5e3), int(5e4), [], [])
    slope = math.log(top[1e6] / 2e-2) / math.log(1e6 / 1e4)
    assert lo.lr == pytest.approx(2e-2 * 0.5 ** slope, rel=5e-3)
    assert LOCAL_SPAN >= 4    # 1.5-2x ladders: 3+ sizes in the span


def cfg(*overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_study_lr_big_adds_l7_at_three_lrs_to_the_same_sweep(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALEMIX_DATA", str(tmp_path / "no-data"))
    first, second = plan(cfg("+grid=study_lr")), plan(cfg("+grid=study_lr_big"))
    assert second.sweep_dir == first.sweep_dir                     # one lr sweep: lr_from reads both parts
    assert {r.spec.model.n_layers for r in second.runs} == {7}
    lrs = sorted(r.spec.optim.lr for r in second.runs)
    assert len(lrs) == 3 and lrs[0] < 0.96e-3 and lrs[-1] > 1.58e-3   # brackets both candidate laws' L7 lr
    (tpp,) = {round(r.spec.tokens / r.counts.params_nonembedding, 6) for r in second.runs}
    (tpp5,) = {round(r.spec.tokens / r.counts.params_nonembedding, 6) for r in first.runs if r.spec.model.n_layers == 5}
    assert tpp == pytest.approx(tpp5, rel=0.2)                    # the same D = 12 N (compute N) as the first part
    assert not {r.run_id for r in first.runs} & {r.run_id for r in second.runs}


def test_supersede_moves_runs_the_plan_no_longer_holds(tmp_path, capsys):
    sweep = tmp_path / "study"
    for rid in ("aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"):
        (sweep / rid).mkdir(parents=True)
        (sweep / rid / "spec.yaml").write_text("x: 1\n")
    (sweep / "bbbbbbbbbbbb" / "result.json").write_text("{}")
    plan_text = "run id  run\naaaaaaaaaaaa  C1e+15 L1-d64  ...  done\ncccccccccccc  C1e+15 L2  pending\n"
    assert study_state.supersede(tmp_path, "study", plan_text) == ["bbbbbbbbbbbb"]
    assert (tmp_path / "study-superseded" / "bbbbbbbbbbbb" / "result.json").is_file()
    assert sorted(p.name for p in sweep.iterdir()) == ["aaaaaaaaaaaa", "cccccccccccc"]
    with pytest.raises(ValueError, match="lists no run ids"):
        study_state.supersede(tmp_path, "study", "total: 0 runs\n")
    (tmp_path / "plan.txt").write_text("nothing")
    assert study_state.main(["supersede", "--root", str(tmp_path), "--sweep", "study",
                             "--plan", str(tmp_path / "plan.txt")]) == 2
    assert "give the dry run's output" in capsys.readouterr().err
