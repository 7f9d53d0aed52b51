"""Run directory: spec.yaml round trip, ownership, metrics rewind, atomic result."""
import json

import pytest

from harness.rundir import RunDir, load_spec
from harness.spec import RunSpec, Runtime, SpecError
from model_zoo.spec import CPU_RULE


def spec(**kw) -> RunSpec:
    d = {"model": CPU_RULE.shape(2, vocab_size=256, seq_len=32).to_dict(), "tokens": 10_000, "batch_tokens": 256,
         "data": {"corpus": "tiny", "weights": {"a": 0.25, "b": 0.75}}, **kw}
    return RunSpec.from_dict(d)


def test_spec_yaml_round_trips_to_the_same_run_id(tmp_path):
    rd = RunDir(tmp_path)
    s = spec()
    rd.prepare(s, Runtime())
    back = load_spec(rd.spec_file)
    assert back == s and back.run_id == s.run_id
    assert rd.runtime_file.exists() and rd.ckpt_dir.is_dir()


def test_a_run_dir_belongs_to_one_spec(tmp_path):
    rd = RunDir(tmp_path)
    rd.prepare(spec(), Runtime())
    with pytest.raises(SpecError, match="holds run"):
        rd.prepare(spec(seed=1), Runtime())


def test_finished_only_for_the_same_run(tmp_path):
    rd = RunDir(tmp_path)
    s = spec()
    rd.prepare(s, Runtime())
    assert rd.finished(s) is None
    rd.write_result({"run_id": s.run_id, "loss": 1.5})
    assert rd.finished(s) == {"run_id": s.run_id, "loss": 1.5}
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_rewind_drops_steps_after_the_checkpoint_and_torn_lines(tmp_path):
    rd = RunDir(tmp_path)
    lines = [json.dumps({"kind": "train", "step": s}) for s in range(1, 8)]
    rd.metrics_file.write_text("\n".join(lines) + '\n{"kind": "train", "st')
    rd.rewind_metrics(4)
    assert [json.loads(x)["step"] for x in rd.metrics_file.read_text().splitlines()] == [1, 2, 3, 4]
