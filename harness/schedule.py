"""Learning rate at an optimizer step: a pure function of (OptimSpec, step, total_steps).

    cosine    linear warmup, then half a cosine from lr down to min_lr_ratio * lr at the last step
    wsd       warmup, stable at lr, then a cooldown over the last cooldown_frac of the steps down to
              min_lr_ratio * lr, linear or "1-sqrt" (Hägele et al. 2024, "Scaling Laws and
              Compute-Optimal Training Beyond Fixed Training Durations"):
              lr * (1 - (1 - m) * sqrt(x)), x the fraction of the cooldown done
    constant  warmup, then flat at lr

`step` counts from 0 (the first update); warmup reaches the peak at its last step, and the last
step of the run (total_steps - 1) takes the final value exactly. Warmup lasts `warmup_steps` when that is
set, else warmup_frac of the run: a fixed warmup makes a WSD run's lr up to its cooldown the same for
every run length, which is what lets cooldown branches fork from one trunk (harness.branches).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # annotations only: harness.spec imports this module (cooldown_steps)
    from harness.spec import OptimSpec


def warmup_steps(optim: OptimSpec, total_steps: int) -> int:
    return optim.warmup_steps or int(optim.warmup_frac * total_steps)


def cooldown_steps(optim: OptimSpec, total_steps: int) -> int:
    return int(round(optim.cooldown_frac * total_steps)) if optim.schedule == "wsd" else 0


def lr_at(optim: OptimSpec, step: int, total_steps: int) -> float:
    peak, floor = optim.lr, optim.lr * optim.min_lr_ratio
    warm = warmup_steps(optim, total_steps)
    if step < warm:  # linear from lr/warm up to lr at step warm-1
        return peak * (step + 1) / warm
    if optim.schedule == "constant":
        return peak
    last = total_steps - 1
    if optim.schedule == "cosine":
        span = last - warm
        x = 1.0 if span <= 0 else min(1.0, (step - warm) / span)
        return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * x))
    if optim.schedule == "wsd":
        cool = cooldown_steps(optim, total_steps)
        start = total_steps - cool  # first step of the cooldown
        if cool == 0 or step < start:
            return peak
        # x runs from 1/cool at the first cooldown step to 1 at the last step
        x = min(1.0, (step - start + 1) / cool)
        if optim.cooldown_shape == "1-sqrt":
            return peak - (peak - floor) * math.sqrt(x)
        return peak - (peak - floor) * x
    raise ValueError(f"optim.schedule={optim.schedule!r}: unknown schedule")
