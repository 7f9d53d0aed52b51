"""Device-hours of a run from measured throughput (bench/throughput.py's output), never invented.

The table is either the JSON lines `python bench/throughput.py` prints (one row per measured shape:
"flops_per_token", "tokens_per_s", "device" = the GPU's name), or a JSON object
    {"machine": "...", "date": "...", "rows": [{"device": "NVIDIA H100 80GB HBM3", "flops_per_token": ...,
                                                "tokens_per_s": ..., "startup_s": 35.0}, ...]}
Rows count for `sweep.device_kind` when it is a substring of their "device" (case-insensitive).
A run's speed is the achieved FLOP/s interpolated in log(FLOPs per token) between the measured
shapes (clamped at the ends), plus the rows' median "startup_s" (compile, first eval) if they
have one. With no matching row the estimate is None and the plan prints "unmeasured".

A run at a smaller batch than the rows' (grid.batch.rule=steps) is slower per token on a GPU (each step's fixed
cost is spread over fewer tokens). The table's optional "batch_speed" section holds what was measured:
    "batch_speed": {"reference_sequences": 128,            # the rows' batch (sequences of their "seq")
                    "rows": [{"device": "NVIDIA H200", "sequences": 32, "speed": 0.81, "source": "..."}]}
speed = tokens/s at that batch / tokens/s at the reference batch, interpolated in log(sequences) between the
measured batches and clamped at both ends: 1 at or above the reference, the smallest measured batch's speed below
it (unmeasured there: the plan table says so). Without the section every batch runs at the rows' speed.
The section's optional "step_floor_s" is the shortest a step took on that device at a small batch: a small shape's
step is bound by per-step overhead (launches, the optimizer), not FLOPs, so a run takes at least steps x that.

Scale (`scale_lines`, printed under the plan table): the device kind's bf16 peak and the MFU measured at
the largest benchmarked shape (the peak is the rows' own: achieved FLOP/s / their "mfu"); with
`sweep.target_flops` set, the GPU-hours and cost of the final run at that budget; and a table of published
runs (sweeps/known_runs.json, with sources) and what each would take on this device kind at that MFU.
The final run is sized by Chinchilla's rule (D = 20 N, C = 6 N D; Hoffmann et al. 2022) until the sweep's
own law is fitted (`python -m analysis.recommend <sweep dir> --budget C` then answers from it), and its
time assumes the MFU of the largest measured shape (larger models usually reach a higher MFU, so the
hours are an upper estimate for one well-configured job; they leave out restarts and evaluation).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KNOWN_RUNS = Path(__file__).with_name("known_runs.json")
TOKENS_PER_PARAM = 20   # Hoffmann et al. 2022: the compute-optimal D/N, the prior before a sweep's own law


@dataclass(frozen=True)
class Throughput:
    device_kind: str
    log_fpt: tuple[float, ...] = ()
    log_flops_per_s: tuple[float, ...] = ()
    startup_s: float = 0.0
    source: str = ""
    peak: float | None = None          # bf16 peak FLOP/s of the measured device (from the rows' mfu)
    mfu_largest: float | None = None   # MFU of the largest measured shape
    largest: str = ""                  # which shape that was, e.g. "d 768"
    batch_log_seqs: tuple[float, ...] = ()   # batches measured (log sequences, ascending; the reference last) ...
    batch_speeds: tuple[float, ...] = ()     # ... and their tokens/s relative to the reference batch's
    step_floor_s: float = 0.0                # the shortest step measured at a small batch (0: none measured)
    seq: int = 0                             # the rows' sequence length (tokens per sequence)

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
        speeds = batch_speed(table.get("batch_speed") or {}, device_kind)
        with_mfu = [r for r in rows if r.get("mfu")]
        peak = float(np.median([r["flops_per_token"] * r["tokens_per_s"] / r["mfu"] for r in with_mfu])) \
            if with_mfu else None
        return cls(device_kind,
                   tuple(float(np.log(r["flops_per_token"])) for r in rows),
                   tuple(float(np.log(r["flops_per_token"] * r["tokens_per_s"])) for r in rows),
                   float(np.median([r.get("startup_s", 0.0) for r in rows])),
                   f"{path} ({table.get('machine', '?')}, {table.get('date', '?')})",
                   peak, float(with_mfu[-1]["mfu"]) if with_mfu else None,
                   f"d {with_mfu[-1].get('d', '?')}, {with_mfu[-1].get('date', 'undated')}" if with_mfu else "",
                   tuple(float(np.log(q)) for q, _ in speeds), tuple(float(v) for _, v in speeds),
                   float((table.get("batch_speed") or {}).get("step_floor_s", 0.0)) if speeds else 0.0,
                   int(np.median([r.get("seq", 0) for r in rows])))

    @property
    def measured(self) -> bool:
        return bool(self.log_fpt)

    def hours(self, flops_per_token: int, tokens: int, sequences: int | None = None) -> float | None:
        """Device-hours of `tokens` at `flops_per_token`, at a batch of `sequences` (None: the rows' batch)."""
        if not self.measured:
            return None
        rate = float(np.exp(np.interp(np.log(flops_per_token), self.log_fpt, self.log_flops_per_s)))
        train_s = flops_per_token * tokens / (rate * self.speed(sequences))
        if self.step_floor_s and self.seq:
            per_step = sequences or round(float(np.exp(self.batch_log_seqs[-1])))
            train_s = max(train_s, tokens / (per_step * self.seq) * self.step_floor_s)
        return (train_s + self.startup_s) / 3600

    def speed(self, sequences: int | None) -> float:
        """tokens/s at a batch of `sequences` relative to the rows' batch (1 without a measured batch_speed)."""
        if sequences is None or not self.batch_speeds:
            return 1.0
        return float(np.interp(np.log(max(1, sequences)), self.batch_log_seqs, self.batch_speeds))

    @property
    def batch_floor(self) -> int | None:
        """The smallest batch (sequences) whose speed was measured; None without a batch_speed section."""
        return round(float(np.exp(self.batch_log_seqs[0]))) if self.batch_speeds else None

    def below_measured_batch(self, sequences: list[int]) -> int:
        """How many of these batches lie below the smallest measured one (priced at its speed: unmeasured)."""
        floor = self.batch_floor
        return 0 if floor is None else sum(q < floor for q in sequences)

    def large_run_hours(self, flops: float) -> float | None:
        """Device-hours of `flops` at the largest measured shape's MFU (None where that is not measured)."""
        if not (self.peak and self.mfu_largest):
            return None
        return flops / (self.peak * self.mfu_largest) / 3600


def batch_speed(section: dict, device_kind: str) -> list[tuple[int, float]]:
    """[(sequences, speed)] of the table's batch_speed section for this device kind, ascending, the reference batch
    (speed 1) last; [] when nothing was measured for it."""
    rows = [r for r in section.get("rows", []) if device_kind.lower() in str(r.get("device", "")).lower()]
    if not rows or not section.get("reference_sequences"):
        return []
    ref = int(section["reference_sequences"])
    return sorted({int(r["sequences"]): float(r["speed"]) for r in rows if int(r["sequences"]) < ref}.items()) \
        + [(ref, 1.0)]


def chinchilla_run(flops: float) -> tuple[float, float]:
    """(N, D) of the compute-optimal run at `flops` under D = 20 N, C = 6 N D."""
    n = (flops / (6 * TOKENS_PER_PARAM)) ** 0.5
    return n, TOKENS_PER_PARAM * n


def known_runs(path: Path = KNOWN_RUNS) -> list[dict]:
    """The published runs, each with flops (published or 6 N D), gpu_hours and cost_usd filled in where the
    source allows, and `cost_kind`: published | estimate | None."""
    table = json.loads(path.read_text())
    prices = table.get("price_per_gpu_hour", {})
    out = []
    for r in table["runs"]:
        r = dict(r)
        r["flops"] = r["flops"] or 6 * r["params"] * r["tokens"]
        if r["gpu_hours"] is None and r.get("gpus") and r.get("days"):
            r["gpu_hours"] = r["gpus"] * r["days"] * 24
        price = next((v for k, v in prices.items() if r["hardware"].startswith(k)), None)
        r["cost_kind"] = r.get("cost_source") if r.get("cost_usd") else None
        if r["cost_usd"] is None and r["gpu_hours"] and price is not None:
            r["cost_usd"], r["cost_kind"] = r["gpu_hours"] * price, "estimate"
        out.append(r)
    return out


def scale_lines(tp: Throughput, price_per_hour: float, target_flops: float | None, grid_flops: float) -> list[str]:
    """What the plan's compute means: the device's peak and measured MFU, the final run at the target budget,
    and the published runs beside it (see the module docstring)."""
    from sweeps.table import render, si
    kind = tp.device_kind
    if kind.lower() == "cpu":
        return []
    if tp.peak is None:
        lines = [f"scale: no measured MFU for device kind {kind!r} in the throughput table; GPU-hours of the final "
                 "run and of the published runs are not estimated (run bench/gpu_throughput.sh)"]
    else:
        lines = [f"scale: {kind} bf16 peak {tp.peak / 1e12:.0f} TFLOP/s; MFU measured {tp.mfu_largest:.1%} at the "
                 f"largest benchmarked shape ({tp.largest}; {tp.source}), assumed for the runs below"]
    money = (lambda h: f"${h * price_per_hour:,.0f}") if price_per_hour else (lambda h: "-")
    if target_flops:
        n, d = chinchilla_run(target_flops)
        h = tp.large_run_hours(target_flops)
        est = (f"{h:,.0f} GPU-h ({h / 24 / 8:,.1f} days on 8 GPUs), {money(h)} at ${price_per_hour:g}/h"
               if h is not None else "GPU-hours unmeasured")
        lines.append(f"final run at sweep.target_flops={target_flops:.3g}: N {si(n)} params, D {si(d)} tokens "
                     f"(Chinchilla D = 20 N until the sweep's law is fitted: python -m analysis.recommend <sweep dir> "
                     f"--budget {target_flops:.3g}); {est}; the grid above is {grid_flops / target_flops:.2%} of it")
    rows = []
    for r in known_runs():
        h = tp.large_run_hours(r["flops"])
        published_cost = (f"${r['cost_usd']:,.0f}" + (" (est.)" if r["cost_kind"] == "estimate" else "")
                          if r["cost_usd"] else "-")
        rows.append([r["name"], si(r["params"]), si(r["tokens"]),
                     f"{r['flops']:.2e}" + ("" if r["flops_source"] == "published" else " (6ND)"), r["hardware"],
                     f"{r['gpus']} x {r['days']:g} d" if r.get("gpus") else "-",
                     f"{r['gpu_hours']:,.0f}" if r["gpu_hours"] else "-", published_cost,
                     f"{h:,.0f}" if h is not None else "-", money(h) if h is not None else "-",
                     f"{grid_flops / r['flops']:.1e}"])
    lines.append(render(["known run", "N", "D", "FLOPs", "hardware", "GPUs x days", "GPU-h", "cost",
                         f"{kind}-h", f"cost on {kind}", "grid / run"], rows, right={1, 2, 3, 6, 7, 8, 9, 10}))
    lines.append("known runs' sources (sweeps/known_runs.json; FLOPs marked 6ND are 6 N D, cost (est.) is GPU-h x "
                 "MPT-7B's $2/A100-h):")
    lines += [f"  {r['name']}: {r['source']}" for r in known_runs()]
    return lines
