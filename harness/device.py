"""Resolve a Runtime to what this machine runs: device, precision, compile, threads, peak FLOP/s.

torch is imported where it is used, not with this module: a local sweep's launcher checks the runs' runtime here
before it launches anything (machine_errors), and on a CPU-only torch build a CPU runtime is checked without
torch's seconds of imports (cuda_devices; bench/README.md, "CI under 15 minutes").
"""
from __future__ import annotations

import ast
import contextlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.spec import Runtime

if TYPE_CHECKING:
    import torch

# Dense bf16 tensor-core peak FLOP/s (no sparsity), by a substring of torch.cuda.get_device_name().
# Order matters: the first match wins ("H100 PCIe" before "H100").
PEAK_BF16 = (
    ("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("H800", 989e12), ("GH200", 989e12),
    ("B200", 2250e12), ("A100", 312e12), ("A800", 312e12), ("L40S", 362e12), ("L4", 121e12),
    ("A10G", 70e12), ("A10", 125e12), ("4090", 165e12), ("3090", 71e12), ("V100", 125e12),
)

COMPILE_MODES = ("auto", "on", "regional", "off")   # runtime.compile; on: the whole loss step as one graph
# What compile=auto means on CUDA (CPU: off): "on" or "regional" (each block and the head + loss compiled
# apart; a new shape compiles in a fraction of the time). The one place to flip it: bench/README.md
# "Sweep efficiency on a GPU" holds the measurement it should follow.
CUDA_AUTO_COMPILE = "on"


def peak_flops(device: torch.device) -> float | None:
    """Peak FLOP/s for MFU, or None where there is no meaningful one (CPU: MFU is reported as null).

    The env var SCALEMIX_PEAK_FLOPS overrides the table (e.g. for an unlisted GPU).
    """
    if env := os.environ.get("SCALEMIX_PEAK_FLOPS"):
        return float(env)
    if device.type != "cuda":
        return None
    import torch
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16 if key in name), None)


@dataclass
class Hardware:
    device: torch.device
    dtype: torch.dtype          # autocast dtype (float32: no autocast)
    compile: bool
    peak: float | None
    regional: bool = False      # compile each block and the tail apart (runtime.compile=regional)

    def autocast(self):
        import torch
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    @property
    def name(self) -> str:
        import torch
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"cpu ({torch.get_num_threads()} threads)"


def runtime_errors(rt: Runtime) -> list[str]:
    e = []
    if not (rt.device in ("auto", "cpu", "cuda") or rt.device.startswith("cuda:")):
        e.append(f"runtime.device={rt.device!r}: use auto, cpu, cuda or cuda:N")
    if rt.compile not in COMPILE_MODES:
        e.append(f"runtime.compile={rt.compile!r}: use {', '.join(COMPILE_MODES[:-1])} or {COMPILE_MODES[-1]}")
    if rt.parallel not in ("auto", "none", "ddp", "fsdp"):
        e.append(f"runtime.parallel={rt.parallel!r}: use auto, none, ddp or fsdp")
    if rt.precision not in ("auto", "bf16", "fp32"):
        e.append(f"runtime.precision={rt.precision!r}: use auto, bf16 or fp32")
    if rt.wandb not in ("offline", "online", "disabled"):
        e.append(f"runtime.wandb={rt.wandb!r}: use offline, online or disabled")
    for key in ("micro_batch_size", "checkpoint_every", "threads"):
        if getattr(rt, key) < 0:
            e.append(f"runtime.{key}={getattr(rt, key)}: must be >= 0")
    for key in ("keep_checkpoints", "log_every"):
        if getattr(rt, key) < 1:
            e.append(f"runtime.{key}={getattr(rt, key)}: must be >= 1")
    return e


def cuda_devices() -> int:
    if "torch" not in sys.modules and not gpu_build():   # a CPU-only build sees none: no need to import it
        return 0
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def gpu_build() -> bool:
    """Whether the installed torch was built for GPUs (CUDA or ROCm), read from its torch/version.py without importing
    torch; True where that cannot be read (torch is then asked). False without torch: it would see no GPU either."""
    spec = importlib.util.find_spec("torch")
    if spec is None:
        return False
    built = {}
    try:
        tree = ast.parse(Path(spec.submodule_search_locations[0], "version.py").read_text())
        for node in tree.body:   # `cuda: Optional[str] = None`, `hip = '6.2...'`
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                for name in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                    if isinstance(name, ast.Name) and name.id in ("cuda", "hip"):
                        built[name.id] = ast.literal_eval(node.value)
        return bool(built["cuda"] or built["hip"])
    except (OSError, TypeError, ValueError, SyntaxError, KeyError, IndexError):
        return True


