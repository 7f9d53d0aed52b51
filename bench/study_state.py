"""The GPU study's state between device calls: its run directories packed into one tarball and restored from it.

A device call carries at most 64 MiB in and brings at most 16 MiB per file back, and a machine that went cold has
lost everything it wrote; so each call of bench/gpu_study.sh ends by packing what the next call needs:

    pack     every run directory of the given sweeps: spec.yaml, grid.json, runtime.yaml, metrics.jsonl, result.json
             (no checkpoints for finished runs), each sweep's report/ if there is one, the call ledger; for an
             unfinished run its latest checkpoint, smallest first while the tarball stays under --max-mib (a run
             whose checkpoint does not fit restarts from step 0 on a cold machine: pack says which, and how far
             it had got)
    restore  merges a tarball into the run root without losing newer local state (a warm machine still has its
             own run directories): a run is taken from the tarball when it is missing locally, when only the
             tarball's copy is finished, or when both are unfinished and the tarball's checkpoint is later
    progress runs done / planned per sweep, unfinished runs' steps, and the GPU-seconds the ledger records
    ledger   appends one call's line ({phase, start, wall_s, sweep exit code}) to the ledger
    supersede  moves the run directories a sweep's plan no longer holds to <sweep>-superseded/ (kept, not read by
             the sweep's analysis)

    python bench/study_state.py restore .study/runs.tgz --root runs
    python bench/study_state.py pack --root runs --sweeps study-lr study study-big --out $OUT/study.tgz
    python bench/study_state.py progress --root runs --sweeps study-lr study --planned study=36

The ledger lives at <root>/.study_ledger.jsonl and travels inside the tarball.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

RUN_FILES = ("spec.yaml", "grid.json", "runtime.yaml", "metrics.jsonl", "result.json", "downstream.json")
LEDGER = ".study_ledger.jsonl"
STEP = re.compile(r"^step_(\d{8})")
MAX_MIB = 15.0          # files back from the device machine: at most 16 MiB each (/work/.library/device/README.md)


def latest_checkpoint(run: Path) -> tuple[int, list[Path]]:
    """(step, paths) of the run's latest complete checkpoint: a .pt file with its .sha256 sidecar (harness/
    checkpoint.py writes the sidecar last) or a DCP directory step_<n>/ (harness/dcp.py renames it into place
    whole); (-1, []) when there is none."""
    ckpt = run / "ckpt"
    best: tuple[int, list[Path]] = (-1, [])
    if not ckpt.is_dir():
        return best
    for p in ckpt.iterdir():
        m = STEP.match(p.name)
        if not m:
            continue
        step = int(m.group(1))
        if p.suffix == ".pt" and (p.with_suffix(".sha256")).is_file():
            paths = [p, p.with_suffix(".sha256")]
        elif p.is_dir() and p.name == f"step_{m.group(1)}":
            paths = [p]
        else:
            continue
        if step > best[0]:
            best = (step, paths)
    return best


def size(paths: list[Path]) -> int:
    return sum(f.stat().st_size for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())


def run_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(d for d in sweep_dir.iterdir() if (d / "spec.yaml").is_file()) if sweep_dir.is_dir() else []


def steps_of(run: Path) -> int | None:
    """The run's planned steps (tokens / batch_tokens from spec.yaml), None if unreadable."""
    try:
        text = (run / "spec.yaml").read_text()
        tokens = int(re.search(r"^tokens: (\d+)", text, re.M).group(1))
        batch = int(re.search(r"^batch_tokens: (\d+)", text, re.M).group(1))
        return tokens // batch
    except (AttributeError, OSError, ValueError):
        return None


