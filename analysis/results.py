"""Load a sweep's run directories into two pandas tables (DESIGN.md, "Runs table", "Curves table").

    runs    one row per finished run, from its result.json (columns as written by the harness:
            shape fields, params_*, tokens, flops, flops_6n, w_<domain>, loss, loss_<domain>, ...),
            plus the grid's `budget` (nominal C) and `label` from the run's grid.json where the sweep wrote one
    curves  one row per eval line of each run's metrics.jsonl: run_id, step, tokens, flops, loss,
            loss_<domain> (what approach 1 and cooldown branches read)

A run directory without result.json is not finished (or failed): it is skipped, named in
`Results.skipped` with the reason, and a warning says how many. `python -m analysis.results
<sweep_dir>` prints a summary.
"""
from __future__ import annotations

import argparse
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.rundir import read_metrics

CURVE_KEYS = ("run_id", "step", "tokens", "flops")


@dataclass
class Results:
    runs: pd.DataFrame
    curves: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (run dir, reason)

    @property
    def domains(self) -> list[str]:
        return sorted(c[len("loss_"):] for c in self.runs.columns if c.startswith("loss_"))

    def to_parquet(self, out_dir: str | Path) -> tuple[Path, Path]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = out / "runs.parquet", out / "curves.parquet"
        self.runs.to_parquet(paths[0], index=False)
        self.curves.to_parquet(paths[1], index=False)
        return paths

    def time_split(self) -> str:
        """Where the runs' wall time went (summed over runs), e.g. "12.0 min: 81% training, 9% warm-up, ..."."""
        parts = {"training": "time_train_s", "warm-up": "time_warmup_s", "set-up": "time_setup_s",
                 "eval": "time_eval_s", "checkpoints": "time_checkpoint_s"}
        r = self.runs
        if not len(r) or not set(parts.values()) <= set(r) or "wall_s" not in r:
            return ""
        total = r["wall_s"].sum()
        shares = {name: r[col].sum() / total for name, col in parts.items()}
        shares["other"] = max(0.0, 1 - sum(shares.values()))
        return f"{total / 60:.1f} min: " + ", ".join(f"{v:.0%} {k}" for k, v in shares.items())

    def summary(self) -> str:
        r = self.runs
        lines = [f"{len(r)} finished runs, {len(self.skipped)} skipped, {len(self.curves)} curve points"]
        if len(r):
            for col in ("params_nonembedding", "tokens", "flops", "loss"):
                if col in r:
                    lines.append(f"  {col:<20} {r[col].min():.4g} .. {r[col].max():.4g}")
            if "sweep" in r:
                lines.append(f"  sweeps: {', '.join(sorted(map(str, r['sweep'].unique())))}")
            if self.domains:
                lines.append(f"  domains: {', '.join(self.domains)}")
            if time_line := self.time_split():
                lines.append(f"  wall time {time_line}")
        for path, reason in self.skipped:
            lines.append(f"  skipped {path}: {reason}")
        return "\n".join(lines)


def run_dirs(sweep_dir: Path) -> list[Path]:
    """Run directories (those holding spec.yaml or result.json) directly in `sweep_dir` or one level down
    (runs/ holding <sweep>/<run_id>/)."""
    def is_run(p: Path) -> bool:
        return p.is_dir() and ((p / "spec.yaml").exists() or (p / "result.json").exists())

    found = []
    for child in sorted(sweep_dir.iterdir()):
        if is_run(child):
            found.append(child)
        elif child.is_dir():
            found += [g for g in sorted(child.iterdir()) if is_run(g)]
    return found


def read_curve(path: Path, run_id: str) -> list[dict]:
    """The eval lines of one metrics.jsonl; a torn last line (a killed run) is ignored."""
    return [{"run_id": run_id, **{k: v for k, v in row.items() if k in CURVE_KEYS[1:] or k.startswith("loss")}}
            for row in read_metrics(path, kind="eval")]


def grid_meta(run_dir: Path) -> dict:
    """{"budget", "label"} from the run's grid.json ({} for runs launched before it existed)."""
    try:
        meta = json.loads((run_dir / "grid.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {k: meta.get(k) for k in ("budget", "label")}


def load(sweep_dir: str | Path, allow_mixed_tokenizers: bool = False) -> Results:
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep_dir={sweep_dir}: not a directory (expected runs/<sweep>/ or runs/)")
    rows, curves, skipped = [], [], []
    for d in run_dirs(sweep_dir):
        result = d / "result.json"
        if not result.exists():
            skipped.append((str(d), "no result.json (unfinished or failed)"))
            continue
        try:
            row = json.loads(result.read_text())
        except json.JSONDecodeError as e:
            skipped.append((str(d), f"unreadable result.json: {e}"))
            continue
        row.setdefault("run_id", d.name)
        for key, value in grid_meta(d).items():     # the grid's budget and label, where the sweep wrote them
            if value is not None:
                row.setdefault(key, value)
        rows.append(row)
        curves += read_curve(d / "metrics.jsonl", row["run_id"])
    if skipped:
        warnings.warn(f"{sweep_dir}: skipped {len(skipped)} run dir(s) without a usable result.json "
                      f"(see Results.skipped)", stacklevel=2)
    runs = pd.DataFrame(rows)
    if {"params_active_nonembedding", "vocab_size", "d_model"} <= set(runs.columns):
        # the head's matmul costs vocab * d_model per token whether or not it is tied to the embedding
        runs["params_compute"] = runs["params_active_nonembedding"] + runs["vocab_size"] * runs["d_model"]
    if not allow_mixed_tokenizers and "tokenizer_sha256" in runs and runs["tokenizer_sha256"].nunique() > 1:
        groups = runs.groupby("tokenizer_sha256")["run_id"].apply(list).to_dict()
        raise ValueError(f"{sweep_dir}: runs were trained with {len(groups)} different tokenizers (the corpus was "
                         "rebuilt between them), so their losses are not comparable in one fit: "
                         + "; ".join(f"{k[:12]}: {len(v)} runs (e.g. {v[0]})" for k, v in groups.items())
                         + ". Load each group's sweep separately, or pass allow_mixed_tokenizers=True.")
    curve_df = pd.DataFrame(curves, columns=None if curves else list(CURVE_KEYS) + ["loss"])
    if len(curve_df):
        curve_df = curve_df.sort_values(["run_id", "step"], ignore_index=True)
    return Results(runs=runs, curves=curve_df, skipped=skipped)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m analysis.results", description=__doc__.split("\n")[0])
    p.add_argument("sweep_dir")
    p.add_argument("--parquet", metavar="OUT_DIR", help="also write runs.parquet and curves.parquet here")
    args = p.parse_args(argv)
    res = load(args.sweep_dir)
    print(res.summary())
    if args.parquet:
        for path in res.to_parquet(args.parquet):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
