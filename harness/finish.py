"""A run whose result.json follows its final checkpoint off the training thread (a sweep worker's runs).

A run writes result.json last, once its final checkpoint is on disk: a result names a finished run, and its final
weights must be there to evaluate or fork. On its own, the trainer waits for that write before it returns: hashing,
writing and syncing the model and optimizer state, 0.15-0.65 s a run for the efficiency grid's models on an H200,
with the GPU idle (bench/README.md, "The final checkpoint off the worker's path"). A long-lived sweep worker
(sweeps.worker) runs the trainer inside `deferred()` instead: there the run queues its result.json behind that
checkpoint on its checkpoint writer and returns, and the worker starts its next run while the write finishes.
`Finish.wait()` is how the worker learns the run is complete; the run's locks stay held until then.

    with finish.deferred() as later:      # the worker, around one run
        main(argv)
    ...                                    # the next run trains
    later[0].wait()                        # result.json is on disk (or the write's error is raised)
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

_pending: list[Finish] | None = None   # inside deferred(): the runs that returned before their result.json


class Finish:
    """One run's final checkpoint and result.json, queued on its checkpoint writer (harness.checkpoint)."""

    def __init__(self, run_dir: Path, checkpoints):
        self.run_dir = Path(run_dir).resolve()
        self._checkpoints = checkpoints
        self._held = contextlib.ExitStack()   # the run's locks (harness.__main__), released by wait()

    def hold(self, locks: contextlib.ExitStack) -> None:
        """Keep `locks` (what the run entered) until the run's files are written."""
        self._held.enter_context(locks)

    def wait(self) -> None:
        """Until the final checkpoint and then result.json are on disk; then the run's locks are released. Raises a
        failed write's error (result.json is then not written: the run is not done, and resumes)."""
        try:
            self._checkpoints.close()
        finally:
            self._held.close()


@contextlib.contextmanager
def deferred() -> Iterator[list[Finish]]:
    """Runs trained inside return before their result.json is on disk; the list receives each one's Finish."""
    global _pending
    outer, _pending = _pending, []
    try:
        yield _pending
    finally:
        _pending = outer


def enabled() -> bool:
    """Whether a run ending now may leave its result.json to its checkpoint writer (inside deferred())."""
    return _pending is not None


def defer(run_dir: Path, checkpoints) -> Finish:
    """Register a run whose result.json write is queued on `checkpoints`' writer (only inside deferred())."""
    assert _pending is not None, "finish.defer outside finish.deferred()"
    f = Finish(run_dir, checkpoints)
    _pending.append(f)
    return f


def pending(run_dir: Path) -> Finish | None:
    """The Finish of the run in run_dir, registered inside the current deferred(), if any."""
    for f in _pending or ():
        if f.run_dir == Path(run_dir).resolve():
            return f
    return None
