"""Atomic, checksummed checkpoints in `<run_dir>/ckpt/`.

    step_00001200.pt       torch.save of the state (model, optimizer, step, RNG states, log window)
    step_00001200.sha256   {"step", "bytes", "sha256"} of the .pt file, written after it

Both files are written to a temp name, fsynced and renamed, then the directory is fsynced. A
checkpoint counts only when its sidecar exists and the .pt file's size and sha256 match it, so a
checkpoint torn by a kill, truncated or corrupted on disk is detected, and the previous one is used,
with a warning. Loading uses `weights_only=True`: a checkpoint holds tensors and plain values only.

The data position needs no state of its own: MixtureStream's batch at step s is a pure function of
(corpus, mixture, seed, s), so the step number is the data position.
"""
from __future__ import annotations

import hashlib
import io
import json
import random
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from harness.rundir import atomic_write_bytes

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


class Checkpoints:
    def __init__(self, directory: str | Path, keep: int = 2):
        self.dir = Path(directory)
        self.keep = max(1, keep)

    def _pt(self, step: int) -> Path:
        return self.dir / f"step_{step:08d}.pt"

    def steps(self) -> list[int]:
        """Steps that have a checkpoint file (verified or not), oldest first."""
        if not self.dir.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.dir.iterdir() if (m := _NAME.match(p.name)))

    def save(self, step: int, state: dict) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save(state, buf)
        data = buf.getvalue()
        pt = self._pt(step)
        atomic_write_bytes(pt, data)
        sidecar = {"step": step, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        atomic_write_bytes(pt.with_suffix(".sha256"), json.dumps(sidecar).encode())
        self._prune()
        return pt

    def discard_after(self, step: int) -> None:
        """Delete the checkpoints after `step` (a rollback: they hold the state that diverged)."""
        for s in self.steps():
            if s > step:
                for p in (self._pt(s), self._pt(s).with_suffix(".sha256")):
                    p.unlink(missing_ok=True)

    def _prune(self) -> None:
        for step in self.steps()[:-self.keep]:
            for p in (self._pt(step), self._pt(step).with_suffix(".sha256")):
                p.unlink(missing_ok=True)
        for p in self.dir.glob(".*.tmp*"):  # temp files of a writer that was killed
            p.unlink(missing_ok=True)

    def verify(self, step: int) -> str | None:
        """None if the checkpoint at `step` is complete and intact, else why not."""
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
