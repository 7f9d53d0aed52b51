"""Checkpoints: exact round trip, keep-last-K, and broken checkpoints detected and skipped."""
import hashlib
import io
import json
import random

import numpy as np
import pytest
import torch

from harness.checkpoint import Checkpoints, rng_state, set_rng_state


def state(step: int) -> dict:
    g = torch.Generator().manual_seed(step)
    return {"step": step, "model": {"w": torch.randn(64, 32, generator=g), "b": torch.arange(5)},
            "nested": {"lr": 0.5, "names": ["a", "b"]}, "rng": rng_state()}


def test_round_trip_is_exact(tmp_path):
    ck = Checkpoints(tmp_path)
    s = state(7)
    ck.save(7, s)
    got = ck.load_latest()
    assert got["step"] == 7 and got["nested"] == s["nested"]
    assert all(torch.equal(got["model"][k], s["model"][k]) for k in s["model"])


def test_rng_states_restore_every_generator():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    saved = rng_state()
    a = (random.random(), np.random.rand(3), torch.rand(3))
    set_rng_state(saved)
    b = (random.random(), np.random.rand(3), torch.rand(3))
    assert a[0] == b[0] and np.array_equal(a[1], b[1]) and torch.equal(a[2], b[2])


def test_keeps_the_last_k(tmp_path):
    ck = Checkpoints(tmp_path, keep=2)
    for s in (10, 20, 30):
        ck.save(s, state(s))
    assert ck.steps() == [20, 30]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step_00000020.pt", "step_00000020.sha256", "step_00000030.pt", "step_00000030.sha256"]


def flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def drop_sidecar(path):
    path.with_suffix(".sha256").unlink()


def garbage_sidecar(path):
    path.with_suffix(".sha256").write_text("{not json")


@pytest.mark.parametrize("damage", [flip_byte, truncate, drop_sidecar, garbage_sidecar])
def test_broken_latest_falls_back_to_the_previous(tmp_path, damage):
    ck = Checkpoints(tmp_path, keep=3)
    ck.save(10, state(10))
    ck.save(20, state(20))
    damage(tmp_path / "step_00000020.pt")
    with pytest.warns(UserWarning, match="step_00000020.pt is unusable"):
        got = ck.load_latest()
    assert got["step"] == 10
    assert torch.equal(got["model"]["w"], state(10)["model"]["w"])


def test_checksummed_but_unloadable_is_skipped_too(tmp_path):
    ck = Checkpoints(tmp_path)
    ck.save(10, state(10))
    pt = tmp_path / "step_00000020.pt"
    pt.write_bytes(b"not a torch file")   # matching sidecar, but not a checkpoint
    import hashlib
    pt.with_suffix(".sha256").write_text(json.dumps(
        {"step": 20, "bytes": pt.stat().st_size, "sha256": hashlib.sha256(pt.read_bytes()).hexdigest()}))
    with pytest.warns(UserWarning, match="does not load"):
        assert ck.load_latest()["step"] == 10


def test_nothing_usable_means_a_fresh_start(tmp_path):
    ck = Checkpoints(tmp_path)
    assert ck.load_latest() is None
    ck.save(5, state(5))
    truncate(tmp_path / "step_00000005.pt")
    with pytest.warns(UserWarning):
        assert ck.load_latest() is None


def test_no_temp_files_left_behind(tmp_path):
    ck = Checkpoints(tmp_path)
    (tmp_path / ".step_00000001.pt.tmp999").write_bytes(b"torn")  # a killed writer's leftover
    ck.save(1, state(1))
    assert not list(tmp_path.glob(".*"))


def test_background_writes_are_snapshots_and_readers_wait_for_them(tmp_path):
    """save() returns before the write; the state's tensors may change at once (training goes on) without
    changing the checkpoint; every reader sees the queued writes; a failed write is raised by wait()."""
    ck = Checkpoints(tmp_path / "ck", keep=2, background=True)
    s = state(3)
    want = {k: v.clone() for k, v in s["model"].items()}
    ck.save(3, s)
    s["model"]["w"].add_(1.0)                  # the live tensor moves on
    s["model"]["b"].zero_()
    assert ck.steps() == [3] and ck.verify(3) is None
    got = ck.load_latest()
    assert all(torch.equal(got["model"][k], want[k]) for k in want)
    for step in (4, 5, 6):
        ck.save(step, state(step))
    assert ck.steps() == [5, 6]                # pruned in order, after the writes
    ck.close()
    assert ck.writer is None
    (tmp_path / "file").write_text("not a directory")
    bad = Checkpoints(tmp_path / "file" / "ck", background=True)
    bad.save(1, state(1))
    with pytest.raises(OSError):
        bad.wait()
    bad.close()


def test_the_file_is_torch_saves_bytes_and_its_sidecar_hashes_them(tmp_path):
    """Written straight to its file and hashed on the way (not serialised in memory first): the same bytes as
    torch.save of the state, and the sidecar's size and sha256 are those of the file on disk."""
    state = {"model": {"w": torch.randn(300, 70), "b": torch.arange(9)}, "step": 5, "note": [1.5, "x"]}
    expected = io.BytesIO()
    torch.save(state, expected)
    for background in (False, True):
        ck = Checkpoints(tmp_path / str(background), background=background)
        pt = ck.save(5, state)
        ck.wait()
        data = pt.read_bytes()
        side = json.loads(pt.with_suffix(".sha256").read_text())
        assert data == expected.getvalue()
        assert side == {"step": 5, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        assert ck.verify(5) is None and sorted(p.name for p in pt.parent.iterdir()) == [pt.name, pt.stem + ".sha256"]
        ck.close()


def test_a_task_queued_after_writes_runs_once_they_are_on_disk_and_not_after_a_failed_one(tmp_path):
    """then(): how a sweep worker's run queues its result.json behind its final checkpoint (harness.finish)."""
    ck = Checkpoints(tmp_path / "ck", background=True)
    seen = []
    ck.save(3, state(3))
    ck.then(lambda: seen.append(ck._steps_on_disk()))   # on the writer thread, after the write
    ck.close()
    assert seen == [[3]]
    now = Checkpoints(tmp_path / "sync")                  # not in the background: at once
    now.then(lambda: seen.append("now"))
    assert seen[-1] == "now"
    (tmp_path / "file").write_text("not a directory")
    bad = Checkpoints(tmp_path / "file" / "ck", background=True)
    bad.save(1, state(1))
    try:
        with pytest.raises(OSError):   # from then() if the write has failed by then (submit re-raises), else close()
            bad.then(lambda: seen.append("after a failed write"))
            bad.close()
    finally:
        bad.close(raise_errors=False)
    assert seen[-1] == "now"
