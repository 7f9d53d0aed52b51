"""RunSpec: everything that decides what one training run computes, and nothing else.

`run_id` is a short hash of the canonical JSON of the RunSpec, so a relaunched sweep finds its
finished and interrupted runs. Settings that change how a run executes but not what it
computes (device, compile, micro-batch size, logging) live in `Runtime`, outside the hash.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from dataclasses import dataclass, field

# from_plain and unknown_key are re-exported: harness and sweeps build their configs' dataclasses through this module
from model_zoo.spec import ModelSpec, Spec, SpecError, from_plain, unknown_key  # noqa: F401

SCHEDULES = ("cosine", "wsd", "constant")
COOLDOWNS = ("linear", "1-sqrt")
SAMPLING = ("stratified", "random")
DOCUMENT_MASKS = ("off", "on")


@dataclass(frozen=True)
class OptimSpec:
    lr: float = 3e-3
    min_lr_ratio: float = 0.1        # final lr / peak lr (cosine and the WSD cooldown end here)
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0           # max global grad norm; 0 disables
    schedule: str = "cosine"         # cosine | wsd | constant
    warmup_frac: float = 0.02        # fraction of steps of linear warmup
    warmup_steps: int = 0            # > 0: warmup length in steps, overrides warmup_frac (the same for every run
                                     # length: WSD cooldown branches share one trunk, harness.branches)
    cooldown_frac: float = 0.2       # WSD: fraction of steps in the final decay
    cooldown_shape: str = "linear"   # WSD: linear | 1-sqrt (Hägele et al. 2024)
    z_loss: float = 1e-4             # PaLM z-loss on the output logits; 0 disables

    def errors(self) -> list[str]:
        e = []
        if not self.lr > 0:
            e.append(f"optim.lr={self.lr}: must be positive")
        if self.schedule not in SCHEDULES:
            e.append(f"optim.schedule={self.schedule!r}: unknown schedule, use one of {SCHEDULES}")
        if self.cooldown_shape not in COOLDOWNS:
            e.append(f"optim.cooldown_shape={self.cooldown_shape!r}: use one of {COOLDOWNS}")
        if not 0 <= self.warmup_frac < 1:
            e.append(f"optim.warmup_frac={self.warmup_frac}: must be in [0, 1)")
        if self.warmup_steps < 0:
            e.append(f"optim.warmup_steps={self.warmup_steps}: must be >= 0 (0: use warmup_frac)")
        if not 0 <= self.cooldown_frac <= 1:
            e.append(f"optim.cooldown_frac={self.cooldown_frac}: must be in [0, 1]")
        if self.schedule == "wsd" and not self.warmup_steps and self.warmup_frac + self.cooldown_frac > 1:
            e.append(f"optim.warmup_frac + optim.cooldown_frac = {self.warmup_frac + self.cooldown_frac}: "
                     "must be at most 1")
        if not 0 <= self.min_lr_ratio <= 1:
            e.append(f"optim.min_lr_ratio={self.min_lr_ratio}: must be in [0, 1]")
        if self.grad_clip < 0:
            e.append(f"optim.grad_clip={self.grad_clip}: must be >= 0 (0 disables)")
        return e


@dataclass(frozen=True)
class Stage:
    """From `start_frac` of the run's tokens on (or from token `start_tokens` when that is set),
    sample with `weights` (a curriculum stage). The switch is exact at that token, also inside a
    sequence (MixtureStream splices the straddling sequence; at most one switch per sequence)."""
    start_frac: float = 0.0
    weights: tuple[tuple[str, float], ...] = ()
    start_tokens: int = 0                                 # > 0: exact start token, overrides start_frac


@dataclass(frozen=True)
class DataSpec:
    corpus: str = "tiny"                                  # name under data_root, or a path
    weights: tuple[tuple[str, float], ...] = ()           # (domain, weight), sums to 1; () = uniform
    stages: tuple[Stage, ...] = ()                        # later curriculum stages
    sampling: str = "stratified"                          # stratified | random
    epoch_caps: tuple[tuple[str, float], ...] = ()        # (domain, max epochs)
    reference_weights: tuple[tuple[str, float], ...] = () # mixture the reference loss is taken on; () = weights
    document_mask: str = "off"                            # on: attention and RoPE positions per document
                                                          # (model_zoo/docmask.py); off: across the packed window

    def errors(self) -> list[str]:
        e = []
        if self.document_mask not in DOCUMENT_MASKS:
            e.append(f"data.document_mask={self.document_mask!r}: use one of {DOCUMENT_MASKS}")
        if self.sampling not in SAMPLING:
            e.append(f"data.sampling={self.sampling!r}: use one of {SAMPLING}")
        for key, w in [("data.weights", self.weights)] + [
                (f"data.stages[{i}].weights", s.weights) for i, s in enumerate(self.stages)]:
            e += weight_errors(key, w)
        for i, s in enumerate(self.stages):
            if s.start_tokens < 0:
                e.append(f"data.stages[{i}].start_tokens={s.start_tokens}: must be >= 0 (0: use start_frac)")
            elif s.start_tokens == 0 and not 0 < s.start_frac < 1:
                e.append(f"data.stages[{i}].start_frac={s.start_frac}: must be in (0, 1)")
            if not s.weights:
                e.append(f"data.stages[{i}].weights: a stage needs its weights")
        for key in ("start_frac", "start_tokens"):
            starts = [getattr(s, key) for s in self.stages if (s.start_tokens > 0) == (key == "start_tokens")]
            if any(b <= a for a, b in zip(starts, starts[1:])):
                e.append(f"data.stages: {key} values {starts} must increase from stage to stage")
        e += [f"data.epoch_caps.{d}={c}: must be positive" for d, c in self.epoch_caps if not c > 0]
        e += weight_errors("data.reference_weights", self.reference_weights)
        return e


def weight_errors(key: str, weights: tuple[tuple[str, float], ...]) -> list[str]:
    if not weights:
        return []
    e = [f"{key}.{d}={w}: weights must be non-negative" for d, w in weights if w < 0]
    total = math.fsum(w for _, w in weights)
    if abs(total - 1) > 1e-6:
        e.append(f"{key}: weights sum to {total:.9g}, not 1 (within 1e-6); rescale them")
    names = [d for d, _ in weights]
    if len(set(names)) != len(names):
        e.append(f"{key}: a domain is named twice in {names}")
    return e


@dataclass(frozen=True)
class EvalSpec:
    every_steps: int = 0             # held-out eval period in steps; 0: `points` evals spread over the run
    points: int = 10                 # evals per run when every_steps is 0 (the eval curve's resolution)
    heldout_tokens: int = 65536      # per domain, fixed set (the first tokens of the held-out split)
    downstream: tuple[str, ...] = () # downstream task names (harness.downstream_tasks) scored in full at the end
    downstream_items: int = 0        # > 0: also score the first this-many items of each task at every eval (curves)
    samples_tokens: int = 0          # > 0: greedy samples of the prompt battery, this many tokens, at each checkpoint
    curve_tokens: int = 0            # > 0: the evals before the last score only the first this-many of each domain's
                                     # held-out tokens (a prefix of its windows: cheap curve points); the last eval
                                     # scores the full set and, from the same forward, this subset (curve_loss*
                                     # keys), so the curve reads one token set throughout. 0: every eval, full set


@dataclass(frozen=True)
class RunSpec(Spec):
    model: ModelSpec
    tokens: int                      # D: training tokens
    batch_tokens: int = 65536        # tokens per optimizer step (sequences * seq_len)
    optim: OptimSpec = field(default_factory=OptimSpec)
    data: DataSpec = field(default_factory=DataSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    seed: int = 0

    @property
    def batch_size(self) -> int:
        """Sequences per optimizer step."""
        return self.batch_tokens // self.model.seq_len

    @property
    def steps(self) -> int:
        return max(1, self.tokens // self.batch_tokens)

    def errors(self) -> list[str]:
        e = self.model.errors() + self.optim.errors() + self.data.errors()
        if self.tokens <= 0:
            e.append(f"tokens={self.tokens}: must be a positive token count")
        if self.batch_tokens <= 0:
            e.append(f"batch_tokens={self.batch_tokens}: must be positive")
        elif self.model.seq_len > 0 and self.batch_tokens % self.model.seq_len:
            e.append(f"batch_tokens={self.batch_tokens} is not a multiple of model.seq_len="
                     f"{self.model.seq_len}: use a multiple such as "
                     f"{max(1, self.batch_tokens // self.model.seq_len) * self.model.seq_len}")
        elif self.tokens > 0 and self.tokens < self.batch_tokens:
            e.append(f"tokens={self.tokens} is less than one batch (batch_tokens={self.batch_tokens})")
        o = self.optim
        if o.warmup_steps > 0 and self.tokens >= self.batch_tokens > 0:
            from harness.schedule import cooldown_steps  # harness.schedule imports this module
            cool = cooldown_steps(o, self.steps)
            if o.warmup_steps + cool > self.steps:
                e.append(f"optim.warmup_steps={o.warmup_steps}"
                         + (f" + the cooldown's {cool} steps" if cool else "")
                         + f" exceed the run's {self.steps} steps: lower optim.warmup_steps")
        if self.eval.every_steps < 0:
            e.append(f"eval.every_steps={self.eval.every_steps}: must be >= 0")
        if self.eval.points < 1:
            e.append(f"eval.points={self.eval.points}: must be >= 1 (evals per run when eval.every_steps is 0)")
        if self.eval.heldout_tokens <= 0:
            e.append(f"eval.heldout_tokens={self.eval.heldout_tokens}: must be positive")
        if self.eval.downstream_items < 0 or (self.eval.downstream_items and not self.eval.downstream):
            e.append(f"eval.downstream_items={self.eval.downstream_items}: must be >= 0, and > 0 only with "
                     "eval.downstream tasks to take the subset from (e.g. eval.downstream=[suite])")
        if not 0 <= self.eval.curve_tokens <= self.eval.heldout_tokens:
            e.append(f"eval.curve_tokens={self.eval.curve_tokens}: must be in [0, eval.heldout_tokens="
                     f"{self.eval.heldout_tokens}] (0: every eval on the full held-out set)")
        elif self.eval.curve_tokens and self.eval.curve_tokens <= self.model.seq_len:
            e.append(f"eval.curve_tokens={self.eval.curve_tokens}: must exceed model.seq_len={self.model.seq_len} "
                     "(the subset is whole windows of seq_len + 1 tokens), or be 0")
        if not 0 <= self.eval.samples_tokens < max(1, self.model.seq_len):
            e.append(f"eval.samples_tokens={self.eval.samples_tokens}: must be in [0, model.seq_len="
                     f"{self.model.seq_len})")
        return e

    def canonical_json(self) -> str:
        """Fields added after run ids were in use (LATE_FIELDS) are left out while they hold their default:
        earlier runs keep their ids, so a relaunch still finds them finished."""
        d = self.to_dict()
        for section, name in LATE_FIELDS:
            if d[section][name] == _default(type(getattr(self, section)), name):
                del d[section][name]
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    @functools.cached_property   # computed once per spec: status over a 1000-run plan asks for it thousands of times
    def run_id(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:12]


# (RunSpec section, field), in the order they were added
LATE_FIELDS = (("optim", "warmup_steps"), ("eval", "points"), ("data", "document_mask"), ("eval", "downstream_items"),
               ("eval", "samples_tokens"), ("eval", "curve_tokens"))


def _default(cls, name: str):
    return {f.name: f.default for f in dataclasses.fields(cls)}[name]


@dataclass(frozen=True)
class Runtime:
    """How a run executes; not part of run_id. Defaults pick the best for the machine."""
    device: str = "auto"             # auto | cpu | cuda | cuda:N
    compile: str = "auto"            # auto (CUDA: harness.device.CUDA_AUTO_COMPILE; CPU: off) | on (whole step) |
                                     # regional (each block, head + loss) | off
    precision: str = "auto"          # auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32
    micro_batch_size: int = 0        # sequences per forward (per rank); 0: a rank's whole share (accumulate when smaller)
    checkpoint_every: int = 0        # steps; 0: about 10 checkpoints per run
    keep_checkpoints: int = 2
    log_every: int = 10              # steps between metrics.jsonl lines
    wandb: str = "offline"           # offline | online | disabled
    wandb_project: str = "scalemix"
    progress: bool = True
    threads: int = 0                 # torch CPU threads; 0: torch default
    max_rollbacks: int = 3           # a non-finite or spiking loss rolls back to the last good checkpoint this often
    spike_factor: float = 3.0        # a log window's loss above this x the lowest of the last few is a spike; 0: off
    deterministic: bool = False      # CUDA: deterministic kernels only (slower); for checks that compare two runs
                                     # (a cooldown branch against its independent run): without it two runs of the
                                     # same spec differ by the GPU's atomics and flash-attention backward (CPU: always)
    parallel: str = "auto"           # over several processes (torchrun / Slurm tasks): auto | none | ddp | fsdp
                                     # (harness.distributed; auto: none for one process, ddp, fsdp past memory)
