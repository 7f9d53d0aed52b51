"""The run directory `runs/<sweep>/<run_id>/` and the only code that writes into it.

    spec.yaml      RunSpec.to_dict(): what the run computes (its hash is the run id)
    runtime.yaml   Runtime: how this launch executes (rewritten at every launch)
    grid.json      what the sweep meant by the run: {"sweep", "label", "budget", "n_col", "c_col"} (grid metadata,
                   not part of the run's identity; analysis groups isoFLOP runs by this budget and fits under the
                   N and C columns the grid was designed around)
    metrics.jsonl  one JSON object per line: {"kind": "train" | "eval" | "downstream", "step", ...}, and
                   per launch one {"kind": "setup", "step", "<phase>_s": seconds} (device, model, data, ...)
    result.json    the runs-table row; written last and atomically, so its presence means done
    ckpt/          checkpoints (harness.checkpoint)
    wandb/         the wandb run's local files (offline by default)
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import yaml

from harness.spec import RunSpec, Runtime, SpecError, from_plain


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp name, fsync, rename over `path`, fsync the directory: never a partial file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def plain(obj):
    """Dataclass dicts hold tuples; YAML and JSON want lists."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def dump_yaml(obj) -> str:
    return yaml.safe_dump(plain(obj), sort_keys=False)


def load_spec(path: Path) -> RunSpec:
    return RunSpec.from_dict(yaml.safe_load(Path(path).read_text()))


def load_runtime(path: Path) -> Runtime:
    return from_plain(Runtime, yaml.safe_load(Path(path).read_text()) or {})


class RunDir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.spec_file = self.path / "spec.yaml"
        self.runtime_file = self.path / "runtime.yaml"
        self.grid_file = self.path / "grid.json"
        self.metrics_file = self.path / "metrics.jsonl"
        self.result_file = self.path / "result.json"
        self.ckpt_dir = self.path / "ckpt"
        self.wandb_dir = self.path / "wandb"

    def check_owner(self, spec: RunSpec) -> None:
        """A run directory belongs to one spec: refuse to mix two runs' files."""
        if self.spec_file.exists():
            other = load_spec(self.spec_file)
            if other.run_id != spec.run_id:
                raise SpecError([f"{self.path}: holds run {other.run_id}, not {spec.run_id}; "
                                 "use a fresh directory (runs/<sweep>/<run_id>/) for a different spec"])

    def prepare(self, spec: RunSpec, runtime: Runtime) -> None:
        self.check_owner(spec)
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        if not self.spec_file.exists():
            atomic_write_bytes(self.spec_file, dump_yaml(spec.to_dict()).encode())
        atomic_write_bytes(self.runtime_file, dump_yaml(dataclasses.asdict(runtime)).encode())

    def write_grid(self, meta: dict) -> None:
        """The sweep's metadata for this run; rewritten only when it changed (a relaunch touches nothing)."""
        data = (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode()
        if not self.grid_file.exists() or self.grid_file.read_bytes() != data:
            atomic_write_bytes(self.grid_file, data)

    def finished(self, spec: RunSpec) -> dict | None:
        """The result row if this spec's run is done here, else None."""
        if not self.result_file.exists():
            return None
        self.check_owner(spec)
        result = json.loads(self.result_file.read_text())
        return result if result.get("run_id") == spec.run_id else None

    def write_result(self, result: dict) -> None:
        atomic_write_bytes(self.result_file, (json.dumps(result, indent=1, sort_keys=True) + "\n").encode())

    def rewind_metrics(self, step: int) -> None:
        """Keep only lines up to `step` (the checkpoint resumed from); drop a torn last line.

        A killed run may have logged steps past its last checkpoint; the resumed run logs them again.
        """
        if not self.metrics_file.exists():
            return
        keep = []
        for line in self.metrics_file.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill
            if row.get("step", 0) <= step:
                keep.append(line)
        atomic_write_bytes(self.metrics_file, "".join(x + "\n" for x in keep).encode())

    def open_metrics(self):
        """Line-buffered append: each line reaches the OS as it is written."""
        return open(self.metrics_file, "a", buffering=1)