def pack(root: Path, sweeps: list[str], out: Path, max_mib: float = MAX_MIB) -> dict:
    """Write the tarball (see the module docstring); return what went in and what was left out."""
    small: list[tuple[Path, str]] = []
    unfinished: list[tuple[int, Path, int, list[Path]]] = []      # (bytes, run, step, paths)
    for sweep in sweeps:
        sweep_dir = root / sweep
        for run in run_dirs(sweep_dir):
            small += [(run / f, f"{sweep}/{run.name}/{f}") for f in RUN_FILES if (run / f).is_file()]
            if not (run / "result.json").is_file():
                step, paths = latest_checkpoint(run)
                if paths:
                    unfinished.append((size(paths), run, step, paths))
        report = sweep_dir / "report"
        if report.is_dir():
            small += [(f, f"{sweep}/report/{f.relative_to(report)}") for f in sorted(report.rglob("*")) if f.is_file()]
    if (root / LEDGER).is_file():
        small.append((root / LEDGER, LEDGER))
    out.parent.mkdir(parents=True, exist_ok=True)
    budget = int(max_mib * 2**20)
    carried, dropped = [], []
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
        for path, arc in small:
            tar.add(path, arcname=arc, recursive=False)
        tar.fileobj.flush()
        used = tmp.stat().st_size
        for nbytes, run, step, paths in sorted(unfinished, key=lambda x: x[0]):
            label = f"{run.parent.name}/{run.name}"
            if used + nbytes > budget:      # checkpoints hardly compress: count their raw bytes
                dropped.append({"run": label, "step": step, "steps": steps_of(run), "mib": round(nbytes / 2**20, 1)})
                continue
            for p in paths:
                tar.add(p, arcname=f"{run.parent.name}/{run.name}/ckpt/{p.name}")
            used += nbytes
            carried.append({"run": label, "step": step, "steps": steps_of(run), "mib": round(nbytes / 2**20, 1)})
    tmp.replace(out)
    return {"path": str(out), "mib": round(out.stat().st_size / 2**20, 2), "files": len(small),
            "checkpoints": carried, "checkpoints_left_out": dropped}


def restore(tarball: Path, root: Path) -> dict:
    """Merge the tarball's run directories into root (see the module docstring); return what was taken."""
    taken, kept = [], []
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp_, tarfile.open(tarball) as tar:
        tmp = Path(tmp_)
        tar.extractall(tmp, filter="data")
        for sweep_dir in sorted(p for p in tmp.iterdir() if p.is_dir()):
            for run in sorted(p for p in sweep_dir.iterdir() if p.is_dir()):
                local = root / sweep_dir.name / run.name
                if run.name == "report":
                    if not local.exists():
                        local.parent.mkdir(parents=True, exist_ok=True)
                        shutil.move(str(run), local)
                    continue
                theirs_done, ours_done = (run / "result.json").is_file(), (local / "result.json").is_file()
                take = (not local.exists() or (theirs_done and not ours_done)
                        or (not theirs_done and not ours_done
                            and latest_checkpoint(run)[0] > latest_checkpoint(local)[0]))
                if take:
                    if local.exists():
                        shutil.rmtree(local)
                    local.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(run), local)
                    taken.append(f"{sweep_dir.name}/{run.name}")
                else:
                    kept.append(f"{sweep_dir.name}/{run.name}")
        ledger = tmp / LEDGER
        if ledger.is_file() and (not (root / LEDGER).is_file()
                                 or len(ledger.read_text()) > len((root / LEDGER).read_text())):
            shutil.copyfile(ledger, root / LEDGER)
    return {"taken": len(taken), "kept_local": len(kept)}


def ledger_add(root: Path, entry: dict) -> None:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LEDGER, "a") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")


def progress(root: Path, sweeps: list[str], planned: dict[str, int]) -> list[str]:
    lines = []
    for sweep in sweeps:
        runs = run_dirs(root / sweep)
        done = sum((r / "result.json").is_file() for r in runs)
        total = planned.get(sweep, len(runs))
        partial = []
        for r in runs:
            if not (r / "result.json").is_file():
                step = latest_checkpoint(r)[0]
                partial.append(f"{r.name} at step {max(step, 0)}/{steps_of(r)}")
        lines.append(f"{sweep}: {done}/{total} runs done" + (f"; unfinished: {', '.join(partial)}" if partial else ""))
    calls = [json.loads(x) for x in (root / LEDGER).read_text().splitlines()] if (root / LEDGER).is_file() else []
    spent = sum(c.get("wall_s", 0) for c in calls)
    by_phase: dict[str, float] = {}
    for c in calls:
        by_phase[c["phase"]] = by_phase.get(c["phase"], 0) + c.get("wall_s", 0)
    lines.append(f"GPU-seconds spent in study calls: {spent:.0f} over {len(calls)} call(s) ("
                 + ", ".join(f"{k} {v:.0f}" for k, v in by_phase.items()) + ")")
    return lines


