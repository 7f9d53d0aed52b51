"""Where a run reports besides metrics.jsonl: wandb (offline by default) and a progress bar.

wandb runs with mode Runtime.wandb ("offline": files under <run_dir>/wandb, no network; "online";
"disabled": wandb is not even imported, which keeps tests fast). The wandb run id is the run id, so
a resumed run continues the same wandb run.
"""
from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from harness.spec import RunSpec, Runtime


class Tracker:
    def __init__(self, run_dir: Path, spec: RunSpec, runtime: Runtime, sweep: str, total_steps: int,
                 start_step: int):
        self.wandb_run = None
        if runtime.wandb != "disabled":
            import wandb
            wandb_dir = Path(run_dir) / "wandb"
            wandb_dir.mkdir(parents=True, exist_ok=True)
            self.wandb_run = wandb.init(project=runtime.wandb_project, id=spec.run_id, name=spec.run_id,
                                        group=sweep or None, config=spec.to_dict(), dir=str(run_dir),
                                        mode=runtime.wandb, resume="allow", reinit="finish_previous")
        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True,
                        disable=not runtime.progress, desc=spec.run_id)

    def step(self, n: int = 1) -> None:
        self.bar.update(n)

    def log(self, row: dict) -> None:
        if self.wandb_run is not None and row["kind"] == "samples":   # the prompt battery: a table per checkpoint
            import wandb
            table = wandb.Table(columns=["step", "prompt", "completion"],
                                data=[[row["step"], s["prompt"], s["completion"]] for s in row["samples"]])
            self.wandb_run.log({"samples/battery": table}, step=row["step"])
        elif self.wandb_run is not None:
            self.wandb_run.log({f"{row['kind']}/{k}": v for k, v in row.items()
                                if k not in ("kind", "step") and v is not None}, step=row["step"])
        if row["kind"] == "train":
            self.bar.set_postfix(loss=f"{row['loss']:.4f}", tok_s=f"{row['tokens_per_s']:.3g}", refresh=False)
        elif row["kind"] == "eval":
            # an eval before the last under eval.curve_tokens has only the curve subset's loss
            self.bar.set_postfix(eval=f"{row.get('loss', row.get('curve_loss')):.4f}", refresh=False)

    def summary(self, result: dict) -> None:
        if self.wandb_run is not None:
            self.wandb_run.summary.update({k: v for k, v in result.items() if isinstance(v, (int, float, str))})

    def close(self) -> None:
        self.bar.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()
            self.wandb_run = None
