"""Atomic, checksummed checkpoints in `<run_dir>/ckpt/`.

    step_00001200.pt       torch.save of the state (model, optimizer, step, RNG states, log window)
    step_00001200.sha256   {"step", "bytes", "sha256"} of the .pt file, written after it

Both files are written to a temp name, fsynced and renamed, then the directory is fsynced. A
checkpoint counts only when its sidecar exists and the .pt file's size and sha256 match it, so a
checkpoint torn by a kill, truncated or corrupted on disk is detected, and the previous one is used,
with a warning. Loading uses `weights_only=True`: a checkpoint holds tensors and plain values only.

`Checkpoints(..., background=True)` (the trainer's) writes off the training thread: save() copies the
state to host memory (the live tensors go on changing) and returns; one writer thread serialises, hashes,
writes and prunes, in order. Every reader (steps, verify, load_latest, discard_after) first waits for the
writes queued before it, and wait() re-raises a write's error, so nothing reads a checkpoint that is
still being written. A kill during a background write leaves what a kill during a synchronous one leaves:
the previous intact checkpoint.

The data position needs no state of its own: MixtureStream's batch at step s is a pure function of
(corpus, mixture, seed, s), so the step number is the data position.
"""
from __future__ import annotations

import hashlib
import json
import queue
import random
import re
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

from harness.rundir import atomic_write, atomic_write_bytes

_NAME = re.compile(r"^step_(\d{8})\.pt$")


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": _to_lists(random.getstate()),
             "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                       "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_to_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(x):
    return [_to_lists(v) for v in x] if isinstance(x, (tuple, list)) else x


def _to_tuples(x):
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def host_copy(x):
    """`x` with every tensor copied to host memory, containers rebuilt: a snapshot the caller may go on mutating.
    Device tensors are copied into pinned host memory without waiting each, then waited for once (a copy to pageable
    memory waits for every tensor and goes through a staging buffer)."""
    devices: set = set()
    out = _host_copy(x, devices)
    for device in devices:   # the snapshot is complete before the caller goes on changing the tensors
        torch.cuda.synchronize(device)
    return out


def _host_copy(x, devices: set):
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.device.type != "cuda":
            return x.to("cpu", copy=True)
        devices.add(x.device)
        return torch.empty_like(x, device="cpu", pin_memory=True).copy_(x, non_blocking=True)
    if isinstance(x, dict):
        return {k: _host_copy(v, devices) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_host_copy(v, devices) for v in x)
    return x


class _Hashing:
    """A binary file that also hashes and counts what is written to it (torch.save calls write, then flush)."""

    def __init__(self):
        self.f, self.sha256, self.bytes = None, hashlib.sha256(), 0

    def into(self, f) -> _Hashing:
        self.f = f
        return self

    def write(self, data) -> int:
        self.sha256.update(data)   # hashlib and the file's write release the GIL on large buffers
        n = self.f.write(data)
        self.bytes += n
        return n

    def flush(self) -> None:
        self.f.flush()


class Writer:
    """One daemon thread running submitted writes in order; wait() blocks until they are done and re-raises
    the first error (a full disk) in the caller's thread."""

    def __init__(self):
        self.tasks: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, daemon=True, name="checkpoint-writer")
        self.thread.start()

    def _work(self) -> None:
        while True:
            task = self.tasks.get()
            if task is None:   # close()
                self.tasks.task_done()
                return
            try:
                if self.error is None:   # after a failed write, later ones are dropped: wait() reports the first
                    task()
            except BaseException as e:
                self.error = e
            finally:
                self.tasks.task_done()

    def submit(self, task) -> None:
        self.raise_error()
        self.tasks.put(task)

    def wait(self) -> None:
        self.tasks.join()
        self.raise_error()

    def raise_error(self) -> None:
        if self.error is not None:
            e, self.error = self.error, None
            raise e

    def close(self) -> None:
        """Finish the queued writes and end the thread (a long-lived worker trains many runs: no idle threads)."""
        self.tasks.put(None)
        self.thread.join()


