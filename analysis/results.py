"""Load a sweep's run directories into two pandas tables (DESIGN.md, "Runs table", "Curves table").

    runs    one row per finished run, from its result.json (columns as written by the harness:
            shape fields, params_*, tokens, flops, flops_6n, w_<domain>, loss, loss_<domain>, ...),
            plus the grid's `budget` (nominal C) and `label`, and the `grid` and `scale` config names the sweep was
            launched with (`+grid=<grid> scale=<scale>`), from the run's grid.json where the sweep wrote them
    curves  one row per eval line of each run's metrics.jsonl: run_id, step, tokens, flops, loss,
            loss_<domain> (what approach 1 and cooldown branches read), curve_tokens (the held-out set those
            losses are on: 0 the run's full set, else its eval.curve_tokens subset, whose losses the run's every eval
            reports; analysis.laws.common.curve_set refuses curves of different sets in one fit)

A sweep's conventions are the N and C columns its grid was designed around (the launcher records them in each
run's grid.json as `n_col`, `c_col`): `Results.conventions` gives them (one per sweep; runs that disagree are an
error), `Results.fit_config()` a FitConfig under them, an explicit n_col / c_col overriding them and saying so.
Sweeps launched before grid.json recorded them fall back to FitConfig's defaults, and say so.

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

from analysis.laws.common import C_COLS, N_COLS, FitConfig
from harness.rundir import DOWNSTREAM_FILE, params_compute, read_json_object, read_metrics

CURVE_KEYS = ("run_id", "step", "tokens", "flops")


class ConventionsError(ValueError):
    """A sweep's runs record different conventions, or ones the fits do not know."""


@dataclass(frozen=True)
class Conventions:
    n_col: str
    c_col: str
    recorded: bool                  # False: no run's grid.json records them; FitConfig's defaults stand in
    note: str                       # where they come from, for reports


