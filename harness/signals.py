"""Preemption: a signal sets a flag; the train loop checkpoints at the next step boundary and exits.

Slurm sends SIGTERM before killing a job at preemption or time-out (SIGUSR1 too with
`--signal=USR1@<secs>`), and submitit's own checkpointing uses SIGUSR2: all three are handled.
The handler only sets a flag (nothing else is safe inside a signal handler); the loop notices it
after the current optimizer step, writes a checkpoint and raises `Preempted`; `python -m harness`
turns that into exit code REQUEUE_EXIT_CODE (75, EX_TEMPFAIL) so a wrapper can requeue the job, and
the relaunched run resumes from the checkpoint. A handler installed before ours (submitit's, for
example) is called after our checkpoint is written, so its requeue logic still runs.
"""
from __future__ import annotations

import signal

REQUEUE_EXIT_CODE = 75
SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


class Preempted(Exception):
    """Raised by the train loop after it checkpointed on a preemption signal."""

    def __init__(self, signum: int, step: int):
        self.signum, self.step = signum, step
        super().__init__(f"{signal.Signals(signum).name} received: checkpointed at step {step}; "
                         f"exit {REQUEUE_EXIT_CODE} to requeue")


class PreemptionFlag:
    """Context manager that installs the handlers and restores the previous ones on exit."""

    def __init__(self, signals=SIGNALS):
        self.signals = signals
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> PreemptionFlag:
        for s in self.signals:
            try:
                self._previous[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread: signals cannot be caught here
                pass
        return self

    def _handle(self, signum, frame) -> None:
        self.signum = signum

    def __bool__(self) -> bool:
        return self.signum is not None

    def chain(self) -> None:
        """Hand the signal to the handler that was installed before ours, if it was a Python one."""
        prev = self._previous.get(self.signum)
        if callable(prev):
            prev(self.signum, None)

    def __exit__(self, *exc) -> None:
        for s, prev in self._previous.items():
            signal.signal(s, prev)
