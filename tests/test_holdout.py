"""analysis/holdout.py: the largest budget predicted from the smaller ones, the run beyond the sweep planned and
compared, on runs generated from a known law (analysis/synthetic.py), and the command on real run directories."""
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis import holdout, lawfile
from analysis.laws import approach3
from analysis.laws.common import FitConfig
from analysis.synthetic import FIXTURE_LAW, isoflop_table

FIXTURE = Path(__file__).parent / "fixtures" / "sweep_small"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))    # bench/ is a folder of scripts, not a package
CFG = FitConfig(n_col="params_nonembedding", c_col="flops", n_bootstrap=40, processes=1)
BUDGETS = [1e15, 2.3e15, 5.5e15, 1.3e16, 3e16]          # the study's


@pytest.fixture(scope="module")
def runs():
    # the study's design: 5 budgets, 6 sizes each, the smallest budget with a second seed; 0.5% noise
    t = isoflop_table(FIXTURE_LAW, BUDGETS, sizes_per_budget=6, span=8.0, noise=0.005, seed=3)
    extra = isoflop_table(FIXTURE_LAW, BUDGETS[:1], sizes_per_budget=6, span=8.0, noise=0.005, seed=4)
    extra["seed"], extra["run_id"] = 1, [f"s{i}" for i in range(len(extra))]
    import pandas as pd
    return pd.concat([t, extra], ignore_index=True)


@pytest.fixture(scope="module")
def held(runs):
    return holdout.hold_largest(runs, CFG, n_bootstrap=40)


def test_hold_largest_predicts_the_known_law(runs, held):
    C = BUDGETS[-1]
    true_min = float(FIXTURE_LAW.loss_opt(C))
    m = held["minimum"]
    assert held["budget"] == C and held["n_fit_runs"] == len(runs) - 6     # the 6 runs at 3e16 left out
    assert abs(m["loss_predicted"] / true_min - 1) < 0.01                    # recovered from the smaller budgets
    assert m["loss_interval"][0] < m["loss_predicted"] < m["loss_interval"][1]
    assert m["loss_interval_noise"][0] <= m["loss_interval"][0] and m["loss_interval_noise"][1] >= m["loss_interval"][1]
    assert abs(np.log(m["n_opt_predicted"] / FIXTURE_LAW.n_opt(C))) < np.log(1.5)
    assert abs(m["rel_error"]) < 0.02 and m["inside"]
    t = held["runs"]
    assert len(t) == 6 and (t["N"].diff().dropna() > 0).all()
    truth = FIXTURE_LAW.loss(t["N"].to_numpy(), t["D"].to_numpy())
    assert np.all(np.abs(t["predicted"] / truth - 1) < 0.01)
    assert held["max_abs_rel_error"] < 0.03 and held["inside"] >= 5
    assert held["noise_sd"] is not None and 0.001 < held["noise_sd"] < 0.02   # measured from the seed-1 replicates


def test_widened_interval_adds_noise_in_quadrature():
    lo, hi = holdout.widened(np.array(0.99), np.array(1.01), np.array(1.0), 0.0, 0.9)
    assert np.isclose(lo, 0.99) and np.isclose(hi, 1.01)
    lo, hi = holdout.widened(np.array(1.0), np.array(1.0), np.array(1.0), 0.01, 0.9)
    assert np.isclose(np.log(hi), 1.6449 * 0.01, rtol=1e-3) and np.isclose(np.log(lo), -1.6449 * 0.01, rtol=1e-3)


@pytest.fixture(scope="module")
def law(runs):
    return approach3.fit(runs, CFG)


def test_plan_big_picks_the_rung_nearest_the_optimum(law):
    C = 4 * BUDGETS[-1]
    sizes = np.geomspace(1e6, 1e9, 25)             # a ladder of 1.33x steps; k = 6 as the table's FLOPs
    rungs = [{"depth": i + 1, "name": f"L{i + 1}", "params_nonembedding": float(n), "flops_per_token": 6 * float(n)}
             for i, n in enumerate(sizes)]
    plan = holdout.plan_big(law, rungs, C, batch_tokens=1)
    truth_n = float(FIXTURE_LAW.n_opt(C))
    assert abs(np.log(plan["N"] / truth_n)) < np.log(1.6)
    assert plan["loss_interval"][0] <= plan["loss_predicted"] <= plan["loss_interval"][1]
    assert abs(plan["loss_predicted"] / FIXTURE_LAW.loss(plan["N"], plan["tokens"]) - 1) < 0.01
    assert plan["tokens"] == int(C / (6 * plan["N"]))
    capped = holdout.plan_big(law, rungs, C, batch_tokens=1, max_tokens=plan["tokens"] / 2)   # the corpus's cap
    assert capped["data_limited"] and capped["tokens"] <= plan["tokens"] / 2 and capped["N"] > plan["N"]
    assert capped["unconstrained"]["name"] == plan["name"] and "**Data-limited:**" in holdout.plan_md(capped)
    assert not plan["data_limited"]
    without_n = [{k: v for k, v in r.items() if k != "params_nonembedding"} for r in rungs]
    with pytest.raises(holdout.FitError, match="params_nonembedding"):      # the law's N must be countable
        holdout.plan_big(law, without_n, C, 1)


