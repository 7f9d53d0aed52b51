"""analysis.compare: two sweeps' laws side by side (table and overlaid figure); different conventions refused."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from analysis import compare, lawfile
from analysis.laws.approach3 import LossSurface
from analysis.laws.common import FitConfig
from analysis.synthetic import CHINCHILLA, FIXTURE_LAW


def saved_law(path: Path, law, config: FitConfig, c_range=(1e14, 1e16), seed: int = 0, verdict=None) -> Path:
    """A laws.json for a known law, its 'bootstrap' samples drawn around the true parameters."""
    s = LossSurface.known(**{k: getattr(law, k) for k in ("E", "A", "B", "alpha", "beta")}, c_range=c_range,
                          n_runs=30, config=config)
    s.n_range, s.d_range = (1e6, 1e8), (1e7, 1e10)
    rng = np.random.default_rng(seed)
    jitter = np.column_stack([np.exp(0.02 * rng.standard_normal((200, 3))), 1 + 0.03 * rng.standard_normal((200, 2))])
    s.samples = np.array([s.E, s.A, s.B, s.alpha, s.beta]) * jitter
    return lawfile.write(path, lawfile.content(path.parent.name, config, {"approach 3": s}, verdict=verdict))


CFG = FitConfig(n_col="params_compute", c_col="flops", origin="from the sweep's grid.json: the N and C its grid was designed around")


def test_compare_writes_a_side_by_side_table_and_figure(tmp_path):
    a = saved_law(tmp_path / "mixA" / "laws.json", FIXTURE_LAW, CFG, verdict={"level": "determined", "checks": []})
    b = saved_law(tmp_path / "mixB" / "laws.json", CHINCHILLA, CFG, c_range=(1e15, 1e17), seed=1)
    md = compare.compare(a, b, tmp_path / "out", budgets=[1e16, 1e25])
    assert md == tmp_path / "out" / "compare.md" and (tmp_path / "out" / "compare_optimal.png").stat().st_size > 10_000
    text = md.read_text()
    assert text.startswith("# mixA against mixB") and "| quantity | mixA | mixB |" in text
    assert "conventions (both): N = `params_compute`, C = `flops`" in text
    row = lambda name: next(line for line in text.splitlines() if line.startswith(f"| {name} |"))  # noqa: E731
    assert "| verdict | determined | not judged |" in text
    assert row("approach 3: alpha").split(" | ")[1].startswith(f"{FIXTURE_LAW.alpha:.4g} [")
    assert row("approach 3: alpha").split(" | ")[2].startswith(f"{CHINCHILLA.alpha:.4g} [")
    # N_opt at a common budget is each law's own closed form, with its interval
    n_a, n_b = (dataclasses.replace(law, k=6.0).n_opt(1e16) for law in (FIXTURE_LAW, CHINCHILLA))
    cells = row("C = 1e+16: N_opt").split(" | ")
    assert cells[1].startswith(compare.fmt(float(n_a)) + " [") and cells[2].startswith(compare.fmt(float(n_b)) + " [")
    assert "refused" in row("C = 1e+25: loss")                       # 1e9x past both fitted ranges: not a number
    assert "approach 1: a | not fitted | not fitted" in text


def test_different_conventions_are_refused_with_the_fix(tmp_path):
    a = saved_law(tmp_path / "dense" / "laws.json", FIXTURE_LAW, CFG)
    b = saved_law(tmp_path / "moe" / "laws.json", FIXTURE_LAW, dataclasses.replace(CFG, c_col="flops_6n"))
    with pytest.raises(compare.CompareError, match=r"c_col: dense has flops, moe has flops_6n.*--n-col and --c-col"):
        compare.compare(a, b, tmp_path / "out")
    with pytest.raises(SystemExit, match="analysis.compare: the laws were fitted under different conventions"):
        compare.main([str(a), str(b), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "compare.md").exists()
    # a saved law cannot be converted without its runs: asking for a convention it lacks is refused too
    with pytest.raises(SystemExit, match="cannot be converted to another convention without its runs"):
        compare.main([str(a), str(b), "--c-col", "flops_6n", "--out", str(tmp_path / "out")])


def test_interval_levels_that_differ_are_stated(tmp_path):
    a = saved_law(tmp_path / "a" / "laws.json", FIXTURE_LAW, CFG)
    b = saved_law(tmp_path / "b" / "laws.json", FIXTURE_LAW, dataclasses.replace(CFG, ci_level=0.8), seed=2)
    text = compare.compare(a, b, tmp_path / "out", names=("base", "other")).read_text()
    assert "note: interval levels differ: base 90%, other 80%" in text
