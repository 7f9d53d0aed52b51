"""The planner: grids -> validated RunSpecs and the plan table, from the real conf/ (no training)."""
import json
import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from harness.data.synthetic import make_synthetic_corpus
from harness.spec import SpecError
from model_zoo import count
from sweeps import grids
from sweeps.plan import plan, plan_table

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def cfg(*overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture(autouse=True)
def no_corpus(tmp_path, monkeypatch):
    """By default no corpus is built (as on a fresh clone): tests that want one point SCALEMIX_DATA at it."""
    monkeypatch.setenv("SCALEMIX_DATA", str(tmp_path / "no-data"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_synthetic_corpus(tmp_path_factory.mktemp("data") / "syn", vocab_size=2048, train_tokens=300_000)


def test_default_chinchilla_grid_brackets_each_budget_with_exact_tokens():
    p = plan(cfg("+grid=chinchilla"))
    c = cfg("+grid=chinchilla")
    g = c.grid.shapes
    budgets = [float(b) for b in g.budgets]
    replicated = [r for r in p.runs if r.spec.seed != c.train.seed]   # grid.replicates: the smallest budget again
    assert {r.budget for r in replicated} == {min(budgets)}
    p.runs = [r for r in p.runs if r.spec.seed == c.train.seed]
    assert len(p.runs) == len(budgets) * g.sizes_per_budget
    ratio = float(g.tokens_per_param)
    for C in budgets:
        runs = [r for r in p.runs if r.budget == C]
        assert len({r.spec.model.n_layers for r in runs}) == len(runs)  # distinct sizes
        for r in runs:  # D = C / exact FLOPs per token (floored to a whole token)
            fpt = count(r.spec.model).flops_per_token
            assert r.spec.tokens == int(C / fpt)
            assert abs(r.flops - C) <= fpt
        tpp = [r.spec.tokens / grids.Rung(r.spec.model.n_layers, r.spec.model, r.counts).n(g.count) for r in runs]
        assert min(tpp) < ratio < max(tpp)  # the expected optimum lies inside the sizes: a parabola can be fitted
    assert len({r.run_id for r in p.runs}) == len(p.runs)
    assert p.sweep_dir == Path("runs/chinchilla")


def test_sizes_are_evenly_spaced_in_log_n_on_a_dense_ladder():
    rule = {"aspect": 64, "head_dim": 64, "ffn_multiple": 256}
    errors = []
    rungs = grids.ladder_rungs({"rule": rule, "depths": list(range(2, 33)), "seq_len": 1024, "vocab_size": 8192}, errors)
    shapes = grids.compute_shapes({"budgets": [1e18], "tokens_per_param": 20, "sizes_per_budget": 5, "spacing": 2.0},
                                  rungs, errors)
    assert not errors and len(shapes) == 5
    steps = [math.log(b.rung.n("nonembedding") / a.rung.n("nonembedding")) for a, b in zip(shapes, shapes[1:])]
    assert all(abs(s - math.log(2)) < 0.35 for s in steps), steps


def test_compute_count_is_what_the_training_flops_scale_with():
    """N = "compute" (active non-embedding + the d x V head, tied or not): FLOPs/token = 6 N + causal
    attention 6 T d L, less the norm gains (in N, but no matmul)."""
    errors = []
    model = {"rule": {"aspect": 16, "head_dim": 16, "ffn_multiple": 16}, "depths": [1, 2, 4], "vocab_size": 2048,
             "seq_len": 128}
    for tie in (False, True):  # a tied head has no parameters of its own but is still a d x V matmul per token
        for r in grids.ladder_rungs({**model, "tie_embeddings": tie}, errors):
            d, n_layers = r.spec.d_model, r.spec.n_layers
            norms = (2 * n_layers + 1) * d
            assert r.counts.flops_per_token == 6 * (r.n("compute") - norms) + 6 * 128 * d * n_layers
    assert not errors


def test_budget_too_small_or_too_large_for_the_ladder_is_an_error_naming_the_key():
    with pytest.raises(SpecError) as e:
        plan(cfg("+grid=chinchilla", "grid.shapes.budgets=[1e3,1e30]"))
    msg = str(e.value)
    assert "too small for the smallest model" in msg and "above the largest model" in msg
    assert msg.count("grid.shapes.budgets") == 2  # both reported at once


def test_all_errors_at_once_each_naming_its_key():
    with pytest.raises(SpecError) as e:
        plan(cfg("+grid=chinchilla", "train.optim.lr=-1", "train.optim.schedule=bogus", "train.batch_tokens=1000"))
    msg = str(e.value)
    for key in ("optim.lr=-1", "optim.schedule='bogus'", "batch_tokens=1000"):
        assert key in msg


def test_no_grid_is_a_clear_error():
    with pytest.raises(SpecError, match=r"\+grid=chinchilla"):
        plan(cfg())


def test_budget_too_large_for_the_corpus_is_an_error(corpus, monkeypatch):
    monkeypatch.setenv("SCALEMIX_DATA", str(corpus.parent))
    p = plan(cfg("+grid=chinchilla", "data.corpus=syn"))  # the default budgets fit 300k tokens/domain x 4 epochs
    worst = max(p.runs, key=lambda r: r.spec.tokens)
    epochs = worst.spec.tokens / 3 / 300_000            # uniform over 3 domains
    cap = round(epochs * 0.99, 3)                       # only the worst run exceeds it
    with pytest.raises(SpecError) as e:
        plan(cfg("+grid=chinchilla", "data.corpus=syn", f"sweep.max_epochs={cap}"))
    for d in ("alpha", "beta", "gamma"):
        assert (f"sweep.max_epochs: 1 run(s) repeat domain '{d}' past its cap of {cap:g} epochs "
                f"(worst: '{worst.label}', {epochs:.2f} times): the budget is too large") in str(e.value)
    with pytest.raises(SpecError, match=r"model.vocab_size=\[1024\] but corpus 'syn' has vocab_size=2048"):
        plan(cfg("+grid=chinchilla", "data.corpus=syn", "model.vocab_size=1024"))


def test_plan_table_states_epochs_per_domain_for_every_run(corpus, monkeypatch):
    monkeypatch.setenv("SCALEMIX_DATA", str(corpus.parent))
    p = plan(cfg("+grid=chinchilla", "data.corpus=syn", "sweep.max_epochs=100"))
    out = plan_table(p)
    assert "epochs per domain of corpus 'syn'" in out
    for r in p.runs:   # uniform over 3 domains of 300k train tokens each
        e = r.spec.tokens / 3 / 300_000
        assert p.epochs[r.run_id] == pytest.approx(dict.fromkeys(("alpha", "beta", "gamma"), e))
        row = next(line for line in out.splitlines()[::-1] if line.startswith(r.run_id))
        assert row.split()[-1] == "*" if e > 4 else row.endswith(f"{e:.3g}")
    assert "epochs per domain: not counted" in plan_table(plan(cfg("+grid=chinchilla")))   # no corpus here


def test_epochs_per_domain_follow_the_curriculum_stages_as_the_stream_reads_them(corpus):
    from harness.data.corpus import Corpus
    from harness.data.mixture import MixtureStream
    from harness.spec import DataSpec, Stage
    from sweeps.plan import domain_epochs
    data = DataSpec(corpus="syn", weights=(("alpha", 0.6), ("beta", 0.4)),
                    stages=(Stage(start_frac=0.75, weights=(("gamma", 1.0),)),))
    tokens = 400_000
    got = domain_epochs(data, tokens, {d: 300_000 for d in ("alpha", "beta", "gamma")})
    assert got == pytest.approx({"alpha": 0.6, "beta": 0.4, "gamma": 1 / 3})   # 300k tokens at 0.6/0.4, 100k of gamma
    stream = MixtureStream(Corpus(corpus), data, batch_size=4, seq_len=64, seed=0, total_tokens=tokens)
    assert stream.plan().domains and {d.domain: d.epochs for d in stream.plan().domains} == pytest.approx(got, rel=0.01)


def test_mixture_grid_lattice_plus_pure_domains(corpus, monkeypatch):
    monkeypatch.setenv("SCALEMIX_DATA", str(corpus.parent))
    p = plan(cfg("+grid=mixture", "data.corpus=syn", "grid.mixtures.kind=simplex", "grid.mixtures.step=0.5",
                 "grid.mixtures.include_uniform=false", "grid.mixtures.include_natural=false"))
    mixes = {r.spec.data.weights for r in p.runs}
    # 3 domains, step 1/2: 3 pure + 3 half/half; the pure ones are part of the lattice already
    assert len(mixes) == len(p.runs) == 6
    for w in mixes:
        assert math.fsum(v for _, v in w) == pytest.approx(1, abs=1e-9)
    assert {r.spec.model.n_layers for r in p.runs} == {cfg("+grid=mixture").scale.mixture_depth}
    assert {(("alpha", 1.0),), (("beta", 1.0),), (("gamma", 1.0),)} <= mixes


def test_dirichlet_mixtures_are_seeded():
    a = grids.mixtures({"kind": "dirichlet", "samples": 4, "seed": 3}, ["a", "b", "c"], [])
    b = grids.mixtures({"kind": "dirichlet", "samples": 4, "seed": 3}, ["a", "b", "c"], [])
    c = grids.mixtures({"kind": "dirichlet", "samples": 4, "seed": 4}, ["a", "b", "c"], [])
    assert a == b and a != c and len(a) == 4 + 3


def test_grids_compose_chinchilla_times_two_mixtures(corpus, monkeypatch):
    monkeypatch.setenv("SCALEMIX_DATA", str(corpus.parent))
    base = plan(cfg("+grid=chinchilla", "data.corpus=syn", "sweep.max_epochs=100"))   # a small test corpus
    both = plan(cfg("+grid=chinchilla_mixtures", "data.corpus=syn", "sweep.max_epochs=100"))
    assert len(both.runs) == 2 * len(base.runs)
    assert len({r.spec.data.weights for r in both.runs}) == 2
    assert both.sweep_dir.name == "chinchilla_mixtures"


def test_lr_grid_and_per_size_lr_from_its_results(tmp_path):
    lr_plan = plan(cfg("+grid=lr"))
    c = cfg("+grid=lr")
    assert len(lr_plan.runs) == len(c.scale.lr_depths) * len(c.scale.lrs)
    assert {r.lr_source for r in lr_plan.runs} == {"grid.lrs"}
    # fake an lr sweep's results: loss a parabola in log lr whose minimum (inside the grid) grows with size, so
    # each size must pick its own; the planner takes the parabola's vertex, not the best grid point
    sizes = sorted({r.counts.params_nonembedding for r in lr_plan.runs})
    best = {n: 2e-3 * 2.5 ** (i / (len(sizes) - 1)) for i, n in enumerate(sizes)}   # 2e-3 .. 5e-3: inside the grid
    for r in lr_plan.runs:
        n = r.counts.params_nonembedding
        loss = 3 + math.log(r.spec.optim.lr / best[n]) ** 2
        d = tmp_path / r.run_id
        d.mkdir()
        (d / "result.json").write_text(json.dumps({"params_nonembedding": n, "tokens": r.spec.tokens,
                                                   "lr": r.spec.optim.lr, "loss": loss}))
    p = plan(cfg("+grid=chinchilla", f"grid.lr_from={tmp_path}"))
    for r in p.runs:   # every chinchilla size was in the lr sweep: its own optimum, to 3 significant digits
        assert r.spec.optim.lr == pytest.approx(best[r.counts.params_nonembedding], rel=5e-3)
        assert r.lr_source == "lr sweep"
    assert len({r.spec.optim.lr for r in p.runs}) > 1
    with pytest.raises(SpecError, match="grid.lr_from"):
        plan(cfg("+grid=chinchilla", f"grid.lr_from={tmp_path / 'nothing'}"))


def test_plan_table_prints_cost_from_a_measured_throughput_table(tmp_path):
    p0 = plan(cfg("+grid=chinchilla", "scale=gpu", f"sweep.throughput_table={tmp_path / 'none.jsonl'}"))
    assert "unmeasured" in plan_table(p0)
    r = p0.runs[0]
    fpt = r.counts.flops_per_token
    table = {"machine": "test", "date": "2026-11-23",
             "rows": [{"device": "NVIDIA H100 80GB HBM3", "flops_per_token": fpt, "tokens_per_s": 1e6, "startup_s": 36.0}]}
    (tmp_path / "t.json").write_text(json.dumps(table))
    p = plan(cfg("+grid=chinchilla", "scale=gpu", f"sweep.throughput_table={tmp_path / 't.json'}",
                 "sweep.price_per_gpu_hour=2.0"))
    hours = (fpt * r.spec.tokens / (fpt * 1e6) + 36.0) / 3600  # one measured shape: constant FLOP/s
    assert p.throughput.hours(fpt, r.spec.tokens) == pytest.approx(hours)
    out = plan_table(p)
    assert f"{hours:.3g}" in out and f"{hours * 2:.2f}" in out
    assert "total: 25 runs" in out and "at $2/h" in out
    # bench/throughput.py's JSON lines, two shapes: FLOP/s interpolated in log FLOPs/token between them
    rows = [{"device": "NVIDIA H100 80GB HBM3", "flops_per_token": f, "tokens_per_s": 1e15 * k / f}
            for f, k in ((1e7, 0.1), (1e9, 0.4))]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    p2 = plan(cfg("+grid=chinchilla", "scale=gpu", f"sweep.throughput_table={tmp_path / 't.jsonl'}"))
    assert p2.throughput.hours(1e8, 3600) == pytest.approx(1e8 * 3600 / 0.2e15 / 3600)   # halfway: 0.2 PFLOP/s
    assert plan(cfg("+grid=chinchilla", f"sweep.throughput_table={tmp_path / 't.jsonl'}")).throughput.measured is False


def test_replicates_add_seeds_to_the_named_budgets_only():
    c = cfg("+grid=chinchilla")
    budgets = [float(b) for b in c.grid.shapes.budgets]
    p = plan(cfg("+grid=chinchilla", f"grid.replicates={{seeds: [7], budgets: [{budgets[0]}]}}"))
    extra = [r for r in p.runs if r.spec.seed == 7]
    base = [r for r in p.runs if r.spec.seed != 7]
    assert extra and {r.budget for r in extra} == {budgets[0]}
    assert {r.spec.model for r in extra} == {r.spec.model for r in base if r.budget == budgets[0]}
    assert len(p.runs) == len(base) + len(extra) == len(set(r.run_id for r in p.runs))


def test_replicates_naming_a_budget_outside_the_grid_is_an_error():
    with pytest.raises(SpecError) as e:
        plan(cfg("+grid=chinchilla", "grid.replicates={seeds: [7], budgets: [1.234e9]}"))
    assert "grid.replicates.budgets" in str(e.value)
    with pytest.raises(SpecError) as e:
        plan(cfg("+grid=chinchilla", "grid.replicates={seeds: [], budgets: [1.234e9]}"))
    assert "grid.replicates" in str(e.value)
