"""How many GPUs each run of a sweep trains over, and where: the planner's GPUs column, the local launcher's slots,
a Slurm job's nodes and tasks.

    sweep.gpus_per_run   auto: 1 while the run's training state fits one GPU (harness.memory, sweep.gpu_memory_gb),
                         else the fewest GPUs (a power of two) over which FSDP's shards fit; or a number for every run.
                         The activations counted are those of train.runtime.micro_batch_size (0: the whole batch):
                         a smaller micro-batch trades GPUs for gradient accumulation
    sweep.node_gpus      GPUs a Slurm node has: a run over more spans ceil(G / node_gpus) nodes
    sweep.multi_gpu_efficiency   tokens/s over G GPUs / (G x one GPU's), for the hours of a G-GPU run (measure it:
                         bench/gpu_multigpu.sh); 1 assumes perfect scaling

A run over G > 1 GPUs is `torchrun --nproc_per_node G -m harness <run_dir>` on a local launcher (sweeps.job) and a
Slurm job of G tasks, one per GPU, on a cluster; the harness picks DDP or FSDP inside it (train.runtime.parallel).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from harness.memory import FIT_SHARE, memory_estimate

MAX_GPUS = 1024


def gpus_needed(spec, params: int, micro_batch: int, gpu_bytes: float) -> int | None:
    """The fewest GPUs (1, 2, 4, ...) whose FSDP shards of `spec` fit FIT_SHARE of gpu_bytes each; None if none do
    (the activations of one micro-batch alone are too large)."""
    k = 1
    while k <= MAX_GPUS:
        local = min(micro_batch, max(1, spec.batch_size // k))
        if memory_estimate(spec.model, params, local, shards=k) <= FIT_SHARE * gpu_bytes:
            return k
        k *= 2
    return None


def assign(runs: list, sw: dict, micro_batch_size: int, errors: list[str]) -> list:
    """`runs` (PlannedRun) with their `gpus` set from sweep.gpus_per_run; problems appended to errors."""
    import dataclasses
    setting = sw.get("gpus_per_run", "auto")
    cpu = str(sw.get("device_kind", "")).lower() == "cpu"
    gpu_bytes = float(sw.get("gpu_memory_gb", 80)) * 2**30
    out, too_big, indivisible = [], [], []
    for r in runs:
        if setting not in (None, "auto"):
            k = int(setting)
        elif cpu:
            k = 1    # no memory model for CPU runs: one process each unless sweep.gpus_per_run says otherwise
        else:
            k = gpus_needed(r.spec, r.counts.params_total, micro_batch_size or r.spec.batch_size, gpu_bytes)
            if k is None:
                too_big.append(r.label)
                k = 1
        if k > 1 and r.spec.batch_size % k:
            indivisible.append((r.label, k, r.spec.batch_size))
        if k > 1 and r.branch is not None:
            errors.append(f"grid.cooldown_branches: run {r.label!r} would need {k} GPUs, but a cooldown branch trains "
                          "in one process (harness.branches); set sweep.gpus_per_run=1 or lower the size")
        out.append(dataclasses.replace(r, gpus=k))
    if indivisible:
        label, k, b = indivisible[0]
        errors.append(f"sweep.gpus_per_run: {len(indivisible)} run(s) (e.g. {label!r} over {k} GPUs) cannot split their "
                      f"batch evenly: {k} does not divide {b} sequences; pick a divisor of it or change "
                      "train.batch_tokens")
    if too_big:
        errors.append(f"sweep.gpu_memory_gb={sw.get('gpu_memory_gb', 80)}: {len(too_big)} run(s) (e.g. {too_big[0]!r}) "
                      f"do not fit even sharded over {MAX_GPUS} GPUs: set train.runtime.micro_batch_size smaller")
    return out


def slurm_shape(gpus: int, node_gpus: int, gpus_per_node_setting) -> dict:
    """The Slurm job of a run over `gpus` GPUs: {"nodes", "tasks_per_node", "gpus_per_node"} (one task per GPU;
    gpus_per_node stays null where the launcher's is null, e.g. a CPU-only test cluster)."""
    nodes = max(1, math.ceil(gpus / node_gpus))
    if gpus % nodes:
        raise ValueError(f"sweep.node_gpus={node_gpus}: a run over {gpus} GPUs does not split evenly over {nodes} nodes")
    per_node = gpus // nodes
    return {"nodes": nodes, "tasks_per_node": per_node,
            "gpus_per_node": None if gpus_per_node_setting is None else max(per_node, 1)}


def slot_devices(gpu_ids: Sequence[str], gpus: int) -> list[str]:
    """The local launcher's slots for runs over `gpus` > 1 GPUs each: each slot owns `gpus` GPUs, written '0+1'
    (sweeps.job makes that CUDA_VISIBLE_DEVICES=0,1). (1-GPU runs keep sweeps.launch.slot_gpu_ids: jobs_per_gpu
    of them share a GPU.)"""
    return ["+".join(gpu_ids[i:i + gpus]) for i in range(0, len(gpu_ids) - gpus + 1, gpus)]


def wall_hours(hours: Sequence[tuple[float, int]], total_gpus: int) -> float:
    """Wall-clock hours of runs (hours each, GPUs each), placed longest first on the first GPUs to come free."""
    free = [0.0] * total_gpus
    for h, k in sorted(hours, key=lambda x: -x[0]):
        free.sort()
        start = free[k - 1] if k <= total_gpus else math.inf
        for i in range(min(k, total_gpus)):
            free[i] = start + h
    return max(free, default=0.0)


def within_deadline(hours: Sequence[float | None], slots: int, share: int, deadline_s: float,
                    whole_s: float | None = None) -> list[bool]:
    """Which runs to start (in the given order, longest first) so that each is expected to end within deadline_s.

    Each run goes to the slot that frees first and takes hours x 3600 x share seconds there (hours: the planner's,
    whose throughput table counts a run's start-up too; share: the runs sharing one GPU, each assumed to get
    1/share of it); one that would end past the deadline is left for the next launch and a shorter one may still
    fill its slot. A run without an estimate (None: no measured throughput) is always started: nothing says it
    would not fit. A run longer than a whole launch even alone (hours x 3600 > whole_s, the launch's full
    deadline) would be held by every launch and never train: it starts on a slot that is free now, and goes on
    from its checkpoint in the next launch."""
    free = [0.0] * max(1, slots)
    keep = []
    for h in hours:
        if h is None:
            keep.append(True)
            continue
        free.sort()
        end = free[0] + h * 3600.0 * max(1, share)
        never_fits = whole_s is not None and h * 3600.0 > whole_s
        keep.append(end <= deadline_s or (never_fits and free[0] == 0.0))
        if keep[-1]:
            free[0] = end
    return keep
