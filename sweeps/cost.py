"""Device-hours of a run from a measured throughput table (written by bench/), never invented.

Table format (JSON), one row per measured shape:
    {"machine": "...", "date": "...",
     "rows": [{"device_kind": "H100", "d_model": 512, "n_layers": 8, "seq_len": 1024, "vocab_size": 8192,
               "flops_per_token": ..., "tokens_per_s": ..., "startup_s": 35.0}, ...]}
A run's speed is the achieved FLOP/s interpolated in log(FLOPs per token) between the measured
shapes of its device kind (clamped at the ends). With no row for the device kind the estimate is
None and the plan prints "unmeasured".
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Throughput:
    device_kind: str
    log_fpt: tuple[float, ...] = ()
    log_flops_per_s: tuple[float, ...] = ()
    startup_s: float = 0.0
    source: str = ""

    @classmethod
    def load(cls, path: str | None, device_kind: str) -> Throughput:
        if not path or not Path(path).is_file():
            return cls(device_kind)
        table = json.loads(Path(path).read_text())
        rows = sorted((r for r in table.get("rows", []) if r.get("device_kind") == device_kind),
                      key=lambda r: r["flops_per_token"])
        if not rows:
            return cls(device_kind, source=str(path))
        return cls(device_kind,
                   tuple(float(np.log(r["flops_per_token"])) for r in rows),
                   tuple(float(np.log(r["flops_per_token"] * r["tokens_per_s"])) for r in rows),
                   float(np.median([r.get("startup_s", 0.0) for r in rows])),
                   f"{path} ({table.get('machine', '?')}, {table.get('date', '?')})")

    @property
    def measured(self) -> bool:
        return bool(self.log_fpt)

    def hours(self, flops_per_token: int, tokens: int) -> float | None:
        if not self.measured:
            return None
        rate = float(np.exp(np.interp(np.log(flops_per_token), self.log_fpt, self.log_flops_per_s)))
        return (flops_per_token * tokens / rate + self.startup_s) / 3600