@dataclass
class Results:
    runs: pd.DataFrame
    curves: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (run dir, reason)
    grid_conventions: dict[str, tuple[str, str] | None] = field(default_factory=dict)  # run dir -> (n_col, c_col)

    @property
    def conventions(self) -> Conventions:
        """The (n_col, c_col) the sweep's grid was designed around, from the finished runs' grid.json."""
        found: dict[tuple[str, str], list[str]] = {}
        for run_dir, conv in self.grid_conventions.items():
            if conv is not None:
                found.setdefault(conv, []).append(run_dir)
        if len(found) > 1:
            raise ConventionsError(
                "the runs' grid.json record different conventions (they were launched by different grids): "
                + "; ".join(f"n_col={n}, c_col={c}: {len(d)} run(s), e.g. {d[0]}" for (n, c), d in found.items())
                + ". Load each grid's runs separately, or fit them all under one convention with explicit n_col and "
                  "c_col (report: --n-col and --c-col)")
        if not found:
            return Conventions(FitConfig.n_col, FitConfig.c_col, False,
                               "FitConfig's default: no run's grid.json records the conventions (the sweep was "
                               "launched before they were recorded)")
        (n_col, c_col), dirs = found.popitem()
        bad = [f"n_col={n_col!r} (use one of {N_COLS})"] if n_col not in N_COLS else []
        bad += [f"c_col={c_col!r} (use one of {C_COLS})"] if c_col not in C_COLS else []
        if bad:
            raise ConventionsError(f"{dirs[0]}/grid.json: {', '.join(bad)}: fix the file, or override with explicit "
                                   "n_col and c_col (report: --n-col and --c-col)")
        missing = len(self.grid_conventions) - len(dirs)
        return Conventions(n_col, c_col, True, "from the sweep's grid.json: the N and C its grid was designed around"
                           + (f"; {missing} run(s) record none" if missing else ""))

    def fit_config(self, n_col: str | None = None, c_col: str | None = None, **kw) -> FitConfig:
        """A FitConfig under the sweep's conventions; an explicit n_col / c_col overrides them, stated in `origin`.
        `kw`: the other FitConfig fields (n_bootstrap, seed, ...)."""
        try:
            conv = self.conventions
        except ConventionsError as e:
            if n_col is None or c_col is None:
                raise
            return FitConfig(n_col=n_col, c_col=c_col, origin=f"override: n_col={n_col}, c_col={c_col} ({e})", **kw)
        changed = [f"{name}={value} instead of the sweep's {base}"
                   for name, value, base in (("n_col", n_col, conv.n_col), ("c_col", c_col, conv.c_col))
                   if value is not None and value != base]
        origin = f"override: {', '.join(changed)} ({conv.note})" if changed else conv.note
        return FitConfig(n_col=n_col or conv.n_col, c_col=c_col or conv.c_col, origin=origin, **kw)

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
        try:
            conv = self.conventions
            lines.append(f"  conventions: N = {conv.n_col}, C = {conv.c_col} ({conv.note})")
        except ConventionsError as e:
            lines.append(f"  conventions: {e}")
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
    (runs/ holding <sweep>/<run_id>/). Hidden directories hold a sweep's machinery (.hydra, .slots, the
    .trunks of cooldown branches, which are not result rows) and are left out."""
    def is_run(p: Path) -> bool:
        return p.is_dir() and not p.name.startswith(".") and (
            (p / "spec.yaml").exists() or (p / "result.json").exists())

    found = []
    for child in sorted(sweep_dir.iterdir()):
        if is_run(child):
            found.append(child)
        elif child.is_dir() and not child.name.startswith("."):
            found += [g for g in sorted(child.iterdir()) if is_run(g)]
    return found


def is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def read_curve(path: Path, run_id: str, problems: list[str] | None = None) -> list[dict]:
    """The eval lines of one metrics.jsonl (harness.rundir.read_metrics: torn and garbage lines skipped); eval
    lines without a numeric step, tokens and loss are skipped too and counted with them in `problems`."""
    return [{"run_id": run_id, **curve_point(row)}
            for row in read_metrics(path, kind="eval", problems=problems, valid=lambda row: valid_point(curve_point(row)))]


def curve_point(row: dict) -> dict:
    """step, tokens, flops and the loss columns of one eval line, plus curve_tokens: the held-out set the losses
    are on (0: the run's full eval set). A run with eval.curve_tokens scored its evals before the last on a prefix
    subset (curve_loss* keys alone) and its last on both: its points take the subset's losses throughout, so one
    curve is on one token set (its final point is then not the runs table's loss, which is the full set's)."""
    point = {k: v for k, v in row.items() if k in CURVE_KEYS[1:]}
    if any(k.startswith("curve_loss") for k in row):
        point.update({k[len("curve_"):]: v for k, v in row.items() if k.startswith("curve_loss")})
        point["curve_tokens"] = row.get("curve_tokens")
    else:
        point.update({k: v for k, v in row.items() if k.startswith("loss")})
        point["curve_tokens"] = 0
    return point


def valid_point(point: dict) -> bool:
    return all(is_number(point.get(k)) for k in ("step", "tokens", "loss")) and all(
        is_number(v) or v is None for v in point.values())


DOWNSTREAM_PREFIXES = ("acc_", "se_", "chance_", "n_items_", "bpb_")   # harness.downstream's result columns


def join_downstream(row: dict, path: Path, problems: list[str]) -> None:
    """Add the scores of a run's downstream.json (written after the run by `python -m harness.downstream --write`)
    to its row, unless the run scored them itself (eval=downstream: result.json's own columns win). The file
    must be this run's, at its final step; else it is named in `problems` and left out. The row says where its
    scores came from: downstream_source "post-hoc" (absent when the run scored them itself)."""
    if any(k.startswith("acc_") for k in row) or not path.is_file():
        return
    scores, problem = read_json_object(path)
    if scores is None:
        problems.append(f"{path}: {problem}: left out; rerun python -m harness.downstream --write")
        return
    if scores.get("run_id") != row["run_id"] or scores.get("step") != row.get("steps"):
        problems.append(f"{path}: not run {row['run_id']} at its final step {row.get('steps')} (it says "
                        f"{scores.get('run_id')} at step {scores.get('step')}): left out")
        return
    row.update({k: v for k, v in scores.items() if k.startswith(DOWNSTREAM_PREFIXES)})
    row["downstream_source"] = "post-hoc"


def grid_meta(run_dir: Path) -> dict:
    """{"budget", "label", "n_col", "c_col", "grid", "scale"} from the run's grid.json ({} for runs launched before
    it existed; the keys added later are None for runs launched before they were recorded)."""
    try:
        meta = json.loads((run_dir / "grid.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {k: meta.get(k) for k in ("budget", "label", "n_col", "c_col", "grid", "scale")}


def sweep_dir_problem(sweep_dir: str | Path) -> str | None:
    """Why `sweep_dir` holds nothing to analyse (None when it has at least one finished run)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        return f"sweep_dir={sweep_dir}: not a directory (expected runs/<sweep>/ or runs/)"
    found = run_dirs(sweep_dir)
    if not found:
        return (f"sweep_dir={sweep_dir}: no run directories in it (expected runs/<sweep>/<run_id>/spec.yaml): "
                "is this the sweep's directory? `python sweep.py +grid=<name>` prints it")
    if not any((d / "result.json").exists() for d in found):
        return (f"sweep_dir={sweep_dir}: none of its {len(found)} run(s) has finished (no result.json): "
                "see `python sweep.py +grid=<name> sweep.status=true`")
    return None


def load(sweep_dir: str | Path, allow_mixed_tokenizers: bool = False) -> Results:
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep_dir={sweep_dir}: not a directory (expected runs/<sweep>/ or runs/)")
    rows, curves, skipped, problems, conventions = [], [], [], [], {}
    for d in run_dirs(sweep_dir):
        result = d / "result.json"
        if not result.exists():
            skipped.append((str(d), "no result.json (unfinished or failed)"))
            continue
        try:
            row = json.loads(result.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            skipped.append((str(d), f"unreadable result.json: {e}"))
            continue
        if not isinstance(row, dict) or not is_number(row.get("loss")):
            skipped.append((str(d), "result.json is not a runs-table row (no numeric loss)"))
            continue
        row.setdefault("run_id", d.name)
        join_downstream(row, d / DOWNSTREAM_FILE, problems)
        meta = grid_meta(d)
        conventions[str(d)] = (meta["n_col"], meta["c_col"]) if meta.get("n_col") and meta.get("c_col") else None
        for key in ("budget", "label", "grid", "scale"):   # the grid's metadata, where the sweep wrote it
            if meta.get(key) is not None:
                row.setdefault(key, meta[key])
        rows.append(row)
        curves += read_curve(d / "metrics.jsonl", row["run_id"], problems)
    for problem in problems:
        warnings.warn(problem, stacklevel=2)
    if skipped:
        warnings.warn(f"{sweep_dir}: skipped {len(skipped)} run dir(s) without a usable result.json "
                      f"(see Results.skipped)", stacklevel=2)
    runs = pd.DataFrame(rows)
    if {"params_active_nonembedding", "vocab_size", "d_model"} <= set(runs.columns):
        runs["params_compute"] = params_compute(runs["params_active_nonembedding"], runs["vocab_size"], runs["d_model"])
    if not allow_mixed_tokenizers and "tokenizer_sha256" in runs and runs["tokenizer_sha256"].nunique() > 1:
        groups = runs.groupby("tokenizer_sha256")["run_id"].apply(list).to_dict()
        raise ValueError(f"{sweep_dir}: runs were trained with {len(groups)} different tokenizers (the corpus was "
                         "rebuilt between them), so their losses are not comparable in one fit: "
                         + "; ".join(f"{k[:12]}: {len(v)} runs (e.g. {v[0]})" for k, v in groups.items())
                         + ". Load each group's sweep separately, or pass allow_mixed_tokenizers=True.")
    curve_df = pd.DataFrame(curves, columns=None if curves else list(CURVE_KEYS) + ["loss", "curve_tokens"])
    if len(curve_df):
        curve_df = curve_df.sort_values(["run_id", "step"], ignore_index=True)
    return Results(runs=runs, curves=curve_df, skipped=skipped, grid_conventions=conventions)


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