def compile_problem(device_type: str) -> str | None:
    """Why torch.compile cannot work for `device_type` here (None: it can): TorchDynamo unsupported on this Python,
    no Triton for CUDA kernels, or no C++ compiler for CPU kernels (inductor generates and compiles C++)."""
    import torch._dynamo
    if not torch._dynamo.is_dynamo_supported():
        return "TorchDynamo does not support this Python or platform"
    if device_type == "cuda":
        from torch.utils._triton import has_triton
        return None if has_triton() else "Triton, which inductor needs for CUDA kernels, is not installed"
    import shutil

    from torch._inductor import cpp_builder
    try:
        cxx = cpp_builder.get_cpp_compiler()
    except Exception as e:   # inductor raises its own error types when it finds no compiler
        return f"inductor found no C++ compiler for CPU kernels ({type(e).__name__})"
    return None if shutil.which(cxx) else f"inductor's C++ compiler {cxx!r} is not on PATH"


def cpu_bf16() -> bool:
    """Whether this CPU computes bf16 natively (oneDNN's check: AVX-512 BF16 or AMX); without it CPU autocast
    emulates bf16."""
    import torch
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def machine_errors(rt: Runtime, key: str = "runtime") -> list[str]:
    """What `rt` asks of this machine that it cannot do, each naming `key`.<field> and the fix: a CUDA device
    that is not there, torch.compile without its toolchain, bf16 on a CPU without native bf16. Checked by
    preflight before a run and by a local sweep before it launches any job (runtime_errors checks the values)."""
    e = []
    n_cuda = cuda_devices()
    if rt.device.startswith("cuda"):
        if not n_cuda:
            e.append(f"{key}.device={rt.device!r}: CUDA is not available on this machine; use {key}.device=cpu or auto")
        elif rt.device.startswith("cuda:") and rt.device[5:].isdigit() and int(rt.device[5:]) >= n_cuda:
            e.append(f"{key}.device={rt.device!r}: this machine has {n_cuda} CUDA device(s) (cuda:0..cuda:{n_cuda - 1});"
                     f" use one of them, or {key}.device=cuda")
    if e:
        return e
    kind = device_type(rt, n_cuda)
    if compile_mode(rt, kind) != "off":
        if why := compile_problem(kind):
            e.append(f"{key}.compile={rt.compile}: torch.compile cannot work on this machine's {kind} ({why}); "
                     f"use {key}.compile=off")
    if rt.precision == "bf16" and kind == "cpu" and not cpu_bf16():
        e.append(f"{key}.precision=bf16 on the CPU: this CPU has no native bf16 (oneDNN finds neither AVX-512 BF16 "
                 f"nor AMX), so autocast would emulate it; use {key}.precision=fp32 (or auto: fp32 on CPU)")
    return e


def deterministic_cuda() -> None:
    """Deterministic CUDA kernels for this process (train.runtime.deterministic): cuBLAS with a fixed workspace
    (read when cuBLAS starts, so set before the first matmul), flash attention's deterministic backward (chosen by
    torch only when deterministic algorithms are on without warn_only), cuDNN's, and inductor's fallbacks for
    scatter-style kernels. An op with no deterministic kernel then raises instead of silently differing."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def resolve(rt: Runtime, local_rank: int | None = None) -> Hardware:
    """Also sets the process-wide numerics: TF32 on CUDA; deterministic kernels and threads on CPU.
    local_rank: one of several processes on this node (harness.distributed): it takes GPU local_rank."""
    import torch
    if rt.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(rt.device)
    if device.type == "cuda" and device.index is None:  # "cuda" means the current device; name its index
        device = torch.device("cuda", torch.cuda.current_device() if local_rank is None else local_rank)
    if rt.threads:
        torch.set_num_threads(rt.threads)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        if rt.deterministic:
            deterministic_cuda()
    else:
        # CPU kernels are deterministic for a fixed thread count; this makes any that are not warn.
        torch.use_deterministic_algorithms(True, warn_only=True)
    bf16 = rt.precision == "bf16" or (rt.precision == "auto" and device.type == "cuda")
    mode = compile_mode(rt, device.type)
    return Hardware(device, torch.bfloat16 if bf16 else torch.float32, mode != "off", peak_flops(device),
                    regional=mode == "regional")


def device_type(rt: Runtime, n_cuda: int) -> str:
    """"cuda" or "cpu": where `rt` runs on a machine with n_cuda CUDA devices (auto: CUDA where there is one)."""
    return "cuda" if rt.device.startswith("cuda") or (rt.device == "auto" and n_cuda) else "cpu"


def compile_mode(rt: Runtime, device_type: str) -> str:
    """on, regional or off: what runtime.compile means on `device_type` (auto: CUDA_AUTO_COMPILE on CUDA, else off)."""
    if rt.compile != "auto":
        return rt.compile
    return CUDA_AUTO_COMPILE if device_type == "cuda" else "off"
