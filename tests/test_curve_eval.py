"""eval.curve_tokens (issue 12 item 1, cheap curve evals): the evals before the last score a prefix subset of each
domain's held-out windows; the last scores the full set, its losses those of a run without the option, and also
the subset's from the same forward. The subset's losses are those of an eval on heldout_tokens = curve_tokens; a run
id is unchanged at the default; a run with the option resumes bit-exact; analysis reads one token set per curve."""
import json
import shutil

import pandas as pd
import pytest
from harness_util import make_corpus, metrics, runtime, tiny_spec

from analysis.laws import approach1, slices
from analysis.laws.common import FitConfig, FitError, curve_set
from analysis.results import curve_point, load
from harness.spec import RunSpec, SpecError
from harness.train import run

STEPS, EVERY, CURVE, HELDOUT = 12, 3, 300, 1024
RT = runtime(checkpoint_every=4)


def losses(row: dict, prefix: str = "loss") -> dict:
    return {k: v for k, v in row.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same spec trained with the full set at every eval, with the curve subset, and with heldout_tokens =
    curve_tokens (each in-process, one after another)."""
    root = tmp_path_factory.mktemp("curve")
    corpus = make_corpus(root / "syn")
    base = tiny_spec(corpus, steps=STEPS, eval={"every_steps": EVERY, "heldout_tokens": HELDOUT})
    curve = tiny_spec(corpus, steps=STEPS, eval={"every_steps": EVERY, "heldout_tokens": HELDOUT,
                                                 "curve_tokens": CURVE})
    small = tiny_spec(corpus, steps=STEPS, eval={"every_steps": EVERY, "heldout_tokens": CURVE})
    out = {}
    for name, spec in (("full", base), ("curve", curve), ("small", small)):
        out[name] = (spec, root / name, run(spec, RT, root / name))
    return root, out


def test_the_run_id_is_unchanged_at_the_default_and_changes_with_the_option(runs):
    _, out = runs
    base, curve = out["full"][0], out["curve"][0]
    assert "curve_tokens" not in base.canonical_json()
    d = base.to_dict()
    d["eval"]["curve_tokens"] = 0
    assert RunSpec.from_dict(d).run_id == base.run_id
    assert curve.run_id != base.run_id and '"curve_tokens":300' in curve.canonical_json()


def test_bad_curve_tokens_are_refused_naming_the_key(runs):
    _, out = runs
    corpus = out["full"][0].data.corpus
    for bad, why in ((HELDOUT + 1, "eval.heldout_tokens"), (-1, "must be in"), (32, "model.seq_len")):
        spec = tiny_spec(corpus, eval={"heldout_tokens": HELDOUT, "curve_tokens": bad})
        with pytest.raises(SpecError, match="eval.curve_tokens"):
            spec.validate()
        assert any(why in e for e in spec.errors())


def test_the_final_eval_and_the_result_are_those_of_the_run_without_the_option(runs):
    _, out = runs
    full, curve = (metrics(out[k][1], "eval") for k in ("full", "curve"))
    assert [r["step"] for r in full] == [r["step"] for r in curve] == [3, 6, 9, 12]
    assert losses(curve[-1]) == losses(full[-1]) and curve[-1]["curve_tokens"] == CURVE
    assert losses(out["curve"][2]) == losses(out["full"][2])            # result.json: the full set's losses
    assert not any(k.startswith("curve") for k in out["curve"][2])
    for row in curve[:-1]:   # the evals before the last: the subset alone
        assert not losses(row) and set(losses(row, "curve_loss")) == {"curve_" + k for k in losses(full[0])}
    # training is untouched by what the evals score
    assert [r["loss"] for r in metrics(out["full"][1])] == [r["loss"] for r in metrics(out["curve"][1])]


def test_the_subset_losses_equal_an_eval_of_heldout_tokens_equal_to_curve_tokens(runs):
    _, out = runs
    curve, small = (metrics(out[k][1], "eval") for k in ("curve", "small"))
    assert [r["step"] for r in small] == [r["step"] for r in curve]
    for rc, rs in zip(curve, small):   # the last from the full set's forward, the others from the subset's own
        sub = {k[len("curve_"):]: v for k, v in losses(rc, "curve_loss").items()}
        assert list(sub) == list(losses(rs))
        for k, v in losses(rs).items():
            assert sub[k] == pytest.approx(v, rel=1e-6, abs=1e-7), (rc["step"], k)
    # and the subset is a real subset: its losses differ from the full set's at the last eval
    assert curve[-1]["curve_loss"] != curve[-1]["loss"]


def test_a_run_with_the_option_resumes_bit_exact(runs, tmp_path):
    """Stopped at step 4 (a checkpoint whose last_eval is a subset eval) and resumed; and killed after its final eval
    was logged but before result.json (the final checkpoint holds the previous, subset eval): both end with the
    metrics and result of the run uninterrupted."""
    _, out = runs
    spec, done, result = out["curve"]
    stopped = tmp_path / "stopped"
    assert run(spec, RT, stopped, stop_at=4) is None
    assert run(spec, RT, stopped) == {**result, **{k: v for k, v in json.loads(
        (stopped / "result.json").read_text()).items() if k.startswith(("time_", "wall_s", "tokens_per_s", "mfu"))}}
    killed = tmp_path / "killed"
    shutil.copytree(done, killed)
    (killed / "result.json").unlink()
    run(spec, RT, killed)
    for d in (stopped, killed):
        assert metrics(d, "eval") == metrics(done, "eval")
        assert [r["loss"] for r in metrics(d)] == [r["loss"] for r in metrics(done)]
        res = json.loads((d / "result.json").read_text())
        assert losses(res) == losses(result)


def test_analysis_reads_the_subset_throughout_a_curve_run_and_refuses_mixed_sets(runs):
    root, out = runs
    rows = metrics(out["curve"][1], "eval")
    pts = [curve_point(r) for r in rows]
    assert all(p["curve_tokens"] == CURVE for p in pts)
    assert [p["loss"] for p in pts] == [r["curve_loss"] for r in rows]   # the last too: the subset's, not the result's
    assert curve_point(metrics(out["full"][1], "eval")[0])["curve_tokens"] == 0
    res = load(root)
    by = res.curves.groupby("run_id")["curve_tokens"].first().to_dict()
    assert by == {out["full"][0].run_id: 0, out["curve"][0].run_id: CURVE, out["small"][0].run_id: 0}
    with pytest.raises(FitError, match="different held-out sets"):
        curve_set(res.curves, "approach 1")
    assert curve_set(res.curves[res.curves["run_id"] == out["curve"][0].run_id], "x") == CURVE
    cfg = FitConfig(n_col="params_nonembedding", c_col="flops")
    with pytest.raises(FitError, match="eval.curve_tokens"):
        approach1.fit(pd.concat([res.runs] * 2, ignore_index=True), res.curves, cfg)


def test_isoflop_slices_take_a_curve_runs_final_point_on_the_subset(runs):
    """A constant-lr curve run sliced: its final point is the subset's loss (its curve's), not the runs table's."""
    root, out = runs
    res = load(root)
    rid = out["curve"][0].run_id
    r = res.runs[res.runs["run_id"] == rid].assign(schedule="constant")
    table = slices.isoflop_slices(r, res.curves, FitConfig(n_col="params_nonembedding", c_col="flops"),
                                  kind="constant", budgets=[float(r["flops"].iloc[0]) / 2])
    final = table[table["step"] == STEPS]
    assert float(final["loss"].iloc[0]) == metrics(out["curve"][1], "eval")[-1]["curve_loss"] != float(r["loss"].iloc[0])
