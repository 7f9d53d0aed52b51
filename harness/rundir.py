"""The run directory `runs/<sweep>/<run_id>/` and the only code that writes into it.

    spec.yaml      RunSpec.to_dict(): what the run computes (its hash is the run id)
    runtime.yaml   Runtime: how this launch executes (rewritten at every launch)
    grid.json      what the sweep meant by the run: {"sweep", "label", "budget", "n_col", "c_col", "grid", "scale"}
                   (grid metadata, not part of the run's identity; analysis groups isoFLOP runs by this budget, fits
                   under the N and C columns the grid was designed around, and names the grid and scale config
                   the sweep was launched with in the command lines it suggests)
    metrics.jsonl  one JSON object per line: {"kind": "train" | "eval" | "downstream", "step", ...}, and
                   per launch one {"kind": "setup", "step", "<phase>_s": seconds} (device, model, data, ...);
                   read_metrics() is its one reader
    result.json    the runs-table row (result_row()); written last and atomically, so its presence means done
    ckpt/          checkpoints (harness.checkpoint)
    wandb/         the wandb run's local files (offline by default)
"""
from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import yaml

from harness.spec import RunSpec, Runtime, SpecError, from_plain

# downstream scores given to a finished run afterwards (python -m harness.downstream --write); analysis.results
# joins them to the run's row. The trainer never writes it: its result.json stays the run's own record.
DOWNSTREAM_FILE = "downstream.json"


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """write(f) into a temp name's open binary file, then fsync, rename over `path`, fsync the directory: never a
    partial file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """`data` written as atomic_write writes."""
    atomic_write(path, lambda f: f.write(data))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prune_oldest(dirs: list[Path], keep: int) -> list[Path]:
    """Remove all but the `keep` most recently modified of `dirs`; returns the removed ones."""
    import shutil
    old = sorted(dirs, key=lambda p: (p.stat().st_mtime, p.name))[:max(0, len(dirs) - keep)]
    for p in old:
        shutil.rmtree(p, ignore_errors=True)
    return old


def plain(obj):
    """Dataclass dicts hold tuples; YAML and JSON want lists."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def dump_yaml(obj) -> str:
    return yaml.safe_dump(plain(obj), sort_keys=False)


