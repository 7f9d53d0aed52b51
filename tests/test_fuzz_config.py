"""The config validator, fuzzed: a valid composed config with one random invalid change is always
refused by the planner (before anything is launched) with a SpecError naming the changed key, and
never fails any other way.

Changes: an unknown key (a typo of a real one, or a made-up one) in any section; a value of the wrong
type (a string for a number, a number for a string, a mapping or a list for a scalar, ...) for any key;
a non-finite number; a value below a key's minimum. Run count and time: bench/README.md ("Config
validator fuzzing"); `SCALEMIX_FUZZ_EXAMPLES=5000 python -m pytest tests/test_fuzz_config.py` runs longer.
"""
import copy
import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.data.synthetic import make_synthetic_corpus
from harness.spec import SpecError
from sweeps import schema
from sweeps.plan import plain_cfg, plan

ROOT = Path(__file__).resolve().parents[1]
GRIDS = {
    "chinchilla": ["grid.shapes.budgets=[1e10]", "grid.shapes.sizes_per_budget=2", "grid.shapes.min_each_side=0",
                   "grid.shapes.tokens_per_param=1", "grid.min_steps=2"],
    "lr": ["grid.lrs=[1e-3,3e-3]", "model.depths=[1,2]", "scale.lr_depths=[1,2]", "grid.min_steps=1",
           "grid.shapes.tokens_per_param=2"],
    "mixture": ["grid.shapes.tokens=20000", "grid.mixtures.step=0.5", "grid.min_steps=1"],
    "moe": ["grid.shapes.budgets=[1e10]", "grid.shapes.sizes_per_budget=2", "grid.shapes.min_each_side=0",
            "grid.shapes.tokens_per_param=1", "grid.min_steps=1", "grid.moe.n_experts=[4]", "grid.moe.top_k=[1,2]"],
}
EXAMPLES = int(os.environ.get("SCALEMIX_FUZZ_EXAMPLES", 400))


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """Each grid's composed config, valid and planned once, as plain dicts."""
    data = tmp_path_factory.mktemp("data")
    make_synthetic_corpus(data / "syn", vocab_size=2048, train_tokens=100_000, heldout_tokens=10_000)
    os.environ["SCALEMIX_DATA"] = str(data)
    out = {}
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for grid, extra in GRIDS.items():
            c = plain_cfg(compose(config_name="config", overrides=[f"+grid={grid}", "data.corpus=syn", *extra,
                                                                     f"sweep.root={tmp_path_factory.mktemp('runs')}"]))
            assert plan(c).runs, grid
            out[grid] = c
    return out


def paths(node, prefix=()):
    """(path, value) of every key under node, sections included."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield (*prefix, k), v
            yield from paths(v, (*prefix, k))


def schema_node(path):
    node = schema.schema()
    for k in path:
        if isinstance(node, list):
            node = node[0]
        node = node.value if isinstance(node, schema.Mapping) else node.keys[k]
    return node


def checked(path) -> bool:
    """Keys the schema types (scale's values are free: grids interpolate them; slot_gpus is the launcher's)."""
    return path[0] not in ("scale", "slot_gpus", "hydra") and not (path[0] == "data" and len(path) > 2)


def wrong_values(node, value):
    """Values of a type the key does not take."""
    if isinstance(node, (schema.Section, schema.Mapping, list)):
        return st.sampled_from(["abc", 3, 1.5, True] + ([] if isinstance(node, list) else [[1, 2]]))
    if node.list_of:
        return st.sampled_from(["abc", 3, {"a": 1}])
    scalars = {"int": st.sampled_from(["abc", "1e3x", 2.5, True, [1], {"a": 1}]),
               "num": st.sampled_from(["abc", "", True, float("nan"), float("inf"), [1.0], {"a": 1.0}]),
               "str": st.sampled_from([3, 2.5, True, ["a"], {"a": "b"}]),
               "bool": st.sampled_from(["yes", 1, 0.0, ["true"], {"a": True}])}
    wrong = scalars.get(node.kind, st.nothing())
    # a key that takes one value or a list of them (or_list) takes [1.0] for a number: not a wrong type
    return wrong.filter(lambda v: not isinstance(v, list)) if node.or_list else wrong


@st.composite
def broken_config(draw, bases):
    grid = draw(st.sampled_from(sorted(bases)))
    c = copy.deepcopy(bases[grid])
    targets = [(p, v) for p, v in paths(c) if checked(p)]
    kind = draw(st.sampled_from(["unknown", "wrong_type", "below_min"]))
    if kind == "unknown":
        sections = [()] + [p for p, v in targets if isinstance(v, dict) and isinstance(schema_node(p), schema.Section)]
        where = draw(st.sampled_from(sections))
        parent = c
        for k in where:
            parent = parent[k]
        known = list(schema_node(where).keys) if where else list(schema.schema().keys)
        word = draw(st.sampled_from(known))
        typo = draw(st.one_of(
            st.builds(lambda i: word[:i] + word[i + 1:], st.integers(0, len(word) - 1)),            # a letter dropped
            st.builds(lambda i, ch: word[:i] + ch + word[i:], st.integers(0, len(word)), st.sampled_from("aesx_")),
            st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)))
        if typo in known or typo in parent or typo == "hydra":
            typo = typo + "_x"
        parent[typo] = draw(st.sampled_from([1, "a", 0.5, None, [1]]))
        return grid, c, ".".join((*where, typo)), kind
    leaves = [(p, v) for p, v in targets if not isinstance(schema_node(p), schema.Leaf) or schema_node(p).kind != "any"]
    path, value = draw(st.sampled_from(leaves))
    node = schema_node(path)
    if kind == "below_min" and isinstance(node, schema.Leaf) and not node.list_of and (
            node.min is not None or node.above is not None):
        bad = (node.min - 1) if node.min is not None else node.above - draw(st.sampled_from([0, 1, 10]))
    else:
        kind = "wrong_type"
        bad = draw(wrong_values(node, value))
    parent = c
    for k in path[:-1]:
        parent = parent[k]
    parent[path[-1]] = bad
    return grid, c, ".".join(map(str, path)), kind


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_invalid_configs_are_refused_naming_the_key(bases, data):
    grid, c, key, kind = data.draw(broken_config(bases))
    with pytest.raises(SpecError) as e:
        plan(c)
    assert key in str(e.value), (grid, kind, key, str(e.value))


def test_the_schema_knows_every_key_of_every_shipped_config(bases):
    """The other direction: nothing the shipped configs set is called unknown (the schema is complete)."""
    for grid, c in bases.items():
        assert schema.errors(c) == [], grid
