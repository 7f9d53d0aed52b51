"""Approach 2 without seed replicates (issues 19 and 12): a law-shaped profile model is tested against the residual
scatter of a cubic in log N fitted to each budget on its own (analysis/noise.py smoother; pure error where a size is
repeated) by the lack-of-fit F test (approach2.lack_of_fit_test). The GPU study's table without its `seed` column
gets local vertices near its runs (the shared profile put 3e16's 6% below every run there); law-shaped runs keep
their profile model, and the notes say which reference was used."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from isoflop_util import ASYM, fit
from scipy import stats

from analysis import noise
from analysis.laws import approach2
from analysis.laws.common import FitConfig
from analysis.synthetic import CHINCHILLA, isoflop_table

DATA = Path(__file__).parent / "data" / "gpu_study_runs.csv"
CFG = FitConfig(n_col="params_compute", c_col="flops", n_bootstrap=0, processes=1)


def test_smoother_recovers_the_noise_of_smooth_curves_and_the_pure_error_of_repeated_sizes():
    rng = np.random.default_rng(0)
    xs = [np.sort(rng.uniform(0, 5, 12)) for _ in range(40)]
    ys = [np.exp(2 + 0.1 * (x - 2.5) ** 2 - 0.01 * x ** 3 + 0.01 * rng.standard_normal(len(x))) for x in xs]
    sd = noise.smoother(xs, ys)
    assert sd.source == noise.SMOOTHER and sd.dof == 40 * (12 - 4) and sd.ci[0] < 0.01 < sd.ci[1]
    assert "no seed replicates" in sd.describe()
    # 3 sizes twice each: the cubic is cut to the parabola through the 3 sizes' means, leaving the pure error
    x = np.repeat([1.0, 2.0, 3.0], 2)
    y = np.exp(np.array([0.0, 0.02, 0.5, 0.5, 0.1, 0.14]))
    one = noise.smoother([x], [y])
    assert one.dof == 3 and one.sd == pytest.approx(np.sqrt((0.01 ** 2 * 2 + 0.02 ** 2 * 2) / 3))
    assert not noise.smoother([x[::2]], [y[::2]]).measured            # 3 sizes once: no residual dof


def test_unreplicated_gpu_study_gets_local_vertices_near_the_runs():
    """The GPU study (32 runs, 5 budgets; 1e15's 4 sizes twice) without its `seed` column: no run-to-run noise from
    seeds, so the law-shaped models are tested against the cubic's residual scatter (2.65% on 12 dof) and all refused
    (shared F 4.6 on 11 and 12 dof, p 0.007); 3e16's vertex is a local parabola's within the replicates' noise allowance
    (t(0.99, 4 dof) x 0.35% = 1.3%) of the lowest run there, as with the seed column (main gave 1.688: 6.2% below)."""
    runs = pd.read_csv(DATA, comment="#")
    sd = noise.estimate(runs)
    tol = float(stats.t.ppf(approach2.FIT_TEST_LEVEL, sd.dof) * sd.sd)
    low = float(runs.loc[runs["budget"] == runs["budget"].max(), "loss"].min())
    f = fit(runs.drop(columns="seed"), CFG)
    pts = f.points
    assert len(pts) == 5 and (pts["profile"] == approach2.LOCAL).all()
    assert abs(pts.iloc[-1]["loss_opt"] / low - 1) <= tol
    note = [w for w in f.warnings if "no law-shaped profile model" in w]
    assert len(note) == 1 and "polynomial of degree 3 in log N per budget" in note[0] and "on 12 dof" in note[0]


def test_one_run_a_size_is_not_enough_to_refuse_the_gpu_studys_shared_profile():
    """What is still wrong, pinned so that a change shows: with one run a size (seed 0 only) the cubic leaves 2 dof a
    budget (8 in all) and its scatter, 3.2%, is inflated by 5.5e15's kinked profile: the shared profile passes (p 0.06)
    and 3e16's vertex is again 6% below its runs."""
    runs = pd.read_csv(DATA, comment="#")
    f = fit(runs[runs["seed"] == 0].drop(columns="seed"), CFG)
    assert (f.points["profile"] == "shared").all()
    assert f.points.iloc[-1]["loss_opt"] < 0.95 * runs.loc[runs["budget"] == runs["budget"].max(), "loss"].min()


@pytest.mark.parametrize("law, sizes, span, sd, seed", [(ASYM, 6, 100, 0.02, 0), (CHINCHILLA, 6, 1000, 0.005, 1),
                                                        (ASYM, 30, 10, 0.005, 2), (CHINCHILLA, 30, 1000, 0.01, 3)])
def test_law_shaped_unreplicated_runs_keep_their_profile_model(law, sizes, span, sd, seed):
    """Runs drawn from the law without replicates (1-3 decades, 6 or 30 random sizes a budget, 0.5-2% noise): the
    lack-of-fit test keeps the law-shaped profile model and the notes name the reference it was tested against."""
    t = isoflop_table(law, np.geomspace(1e18, 1e22, 5), sizes_per_budget=sizes, span=span, noise=sd, seed=seed,
                      spacing="random", jitter_dex=0.05).drop(columns="seed")
    f = fit(t)
    assert (f.points["profile"] != approach2.LOCAL).all()
    used = [w for w in f.warnings if "they are used" in w]
    assert len(used) == 1 and "residual scatter of a polynomial of degree 3 in log N per budget" in used[0]


def test_lack_of_fit_test_refuses_residuals_beyond_the_smoothers_and_not_within_them():
    """The F test's arithmetic: residuals as small as the smoother's pass; residuals twice as large on 40 more dof are
    refused; a model whose residuals are smaller than the smoother's (the smoother missing a smooth profile) passes."""
    rng = np.random.default_rng(3)
    smooth = noise.Noise(sd=0.01, dof=40, configs=5, runs=60, ci=(0.008, 0.012), level=0.9, source=noise.SMOOTHER)
    r = rng.standard_normal(85)
    r_ok = 0.01 * r / np.sqrt(r @ r / 80)                 # RMS 1% on 80 dof (k = 5)
    assert approach2.lack_of_fit_test(r_ok, 5, smooth)[2] > 0.1
    assert approach2.lack_of_fit_test(2 * r_ok, 5, smooth)[2] < 1e-4
    assert approach2.lack_of_fit_test(0.5 * r_ok, 5, smooth)[1:3] == (0.0, 1.0)
    assert approach2.lack_of_fit_test(r_ok[:45], 5, smooth)[2] == 1.0        # no dof beyond the smoother's: untested