PLAN_ROW = re.compile(r"^([0-9a-f]{12})\s")


def supersede(root: Path, sweep: str, plan_text: str) -> list[str]:
    """Move the run directories of root/sweep that the plan no longer holds (a changed lr law gave their sizes
    other lrs, hence other run ids) to root/<sweep>-superseded/, where the analysis of the sweep does not read
    them and they are kept (finished ones measured a size at another lr). Returns the moved run ids."""
    keep = {m.group(1) for line in plan_text.splitlines() if (m := PLAN_ROW.match(line))}
    if not keep:
        raise ValueError("the plan lists no run ids: give the dry run's output (python sweep.py ... "
                         "sweep.dry_run=true)")
    moved = []
    for run in run_dirs(root / sweep):
        if run.name not in keep:
            dest = root / f"{sweep}-superseded" / run.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                shutil.rmtree(dest)
            run.rename(dest)
            moved.append(run.name)
    return moved


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack")
    a.add_argument("--root", type=Path, default=Path("runs"))
    a.add_argument("--sweeps", nargs="+", required=True)
    a.add_argument("--out", type=Path, required=True)
    a.add_argument("--max-mib", type=float, default=MAX_MIB)
    b = sub.add_parser("restore")
    b.add_argument("tarball", type=Path)
    b.add_argument("--root", type=Path, default=Path("runs"))
    c = sub.add_parser("progress")
    c.add_argument("--root", type=Path, default=Path("runs"))
    c.add_argument("--sweeps", nargs="+", required=True)
    c.add_argument("--planned", nargs="*", default=[], help="sweep=runs planned, e.g. study=36")
    f = sub.add_parser("supersede")
    f.add_argument("--root", type=Path, default=Path("runs"))
    f.add_argument("--sweep", required=True)
    f.add_argument("--plan", type=Path, required=True, help="the sweep's dry-run output")
    e = sub.add_parser("ledger")
    e.add_argument("--root", type=Path, default=Path("runs"))
    e.add_argument("--phase", required=True)
    e.add_argument("--start", type=float, required=True, help="the call's start, seconds since the epoch")
    e.add_argument("--rc", type=int, required=True, help="the phase's sweep exit code")
    args = p.parse_args(argv)
    if args.cmd == "pack":
        info = pack(args.root, args.sweeps, args.out, args.max_mib)
        print(f"packed {info['path']}: {info['mib']} MiB, {info['files']} files, "
              f"{len(info['checkpoints'])} unfinished run(s) with their latest checkpoint")
        for d in info["checkpoints_left_out"]:
            print(f"warning: {d['run']}: its checkpoint (step {d['step']}/{d['steps']}, {d['mib']} MiB) does not fit "
                  f"in --max-mib {args.max_mib:g}: on a cold machine it restarts from step 0 (a warm one keeps it)")
    elif args.cmd == "restore":
        if not args.tarball.is_file():
            print(f"error: {args.tarball} not found: carry the previous call's study.tgz there", file=sys.stderr)
            return 2
        info = restore(args.tarball, args.root)
        print(f"restored from {args.tarball}: {info['taken']} run dir(s) taken, {info['kept_local']} newer or "
              f"equal here kept")
    elif args.cmd == "supersede":
        try:
            moved = supersede(args.root, args.sweep, args.plan.read_text())
        except ValueError as e:
            print(f"error: --plan {args.plan}: {e}", file=sys.stderr)
            return 2
        if moved:
            print(f"{len(moved)} run dir(s) of {args.sweep} not in its plan moved to "
                  f"{args.root / (args.sweep + '-superseded')}: {', '.join(moved)}")
    elif args.cmd == "progress":
        planned = {}
        for item in args.planned:
            name, _, n = item.partition("=")
            if not n.isdigit():
                p.error(f"--planned {item!r}: give sweep=number, e.g. study=36")
            planned[name] = int(n)
        print("\n".join(progress(args.root, args.sweeps, planned)))
    else:
        ledger_add(args.root, {"phase": args.phase, "start": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                          time.gmtime(args.start)),
                               "wall_s": round(time.time() - args.start, 1), "rc": args.rc})
    return 0


if __name__ == "__main__":
    sys.exit(main())
