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


# The trainer sums per-step stats on the device and reads them once per log window (no host sync per
# step): MoE telemetry rides in that vector as [load (L*E), aux (L), z (L), dropped (L)].


def stats_size(spec: ModelSpec) -> int:
    """Length of the packed MoE stats of one step (0 for a dense model)."""
    return spec.n_layers * (spec.n_experts + 3) if spec.family == "moe" else 0


def pack_stats(moe_stats: dict[str, torch.Tensor], device=None) -> torch.Tensor:
    """A model's moe_stats as one flat float32 vector (empty for dense), in stats_size order."""
    if not moe_stats:
        return torch.zeros(0, device=device)
    return torch.cat([moe_stats[k].detach().float().reshape(-1) for k in ("load", "aux", "z", "dropped")])


def unpack_metrics(vec, spec: ModelSpec, n_steps: int = 1) -> dict[str, float]:
    """moe_metrics of a packed vector summed over n_steps steps (its mean over the window)."""
    if spec.family != "moe":
        return {}
    v = torch.as_tensor(vec, dtype=torch.float32) / max(n_steps, 1)
    L, E = spec.n_layers, spec.n_experts
    load, aux, z, dropped = v[:L * E].view(L, E), v[L * E:L * (E + 1)], v[L * (E + 1):L * (E + 2)], v[L * (E + 2):]
    return moe_metrics({"load": load, "aux": aux, "z": z, "dropped": dropped})
