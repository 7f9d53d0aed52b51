"""Every key a sweep's composed config may hold, with its type: checked before anything is planned.

Hydra's struct mode refuses `model.seqlen=256`, but `+model.seqlen=256` (which Hydra's own message
suggests) adds the key, and nothing would read it: the sweep would silently train without it. So
`errors(cfg)` walks the whole composed config (less `hydra`) and names every key that nothing reads,
with the nearest valid key ("did you mean model.seq_len?"), and every value of the wrong type.

The dataclass sections (data, eval, train.optim, train.runtime) take their keys and types from the
dataclasses themselves (harness.spec); the others are listed here, as the planner and launcher read
them. `scale` is the namespace grids interpolate from: its keys are those of conf/scale/*.yaml.
"""
from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.spec import DataSpec, EvalSpec, OptimSpec, Runtime, unknown_key


@dataclass(frozen=True)
class Leaf:
    kind: str                       # "int" | "num" | "str" | "bool" | "any"
    nullable: bool = False
    min: float | None = None        # smallest value allowed (inclusive) ...
    above: float | None = None      # ... or the value it must exceed
    words: tuple[str, ...] = ()     # strings accepted besides the kind (e.g. "auto")
    list_of: bool = False           # a list of such values
    or_list: bool = False           # one such value or a list of them


@dataclass(frozen=True)
class Section:
    keys: dict                      # name -> Leaf | Section | Mapping
    nullable: bool = False


@dataclass(frozen=True)
class Mapping:
    """Free keys (e.g. domain names), each value a Leaf."""
    value: Leaf
    nullable: bool = False


def INT(**kw):
    return Leaf("int", **kw)


def NUM(**kw):
    return Leaf("num", **kw)


def STR(**kw):
    return Leaf("str", **kw)


BOOL = Leaf("bool")
POS_INT, POS_NUM = INT(min=1), NUM(above=0)
ANY = Leaf("any", nullable=True)


def from_dataclass(cls) -> Section:
    """The dataclass' fields as a section (types from its annotations; range checks stay in its errors())."""
    hints = typing.get_type_hints(cls)
    keys = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            keys[f.name] = from_dataclass(tp)
        elif typing.get_origin(tp) is tuple:
            args = typing.get_args(tp)
            if args == (tuple[str, float], Ellipsis):
                keys[f.name] = Mapping(NUM())
            elif len(args) == 2 and args[1] is Ellipsis and dataclasses.is_dataclass(args[0]):
                keys[f.name] = [from_dataclass(args[0])]       # a list of sections
            else:
                keys[f.name] = Leaf(LEAF_KINDS.get(args[0], "any"), list_of=True)
        else:
            keys[f.name] = Leaf(LEAF_KINDS.get(tp, "any"))
    return Section(keys)


LEAF_KINDS = {int: "int", float: "num", str: "str", bool: "bool"}

MODEL = Section({
    "rule": Section({"aspect": POS_INT, "head_dim": POS_INT, "ffn_multiple": POS_INT}),
    "depths": INT(min=1, list_of=True), "seq_len": POS_INT, "vocab_size": POS_INT, "family": STR(),
    "tie_embeddings": BOOL, "qk_norm": BOOL, "rope_theta": POS_NUM})

SWEEP = Section({
    "name": STR(), "root": STR(), "dry_run": BOOL, "status": BOOL,
    "max_parallel": INT(min=1, nullable=True, words=("auto",)), "jobs_per_gpu": POS_INT,
    "gpus": INT(min=0, nullable=True, words=("auto",)), "retries": INT(min=0), "max_epochs": POS_NUM,
    "device_kind": STR(), "throughput_table": STR(nullable=True), "price_per_gpu_hour": NUM(min=0),
    "target_flops": NUM(above=0, nullable=True), "inductor_cache": STR(nullable=True),
    "bytecode_cache": STR(nullable=True), "progress_every_s": POS_NUM,
    "gpus_per_run": INT(min=1, words=("auto",)), "gpu_memory_gb": POS_NUM, "node_gpus": POS_INT,
    "multi_gpu_efficiency": NUM(above=0), "worker": BOOL, "compile_ahead": BOOL,
    "deadline_s": NUM(above=0, nullable=True)})

