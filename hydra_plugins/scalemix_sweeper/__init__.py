"""scalemix's Hydra Sweeper: Hydra discovers it in the `hydra_plugins` namespace package.

Discovery runs before Hydra composes a config, so this is also where the dataclasses that own a
default are offered to the YAML (each default lives once): conf/ composes `/schema/<name>` nodes
built from them instead of restating their values (tests/test_config_defaults.py holds conf/ to it).
"""
import dataclasses

from hydra.core.config_store import ConfigStore

from harness.spec import DataSpec, EvalSpec, OptimSpec, Runtime
from model_zoo.spec import GPU_RULE, ModelSpec
from sweeps.batching import BatchRule

# plain dicts of the defaults, not the (frozen) dataclasses: a frozen structured config would be read-only
# and refuse the YAML's and the command line's overrides
_MOE_FIELDS = ("n_shared_experts", "capacity_factor", "router_aux_coef", "router_z_coef")
SCHEMA = {
    "optim": dataclasses.asdict(OptimSpec()),          # train.optim
    "runtime": dataclasses.asdict(Runtime()),          # train.runtime
    "eval": dataclasses.asdict(EvalSpec()),            # eval
    "gpu_rule": dataclasses.asdict(GPU_RULE),          # model=gpu: model.rule
    "moe_model": {f.name: f.default for f in dataclasses.fields(ModelSpec) if f.name in _MOE_FIELDS},   # grid.moe
    "data_options": {"document_mask": DataSpec().document_mask},   # data: what a mixture file need not restate
    "batch": dataclasses.asdict(BatchRule()),          # grid.batch: each run's batch (fixed | steps)
}
for _name, _node in SCHEMA.items():
    ConfigStore.instance().store(group="schema", name=_name, node=_node, provider="scalemix")
