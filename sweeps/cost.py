"""Device-hours of a run from measured throughput (bench/throughput.py's output), never invented.

The table is either the JSON lines `python bench/throughput.py` prints (one row per measured shape:
"flops_per_token", "tokens_per_s", "device" = the GPU's name), or a JSON object
    {"machine": "...", "date": "...", "rows": [{"device": "NVIDIA H100 80GB HBM3", "flops_per_token": ...,
                                                "tokens_per_s": ..., "startup_s": 35.0}, ...]}
Rows count for `sweep.device_kind` when it is a substring of their "device" (case-insensitive).
A run's speed is the achieved FLOP/s interpolated in log(FLOPs per token) between the measured
shapes (clamped at the ends), plus the rows' median "startup_s" (compile, first eval) if they
have one. With no matching row the estimate is None and the plan prints "unmeasured".
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
        text = Path(path).read_text()
        try:
            table = json.loads(text)
        except json.JSONDecodeError:  # JSON lines, as bench/throughput.py prints them
            table = {"rows": [json.loads(x) for x in text.splitlines() if x.strip()]}
        rows = sorted((r for r in table.get("rows", [])
                       if device_kind.lower() in str(r.get("device", r.get("device_kind", ""))).lower()
                       and r.get("tokens_per_s")), key=lambda r: r["flops_per_token"])
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
