"""The lr law (analysis/laws/lr.py) and its use by the planner (grid.lr_from): a known lr_opt(N) = k N^p is
recovered from synthetic lr sweeps, an optimum at the lr grid's edge is flagged (never silently picked), the
planner takes the law for sizes the lr sweep did not run and shows each run's lr in the plan table."""
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from analysis.laws import lr as lr_law
from analysis.laws.common import FitConfig, FitError
from harness.spec import SpecError
from sweeps.launch import run_sweep
from sweeps.plan import plan, plan_table

CONF = str(Path(__file__).resolve().parents[1] / "conf")
K, P = 0.3, -0.35                       # the known law: lr_opt = K N^P (0.012 at N = 1e4, 0.0024 at 1e6)
CURVATURE = 0.05                        # loss rise per (log lr - log lr_opt)^2


def lr_star(n):
    return K * np.asarray(n, float) ** P


def lr_table(sizes, lrs, noise=0.0, seed=0, law=lr_star) -> pd.DataFrame:
    """loss = f(N) + c (log lr - log lr*(N))^2 + noise, one run per (N, lr), D = 20 N."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        for lr in lrs:
            loss = 2.0 + 30 * n ** -0.3 + CURVATURE * math.log(lr / law(n)) ** 2 + noise * rng.standard_normal()
            rows.append({"params_nonembedding": n, "tokens": 20 * n, "lr": lr, "loss": loss})
    return pd.DataFrame(rows)


LRS = list(np.geomspace(3e-4, 1e-1, 11))   # a factor 1.79 between neighbours
SIZES = list(np.geomspace(1e4, 1e6, 6))


def quiet_fit(table, cfg=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lr_law.fit(table, cfg or FitConfig(n_bootstrap=400))


def test_recovers_a_known_lr_law_exactly_without_noise():
    law = quiet_fit(lr_table(SIZES, LRS))
    assert law.p == pytest.approx(P, abs=1e-9) and law.k == pytest.approx(K, rel=1e-8)
    assert list(law.points["lr_opt"]) == pytest.approx(list(lr_star(SIZES)), rel=1e-9)   # a parabola's vertex
    assert (law.points["lr_opt"] != law.points["lr_best"]).all()     # interpolated, not the grid points
    assert len(law.left_out) == 0 and not law.warnings


def test_recovers_a_known_lr_law_with_noise_and_its_interval_covers_it():
    law = quiet_fit(lr_table(SIZES, LRS, noise=0.003, seed=1))
    lo, hi = law.p_ci
    assert abs(law.p - P) < 0.05 and lo <= P <= hi and hi - lo < 0.2
    assert law(3e5) == pytest.approx(float(lr_star(3e5)), rel=0.15)


@pytest.mark.parametrize("side", ["high", "low"])
def test_edge_check_fires_when_the_minimum_is_at_the_top_or_bottom_of_the_grid(side):
    lrs = LRS[2:9]                                               # 1e-3 .. 3.2e-2
    # the smallest size's best lr lies above the grid (top edge), or the largest's below it (bottom edge)
    shifted = (lambda n: lr_star(n) * np.where(np.asarray(n) < 2e4, 8.0, 1.0)) if side == "high" else \
              (lambda n: lr_star(n) * np.where(np.asarray(n) > 5e5, 0.2, 1.0))
    table = lr_table(SIZES, lrs, law=shifted)
    opt = lr_law.optima(table)
    flagged = opt[opt["edge"] != ""]
    assert len(flagged) == 1 and flagged["edge"].iloc[0] == side
    row = flagged.iloc[0]
    edge = max(lrs) if side == "high" else min(lrs)
    assert row["lr_best"] == row["lr_opt"] == edge                  # not extrapolated past the grid
    assert f"at edge: the true best lr may lie {'above' if side == 'high' else 'below'} {edge:.3g}" in row["note"]
    assert "extend the lr sweep's grid.lrs" in row["note"]
    with pytest.warns(UserWarning, match="at edge"):
        law = lr_law.fit(table, FitConfig(n_bootstrap=0))
    assert len(law.points) == 5 and law.p == pytest.approx(P, abs=1e-9)    # the edge size is left out of the law
    assert any("at edge" in w for w in law.warnings)


def test_law_needs_two_sizes_inside_the_grid():
    table = lr_table(SIZES[:3], [1e-4, 2e-4, 4e-4])                  # every best lr is above 4e-4: all at the top
    assert set(lr_law.optima(table)["edge"]) == {"high"}
    with pytest.raises(FitError, match=r"0 size\(s\) have their best lr inside the lr grid .* needs at least 2"):
        quiet_fit(table)
    with pytest.raises(FitError, match="lacks column"):
        lr_law.fit(table.drop(columns=["lr"]))


def test_seeds_are_averaged_and_a_diverged_neighbour_is_not_interpolated():
    t = lr_table([1e4], LRS)
    both = pd.concat([t.assign(loss=t["loss"] + 0.01), t.assign(loss=t["loss"] - 0.01)])
    opt = lr_law.optima(both)
    assert len(opt) == 1 and opt["lr_opt"].iloc[0] == pytest.approx(float(lr_star(1e4)), rel=1e-9)
    best = int(np.argmin(t["loss"]))
    t.loc[best + 1, "loss"] = np.nan                                  # the next larger lr diverged
    o = lr_law.optima(t).iloc[0]
    assert o["edge"] == "" and o["lr_opt"] == o["lr_best"] == LRS[best] and "diverged" in o["method"]


# ------------------------------------------------------------------------------------ the planner


# The planner tests below pin a ladder and a chinchilla grid (those of the CPU scale until 2026-12-01, sizes
# 3.4k / 27k / 83k non-embedding) so that their sizes and expected lrs do not move with the shipped defaults.
PINNED = ("model.rule={aspect: 16, head_dim: 16, ffn_multiple: 16}", "model.depths=[1,2,3,4,5,6,7,8]",
          "scale.chinchilla.budgets=[2.5e11,4e11,6.4e11]", "scale.chinchilla.replicates=null")


def cfg(*overrides, hydra=False):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="config", overrides=[*PINNED, *overrides], return_hydra_config=hydra)


@pytest.fixture(autouse=True)
def no_corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALEMIX_DATA", str(tmp_path / "no-data"))


SWEEP_LRS = "grid.lrs=[1e-3,2e-3,4e-3,8e-3,1.6e-2,3.2e-2]"
PLANNER_K, PLANNER_P = 0.12, -0.3       # lr_opt 0.011 at L1 (3.4k), 0.0041 at L3 (83k): inside SWEEP_LRS


def write_lr_sweep(sweep_dir: Path, *overrides, law=None) -> dict:
    """Result files for the lr grid's planned runs (depths 1, 3, 4: the chinchilla grid's L2 is left out);
    returns N -> the law's lr."""
    law = law or (lambda n: PLANNER_K * n ** PLANNER_P)
    p = plan(cfg("+grid=lr", "grid.shapes.depths=[1,3,4]", SWEEP_LRS, *overrides))
    for r in p.runs:
        n, lr = r.counts.params_nonembedding, r.spec.optim.lr
        d = sweep_dir / r.run_id
        d.mkdir(parents=True)
        loss = 3.0 + 20 * n ** -0.3 + CURVATURE * math.log(lr / law(n)) ** 2
        (d / "result.json").write_text(json.dumps({"params_nonembedding": n, "tokens": r.spec.tokens, "lr": lr,
                                                   "loss": loss}))
    return {r.counts.params_nonembedding: law(r.counts.params_nonembedding) for r in p.runs}


