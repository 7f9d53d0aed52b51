"""bench/worker_ratio.py: the sweep-efficiency ratio and the set-up by phase (issue 12 item 1), on a run directory
written by hand (two finished runs, one with two launches)."""
import json

from bench import worker_ratio
from harness.rundir import read_metrics


def write_run(root, run_id, setups, train_s):
    d = root / run_id
    d.mkdir(parents=True)
    row = {"run_id": run_id, "tokens": 1000, "tokens_per_s": 100.0, "flops": 1.0, "time_train_s": train_s,
           "time_warmup_s": 1.0, "time_setup_s": sum(sum(s.values()) for s in setups), "time_eval_s": 0.5,
           "time_checkpoint_s": 0.1, "wall_s": train_s + 2.0}
    (d / "result.json").write_text(json.dumps(row))
    lines = [{"kind": "setup", "step": 0, **{f"{k}_s": v for k, v in s.items()}} for s in setups]
    lines.append({"kind": "train", "step": 10, "tokens": 100, "loss": 5.0})
    (d / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_ratio_and_setup_phases(tmp_path, capsys):
    write_run(tmp_path, "a", [{"device": 0.1, "data": 3.0, "step": 0.2}], train_s=10.0)
    write_run(tmp_path, "b", [{"device": 0.1, "data": 0.1}, {"data": 0.2, "heldout": 0.4}], train_s=30.0)
    assert worker_ratio.setup_phases(read_metrics(tmp_path / "b" / "metrics.jsonl")) == {"device": 0.1, "data": 0.30000000000000004, "heldout": 0.4}
    assert worker_ratio.main([str(tmp_path), "--wall", "50"]) == 0
    out = capsys.readouterr().out
    # summed over runs and launches, largest first; then the run whose set-up took longest
    assert "set-up by phase, s, summed: data 3.30, heldout 0.40, device 0.20, step 0.20; the slowest run's (a): " \
           "data 3.00, step 0.20, device 0.10" in out
    assert "ratio 1.250 (target <= 1.15)" in out   # 50 s of wall over 40 s of training
