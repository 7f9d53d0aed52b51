"""How much device memory one process needs to train a run: what picks DDP or FSDP inside a run
(harness.distributed) and how many GPUs the planner gives a run (sweeps.placement). No torch import: the
planner uses it."""
from __future__ import annotations

# a run fits a device when its estimate is at most this share of the device's memory: the rest is the
# allocator's slack, compile workspaces and the eval
FIT_SHARE = 0.8


def memory_estimate(model, params: int, micro_batch: int, bf16: bool = True, shards: int = 1) -> int:
    """Bytes one process needs: fp32 weights, grads and the two AdamW moments (16 B a parameter, divided over
    `shards` FSDP ranks), plus activations kept for backward (about 34 d_model bytes a token a layer in bf16:
    Korthikanti et al. 2022, no recomputation) and the fp32 logits with their gradient (3 copies of vocab floats
    a token), for a micro-batch of `micro_batch` sequences of the ModelSpec `model`."""
    tokens = micro_batch * model.seq_len
    act = tokens * model.n_layers * model.d_model * (34 if bf16 else 68)
    return 16 * params // shards + act + 12 * tokens * model.vocab_size