GRID = Section({
    "name": STR(),
    "shapes": Section({
        "kind": STR(), "budgets": NUM(above=0, list_of=True), "sizes_per_budget": POS_INT,
        "tokens_per_param": POS_NUM, "count": STR(), "spacing": NUM(above=1), "min_each_side": INT(min=0),
        "depths": INT(min=1, list_of=True), "depth": INT(min=1, or_list=True), "tokens": NUM(above=0, or_list=True)}),
    "mixtures": Section({"kind": STR(), "step": POS_NUM, "samples": INT(min=1, nullable=True), "alpha": POS_NUM,
                         "seed": INT(), "include_pure": BOOL, "include_uniform": BOOL, "include_natural": BOOL,
                         "center": STR(), "corpus": STR(nullable=True), "natural": Mapping(NUM(min=0), nullable=True),
                         "concentration": NUM(above=0, list_of=True),
                         "samples_per_domain": POS_INT, "select": STR(), "list": [Mapping(NUM(min=0))]}, nullable=True),
    "moe": Section({"dense": BOOL, "n_experts": INT(min=1, list_of=True), "top_k": INT(min=1, list_of=True),
                    "n_shared_experts": INT(min=0), "capacity_factor": NUM(min=0), "router_aux_coef": NUM(min=0),
                    "router_z_coef": NUM(min=0)}, nullable=True),
    "lrs": NUM(above=0, nullable=True, list_of=True), "lr_from": STR(nullable=True),
    "seeds": INT(nullable=True, list_of=True), "min_steps": INT(min=0),
    "batch": Section({"rule": STR(), "target_steps": POS_INT, "min_sequences": POS_INT}, nullable=True),
    "replicates": Section({"seeds": INT(list_of=True), "budgets": Leaf("any", list_of=True)}, nullable=True),
    "cooldown_branches": Section({"multipliers": NUM(list_of=True), "fork": ANY}, nullable=True)})

TRAIN = Section({"batch_tokens": POS_INT, "seed": INT(), "optim": from_dataclass(OptimSpec),
                 "runtime": from_dataclass(Runtime)})

CONF = Path(__file__).resolve().parents[1] / "conf"


def scale_section() -> Section:
    """conf/scale/*.yaml's `scale` keys (any value: grids interpolate them and the planner checks the result)."""
    keys: dict = {}
    for f in sorted(CONF.glob("scale/*.yaml")):
        for k, v in (yaml.safe_load(f.read_text()) or {}).get("scale", {}).items():
            keys[k] = Section({kk: ANY for kk in v}) if isinstance(v, dict) else ANY
    return Section(keys)


@functools.lru_cache(maxsize=1)
def schema() -> Section:
    return Section({
        "run_id": STR(nullable=True), "slots": INT(min=1, nullable=True), "slot_gpus": ANY,
        "procs": INT(min=1, nullable=True),
        "sweep": SWEEP, "model": MODEL, "data": from_dataclass(DataSpec), "train": TRAIN,
        "eval": from_dataclass(EvalSpec), "scale": scale_section(), "grid": Section(GRID.keys, nullable=True)})


def errors(cfg: dict) -> list[str]:
    """Every unknown key (with the nearest known one) and wrongly typed value of a plain composed config."""
    out: list[str] = []
    check({k: v for k, v in cfg.items() if k != "hydra"}, schema(), "", out)
    return out


def check(value, node, key: str, out: list[str]) -> None:
    if isinstance(node, list):              # a list of sections / mappings
        if value is None:
            return
        if not isinstance(value, (list, tuple)):
            out.append(f"{key}={value!r}: expected a list")
            return
        for i, v in enumerate(value):
            check(v, node[0], f"{key}[{i}]", out)
    elif isinstance(node, Section):
        if value is None and (node.nullable or not key):
            return
        if not isinstance(value, dict):
            out.append(f"{key}={value!r}: expected a mapping with keys {', '.join(node.keys)}")
            return
        for k, v in value.items():
            full = f"{key}.{k}" if key else str(k)
            if k not in node.keys:
                out.append(unknown_key(key, k, node.keys))
            else:
                check(v, node.keys[k], full, out)
    elif isinstance(node, Mapping):
        if value is None and node.nullable:
            return
        if not isinstance(value, dict):
            out.append(f"{key}={value!r}: expected a mapping {{name: value}}")
            return
        for k, v in value.items():
            check(v, node.value, f"{key}.{k}", out)
    elif node.list_of or (node.or_list and isinstance(value, (list, tuple))):
        if value is None and node.nullable:
            return
        if not isinstance(value, (list, tuple)):
            out.append(f"{key}={value!r}: expected a list")
            return
        for i, v in enumerate(value):
            check(v, dataclasses.replace(node, list_of=False, nullable=False), f"{key}[{i}]", out)
    elif problem := leaf_problem(value, node):
        out.append(f"{key}={value!r}: {problem}")


def leaf_problem(value, leaf: Leaf) -> str:
    if leaf.kind == "any" or (value is None and leaf.nullable) or (isinstance(value, str) and value in leaf.words):
        return ""
    also = "".join(f" or {w!r}" for w in leaf.words) + (" or null" if leaf.nullable else "")
    if leaf.kind == "bool":
        return "" if isinstance(value, bool) else f"expected true or false{also}"
    if leaf.kind == "str":
        return "" if isinstance(value, str) else f"expected a string{also}"
    is_num = isinstance(value, (int, float)) and not isinstance(value, bool)
    if leaf.kind == "int" and not (is_num and float(value).is_integer()):
        return f"expected an integer{also}"
    if not is_num or value != value or value in (float("inf"), float("-inf")):
        return f"expected a finite number{also}"
    if leaf.min is not None and value < leaf.min:
        return f"must be >= {leaf.min:g}"
    if leaf.above is not None and not value > leaf.above:
        return f"must be > {leaf.above:g}"
    return ""
