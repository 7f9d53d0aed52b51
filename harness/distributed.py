"""One run over G processes (one per GPU): the process group, the data-parallel wrapper, the reductions.

    torchrun --nproc_per_node G -m harness <run_dir>        # one node
    srun --ntasks-per-node G python -m harness <run_dir>    # Slurm: the rendezvous comes from SLURM_* (below)

The global batch, the lr and the data order do not depend on G: rank r trains on rows [r B/G, (r+1) B/G) of
the batch MixtureStream builds for the step (`MixtureStream(..., rank=r, world=G)`), each rank's loss is the
mean over its rows and the gradients are averaged over ranks, so the step is the 1-process step up to float
summation order.

`train.runtime.parallel` picks the wrapper: none (one process, today's path), ddp (a full replica per
rank, gradients all-reduced), fsdp (FSDP2 `fully_shard` per transformer block and at the root: parameters,
gradients and optimizer state sharded over ranks; bf16 parameters for compute when the run is in bf16), or
auto: none at G = 1, else ddp while a replica's training state fits a device, fsdp beyond
(harness.memory). Only rank 0 writes the run directory; checkpoints go through
torch.distributed.checkpoint (harness.dcp), so a run resumes on any G.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import re
import subprocess
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist

from harness.memory import FIT_SHARE
from harness.spec import RunSpec, Runtime, SpecError

PARALLEL = ("auto", "none", "ddp", "fsdp")


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: rank of world; local_rank picks its GPU on the node."""
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    parallel: str = "none"   # none | ddp | fsdp, resolved (never auto)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        """A process group is in use (ddp or fsdp, at any world size, 1 included)."""
        return self.parallel != "none"


# ------------------------------------------------------------------------------------------- rendezvous

def slurm_hostnames(nodelist: str) -> list[str]:
    """SLURM_NODELIST ('gpu[01-03,07],cpu1') as host names: `scontrol show hostnames`, else parse_nodelist
    (a task may run where the Slurm client tools are not installed)."""
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.split()
    except (OSError, subprocess.SubprocessError):
        pass
    return parse_nodelist(nodelist)


def parse_nodelist(nodelist: str) -> list[str]:
    """Slurm's compressed host list ('gpu[01-03,07],cpu1') expanded, zero padding kept."""
    hosts = []
    for prefix, ranges, plain in re.findall(r"([^,\[]+)\[([^\]]+)\]|([^,\[\]]+)", nodelist):
        if plain:
            hosts.append(plain)
            continue
        for part in ranges.split(","):
            lo, _, hi = part.partition("-")
            hosts += [f"{prefix}{i:0{len(lo)}d}" for i in range(int(lo), int(hi or lo) + 1)]
    return hosts


