"""A bytecode cache for a local sweep's Python processes, where the installed packages ship none (sweep.bytecode_cache).

A process imports torch, dynamo and Inductor from their compiled bytecode (.pyc) when it is there. Some images
ship the packages as sources only and forbid writing bytecode (PYTHONDONTWRITEBYTECODE, or a read-only
environment): every process then compiles the ~4,000 modules it imports again, and on the H200 machine this
project measures on, a worker's imports took 10-15 s instead of ~3 s (bench/README.md, "Imports on the H200").
A sweep starts several such processes (its machine check, a worker per slot, compile-ahead, every per-run job),
and a study several sweeps; so where that is the case, the sweep points Python at a cache folder of its own
(PYTHONPYCACHEPREFIX: .pyc files in a mirror tree there, never beside the sources) for itself and every process
it starts, and the later ones read what the first wrote, as they share compiled kernels (sweep.inductor_cache).

Where the packages have their bytecode (a normal pip install) or Python will write it beside them, nothing changes:
a prefix would make Python ignore the bytecode it has and compile everything once more into the prefix. A prefix
the user set (PYTHONPYCACHEPREFIX) is theirs and is kept.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("scalemix.sweep")
PROBE = "torch"   # the package whose imports dominate a run's start


def beside_source(origin: str) -> Path:
    """Where Python keeps a source file's bytecode without a prefix: __pycache__/<name>.<tag>.pyc next to it."""
    src = Path(origin)
    return src.parent / "__pycache__" / f"{src.stem}.{sys.implementation.cache_tag}.pyc"


def needed(probe: str = PROBE) -> bool:
    """Whether `probe` would be compiled from source by every process: it has no bytecode beside its sources and
    Python will not write it there (writing turned off, or the folder not writable), and no prefix is set."""
    if sys.pycache_prefix is not None or sys.implementation.cache_tag is None:
        return False
    spec = importlib.util.find_spec(probe)   # a top-level package: found without importing it
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return False
    if beside_source(spec.origin).exists():
        return False
    return sys.dont_write_bytecode or not os.access(Path(spec.origin).parent, os.W_OK)


@dataclass
class Cache:
    path: Path
    made: list[Path]   # the folder and those above it that did not exist before this launch, deepest first

    @property
    def fresh(self) -> bool:
        return bool(self.made)

    def discard(self) -> None:
        """A launch refused before it trained anything leaves nothing behind: the folder goes if this launch made
        it, and the folders above it that it made, once empty (call it after the processes that write it ended)."""
        if self.fresh:
            shutil.rmtree(self.path, ignore_errors=True)
        for folder in self.made[1:]:
            try:
                folder.rmdir()
            except OSError:   # something else is in it now
                break


def keep(folder: str | None, probe: str = PROBE) -> Cache | None:
    """Use `folder` as the bytecode cache of this process and of every process it starts from now on, where
    `needed` (None: Python's own setting stands). Modules already imported are not affected; later imports here
    read and write the cache (Python makes the folders it writes to)."""
    if not folder or not needed(probe):
        return None
    path = Path(folder).absolute()
    cache = Cache(path, [p for p in (path, *path.parents) if not p.exists()])
    os.environ["PYTHONPYCACHEPREFIX"] = str(path)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.pycache_prefix = str(path)
    sys.dont_write_bytecode = False
    log.info("bytecode cache %s: the installed %s has no bytecode and Python may not write it beside it", path, probe)
    return cache