class Checkpoints:
    def __init__(self, directory: str | Path, keep: int = 2, background: bool = False):
        self.dir = Path(directory)
        self.keep = max(1, keep)
        self.background = background
        self.writer: Writer | None = None   # started by the first background save

    def wait(self) -> None:
        """Block until every queued write is on disk; raise the error of one that failed."""
        if self.writer is not None:
            self.writer.wait()

    def close(self, raise_errors: bool = True) -> None:
        """Wait for the queued writes and stop the writer thread; raise a failed write's error (unless the caller
        is already handling an error of its own)."""
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()
            if raise_errors:
                writer.raise_error()

    def then(self, task) -> None:
        """Run `task` once every write queued before it is on disk: on the writer thread in background mode (after a
        failed write it is skipped, and wait() / close() raise that write's error), else now."""
        if self.writer is None:
            task()
        else:
            self.writer.submit(task)

    def _pt(self, step: int) -> Path:
        return self.dir / f"step_{step:08d}.pt"

    def steps(self) -> list[int]:
        """Steps that have a checkpoint file (verified or not), oldest first."""
        self.wait()
        return self._steps_on_disk()

    def _steps_on_disk(self) -> list[int]:
        if not self.dir.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.dir.iterdir() if (m := _NAME.match(p.name)))

    def save(self, step: int, state: dict) -> Path:
        """Write the checkpoint of `step`; in background mode queue the write of a host copy and return."""
        if not self.background:
            return self._write(step, state)
        if self.writer is None:
            self.writer = Writer()
        snapshot = host_copy(state)
        self.writer.submit(lambda: self._write(step, snapshot))
        return self._pt(step)

    def _write(self, step: int, state: dict) -> Path:
        """The .pt file (atomic_write), then its sidecar. torch.save writes straight into the file, hashed on the way:
        a file's writes release the GIL while they copy, so the training thread keeps launching its steps
        (serialising into memory first held it for tens of ms a write, and the GPU ran dry: bench/ckpt_gil.py,
        bench/README.md "Sweep efficiency 1.149 with warm caches and regional eval")."""
        self.dir.mkdir(parents=True, exist_ok=True)
        pt = self._pt(step)
        out = _Hashing()
        atomic_write(pt, lambda f: torch.save(state, out.into(f)))
        sidecar = {"step": step, "bytes": out.bytes, "sha256": out.sha256.hexdigest()}
        atomic_write_bytes(pt.with_suffix(".sha256"), json.dumps(sidecar).encode())
        self._prune()
        return pt

    def discard_after(self, step: int) -> None:
        """Delete the checkpoints after `step` (a rollback: they hold the state that diverged)."""
        for s in self.steps():   # steps() waits for queued writes
            if s > step:
                for p in (self._pt(s), self._pt(s).with_suffix(".sha256")):
                    p.unlink(missing_ok=True)

    def _prune(self) -> None:   # on the writer thread in background mode: must not wait for itself
        for step in self._steps_on_disk()[:-self.keep]:
            for p in (self._pt(step), self._pt(step).with_suffix(".sha256")):
                p.unlink(missing_ok=True)
        for p in self.dir.glob(".*.tmp*"):  # temp files of a writer that was killed
            p.unlink(missing_ok=True)

    def verify(self, step: int) -> str | None:
        """None if the checkpoint at `step` is complete and intact, else why not."""
        self.wait()
        pt, side = self._pt(step), self._pt(step).with_suffix(".sha256")
        if not side.exists():
            return "no checksum sidecar (the write was interrupted)"
        try:
            meta = json.loads(side.read_text())
        except (OSError, json.JSONDecodeError) as e:
            return f"unreadable sidecar ({e})"
        size = pt.stat().st_size
        if size != meta.get("bytes"):
            return f"size {size} != {meta.get('bytes')} bytes (truncated?)"
        if _sha256(pt) != meta.get("sha256"):
            return "sha256 mismatch (corrupted)"
        return None

    def load_latest(self, map_location="cpu") -> dict | None:
        """The newest intact checkpoint's state, or None; skips broken ones with a warning."""
        self.wait()
        for step in reversed(self.steps()):
            problem = self.verify(step)
            if problem is None:
                try:
                    return torch.load(self._pt(step), map_location=map_location, weights_only=True)
                except Exception as e:  # verified bytes that still do not load: treat as broken
                    problem = f"does not load ({type(e).__name__}: {e})"
            warnings.warn(f"checkpoint {self._pt(step)} is unusable: {problem}; trying an older one",
                          stacklevel=2)
        return None
