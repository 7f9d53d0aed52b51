"""Each default lives once: conf/ composes the dataclasses' defaults (hydra_plugins/scalemix_sweeper
registers them as /schema nodes) instead of restating them, so the two cannot drift apart."""
import dataclasses
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from harness.spec import EvalSpec, OptimSpec, Runtime
from model_zoo.spec import GPU_RULE, ModelSpec
from sweeps.batching import BatchRule

CONF = Path(__file__).resolve().parents[1] / "conf"
MOE_FIELDS = ("n_shared_experts", "capacity_factor", "router_aux_coef", "router_z_coef")


def composed(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=False)


def test_the_config_carries_the_dataclasses_defaults():
    c = composed("+grid=moe", "model=gpu")
    assert c["train"]["optim"] == dataclasses.asdict(OptimSpec())
    sweep_runtime = {"wandb", "progress", "threads"}        # what a sweep sets differently (conf/train/default.yaml)
    assert {k: v for k, v in c["train"]["runtime"].items() if k not in sweep_runtime} == \
        {k: v for k, v in dataclasses.asdict(Runtime()).items() if k not in sweep_runtime}
    assert c["model"]["rule"] == dataclasses.asdict(GPU_RULE)
    defaults = {f.name: f.default for f in dataclasses.fields(ModelSpec)}
    assert {k: c["grid"]["moe"][k] for k in MOE_FIELDS} == {k: defaults[k] for k in MOE_FIELDS}
    assert c["grid"]["batch"] == dataclasses.asdict(BatchRule())
    # and they stay overridable from the command line
    c = composed("+grid=moe", "train.optim.lr=0.01", "grid.moe.router_aux_coef=0.02")
    assert c["train"]["optim"]["lr"] == 0.01 and c["grid"]["moe"]["router_aux_coef"] == 0.02


def test_no_yaml_restates_a_dataclass_default():
    """A value in conf/ equal to the dataclass default is a second copy of it: it would silently win
    over a later change of the dataclass."""
    owners = {  # (file, keys to the node) -> the defaults that node composes
        ("train/default.yaml", ("optim",)): dataclasses.asdict(OptimSpec()),
        ("train/default.yaml", ("runtime",)): dataclasses.asdict(Runtime()),
        ("eval/default.yaml", ()): dataclasses.asdict(EvalSpec()),
        ("model/gpu.yaml", ("rule",)): dataclasses.asdict(GPU_RULE),
        ("grid/moe.yaml", ("grid", "moe")): {f.name: f.default for f in dataclasses.fields(ModelSpec)
                                            if f.name in MOE_FIELDS},
        ("grid/study2.yaml", ("grid", "batch")): dataclasses.asdict(BatchRule()),
        ("grid/study_mixture.yaml", ("grid", "batch")): dataclasses.asdict(BatchRule()),
    }
    restated = []
    for (file, keys), defaults in owners.items():
        node = yaml.safe_load((CONF / file).read_text())
        for k in keys:
            node = (node or {}).get(k) or {}
        restated += [f"conf/{file}: {'.'.join(keys)}.{k}: {v!r}" for k, v in node.items()
                     if k in defaults and v == defaults[k]]
    assert not restated, "defaults written twice (delete them from the YAML): " + ", ".join(restated)
