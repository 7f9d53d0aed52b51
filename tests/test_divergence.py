"""A non-finite or spiking loss: the run rolls back to its last good checkpoint, skips the offending
batches (recorded in metrics.jsonl and result.json), or fails with a clear reason after
runtime.max_rollbacks tries. The fault is injected in-process at a chosen batch."""
import json
import math

import pytest
import torch
from harness_util import make_corpus, runtime, tiny_spec

from harness import train as train_mod
from harness.train import run


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("data") / "syn")


def poison_at(monkeypatch, bad_steps, how="nan"):
    """Make the batch at each step in bad_steps blow up the loss (as a corrupt batch would): the weights are
    scaled just before that step (NaN, or x30 for a spike); a rollback restores them from the checkpoint."""
    orig = train_mod.Trainer.train_step
    hits = []

    def train_step(self, batch):
        if self.step in bad_steps:
            hits.append(self.step)
            with torch.no_grad():
                for p in self.model.parameters():
                    p.mul_(float("nan") if how == "nan" else 30.0)
        return orig(self, batch)
    monkeypatch.setattr(train_mod.Trainer, "train_step", train_step)
    return hits


def lines(run_dir, kind):
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == kind]


@pytest.mark.parametrize("how", ["nan", "spike"])
def test_a_bad_batch_is_rolled_back_and_skipped(corpus, tmp_path, monkeypatch, how):
    hits = poison_at(monkeypatch, {25}, how)
    res = run(tiny_spec(corpus, steps=40), runtime(checkpoint_every=10, log_every=5), tmp_path)
    assert hits == [25]                                   # the poisoned batch was never trained on again
    assert res["rollbacks"] == 1 and res["skipped_steps"] == 5 and math.isfinite(res["loss"])
    rb, = lines(tmp_path, "rollback")
    assert rb["step"] == 20 and rb["detected_step"] == 30 and rb["skipped_steps"] == [25, 30]
    assert ("not finite" if how == "nan" else "a spike") in rb["reason"]
    train = lines(tmp_path, "train")
    assert [r["step"] for r in train] == [5, 10, 15, 20, 25, 35, 40]       # no window over the skipped batches
    assert all(math.isfinite(r["loss"]) for r in train)


def test_a_run_that_keeps_diverging_fails_with_a_clear_reason(corpus, tmp_path, monkeypatch):
    poison_at(monkeypatch, set(range(25, 40)))
    with pytest.raises(FloatingPointError, match=r"gave up after 2 rollback\(s\) \(train.runtime.max_rollbacks=2\)"
                                                 r": lower train.optim.lr"):
        run(tiny_spec(corpus, steps=40), runtime(checkpoint_every=10, log_every=5, max_rollbacks=2), tmp_path)
    assert len(lines(tmp_path, "rollback")) == 2
    assert not (tmp_path / "result.json").exists()