def test_planner_uses_each_swept_size_optimum_and_the_law_for_an_unswept_size(tmp_path):
    swept = write_lr_sweep(tmp_path)
    p = plan(cfg("+grid=chinchilla", f"grid.lr_from={tmp_path}"))
    sources = {}
    for r in p.runs:
        n = r.counts.params_nonembedding
        want = PLANNER_K * n ** PLANNER_P
        assert r.spec.optim.lr == pytest.approx(want, rel=5e-3)        # 3 significant digits
        sources[r.spec.model.n_layers] = r.lr_source
    assert sources == {1: "lr sweep", 2: "lr sweep, interpolated", 3: "lr sweep"}
    l2 = next(r for r in p.runs if r.spec.model.n_layers == 2)
    assert l2.counts.params_nonembedding not in swept and not [w for w in p.warnings if "lr_from" in w]
    table = plan_table(p)
    assert f"{l2.spec.optim.lr:.3g}  lr sweep, interpolated" in table and "lr from" in table.splitlines()[0]
    assert "train.optim.lr" in plan_table(plan(cfg("+grid=chinchilla")))   # no lr_from: the config's lr, named


def test_lr_sweep_optimum_at_the_edge_is_warned_in_the_dry_run(tmp_path, capsys):
    # L1's optimum 5e-2 lies above the grid's top (3.2e-2): the planner warns, naming the key and the value to add
    write_lr_sweep(tmp_path / "lr", law=lambda n: 5e-2 if n < 1e4 else PLANNER_K * n ** PLANNER_P)
    run_sweep(cfg("+grid=chinchilla", f"grid.lr_from={tmp_path / 'lr'}", f"sweep.root={tmp_path / 'runs'}",
                  "sweep.dry_run=true", hydra=True), [],
              lambda *a, **k: pytest.fail("dry run launched"))
    out = capsys.readouterr().out
    assert "warning: grid.lr_from=" in out and "at edge: the true best lr may lie above 0.032" in out
    assert "extend the lr sweep's grid.lrs (add 0.064)" in out and "python sweep.py +grid=lr" in out
    assert "lr sweep, at edge" in out and "dry run: nothing launched" in out
    assert "the lr law (used for sizes the lr sweep did not run) leaves out N=3.38e+03" in out   # L2 takes the law


