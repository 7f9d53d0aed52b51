"""ModelSpec: the shape of one model, and the size ladder that names shapes by one rule.

A ModelSpec holds resolved integers only (no "auto" values), so that its canonical JSON, and
so a run's id, never changes when a default elsewhere changes.

The ladder rule (Kaplan et al. 2020 found loss nearly flat in aspect ratio over a wide range,
so one fixed ratio keeps rungs comparable):
    d_model  = aspect * n_layers          (aspect ratio d_model / n_layers, default 64)
    n_heads  = d_model / head_dim         (head_dim, default 64)
    ffn      = SwiGLU hidden width 8/3 * d_model rounded up to a multiple of ffn_multiple (256)
The default rule reproduces the reference trainer's shapes (d 128..768 with 2..12 layers).
A CPU-sized ladder uses the same rule with aspect 32, head_dim 32, ffn_multiple 32.

Some rungs (`python -m model_zoo` prints them all; N = non-embedding parameters, see
model_zoo/counting.py; total and FLOPs at vocab 8192, seq_len 1024, untied embeddings):
    rule      rung        N        total    exact train FLOPs/token   exact / 6N
    GPU_RULE  L2-d128     525k     2.62M    11.0M                     3.50
    GPU_RULE  L12-d768    85.0M    97.5M    604M                      1.18
    GPU_RULE  L28-d1792   1.09G    1.12G    6.95G                     1.06
    CPU_RULE  L1-d32      13.4k    538k     1.85M                     23.0
    CPU_RULE  L6-d192     2.66M    5.80M    32.4M                     2.04
At small scale the embedding and head dominate the total and the head and attention dominate
the FLOPs, so N and 6N are far from the total and the exact count there.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

FAMILIES = ("dense", "moe")


class SpecError(ValueError):
    """A spec that cannot be run. The message names every bad key and how to fix it."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("invalid spec:\n  - " + "\n  - ".join(self.errors))


def swiglu_hidden(d_model: int, multiple: int = 256) -> int:
    """SwiGLU width with the parameter count of a 4*d GELU MLP (8/3 * d), rounded up."""
    return multiple * -(-(8 * d_model // 3) // multiple)


class Spec:
    """What every frozen spec dataclass shares: validation that raises all errors at once, and a
    canonical JSON form (sorted keys, no spaces) whose hash identifies it. Subclasses define errors()."""

    def errors(self) -> list[str]:
        raise NotImplementedError

    def validate(self):
        if errs := self.errors():
            raise SpecError(errs)
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class ModelSpec(Spec):
    d_model: int
    n_layers: int
    n_heads: int
    ffn_hidden: int                 # SwiGLU hidden width of the dense MLP (and of a shared expert)
    vocab_size: int = 8192
    seq_len: int = 1024
    family: str = "dense"           # dense | moe
    tie_embeddings: bool = False
    qk_norm: bool = False
    rope_theta: float = 10000.0
    # MoE (family == "moe"); ignored and left at 0 for dense
    n_experts: int = 0
    top_k: int = 0
    expert_hidden: int = 0          # width of one routed expert; granularity G = ffn_hidden / expert_hidden
    n_shared_experts: int = 0       # always-on experts of width expert_hidden (DeepSeekMoE)
    capacity_factor: float = 0.0    # 0: dropless; >0: each expert takes at most cf * tokens * top_k / n_experts
    router_aux_coef: float = 0.01   # Switch Transformer load-balancing loss coefficient
    router_z_coef: float = 0.001    # ST-MoE router z-loss coefficient

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def granularity(self) -> float:
        return self.ffn_hidden / self.expert_hidden if self.expert_hidden else 1.0

    def errors(self) -> list[str]:
        """Every problem with this spec, each naming its key; empty when it is valid."""
        e = []
        for key in ("d_model", "n_layers", "n_heads", "ffn_hidden", "vocab_size", "seq_len"):
            if getattr(self, key) <= 0:
                e.append(f"model.{key}={getattr(self, key)}: must be a positive integer")
        if self.n_heads > 0 and self.d_model % self.n_heads:
            e.append(f"model.d_model={self.d_model} is not divisible by model.n_heads={self.n_heads}: "
                     f"choose n_heads dividing d_model (e.g. {self.d_model // 64 or 1})")
        elif self.n_heads > 0 and self.head_dim % 2:
            e.append(f"model.d_model/n_heads={self.head_dim}: RoPE needs an even head dimension")
        if self.family not in FAMILIES:
            e.append(f"model.family={self.family!r}: must be one of {FAMILIES}")
        if self.family == "moe":
            if self.n_experts <= 0:
                e.append(f"model.n_experts={self.n_experts}: an MoE needs at least one routed expert")
            if self.top_k <= 0:
                e.append(f"model.top_k={self.top_k}: must be at least 1")
            elif self.n_experts > 0 and self.top_k > self.n_experts:
                e.append(f"model.top_k={self.top_k} > model.n_experts={self.n_experts}: "
                         "a token cannot choose more experts than exist")
            if self.expert_hidden <= 0:
                e.append(f"model.expert_hidden={self.expert_hidden}: must be a positive integer")
            elif self.ffn_hidden % self.expert_hidden:
                e.append(f"model.expert_hidden={self.expert_hidden} does not divide model.ffn_hidden="
                         f"{self.ffn_hidden}: granularity must be a whole number")
            if self.n_shared_experts < 0:
                e.append(f"model.n_shared_experts={self.n_shared_experts}: must be >= 0")
            if self.capacity_factor < 0:
                e.append(f"model.capacity_factor={self.capacity_factor}: 0 (dropless) or positive")
        return e

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise SpecError([f"model.{k}: unknown key (known: {sorted(known)})" for k in sorted(unknown)])
        return cls(**d)


@dataclass(frozen=True)
class LadderRule:
    """The one rule that turns a depth into a shape (see the module docstring)."""
    aspect: int = 64
    head_dim: int = 64
    ffn_multiple: int = 256

    def shape(self, n_layers: int, **overrides) -> ModelSpec:
        d = self.aspect * n_layers
        if d % self.head_dim:
            raise SpecError([f"ladder: d_model={d} (aspect {self.aspect} x {n_layers} layers) is not a "
                             f"multiple of head_dim={self.head_dim}"])
        return ModelSpec(d_model=d, n_layers=n_layers, n_heads=d // self.head_dim,
                         ffn_hidden=swiglu_hidden(d, self.ffn_multiple), **overrides)


GPU_RULE = LadderRule(aspect=64, head_dim=64, ffn_multiple=256)
CPU_RULE = LadderRule(aspect=32, head_dim=32, ffn_multiple=32)


def ladder(rule: LadderRule = GPU_RULE, depths: range | list[int] | None = None, **overrides) -> dict[str, ModelSpec]:
    """Named rungs, smallest first. Names say the shape: 'L4-d256'.

    The GPU rule's default depths 2..28 span about 0.5M to 1.1B non-embedding parameters.
    """
    depths = depths if depths is not None else range(2, 29)
    rungs = {}
    for n_layers in depths:
        spec = rule.shape(n_layers, **overrides)
        rungs[f"L{n_layers}-d{spec.d_model}"] = spec
    return rungs
