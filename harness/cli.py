"""What the training commands (`python -m harness`, `python -m harness.branches`) share: their exit codes.

0 done (the result's summary printed as one JSON line), 2 invalid spec (every problem listed, nothing trained),
16 another process is training this run directory (nothing done), 75 preempted after a checkpoint (requeue the
job: the relaunch resumes).
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable

from harness.rundir import BUSY_EXIT_CODE, RunDirBusy
from harness.signals import REQUEUE_EXIT_CODE, Preempted
from harness.spec import SpecError


def train_and_exit_code(train: Callable[[], dict], keys: tuple[str, ...]) -> int:
    """Run `train()` (which loads, checks and trains) and map how it ended to the exit codes above."""
    try:
        result = train()
    except RunDirBusy as e:
        print(f"error: {e}", file=sys.stderr)
        return BUSY_EXIT_CODE
    except SpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Preempted as e:
        print(f"preempted: {e}", file=sys.stderr)
        return REQUEUE_EXIT_CODE
    print(json.dumps({k: result.get(k) for k in keys}))
    return 0
