"""Checkpoints of a run over several processes, through torch.distributed.checkpoint (DCP), resumable on any G.

    <run_dir>/ckpt/step_00001200.dcp/    model and optimizer: DCP shards (one file per rank) + .metadata, keyed by
                                         parameter name (get_model_state_dict / get_optimizer_state_dict), so a
                                         G-rank DDP or FSDP checkpoint loads into any other G (DCP reshards)
                                         meta.pt: the rest of the trainer's state (step, RNG, the log window's
                                         sums reduced over ranks, timing...), written by rank 0
                                         complete.json: every file's size, written last by rank 0

Every rank writes into the same directory: over several nodes the run directory must be on a shared file system
(as Slurm clusters' home and scratch are). Written into a temp directory and renamed once complete.json is in it; a directory without it, or whose files
differ in size from it, is not a checkpoint (torn by a kill). One-process runs keep their single-file format
(harness.checkpoint); `Store` reads both, so a run moves between 1 and G processes in either direction: a .pt
loads into a sharded model (each rank takes its part of the full tensors), a .dcp into a plain model (DCP
without a process group reads every shard).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from harness.checkpoint import Checkpoints
from harness.distributed import barrier
from harness.rundir import atomic_write_bytes, fsync_dir

_DIR = re.compile(r"^step_(\d{8})\.dcp$")
DONE = "complete.json"
META = "meta.pt"


class Store:
    """The checkpoints of one run directory in both formats. `sharded`: this run saves DCP directories (every
    rank calls save/load, which are collectives); else single .pt files as harness.checkpoint writes them."""

    def __init__(self, directory: str | Path, keep: int, sharded: bool, main: bool = True, background: bool = False):
        """background: one process's .pt checkpoints are written off the training thread (harness.checkpoint);
        DCP saves are collectives and stay synchronous."""
        self.dir, self.keep, self.sharded, self.main = Path(directory), max(1, keep), sharded, main
        self.pt = Checkpoints(directory, keep, background=background and not sharded)

    def wait(self) -> None:
        """Block until every queued .pt write is on disk (raises a failed write's error)."""
        self.pt.wait()

    def close(self, raise_errors: bool = True) -> None:
        self.pt.close(raise_errors)

    def then(self, task) -> None:
        """Run `task` once the queued .pt writes are on disk (harness.checkpoint.Checkpoints.then)."""
        self.pt.then(task)

    def _dcp(self, step: int) -> Path:
        return self.dir / f"step_{step:08d}.dcp"

    def dcp_steps(self) -> list[int]:
        if not self.dir.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.dir.iterdir() if (m := _DIR.match(p.name)))

    def steps(self) -> list[int]:
        """Steps that have a checkpoint (verified or not) in either format, oldest first."""
        return sorted(set(self.pt.steps()) | set(self.dcp_steps()))

    def verify(self, step: int) -> str | None:
        d = self._dcp(step)
        if not d.is_dir():
            return self.pt.verify(step)
        try:
            sizes = json.loads((d / DONE).read_text())["files"]
        except (OSError, ValueError, KeyError) as e:
            return f"no readable {DONE} ({e}): the write was interrupted"
        for name, size in sizes.items():
            f = d / name
            if not f.is_file() or f.stat().st_size != size:
                return f"{name}: missing or not {size} bytes (truncated?)"
        return None

    # ---------------------------------------------------------------- save
    def save(self, step: int, model: torch.nn.Module, opt: torch.optim.Optimizer, meta: dict,
             full_state: dict | None = None) -> None:
        """Sharded: every rank writes its shards (a collective), rank 0 meta.pt and complete.json.
        One process: `full_state` as one .pt file (harness.checkpoint)."""
        if not self.sharded:
            self.pt.save(step, full_state)
            for s in self.dcp_steps():   # a run that went on in one process after G: G's old checkpoints go too
                if s not in self.steps()[-self.keep:]:
                    self.remove(s)
            return
        final, tmp = self._dcp(step), self.dir / f".step_{step:08d}.dcp.tmp"
        if self.main:
            self.dir.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
        barrier()
        dcp.save({"model": get_model_state_dict(model), "optimizer": get_optimizer_state_dict(model, opt)},
                 checkpoint_id=str(tmp))
        if self.main:
            atomic_write_bytes(tmp / META, _saved(meta))
            files = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}
            atomic_write_bytes(tmp / DONE, json.dumps({"step": step, "files": files}).encode())
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            fsync_dir(self.dir)
            self._prune()
        barrier()

    def _prune(self) -> None:
        for step in self.steps()[:-self.keep]:
            self.remove(step)
        for p in self.dir.glob(".step_*.dcp.tmp"):   # a writer killed mid-save
            shutil.rmtree(p, ignore_errors=True)

    def remove(self, step: int) -> None:
        self.pt.wait()
        shutil.rmtree(self._dcp(step), ignore_errors=True)
        for p in (self.pt._pt(step), self.pt._pt(step).with_suffix(".sha256")):
            p.unlink(missing_ok=True)

    def discard_after(self, step: int) -> None:
        """Delete the checkpoints after `step` (a rollback); rank 0 deletes, the others wait for it."""
        if self.main:
            for s in self.steps():
                if s > step:
                    self.remove(s)
        if self.sharded:
            barrier()

    # ---------------------------------------------------------------- load
    def load_latest(self, model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict | None:
        """Load the newest intact checkpoint's model and optimizer into `model`/`opt` (whatever their sharding)
        and return the rest of its state (step, RNG, ...); None if there is none. Skips broken ones with a
        warning."""
        self.pt.wait()   # a queued write is the newest checkpoint
        for step in reversed(self.steps()):
            problem = self.verify(step)
            if problem is None:
                try:
                    return self._load(step, model, opt)
                except Exception as e:   # verified files that still do not load: treat as broken
                    problem = f"does not load ({type(e).__name__}: {e})"
            where = self._dcp(step) if self._dcp(step).is_dir() else self.pt._pt(step)
            warnings.warn(f"checkpoint {where} is unusable: {problem}; trying an older one", stacklevel=2)
        return None

    def _load(self, step: int, model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict:
        if self._dcp(step).is_dir():
            state = {"model": get_model_state_dict(model), "optimizer": get_optimizer_state_dict(model, opt)}
            with warnings.catch_warnings():   # one process without a group reads every rank's shards: intended
                warnings.filterwarnings("ignore", message="torch.distributed is disabled")
                dcp.load(state, checkpoint_id=str(self._dcp(step)))   # reshards into this run's layout
            set_model_state_dict(model, state["model"])
            set_optimizer_state_dict(model, opt, state["optimizer"])
            return torch.load(self._dcp(step) / META, map_location="cpu", weights_only=True)
        state = torch.load(self.pt._pt(step), map_location="cpu", weights_only=True)
        model_sd, optim_sd = state.pop("model"), state.pop("optimizer")
        if not self.sharded:
            model.load_state_dict(model_sd)
            opt.load_state_dict(optim_sd)
            return state
        full = StateDictOptions(full_state_dict=True)   # every rank holds the full tensors; each keeps its part
        set_model_state_dict(model, model_sd, options=full)
        set_optimizer_state_dict(model, opt, by_name(optim_sd, opt, model), options=full)
        return state


def by_name(optim_sd: dict, opt: torch.optim.Optimizer, model: torch.nn.Module) -> dict:
    """A plain optimizer.state_dict() (parameters numbered in param_groups order) keyed by parameter name, the
    form set_optimizer_state_dict takes. `opt` was built over `model` the way the saving run built its own."""
    names = {p: n for n, p in model.named_parameters()}
    order = [names[p] for g in opt.param_groups for p in g["params"]]
    return {"state": {order[i]: v for i, v in optim_sd["state"].items()},
            "param_groups": [{**g, "params": [order[i] for i in g["params"]]} for g in optim_sd["param_groups"]]}


def _saved(obj) -> bytes:
    import io
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()