def rendezvous_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) for
    this process: as given by torchrun, else derived from the SLURM_* of a task of an srun step (one task per
    GPU; the master is the first node of the step's node list, the port derived from the job id; a batch
    script's own process, which srun did not start, is one process), else {} (one process).
    SpecError when a world of several processes has no rendezvous to meet at."""
    env = dict(os.environ if environ is None else environ)
    if "WORLD_SIZE" in env:
        out = {k: env[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
                                   "MASTER_PORT") if k in env}
    elif int(env.get("SLURM_STEP_NUM_TASKS", "1") or 1) > 1 and "SLURM_PROCID" in env:   # a task of an srun step
        nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
        hosts = slurm_hostnames(nodelist) if nodelist else []
        tasks = int(env["SLURM_STEP_NUM_TASKS"])
        out = {"RANK": env["SLURM_PROCID"], "WORLD_SIZE": str(tasks), "LOCAL_RANK": env.get("SLURM_LOCALID", "0"),
               "LOCAL_WORLD_SIZE": str(tasks // max(1, int(env.get("SLURM_STEP_NUM_NODES")
                                                            or env.get("SLURM_NNODES", "1")))),
               "MASTER_PORT": env.get("MASTER_PORT") or str(20000 + int(env.get("SLURM_JOB_ID", "0")) % 20000)}
        if env.get("MASTER_ADDR") or hosts:
            out["MASTER_ADDR"] = env.get("MASTER_ADDR") or hosts[0]
    else:
        return {}
    world = int(out["WORLD_SIZE"])
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not out.get(k)]
    if world > 1 and missing:
        raise SpecError([f"distributed run of WORLD_SIZE={world}: no rendezvous ({', '.join(missing)} not set); "
                         "launch with `torchrun --nproc_per_node G -m harness <run_dir>`, or under Slurm with one "
                         "task per GPU (srun / submitit), whose SLURM_NODELIST names the master"])
    return out


# ------------------------------------------------------------------------------------------- set-up

def choose_parallel(setting: str, world: int, need_bytes: int, device_bytes: int | None) -> str:
    """The wrapper for `train.runtime.parallel=setting`: auto is none at world 1, ddp while a replica
    (harness.memory.memory_estimate) fits FIT_SHARE of the device (on CPU no limit is known), else fsdp."""
    if setting != "auto":
        return setting
    if world == 1:
        return "none"
    return "fsdp" if device_bytes and need_bytes > FIT_SHARE * device_bytes else "ddp"


def setup_errors(spec: RunSpec, runtime: Runtime, env: dict[str, str]) -> list[str]:
    """What makes this process's part of a G-process run impossible, found before any compute."""
    e = []   # an unknown runtime.parallel is harness.device.runtime_errors' to report
    world = int(env.get("WORLD_SIZE", "1"))
    local_rank = int(env.get("LOCAL_RANK", "0"))
    if world > 1 and runtime.parallel == "none":
        e.append(f"runtime.parallel=none in a run of WORLD_SIZE={world} processes: use auto, ddp or fsdp, "
                 "or launch one process")
    B = spec.batch_size
    if B % world:
        e.append(f"WORLD_SIZE={world} does not divide the batch of {B} sequences (train.batch_tokens / "
                 f"model.seq_len): use a world size that divides {B}, or change train.batch_tokens")
    elif runtime.micro_batch_size and (B // world) % runtime.micro_batch_size:
        e.append(f"runtime.micro_batch_size={runtime.micro_batch_size} does not divide a rank's share of the batch "
                 f"({B} sequences / {world} ranks = {B // world}): pick a divisor of {B // world}")
    cuda = runtime.device.startswith("cuda") or (runtime.device == "auto" and torch.cuda.is_available())
    if cuda and world > 1:
        present = torch.cuda.device_count()
        need = int(env.get("LOCAL_WORLD_SIZE", "0")) or local_rank + 1
        if runtime.device.startswith("cuda:"):
            e.append(f"runtime.device={runtime.device!r} in a run of {world} processes: use cuda or auto "
                     "(each rank takes the GPU of its LOCAL_RANK)")
        elif max(need, local_rank + 1) > present:
            e.append(f"{max(need, local_rank + 1)} GPUs requested on this node (LOCAL_RANK={local_rank}, "
                     f"LOCAL_WORLD_SIZE={env.get('LOCAL_WORLD_SIZE', '?')}) but {present} present: lower "
                     "--nproc_per_node / tasks per node to at most the GPUs shown by nvidia-smi")
    if world > 1 and spec.eval.downstream and runtime.parallel == "fsdp":
        e.append(f"eval.downstream={list(spec.eval.downstream)} with runtime.parallel=fsdp over {world} ranks: "
                 "the lm-eval harness needs the whole model in one process; use parallel=ddp or drop the tasks")
    return e


def init(runtime: Runtime, env: dict[str, str], device_type: str) -> None:
    """Join (or, for a single process asking for ddp/fsdp, create) the process group; nccl on CUDA, else gloo."""
    if dist.is_initialized():
        return
    backend = "nccl" if device_type == "cuda" else "gloo"
    timeout = datetime.timedelta(minutes=int(os.environ.get("SCALEMIX_DIST_TIMEOUT_MIN", "30")))
    if device_type == "cuda":   # before any collective: NCCL binds each rank to the current device
        named = runtime.device.startswith("cuda:") and not env   # one process on a named GPU
        torch.cuda.set_device(torch.device(runtime.device) if named else int(env.get("LOCAL_RANK", "0")))
    if not env:   # one process, but a wrapper asked for: a group of one needs no rendezvous
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1, timeout=timeout)
    else:
        os.environ.update(env)   # init_method env:// reads these
        dist.init_process_group(backend, init_method="env://", rank=int(env["RANK"]),
                                world_size=int(env["WORLD_SIZE"]), timeout=timeout)
    global _HOST_GROUP
    # host-side agreements (a preemption flag) over gloo: no wait for the GPU's queued work
    _HOST_GROUP = dist.new_group(backend="gloo") if backend == "nccl" else None


def shutdown() -> None:
    global _HOST_GROUP
    if dist.is_initialized():
        dist.destroy_process_group()
    _HOST_GROUP = None


def wrap(loss_step: torch.nn.Module, model: torch.nn.Module, d: Dist, device: torch.device, bf16: bool,
         compile_: bool) -> torch.nn.Module:
    """The module the train step calls: DDP around the (compiled) loss step, or the loss step over an FSDP2-
    sharded model (each block compiled on its own first, torchtitan's order: a compiled graph never spans an
    FSDP hook). Call before the optimizer is built: fully_shard replaces the parameters."""
    if d.parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP
        with warnings.catch_warnings():   # newer torch renames broadcast_buffers; 2.11 knows only this name
            warnings.simplefilter("ignore", FutureWarning)
            ddp = DDP(loss_step, device_ids=[device.index] if device.type == "cuda" else None,
                      broadcast_buffers=False)   # the only buffers (RoPE tables) are computed, equal on every rank
        return torch.compile(ddp) if compile_ else ddp
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else MixedPrecisionPolicy()
    for block in model.blocks:
        if compile_:
            block.compile()
        fully_shard(block, mp_policy=mp)
    fully_shard(model, mp_policy=mp)
    return loss_step


def grad_sync(module: torch.nn.Module, model: torch.nn.Module, d: Dist, last: bool):
    """Context of one micro-batch's backward: gradients are reduced across ranks only on the step's last one."""
    if d.parallel == "ddp" and not last:
        inner = getattr(module, "_orig_mod", module)   # torch.compile's wrapper around the DDP module
        return inner.no_sync()
    if d.parallel == "fsdp":
        model.set_requires_gradient_sync(last)
    return contextlib.nullcontext()


def full(t: torch.Tensor) -> torch.Tensor:
    """A DTensor (FSDP's grad norm) as the plain tensor every rank agrees on."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of `t` over ranks (a new tensor; `t` is left as it was)."""
    out = t.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


_HOST_GROUP = None   # a gloo group beside nccl's (init)


def any_rank(flag: bool) -> bool:
    """True on every rank if it is True on any (e.g. a preemption signal only some ranks received yet)."""
    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=_HOST_GROUP)
    return bool(t.item())


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
