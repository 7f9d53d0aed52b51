"""Build the next batches on a background thread so data never stalls the accelerator.

MixtureStream.batch(step) is a pure function of the step, so the thread simply runs ahead over
steps [start, stop). On CUDA it also pins each batch and copies it to the GPU on a side stream, so
the copy overlaps the running step; the loop makes its compute stream wait for that copy (a GPU-side
wait, no host sync) before using the batch.
"""
from __future__ import annotations

import queue
import threading

import torch

from harness.data.batch import TokenBatch


class Prefetcher:
    def __init__(self, stream, start: int, stop: int, device: torch.device, depth: int = 2):
        self.stream, self.device = stream, device
        self.cuda = device.type == "cuda"
        self.copy_stream = torch.cuda.Stream(device) if self.cuda else None
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._work, args=(start, stop), daemon=True, name="prefetch")
        self.thread.start()

    def _load(self, step: int):
        b = self.stream.batch(step)
        if not self.cuda:
            return b, None
        torch.cuda.set_device(self.device)
        with torch.cuda.stream(self.copy_stream):
            b = TokenBatch(*(t.pin_memory().to(self.device, non_blocking=True)
                             for t in (b.inputs, b.targets, b.domains)))
            ready = torch.cuda.Event()
            ready.record(self.copy_stream)
        return b, ready

    def _work(self, start: int, stop: int) -> None:
        for step in range(start, stop):
            try:
                item = (step, *self._load(step))
            except BaseException as e:  # hand the error to the loop, which re-raises it
                item = (step, e, None)
            while not self.stopped.is_set():
                try:
                    self.q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if self.stopped.is_set() or isinstance(item[1], BaseException):
                return

    def next(self, step: int) -> TokenBatch:
        got, b, ready = self.q.get()
        if isinstance(b, BaseException):
            raise b
        assert got == step, f"prefetcher out of order: wanted step {step}, got {got}"
        if ready is not None:
            compute = torch.cuda.current_stream(self.device)
            compute.wait_event(ready)
            for t in (b.inputs, b.targets, b.domains):
                t.record_stream(compute)  # memory made on the copy stream, used on this one
        return b

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
