"""The scalemix Sweeper: the planner expands the grid, the launcher runs one override set per run.

A scaling grid is not a cartesian product (tokens follow from budget and size; sizes bracket each
budget's optimum), so instead of BasicSweeper's product this sweeper asks `sweeps.plan` for the
runs and hands the configured launcher `run_id=<id>` per run, so that every Hydra launcher
(basic, submitit_local, submitit_slurm, ...) works unchanged. Select it with
`override hydra/sweeper: scalemix` (conf/config.yaml does).

(No `from __future__ import annotations` here: Hydra loads plugin modules outside sys.modules,
where dataclasses cannot resolve string annotations.)
"""
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class ScalemixSweeperConf:
    _target_: str = "hydra_plugins.scalemix_sweeper.sweeper.ScalemixSweeper"


ConfigStore.instance().store(group="hydra/sweeper", name="scalemix", node=ScalemixSweeperConf, provider="scalemix")


class ScalemixSweeper(Sweeper):
    def __init__(self) -> None:
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        from sweeps.launch import run_sweep  # lazy: plugin discovery must stay fast
        code = run_sweep(self.config, arguments, self.launcher.launch, self.validate_batch_is_legal, self.configure)
        if code:  # Hydra ignores a sweeper's return value: the exit status is how CI sees a failed sweep
            raise SystemExit(code)
        return code

    def configure(self, params: dict) -> None:
        """Set a submitit launcher's job shape (nodes, tasks_per_node, gpus_per_node) for the next launch() calls:
        it reads its params at each launch."""
        if hasattr(self.launcher, "params"):
            self.launcher.params.update(params)
