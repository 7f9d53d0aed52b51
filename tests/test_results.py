"""analysis.results: run directories -> runs and curves tables (the harness's result.json/metrics.jsonl format)."""
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis import results

FIXTURE = Path(__file__).parent / "fixtures" / "sweep_small"


def test_loads_the_fixture_sweep():
    with pytest.warns(UserWarning, match="skipped 1"):
        res = results.load(FIXTURE)
    assert len(res.runs) == 35 and res.runs["run_id"].is_unique
    for col in ("params_nonembedding", "params_total", "tokens", "flops", "flops_6n", "loss", "loss_web",
                "loss_code", "w_web", "w_code", "sweep"):
        assert col in res.runs, col
    assert res.domains == ["code", "web"]
    assert len(res.skipped) == 1 and "no result.json" in res.skipped[0][1]
    assert set(res.curves.columns) >= {"run_id", "step", "tokens", "flops", "loss", "loss_web"}
    assert set(res.curves["run_id"]) == set(res.runs["run_id"])           # the unfinished run's curve is not used
    # the final eval point is the result's loss
    last = res.curves.sort_values("step").groupby("run_id").last()
    merged = res.runs.merge(last, left_on="run_id", right_index=True, suffixes=("", "_curve"))
    pd.testing.assert_series_equal(merged["loss"], merged["loss_curve"], check_names=False)


def test_nested_layout_torn_lines_and_parquet(tmp_path):
    nested = tmp_path / "runs" / "mysweep"
    shutil.copytree(FIXTURE, nested)
    some = next(d for d in nested.iterdir() if (d / "result.json").exists())
    with open(some / "metrics.jsonl", "a") as f:
        f.write('{"kind": "eval", "step": 99')                            # a run killed mid-line
    (next(d for d in nested.iterdir() if d != some and (d / "result.json").exists()) / "result.json").write_text("{")
    with pytest.warns(UserWarning):
        res = results.load(tmp_path / "runs")
    assert len(res.runs) == 34 and len(res.skipped) == 2
    assert any("unreadable" in why for _, why in res.skipped)
    runs_p, curves_p = res.to_parquet(tmp_path / "out")
    back = pd.read_parquet(runs_p)
    assert len(back) == 34 and list(back.columns) == list(res.runs.columns)
    assert len(pd.read_parquet(curves_p)) == len(res.curves)


def test_missing_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        results.load(tmp_path / "nope")


def test_cli_prints_summary(capsys, tmp_path):
    with pytest.warns(UserWarning):
        results.main([str(FIXTURE), "--parquet", str(tmp_path)])
    out = capsys.readouterr().out
    assert "35 finished runs, 1 skipped" in out and "domains: code, web" in out
    assert (tmp_path / "runs.parquet").exists()


def test_result_rows_have_the_harness_keys():
    row = json.loads(next(p for p in FIXTURE.glob("*/result.json")).read_text())
    harness_keys = {"run_id", "sweep", "family", "d_model", "n_layers", "n_heads", "ffn_hidden", "vocab_size", "seq_len",
                    "n_experts", "top_k", "expert_hidden", "n_shared_experts", "params_total", "params_embedding",
                    "params_head", "params_nonembedding", "params_active", "params_active_nonembedding", "tokens",
                    "flops", "flops_6n", "loss", "train_loss", "lr", "batch_tokens", "schedule", "seed", "steps",
                    "wall_s", "tokens_per_s", "mfu", "device", "git_sha", "corpus", "tokenizer_sha256"}
    assert harness_keys <= set(row)


def test_params_compute_counts_the_output_head_even_when_tied(tmp_path):
    """N for small models: every weight a token is multiplied by, the head's vocab x d_model included."""
    for i, tied_head in enumerate([True, False]):
        d = tmp_path / f"r{i}"
        d.mkdir()
        row = {"run_id": f"r{i}", "loss": 3.0, "d_model": 64, "vocab_size": 2048, "params_active_nonembedding": 1000,
               "params_head": 0 if tied_head else 2048 * 64}
        (d / "result.json").write_text(json.dumps(row))
    runs = results.load(tmp_path).runs.set_index("run_id")
    assert runs.loc["r0", "params_compute"] == runs.loc["r1", "params_compute"] == 1000 + 2048 * 64


def sweep_with_grid(tmp_path, conventions: list[dict | None]) -> Path:
    """The first len(conventions) fixture runs, each with a grid.json recording the given conventions (None: a
    grid.json from before conventions were recorded)."""
    out = tmp_path / "sweep"
    out.mkdir(parents=True)
    runs = sorted(d for d in FIXTURE.iterdir() if (d / "result.json").exists())
    for d, conv in zip(runs, conventions):
        shutil.copytree(d, out / d.name)
        (out / d.name / "grid.json").write_text(json.dumps({"sweep": "s", "label": "x", "budget": 1e14, **(conv or {})}))
    return out


def test_conventions_come_from_grid_json_and_overrides_are_stated(tmp_path):
    res = results.load(sweep_with_grid(tmp_path, [{"n_col": "params_compute", "c_col": "flops"}] * 3 + [None]))
    conv = res.conventions
    assert (conv.n_col, conv.c_col, conv.recorded) == ("params_compute", "flops", True)
    assert conv.note.startswith("from the sweep's grid.json") and "1 run(s) record none" in conv.note
    cfg = res.fit_config(n_bootstrap=7)
    assert (cfg.n_col, cfg.c_col, cfg.n_bootstrap, cfg.origin) == ("params_compute", "flops", 7, conv.note)
    over = res.fit_config(n_col="params_total")
    assert (over.n_col, over.c_col) == ("params_total", "flops")
    assert over.origin.startswith("override: n_col=params_total instead of the sweep's params_compute")
    assert res.fit_config(n_col="params_compute").origin == conv.note        # naming the sweep's own is no override
    assert "conventions: N = params_compute, C = flops" in res.summary()


def test_sweeps_without_recorded_conventions_fall_back_to_the_default_and_say_so():
    with pytest.warns(UserWarning):
        res = results.load(FIXTURE)                                          # no grid.json at all
    cfg = res.fit_config()
    assert (cfg.n_col, cfg.c_col) == ("params_nonembedding", "flops_6n") and not res.conventions.recorded
    assert "default" in cfg.origin and "no run's grid.json records" in cfg.origin


def test_conflicting_or_unknown_conventions_are_clear_errors(tmp_path):
    mixed = results.load(sweep_with_grid(tmp_path / "a", [{"n_col": "params_compute", "c_col": "flops"},
                                                          {"n_col": "params_nonembedding", "c_col": "flops"}]))
    with pytest.raises(results.ConventionsError, match="different conventions.*params_compute.*params_nonembedding"):
        mixed.fit_config()
    with pytest.raises(results.ConventionsError, match="--n-col and --c-col"):
        mixed.fit_config(n_col="params_total")                              # one override does not settle both
    both = mixed.fit_config(n_col="params_total", c_col="flops")            # both named: fitted, and said why
    assert both.n_col == "params_total" and both.origin.startswith("override") and "different" in both.origin
    bad = results.load(sweep_with_grid(tmp_path / "b", [{"n_col": "params_everything", "c_col": "flops"}]))
    with pytest.raises(results.ConventionsError, match=r"grid.json: n_col='params_everything' \(use one of"):
        bad.fit_config()