def read_json_object(path: Path) -> tuple[dict | None, str]:
    """(the file's JSON object, "") or (None, why not): a torn, garbage or non-object file is no result."""
    try:
        row = json.loads(Path(path).read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return None, f"{Path(path).name} is missing"
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, f"{Path(path).name} is unreadable ({type(e).__name__}: {str(e)[:80]})"
    if not isinstance(row, dict):
        return None, f"{Path(path).name} holds a {type(row).__name__}, not an object"
    return row, ""


def load_yaml(path: Path, empty_ok: bool = False) -> dict:
    """A YAML mapping file; SpecError naming the file when it is garbage or cut short."""
    try:
        d = yaml.safe_load(Path(path).read_bytes().decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise SpecError([f"{path}: unreadable ({type(e).__name__}); the planner rewrites it on the next launch"]) from None
    if d is None and empty_ok:
        return {}
    if not isinstance(d, dict):
        raise SpecError([f"{path}: holds {type(d).__name__}, not a mapping; the planner rewrites it on the next launch"])
    return d


def read_metrics(path: Path, kind: str | None = None, problems: list[str] | None = None,
                 valid=None) -> list[dict]:
    """The lines of a metrics.jsonl ([] when there is none), those of one `kind` if given. A torn last line (a run
    killed mid-write) is skipped silently; other lines that are not JSON objects (bytes that are not UTF-8, a disk
    error, a stray write), and lines of `kind` that fail `valid(row)`, are skipped and counted in `problems`, so
    one bad file never stops a reader."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    rows, bad = [], 0
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            bad += i < len(lines) - 1
            continue
        if not isinstance(row, dict):
            bad += 1
            continue
        if kind is None or row.get("kind") == kind:
            if valid is not None and not valid(row):
                bad += 1
                continue
            rows.append(row)
    if bad and problems is not None:
        problems.append(f"{path}: skipped {bad} unreadable line(s)")
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
        if isinstance(row, dict) and row.get("kind") == kind:
            return row
    return {}


SHAPE_FIELDS = ("family", "d_model", "n_layers", "n_heads", "ffn_hidden", "vocab_size", "seq_len", "n_experts",
                "top_k", "expert_hidden", "n_shared_experts")
COUNT_FIELDS = ("params_total", "params_embedding", "params_head", "params_nonembedding", "params_active",
                "params_active_nonembedding")


def params_compute(active_nonembedding, vocab_size, d_model):
    """The runs table's `params_compute` (the N of a grid with `count: compute`): what a token is multiplied by, the
    active non-embedding parameters plus the output head, whose vocab x d_model matmul costs the same whether or not
    it is tied to the embedding. Ints or pandas columns alike."""
    return active_nonembedding + vocab_size * d_model


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
               git_sha=git_sha, corpus=corpus, tokenizer_sha256=tokenizer_sha256,
               document_mask=spec.data.document_mask)
    return row


def load_spec(path: Path) -> RunSpec:
    return RunSpec.from_dict(load_yaml(path))


def load_runtime(path: Path) -> Runtime:
    return from_plain(Runtime, load_yaml(path, empty_ok=True))


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

    def check_owner(self, spec: RunSpec) -> bool:
        """A run directory belongs to one spec: refuse to mix two runs' files. False when spec.yaml is
        missing or unreadable (a write cut short): the caller may write it."""
        if not self.spec_file.exists():
            return False
        try:
            other = load_spec(self.spec_file)
        except SpecError:
            return False
        if other.run_id != spec.run_id:
                raise SpecError([f"{self.path}: holds run {other.run_id}, not {spec.run_id}; "
                                 "use a fresh directory (runs/<sweep>/<run_id>/) for a different spec"])
        return True

    def prepare(self, spec: RunSpec, runtime: Runtime) -> None:
        owned = self.check_owner(spec)
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        if not owned:
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
        result, problem = read_json_object(self.result_file)
        if result is None:  # torn or garbage (a full disk, a copy cut short): keep it for a look, rerun the run
            os.replace(self.result_file, self.result_file.with_name("result.json.unreadable"))
            return None
        return result if result.get("run_id") == spec.run_id else None

    def write_result(self, result: dict) -> None:
        atomic_write_bytes(self.result_file, (json.dumps(result, indent=1, sort_keys=True) + "\n").encode())

    def rewind_metrics(self, step: int, evals: bool = True) -> None:
        """Keep only lines up to `step` (the checkpoint resumed from); drop a torn last line.

        A killed run may have logged steps past its last checkpoint; the resumed run logs them again.
        evals=False: the checkpoint was taken before its step's eval (the final one), so an eval line at `step`
        goes too.
        """
        if not self.metrics_file.exists():
            return
        keep = [row for row in read_metrics(self.metrics_file)
                if isinstance(row.get("step", 0), int) and row.get("step", 0) <= step   # else garbage
                and (evals or row.get("kind") != "eval" or row["step"] != step)]
        atomic_write_bytes(self.metrics_file, "".join(json.dumps(row) + "\n" for row in keep).encode())

    def prune_wandb(self, keep: int) -> list[Path]:
        """Delete all but the newest `keep` wandb run folders (one is made per launch of the run); returns them.
        A resumed run logs to the same wandb run id, so the newest folders hold what is not synced yet."""
        return prune_oldest([p for p in self.wandb_dir.glob("*run-*") if p.is_dir() and not p.is_symlink()], keep)

    def exclusive(self) -> TrainLock:
        """`with rd.exclusive():` hold the run directory's training lock (RunDirBusy if another process holds it)."""
        return TrainLock(self.path / ".train.lock")

    def open_metrics(self):
        """Line-buffered append: each line reaches the OS as it is written."""
        return open(self.metrics_file, "a", buffering=1)


BUSY_EXIT_CODE = 16   # `python -m harness`: another process is training this run directory (EBUSY)


class RunDirBusy(RuntimeError):
    pass


class TrainLock:
    """An exclusive flock on <run_dir>/.train.lock while a process trains the run: two processes never
    write one run directory's checkpoints and metrics at once, however they were started (a sweep's job
    or a bare `python -m harness`). Separate from the sweep's .lock, which the job wrapper holds while
    its child trains. The OS drops it when the holder dies."""

    def __init__(self, path: Path):
        self.path, self._fd = Path(path), None

    def __enter__(self) -> TrainLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunDirBusy(f"{self.path.parent}: {holder} is training this run directory; wait for it to "
                             "finish (or stop it) before starting another") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