def test_unswept_size_without_a_law_is_an_error_naming_the_key(tmp_path):
    write_lr_sweep(tmp_path, law=lambda n: 5e-2)                       # every size at the top edge: no law
    with pytest.raises(SpecError, match=r"grid.lr_from=.*N=26,784 was not in the lr sweep and the lr law could"):
        plan(cfg("+grid=chinchilla", f"grid.lr_from={tmp_path}"))
    with pytest.raises(SpecError, match="no result.json found there"):
        plan(cfg("+grid=chinchilla", f"grid.lr_from={tmp_path / 'nothing'}"))


# ------------------------------------------------------------------------------------ the report


def render_report(runs: pd.DataFrame, out: Path) -> str:
    from analysis import report, results
    ctx = report.Context(results.Results(runs=runs, curves=pd.DataFrame()), FitConfig(n_bootstrap=200))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        md, _ = report.render(ctx, out, "lr")
    return md.read_text()


def test_report_shows_the_lr_sweep_the_law_and_the_edge_warning(tmp_path):
    from analysis import lr_report, report
    assert lr_report.report_section in report.SECTIONS
    lrs = LRS[2:9]
    shifted = lambda n: lr_star(n) * np.where(np.asarray(n) < 2e4, 8.0, 1.0)   # the smallest size: top edge
    text = render_report(lr_table(SIZES, lrs, law=shifted), tmp_path)
    section = text.split("## Learning-rate sweep")[1]
    assert (tmp_path / "figures" / "lr_sweep.png").stat().st_size > 10_000
    assert "chosen lr" in section and "yes: top" in section and "parabola through 3 lrs" in section
    assert f"**lr law:** lr_opt = {K:.4g} * N^{P:.3f} (90% interval" in section     # exact data: the known law
    assert "**Warning:** N=1e+04: the best lr 0.0313 is the largest tried" in section
    one_lr = lr_table(SIZES, [3e-3])
    assert "## Learning-rate sweep" not in render_report(one_lr, tmp_path / "one")   # not an lr sweep: no section


def test_the_report_of_an_lr_sweep_is_its_lr_law_not_a_chinchilla_law(tmp_path):
    """`python -m analysis.report runs/lr` on the lr grid's runs (sizes x lrs at one D/N, each with its FLOPs): the
    Chinchilla laws were fitted to them (approach 3's recommendations once crashed on them) and the verdict asked for
    `+grid=lr 'grid.shapes.budgets=...'`, which the lr grid cannot take. Now they are skipped with the reason (in
    the report and laws.json) and the lr section is the report."""
    from analysis import lawfile
    from analysis.report import write_report
    law = lambda n: PLANNER_K * n ** PLANNER_P
    p = plan(cfg("+grid=lr", "grid.shapes.depths=[1,3,4]", SWEEP_LRS))
    for r in p.runs:
        n, lr = r.counts.params_nonembedding, r.spec.optim.lr
        (tmp_path / "lr" / r.run_id).mkdir(parents=True)
        (tmp_path / "lr" / r.run_id / "result.json").write_text(json.dumps({
            "run_id": r.run_id, "sweep": "lr", "params_nonembedding": n, "tokens": r.spec.tokens, "lr": lr,
            "flops": r.counts.flops_per_token * r.spec.tokens,
            "loss": 3.0 + 20 * n ** -0.3 + CURVATURE * math.log(lr / law(n)) ** 2}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        md, _, laws = write_report(tmp_path / "lr", n_bootstrap=20)
    text = md.read_text()
    assert "**No Chinchilla law:** not fitted to a learning-rate sweep (3 size(s)" in text
    assert "## Learning-rate sweep" in text and "**lr law:**" in text
    for absent in ("## Fitted laws", "## Recommendations", "## Extrapolation check", "grid.shapes.budgets", "Verdict"):
        assert absent not in text, absent
    saved = lawfile.load(laws)
    assert saved.surface is None and saved.verdict is None
    assert saved.failures["approach 3"].startswith("not fitted to a learning-rate sweep")
