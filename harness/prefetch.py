"""Build the next batches on a background thread so data never stalls the accelerator.

MixtureStream.batch(step) is a pure function of the step, so the thread simply runs ahead over
steps [start, stop); its batches are pinned (on CUDA) and copied to the device with non_blocking=True
when the loop takes them, which queues the copy on the compute stream behind the running step.
"""
from __future__ import annotations

import queue
import threading

import torch

from harness.data.batch import TokenBatch


class Prefetcher:
    def __init__(self, stream, start: int, stop: int, device: torch.device, depth: int = 2):
        self.stream, self.device = stream, device
        self.pin = device.type == "cuda"
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._work, args=(start, stop), daemon=True, name="prefetch")
        self.thread.start()

    def _work(self, start: int, stop: int) -> None:
        for step in range(start, stop):
            try:
                b = self.stream.batch(step)
                if self.pin:
                    b = TokenBatch(b.inputs.pin_memory(), b.targets.pin_memory(), b.domains.pin_memory())
                item = (step, b)
            except BaseException as e:  # hand the error to the loop, which re-raises it
                item = (step, e)
            while not self.stopped.is_set():
                try:
                    self.q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if self.stopped.is_set() or isinstance(item[1], BaseException):
                return

    def next(self, step: int) -> TokenBatch:
        got, b = self.q.get()
        if isinstance(b, BaseException):
            raise b
        assert got == step, f"prefetcher out of order: wanted step {step}, got {got}"
        return b.to(self.device, non_blocking=True) if self.device.type != "cpu" else b

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
