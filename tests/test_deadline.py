"""sweep.deadline_s: a launch given a fixed time starts only the runs expected to end within it; the next launch
takes the rest. And a loader worker outlives the SIGTERM that reaches its whole process group."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from harness.prefetch import ignore_preemption
from sweeps.placement import within_deadline

ROOT = Path(__file__).resolve().parents[1]


def test_within_deadline_packs_longest_first_and_fills_with_shorter_runs():
    # 2 slots, 100 s: 80 s runs on each slot, then a 30 s run does not fit either (80 + 30 > 100) but a 20 s one does
    h = [s / 3600 for s in (80, 80, 30, 20)]
    assert within_deadline(h, slots=2, share=1, deadline_s=100) == [True, True, False, True]
    # two runs sharing one GPU each run at half speed: 80 s alone is 160 s shared
    assert within_deadline(h, slots=2, share=2, deadline_s=100) == [False, False, True, True]
    assert within_deadline([None, 1.0], slots=1, share=1, deadline_s=10) == [True, False]   # unmeasured: started


def test_a_run_longer_than_any_launch_still_starts_and_a_lone_run_has_its_gpu():
    # 800 s alone against a 500 s launch: every launch would hold it, so it starts on a free slot (and resumes from
    # its checkpoint in the next launch); a second such run waits for a free slot, a short one fills nothing else
    long, short = 800 / 3600, 100 / 3600
    assert within_deadline([long], slots=1, share=1, deadline_s=500, whole_s=500) == [True]
    assert within_deadline([long, long, short], slots=2, share=1, deadline_s=500, whole_s=500) == [True, True, False]
    assert within_deadline([long, short], slots=1, share=1, deadline_s=500, whole_s=500) == [True, False]
    # without whole_s (or when the run would fit a fresh launch) the old rule holds it
    assert within_deadline([long], slots=1, share=1, deadline_s=500) == [False]
    assert within_deadline([400 / 3600], slots=1, share=1, deadline_s=300, whole_s=500) == [False]


def test_sweep_holds_back_what_would_end_past_its_deadline_and_the_next_launch_trains_it(tmp_path, syn_data):
    data = syn_data   # the session's corpus (conftest): the one this test built for itself before
    # a CPU throughput table that makes each run of the 1e10-FLOP budget 100 s: one slot, a 150 s deadline -> one run
    table = tmp_path / "tp.jsonl"
    table.write_text("\n".join(json.dumps({"device": "cpu", "flops_per_token": f, "tokens_per_s": 1e10 / 100 / f})
                               for f in (1e3, 1e5, 1e7)))
    args = [sys.executable, "sweep.py", "+grid=chinchilla", "grid.replicates=null", "data.corpus=syn",
            "grid.shapes.budgets=[1e10]", "grid.shapes.sizes_per_budget=2", "grid.shapes.min_each_side=0",
            "grid.shapes.tokens_per_param=1", "grid.min_steps=2", "eval.heldout_tokens=2048", "sweep.max_parallel=1",
            f"sweep.root={tmp_path / 'runs'}", f"sweep.throughput_table={table}"]
    env = {**os.environ, "SCALEMIX_DATA": str(data), "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "1"}
    first = subprocess.run([*args, "sweep.deadline_s=150"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=600)
    out = first.stdout + first.stderr
    assert first.returncode == 3, out          # EXIT_INCOMPLETE: nothing failed, one run waits
    assert "1 of 2 runs would end past it" in out and "1/2 done" in out, out
    assert len(list((tmp_path / "runs" / "chinchilla").glob("*/result.json"))) == 1
    second = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert len(list((tmp_path / "runs" / "chinchilla").glob("*/result.json"))) == 2


class Items(torch.utils.data.Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, i):
        time.sleep(0.02)
        return torch.tensor([i])


@pytest.mark.parametrize("init, survives", [(ignore_preemption, True), (None, False)])
def test_loader_worker_outlives_sigterm_only_with_ignore_preemption(init, survives):
    loader = iter(DataLoader(Items(), batch_size=None, num_workers=1, multiprocessing_context="fork",
                             worker_init_fn=init))
    assert int(next(loader)) == 0
    os.kill(loader._workers[0].pid, signal.SIGTERM)   # what `timeout` or Slurm sends the whole process group
    time.sleep(0.5)
    if survives:
        assert [int(x) for x in loader] == list(range(1, 64))
    else:
        with pytest.raises(RuntimeError, match="killed by signal|exited unexpectedly"):
            list(loader)