def test_predict_run_says_within_or_not(law):
    import pandas as pd
    C = 4 * BUDGETS[-1]
    N = float(FIXTURE_LAW.n_opt(C))
    D = C / (6 * N)
    true = float(FIXTURE_LAW.loss(N, D))
    good = holdout.predict_run(law, pd.Series({"run_id": "big", "params_nonembedding": N, "tokens": D, "flops": C,
                                               "loss": true}), noise_sd=0.005)
    assert good["within_1pct"] and good["inside"] and abs(good["rel_error"]) < 0.01
    bad = holdout.predict_run(law, pd.Series({"run_id": "big", "params_nonembedding": N, "tokens": D, "flops": C,
                                              "loss": true * 1.05}), noise_sd=0.005)
    assert not bad["within_1pct"] and not bad["inside"] and bad["rel_error"] > 0.03
    assert "**not within** 1%" in holdout.confirm_md(bad) and "**outside**" in holdout.confirm_md(bad)


def test_command_on_run_directories(tmp_path, capsys):
    """The real thing on the committed fixture (run directories of a known law): hold out, then plan the big run from
    the report's laws.json; both land in report/holdout.md and laws.json, which stays loadable."""
    sweep = tmp_path / "sweep_small"
    shutil.copytree(FIXTURE, sweep)
    assert holdout.main([str(sweep), "--hold-largest", "--bootstrap", "20"]) == 0
    assert (sweep / "report" / "holdout.md").read_text().startswith("## Hold-out")
    assert (sweep / "report" / "figures" / "holdout.png").stat().st_size > 10_000
    from analysis import results
    res = results.load(sweep)
    config = res.fit_config(n_bootstrap=20, processes=1)     # laws.json as the report writes it (approach 3 alone)
    laws = lawfile.content(sweep.name, config, {"approach 3": approach3.fit(res.runs, config)}, {}, None)
    lawfile.write(sweep / "report" / "laws.json", laws)
    capsys.readouterr()
    assert holdout.main([str(sweep), "--plan-big", "4", "--overrides"]) == 0
    out = capsys.readouterr().out.strip()
    depth, tokens = out.split()
    assert depth.startswith("grid.shapes.depth=") and int(tokens.removeprefix("grid.shapes.tokens=")) > 0
    data = json.loads((sweep / "report" / "laws.json").read_text())
    assert data["big_plan"]["factor"] == 4 and data["big_plan"]["depth"] == int(depth.split("=")[1])
    lawfile.load(sweep / "report" / "laws.json")          # the added entry leaves the file valid
    from bench.study_rungs import rungs  # the ladder's rungs beyond the sweep's own sizes
    (tmp_path / "rungs.json").write_text(json.dumps(rungs(sweep)))
    assert holdout.main([str(sweep), "--plan-big", "4", "--rungs", str(tmp_path / "rungs.json")]) == 0
    plan = json.loads((sweep / "report" / "laws.json").read_text())["big_plan"]
    own = {r["name"] for r in holdout.sweep_rungs(results.load(sweep).runs)}
    assert plan["name"].startswith(f"L{plan['depth']}-") and len(plan["neighbours"]) >= 3
    assert max(int(x["name"][1:].split("-")[0]) for x in plan["neighbours"]) > max(int(n[1:].split("-")[0]) for n in own)
    text = (sweep / "report" / "holdout.md").read_text()
    assert "## Hold-out" in text and "## The run at" in text          # both blocks kept
    # a run dir that has not finished is refused with the reason
    run = next(d for d in sweep.iterdir() if (d / "spec.yaml").is_file() and not (d / "result.json").is_file())
    with pytest.raises(SystemExit):
        holdout.main([str(sweep), "--predict-run", str(run)])
    assert "has not finished" in capsys.readouterr().err
