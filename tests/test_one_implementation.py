"""Things that were written twice now have one implementation each, which every user goes through:
the "compute" N (active non-embedding + the output head) of the planner's ladder and of the runs table,
and the dict-to-dataclass build with its unknown-key check (model specs and run specs alike)."""
import ast
import json
from pathlib import Path

import pytest

from analysis import results
from harness.rundir import params_compute
from harness.spec import RunSpec
from model_zoo import count
from model_zoo.spec import CPU_RULE, ModelSpec, SpecError
from sweeps.grids import Rung

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("model_zoo", "harness", "sweeps", "analysis", "hydra_plugins")


def compute_n_formulas() -> list[str]:
    """Project modules holding an expression `<active non-embedding> + <vocab_size> * <d_model>`."""
    found = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and \
                        isinstance(node.right, ast.BinOp) and isinstance(node.right.op, ast.Mult):
                    text = ast.unparse(node)
                    if "active_nonembedding" in text and "vocab_size" in text and "d_model" in text:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_compute_n_is_defined_once():
    found = compute_n_formulas()
    assert len(found) == 1 and found[0].startswith("harness/rundir.py:"), found


def test_planner_and_runs_table_agree_on_compute_n(tmp_path):
    spec = CPU_RULE.shape(3, vocab_size=512, seq_len=64)
    counts = count(spec)
    rung = Rung(3, spec, counts)
    run = tmp_path / "sweep" / "r1"
    run.mkdir(parents=True)
    row = {"run_id": "r1", "loss": 3.0, "d_model": spec.d_model, "vocab_size": spec.vocab_size,
           "params_active_nonembedding": counts.params_active_nonembedding}
    (run / "result.json").write_text(json.dumps(row))
    table = results.load(tmp_path / "sweep").runs
    assert rung.n("compute") == int(table["params_compute"].iloc[0]) == \
        counts.params_active_nonembedding + spec.vocab_size * spec.d_model
    assert params_compute(10, 3, 4) == 22


def test_model_spec_from_dict_names_the_nearest_key_like_every_other_spec():
    """ModelSpec had its own unknown-key check (no hint, no type checks); it now builds through from_plain."""
    base = {"d_model": 32, "n_layers": 1, "n_heads": 1, "ffn_hidden": 96}
    assert ModelSpec.from_dict(base) == ModelSpec(**base)
    with pytest.raises(SpecError) as e:
        ModelSpec.from_dict({**base, "seqlen": 64})
    assert "model.seqlen: unknown key; did you mean model.seq_len?" in str(e.value)
    with pytest.raises(SpecError, match=r"model.n_layers='two': expected an integer"):
        ModelSpec.from_dict({**base, "n_layers": "two"})
    with pytest.raises(SpecError, match=r"model.n_layer: unknown key; did you mean model.n_layers\?"):
        RunSpec.from_dict({"model": {**base, "n_layer": 2}, "tokens": 1024})


def test_one_from_plain():
    """harness.spec re-exports model_zoo's builder rather than keeping a copy."""
    import harness.spec
    import model_zoo.spec
    assert harness.spec.from_plain is model_zoo.spec.from_plain
    assert harness.spec.unknown_key is model_zoo.spec.unknown_key
    assert RunSpec.from_dict.__func__ is ModelSpec.from_dict.__func__
