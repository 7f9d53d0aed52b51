"""A live one-line summary of a running sweep: runs done, tokens/s, ETA (read from the run dirs)."""
from __future__ import annotations

import sys
import threading
import time

from tqdm import tqdm

from sweeps.status import last_train_line


class Progress:
    """Polls the launched runs' files every `every_s` seconds in a background thread."""

    def __init__(self, plan, runs, every_s: float = 5.0):
        self.tty = sys.stderr.isatty()
        # a terminal gets a live bar; a log file a plain line now and then
        self.plan, self.runs, self.every_s = plan, list(runs), max(0.5, every_s) * (1 if self.tty else 6)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.bar = None

    def __enter__(self) -> Progress:
        if self.runs:
            self.bar = tqdm(total=len(self.runs), desc=self.plan.name, unit="run", dynamic_ncols=True,
                            mininterval=self.every_s, disable=not self.tty)
            self._thread.start()
        return self

    def snapshot(self) -> tuple[int, float, float]:
        """(runs done, tokens/s of the running runs, seconds left at that rate, by FLOPs)."""
        done, flops_left, flops_rate, tps = 0, 0.0, 0.0, 0.0
        for r in self.runs:
            d = self.plan.run_dir(r)
            if (d / "result.json").exists():
                done += 1
                continue
            line = last_train_line(d)
            fpt = r.counts.flops_per_token
            tokens, rate = line.get("tokens"), line.get("tokens_per_s")   # None in a first window; garbage
            flops_left += fpt * (r.spec.tokens - (tokens if isinstance(tokens, (int, float)) else 0))
            if isinstance(rate, (int, float)) and time.time() - (d / "metrics.jsonl").stat().st_mtime < 120:
                tps += rate                  # still logging
                flops_rate += fpt * rate
        return done, tps, flops_left / flops_rate if flops_rate else float("nan")

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.update()

    def update(self) -> None:
        done, tps, eta = self.snapshot()
        eta_s = "?" if eta != eta else time.strftime("%H:%M:%S", time.gmtime(eta))
        summary = f"{tps / 1e3:.1f}k tok/s, ETA {eta_s}"
        if not self.tty:
            print(f"[{self.plan.name}] {done}/{len(self.runs)} runs done, {summary}", file=sys.stderr, flush=True)
            return
        self.bar.n = done
        self.bar.set_postfix_str(summary, refresh=False)
        self.bar.refresh()

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self._stop.set()
            self._thread.join()
            self.update()
            self.bar.close()
