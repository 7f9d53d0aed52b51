"""conf/grid/moe.yaml through the planner: dense + n_experts x top_k twins at equal active size per shape."""
from collections import defaultdict
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from harness.spec import SpecError
from model_zoo import count
from sweeps.plan import plan

CONF = str(Path(__file__).resolve().parents[1] / "conf")


@pytest.fixture(autouse=True)
def no_corpus(monkeypatch, tmp_path):
    """Plan without a built corpus (repetition checks are the planner's tests, not these)."""
    monkeypatch.setenv("SCALEMIX_DATA", str(tmp_path))


def cfg(*overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="config", overrides=["+grid=moe", *overrides])


@pytest.mark.parametrize("scale", ["cpu", "gpu"])
def test_every_shape_gets_its_dense_model_and_nine_moe_twins(scale):
    c = cfg(f"scale={scale}")
    p = plan(c)
    groups = defaultdict(list)
    for r in p.runs:
        m = r.spec.model
        groups[(r.budget, m.n_layers)].append(r)
    assert len(p.runs) == len(c.scale.budgets) * c.scale.sizes_per_budget * 10
    for (budget, _), runs in groups.items():
        dense = [r for r in runs if r.spec.model.family == "dense"]
        moe = [r for r in runs if r.spec.model.family == "moe"]
        assert len(dense) == 1 and len(moe) == 9
        d = dense[0].spec.model
        assert {(r.spec.model.n_experts, r.spec.model.top_k) for r in moe} == {(e, k) for e in (8, 16, 32)
                                                                                 for k in (1, 2, 4)}
        for r in moe:
            m = r.spec.model
            assert m.expert_hidden * m.top_k == d.ffn_hidden and m.capacity_factor == 0.0
            # equal active size: top_k experts of width ffn/top_k are the dense MLP; only the router is extra
            assert r.counts.params_active_nonembedding - dense[0].counts.params_active_nonembedding == \
                m.n_layers * m.d_model * m.n_experts
            assert r.spec.tokens == int(budget / count(m).flops_per_token)
    assert len({r.run_id for r in p.runs}) == len({r.label for r in p.runs}) == len(p.runs)


def test_bad_moe_axes_are_errors_naming_the_key():
    with pytest.raises(SpecError) as e:
        plan(cfg("grid.moe.n_experts=[2]", "grid.moe.top_k=[4]"))
    assert "model.top_k=4 > model.n_experts=2" in str(e.value)
    with pytest.raises(SpecError) as e:
        plan(cfg("grid.moe.top_k=[5]"))
    assert "grid.moe.top_k=5" in str(e.value)
    with pytest.raises(SpecError, match="n_experts"):
        plan(cfg("grid.moe.n_experts=[0]"))
