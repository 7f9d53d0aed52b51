"""MoE telemetry: per-layer expert load, aux and z losses and dropped fraction, packed for the trainer.

Kept apart from model_zoo.moe (the layer, which imports torch.compile's machinery) so that the trainer
can carry MoE telemetry without importing the MoE code for a dense model.
"""
from __future__ import annotations

import torch

from model_zoo.spec import ModelSpec


def moe_metrics(moe_stats: dict[str, torch.Tensor]) -> dict[str, float]:
    """Flat scalars for metrics.jsonl / wandb from a model's moe_stats ([n_layers, E] load, [n_layers] others).

    Keys: moe_aux, moe_z, moe_dropped (means over layers), moe_load_max (largest expert share, worst layer,
    1/E when balanced), moe_load_l{i}_e{j}.
    """
    if not moe_stats:
        return {}
    load = moe_stats["load"].detach().float().cpu()
    out = {f"moe_{k}": float(moe_stats[k].detach().float().mean()) for k in ("aux", "z", "dropped")}
    out["moe_load_max"] = float(load.max())
    for i, row in enumerate(load.view(-1, load.shape[-1])):
        for j, v in enumerate(row.tolist()):
            out[f"moe_load_l{i}_e{j}"] = v
    return out


def stats_fields(spec: ModelSpec) -> dict[str, int]:
    """The telemetry a model of `spec` returns in ModelOutput.moe_stats, as flat lengths per step:
    load (n_layers * n_experts), aux, z, dropped (n_layers each); {} for a dense model. The trainer
    sums them on the device with its other step statistics (harness.step.StatsLayout)."""
    if spec.family != "moe":
        return {}
    L, E = spec.n_layers, spec.n_experts
    return {"load": L * E, "aux": L, "z": L, "dropped": L}


def window_metrics(sums: dict, spec: ModelSpec, n_steps: int = 1) -> dict[str, float]:
    """moe_metrics of the telemetry summed over n_steps steps (its mean over the window);
    `sums` maps stats_fields' names to their summed values (flat sequences of floats)."""
    if spec.family != "moe":
        return {}
    mean = {k: torch.as_tensor(sums[k], dtype=torch.float32) / max(n_steps, 1) for k in stats_fields(spec)}
    mean["load"] = mean["load"].view(spec.n_layers, spec.n_experts)
    return moe_metrics(mean)
