"""laws.json: a fitted law saved and loaded gives the same recommendations, intervals included; bad files are refused
with the key and the fix; `python -m analysis.recommend laws.json` answers without pandas, scipy or matplotlib."""
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import analysis.recommend.__main__ as recommend_cli
from analysis import lawfile, recommend, refit, results
from analysis.laws import approach2, approach3
from analysis.laws.common import FitConfig

os.environ.setdefault("SCALEMIX_NO_PROGRESS", "1")
ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "sweep_small"
VERDICT = {"level": "weakly determined", "checks": [{"name": "exponent interval", "passed": False,
                                                     "message": "a's interval is 0.13 wide"}]}


@pytest.fixture(scope="module")
def fitted():
    """The committed fixture sweep fitted (approaches 2 and 3, 100 resamples each)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = results.load(FIXTURE)
        cfg = res.fit_config(n_bootstrap=100, processes=1)
        return cfg, {"approach 2": approach2.fit(res.runs, cfg), "approach 3": approach3.fit(res.runs, cfg)}


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    cfg, fits = fitted
    path = tmp_path_factory.mktemp("laws") / "report" / "laws.json"
    lawfile.write(path, lawfile.content("sweep_small", cfg, fits, {"approach 1": "not tried here"}, VERDICT))
    return path


def test_round_trip_gives_the_same_law_and_the_same_recommendations(fitted, saved):
    cfg, fits = fitted
    a3, laws = fits["approach 3"], lawfile.load(saved)
    s = laws.surface
    assert s.params == pytest.approx(a3.params, rel=1e-15) and s.k == a3.k and s.n_runs == a3.n_runs == 35
    assert np.array_equal(s.samples, a3.samples) and s.samples.shape == (100, 5)
    assert (s.c_range, s.n_range, s.d_range) == (a3.c_range, a3.n_range, a3.d_range)
    for p in ("E", "alpha", "beta", "a", "b"):
        assert s.ci(p) == a3.ci(p)
    assert (laws.config.n_col, laws.config.c_col, laws.config.ci_level) == (cfg.n_col, cfg.c_col, cfg.ci_level)
    assert laws.config.origin == cfg.origin and "default" in cfg.origin
    assert laws.verdict == VERDICT and laws.failures == {"approach 1": "not tried here"}
    C = 10 * a3.c_range[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want, got = recommend.recommend(a3, budget=C), recommend.recommend(s, budget=C)
        assert got.row() == pytest.approx(want.row(), rel=1e-12)      # point and interval, from the file alone
        assert np.isfinite(got.n_ci).all() and got.n_ci[0] < got.n_opt < got.n_ci[1]
        T, U = 10 * got.d_opt, got.d_opt / 8
        for fn, args in ((recommend.inference_optimal, (want.loss, T)), (recommend.data_constrained, (C, U))):
            w, g = fn(a3, *args), fn(s, *args)
            for k in ("N", "D", "N_ci", "D_ci"):
                assert np.allclose(g[k], w[k], rtol=1e-9), (fn.__name__, k)
    a2, p2 = fits["approach 2"], laws.power["approach 2"]
    assert (p2.n_opt.a, p2.n_opt.k, p2.d_opt.a) == (a2.n_opt.a, a2.n_opt.k, a2.d_opt.a)
    assert p2.n_opt.a_ci == pytest.approx(a2.n_opt.a_ci) and "approach 1" not in laws.power


def test_file_is_strict_json_with_one_sample_per_line(saved):
    text = saved.read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in laws.json"))   # no NaN/Infinity literals
    assert data["schema"] == lawfile.SCHEMA == "scalemix.laws/1" and data["approach3"]["form"] == lawfile.FORM
    assert len(data["approach3"]["samples"]) == 100 and len(text.splitlines()) < 600
    assert not list(saved.parent.glob(".laws.json.tmp*"))                             # written atomically


def mutate(data: dict, key: str, value) -> dict:
    d = json.loads(json.dumps(data))
    *path, last = key.split(".")
    node = d
    for k in path:
        node = node[k]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return d


@pytest.mark.parametrize("key, value, message", [
    ("schema", "scalemix.laws/2", "another version of scalemix"),
    ("schema", KeyError, "not a scalemix laws file"),
    ("approach3.params.alpha", KeyError, "approach3.params.alpha: missing"),
    ("approach3.params.beta", -0.3, "approach3.params.beta = -0.3: must be > 0"),
    ("approach3.params.E", "1.2", "approach3.params.E: '1.2': must be a number"),
    ("approach3.k", float("inf"), "approach3.k = inf: must be finite"),
    ("approach3.samples", [[1.0, 2.0, 3.0, 0.3]] * 4, "approach3.samples: shape [4, 4]: must be [n, 5]"),
    ("approach3.samples", [[1.0, 2.0, 3.0, 0.3, float("nan")]], "approach3.samples: 1 non-finite"),
    ("approach3.ranges.C", [3e16, 2e16], "approach3.ranges.C = [3e+16, 2e+16]: low > high"),
    ("approach3.form", "L = E + A/N", "approach3.form"),
    ("approach2.n_opt.a", 0.0, "approach2.n_opt.a = 0.0: must be > 0"),
    ("conventions.n_col", "params_everything", "conventions.n_col = 'params_everything'"),
    ("conventions.ci_level", 1.5, "conventions.ci_level = 1.5: must be in (0, 1)"),
    ("verdict", {"level": "great"}, "verdict.level = 'great': must be one of"),
    ("verdict", {"checks": []}, "verdict.level = None"),
])
def test_bad_files_are_refused_naming_the_key_and_the_fix(saved, tmp_path, key, value, message):
    bad = tmp_path / "laws.json"
    bad.write_text(json.dumps(mutate(json.loads(saved.read_text()), key, value)))
    with pytest.raises(lawfile.LawFileError) as e:
        lawfile.load(bad)
    assert message in str(e.value) and "Fix: rewrite it" in str(e.value) and "python -m analysis.report" in str(e.value)


def test_unreadable_files_are_refused(tmp_path):
    (tmp_path / "laws.json").write_text('{"schema": "scalemix.laws/1", ')
    with pytest.raises(lawfile.LawFileError, match="not JSON"):
        lawfile.load(tmp_path / "laws.json")
    with pytest.raises(lawfile.LawFileError, match="no such file"):
        lawfile.load(tmp_path / "nope.json")
    with pytest.raises(lawfile.LawFileError, match="neither a laws.json nor a directory"):
        refit.resolve(tmp_path / "nope")                              # neither a file nor a directory
    (tmp_path / "empty").mkdir()
    with pytest.raises(lawfile.LawFileError, match="not a sweep dir"):
        refit.resolve(tmp_path / "empty")                             # a directory with no laws.json and no runs


def test_a_law_with_non_positive_exponents_is_not_saved_as_usable(fitted):
    cfg, fits = fitted
    broken = approach3.LossSurface.known(E=1.0, A=10.0, B=10.0, alpha=-0.1, beta=0.3)
    data = lawfile.content("x", cfg, {"approach 3": broken})
    assert data["approach3"] is None and "not > 0" in data["failures"]["approach 3"]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    rc = recommend_cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_recommends_from_laws_json_verdict_first(saved, capsys):
    rc, out, _ = run_cli(capsys, saved, "--budget", "1e16", "--inference-tokens", "1e12", "--unique-tokens", "3e7")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "verdict: weakly determined" and "FAIL  exponent interval: a's interval" in lines[1]
    assert f"read {saved}" in out and "(FitConfig's default:" in out
    law = lawfile.load(saved).surface
    assert f"N_opt          {float(law.n_opt(1e16)):<10.3g} [" in out
    assert "then serve 1e+12 tokens" in out and "with only 3e+07 unique tokens" in out
    rc, out, _ = run_cli(capsys, saved, "--budget", "1e16", "--json")
    got = json.loads(out)
    assert rc == 0 and got["recommendation"]["N_opt"] == pytest.approx(float(law.n_opt(1e16)))
    assert got["verdict"]["level"] == "weakly determined" and len(got["recommendation"]["N_ci"]) == 2
    rc, out, _ = run_cli(capsys, saved.parent.parent, "--target-loss", "1.6")   # a sweep dir: its report/laws.json
    assert rc == 0 and "target loss 1.6" in out


def test_cli_refuses_far_budgets_and_undetermined_laws(saved, tmp_path, capsys):
    rc, _, err = run_cli(capsys, saved, "--budget", "1e22")
    assert rc == 1 and "refused" in err and "--allow-far" in err
    assert run_cli(capsys, saved, "--budget", "1e22", "--allow-far")[0] == 0
    with pytest.raises(SystemExit):                                           # argparse: exit 2, names the argument
        recommend_cli.main([str(saved), "--budget", "-3"])
    assert "--budget -3: must be a finite number > 0" in capsys.readouterr().err
    data = mutate(json.loads(saved.read_text()), "verdict", {"level": "not determined", "checks": ["too few budgets"]})
    (tmp_path / "laws.json").write_text(json.dumps(data))
    rc, out, _ = run_cli(capsys, tmp_path / "laws.json", "--budget", "1e16")
    assert rc == 3 and "verdict: not determined" in out and "too few budgets" in out and "N_opt" not in out
    assert "no recommendation" in out and "--force" in out
    rc, out, _ = run_cli(capsys, tmp_path / "laws.json", "--budget", "1e16", "--force")
    assert rc == 0 and "N_opt" in out


def test_cli_on_laws_json_imports_no_pandas_scipy_or_matplotlib(saved):
    code = ("import sys, runpy; sys.argv = ['recommend', sys.argv[1], '--budget', '1e16']\n"
            "try:\n    runpy.run_module('analysis.recommend', run_name='__main__')\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'scipy', 'matplotlib'))\n"
            "assert not heavy, heavy\n")
    r = subprocess.run([sys.executable, "-c", code, str(saved)], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "N_opt" in r.stdout


def test_a_sweep_without_laws_json_is_refitted_and_says_so(tmp_path):
    sweep = tmp_path / "sweep"
    shutil.copytree(FIXTURE, sweep)
    laws, how = refit.resolve(sweep, n_bootstrap=0)
    assert how.startswith(f"refitted {sweep} from its 35 runs") and "no laws.json there" in how
    assert laws.surface is not None and set(laws.power) == {"approach 1", "approach 2"}
    assert np.isnan(laws.surface.ci("a")).all()                  # no bootstrap: no interval, not a fake one
    laws2, how2 = refit.resolve(sweep, c_col="flops", n_bootstrap=0)
    assert laws2.config.c_col == "flops" and laws2.config.origin.startswith("override: c_col=flops")
    with pytest.raises(lawfile.LawFileError, match="cannot be converted"):
        saved_elsewhere = tmp_path / "laws.json"
        lawfile.write(saved_elsewhere, lawfile.content("s", FitConfig(), {}))
        refit.resolve(saved_elsewhere, c_col="flops")


def test_a_laws_json_older_than_its_runs_is_flagged(saved, tmp_path):
    sweep = tmp_path / "sweep"
    run = sweep / "r0"
    run.mkdir(parents=True)
    (run / "result.json").write_text("{}")
    (sweep / "report").mkdir()
    shutil.copy(saved, sweep / "report" / "laws.json")
    assert refit.resolve(sweep)[1] == f"read {sweep / 'report' / 'laws.json'}"
    later = (sweep / "report" / "laws.json").stat().st_mtime + 60
    os.utime(run / "result.json", (later, later))                        # a run finished after the report
    assert "1 run(s) finished after it was written: rerun `python -m analysis.report" in refit.resolve(sweep)[1]
