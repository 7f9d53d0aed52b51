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
import math
from dataclasses import dataclass
from typing import ClassVar

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
    KEY: ClassVar[str] = ""         # the config key its fields are named under in errors, e.g. "model"

    def errors(self) -> list[str]:
        raise NotImplementedError

    def validate(self):
        if errs := self.errors():
            raise SpecError(errs)
        return self

    @classmethod
    def from_dict(cls, d: dict):
        """From plain dicts/lists (parsed YAML or JSON); every unknown key and wrong type raised as one SpecError."""
        return from_plain(cls, d, cls.KEY)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class ModelSpec(Spec):
    KEY: ClassVar[str] = "model"
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


def from_plain(cls, d, key: str = ""):
    """Build a (nested) frozen dataclass from plain dicts/lists, e.g. parsed YAML or JSON.

    Every unknown key (with the nearest known one) and every value of the wrong type is named by its
    full key (`key` prefixes them, e.g. "train.optim") and raised together as one SpecError."""
    if not dataclasses.is_dataclass(cls):
        return d
    errors: list[str] = []
    out = _build(cls, d, key, errors)
    if errors:
        raise SpecError(errors)
    return out


def unknown_key(key: str, name: str, known) -> str:
    """"<key>.<name>: unknown key; did you mean <key>.<nearest>?" (or the known keys when none is near)."""
    import difflib
    full = f"{key}.{name}" if key else str(name)
    near = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.5)
    prefix = f"{key}." if key else ""
    hint = f"did you mean {prefix}{near[0]}?" if near else f"known keys: {', '.join(sorted(map(str, known)))}"
    return f"{full}: unknown key; {hint}"


def _build(cls, d, key: str, errors: list[str]):
    if not isinstance(d, dict):
        errors.append(f"{key or cls.__name__}={d!r}: expected a mapping of {cls.__name__} fields")
        return None
    known = {f.name: f for f in dataclasses.fields(cls)}
    errors += [unknown_key(key, k, known) for k in d if k not in known]
    hints = _field_types(cls)
    n_before = len(errors)
    kwargs = {name: _coerce(hints[name], value, f"{key}.{name}" if key else name, errors)
              for name, value in d.items() if name in known}
    missing = [n for n, f in known.items() if n not in d and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    errors += [f"{key}.{n}: required" if key else f"{n}: required" for n in missing]
    if len(errors) > n_before:
        return None
    return cls(**kwargs)


def _field_types(cls):
    import typing
    return typing.get_type_hints(cls)


def _coerce(tp, value, key: str, errors: list[str]):
    """`value` as field type `tp`; a wrong type is appended to errors (named by key) and None returned."""
    import typing
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key, errors)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", typing.Union)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _coerce(args[0], value, key, errors)
    if origin is tuple:
        args = typing.get_args(tp)
        names = None
        if isinstance(value, dict):  # {domain: weight} written as a mapping
            names, value = [str(k) for k in value], list(value.items())
        if not isinstance(value, (list, tuple)):
            errors.append(f"{key}={value!r}: expected a list" + (" or a mapping" if args and args[0] is not str else ""))
            return None
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{key}.{names[i]}" if names else f"{key}[{i}]", errors)
                         for i, v in enumerate(value))
        if len(value) != len(args):
            errors.append(f"{key}={value!r}: expected {len(args)} items")
            return None
        return tuple(_coerce(a, v, key if len(args) == 2 else f"{key}[{i}]", errors)
                     for i, (a, v) in enumerate(zip(args, value)))
    if tp is bool:
        if not isinstance(value, bool):
            errors.append(f"{key}={value!r}: expected true or false")
        return value
    if tp is int:
        if isinstance(value, float) and value.is_integer():   # 1e6 written for a count
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{key}={value!r}: expected an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append(f"{key}={value!r}: expected a number")
        elif not math.isfinite(value):
            errors.append(f"{key}={value!r}: expected a finite number")
        return value
    if tp is str and not isinstance(value, str):
        quote = " (in YAML quote on/off/yes/no: bare, they read as true/false)" if isinstance(value, bool) else ""
        errors.append(f"{key}={value!r}: expected a string{quote}")
    return value


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
