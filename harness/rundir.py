"""The run directory `runs/<sweep>/<run_id>/` and the only code that writes into it.

    spec.yaml      RunSpec.to_dict(): what the run computes (its hash is the run id)
    runtime.yaml   Runtime: how this launch executes (rewritten at every launch)
    grid.json      what the sweep meant by the run: {"sweep", "label", "budget"} (grid metadata, not part
                   of the run's identity; analysis groups isoFLOP runs by this budget)
    metrics.jsonl  one JSON object per line: {"kind": "train" | "eval" | "downstream", "step", ...}, and
                   per launch one {"kind": "setup", "step", "<phase>_s": seconds} (device, model, data, ...);
                   read_metrics() is its one reader
    result.json    the runs-table row (result_row()); written last and atomically, so its presence means done
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


def read_metrics(path: Path, kind: str | None = None) -> list[dict]:
    """The lines of a metrics.jsonl ([] when there is none), those of one `kind` if given. A line that does
    not parse is skipped: a run killed mid-write leaves its last line torn."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if kind is None or row.get("kind") == kind:
            rows.append(row)
    return rows


def last_metrics_line(path: Path, kind: str, tail_bytes: int = 16384) -> dict:
    """The newest line of `kind` among the file's last `tail_bytes` (cheap on a long log), or {}."""
    path = Path(path)
    if not path.exists():
        return {}
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - tail_bytes))
        lines = f.read().decode(errors="replace").splitlines()
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("kind") == kind:
            return row
    return {}


SHAPE_FIELDS = ("family", "d_model", "n_layers", "n_heads", "ffn_hidden", "vocab_size", "seq_len", "n_experts",
                "top_k", "expert_hidden", "n_shared_experts")
COUNT_FIELDS = ("params_total", "params_embedding", "params_head", "params_nonembedding", "params_active",
                "params_active_nonembedding")


def result_row(spec: RunSpec, counts, *, sweep: str, weights, last_eval: dict, train_loss, wall_s: float,
               tokens_per_s, mfu, device: str, git_sha: str, corpus: str, tokenizer_sha256: str) -> dict:
    """result.json's row (the runs table's columns, analysis.results): the spec's shape and counts
    (model_zoo.count), tokens and FLOPs, mixture weights as w_<domain>, the last eval's loss columns, and
    how the run went. `weights`: (domain, weight) pairs of the first stage."""
    m, tokens = spec.model, spec.steps * spec.batch_tokens
    row = {"run_id": spec.run_id, "sweep": sweep, **{k: getattr(m, k) for k in SHAPE_FIELDS},
           **{k: getattr(counts, k) for k in COUNT_FIELDS},
           "tokens": tokens, "flops": counts.flops_per_token * tokens, "flops_6n": counts.flops_per_token_6n * tokens,
           **{f"w_{d}": w for d, w in weights},
           **{k: v for k, v in last_eval.items() if k.startswith("loss")}}
    row.update(train_loss=train_loss, lr=spec.optim.lr, batch_tokens=spec.batch_tokens, schedule=spec.optim.schedule,
               seed=spec.seed, steps=spec.steps, wall_s=wall_s, tokens_per_s=tokens_per_s, mfu=mfu, device=device,
               git_sha=git_sha, corpus=corpus, tokenizer_sha256=tokenizer_sha256)
    return row


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
        keep = [row for row in read_metrics(self.metrics_file) if row.get("step", 0) <= step]
        atomic_write_bytes(self.metrics_file, "".join(json.dumps(row) + "\n" for row in keep).encode())

    def open_metrics(self):
        """Line-buffered append: each line reaches the OS as it is written."""
        return open(self.metrics_file, "a", buffering=1)
