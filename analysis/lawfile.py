"""laws.json: a sweep's fitted laws in a versioned file, reused without refitting.

    content(sweep, config, fits, failures, verdict)  the file's content from fitted laws (a dict, schema SCHEMA)
    write(path, content)                             atomically; the report writes <sweep>/report/laws.json
    load(path) -> Laws                               validated: every problem named by its key, with the fix
    (analysis.refit.resolve(path) -> (Laws, how): a laws.json, a report dir, or a sweep dir, refitted if need be)

Approach 3 is kept whole (parameters, their intervals, the bootstrap samples, k, fitted ranges), so recommendations
come with intervals from the file alone; approaches 1 and 2 keep their power laws N_opt = k C^a, D_opt = k' C^b with
their bootstrap samples of (log k, a). `verdict` is the judgement of how well the runs determine the law (a dict
with a `level` among LEVELS), or null when none was made.

This module imports numpy and the numpy-only parts of analysis.laws.common, never pandas, scipy or matplotlib, so
that `python -m analysis.recommend laws.json` answers within a second (bench/README.md).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analysis.laws.common import C_COLS, N_COLS, PARAMS, FitConfig, PowerLaw, SampledLaw

SCHEMA = "scalemix.laws/1"
LEVELS = ("determined", "weakly determined", "not determined")
FORM = "L(N, D) = E + A / N^alpha + B / D^beta"
APPROACHES = {"approach 1": "approach1", "approach 2": "approach2"}    # fit name -> key in the file
REFIT = "python -m analysis.report <sweep_dir>"


class LawFileError(ValueError):
    """A laws.json that this code cannot use: each problem names its key, and the message says how to fix it."""


# ---------------------------------------------------------------- the laws, as loaded
@dataclass
class Surface(SampledLaw):
    """Approach 3's L(N, D) as saved: what recommendations need (analysis.recommend takes it as it takes a fitted
    LossSurface), without the residual table or the optimiser's state: SampledLaw's fields alone."""

    approach = "approach 3"


@dataclass
class PowerLaws:
    """Approach 1's or 2's compute-optimal N_opt(C) and D_opt(C) as saved."""
    approach: str
    n_opt: PowerLaw
    d_opt: PowerLaw
    config: FitConfig
    c_range: tuple[float, float]
    n_runs: int
    warnings: list[str] = field(default_factory=list)


@dataclass
class Laws:
    """A loaded laws.json."""
    path: Path
    sweep: str
    config: FitConfig                          # the conventions the laws were fitted under (n_bootstrap, seed too)
    surface: Surface | None                    # approach 3; None when it could not be fitted (see failures)
    power: dict[str, PowerLaws]                # "approach 1", "approach 2" where fitted
    verdict: dict | None
    failures: dict[str, str]
    warnings: list[str]

    @property
    def fits(self) -> dict[str, object]:
        out: dict[str, object] = dict(self.power)
        if self.surface is not None:
            out["approach 3"] = self.surface
        return out


# ---------------------------------------------------------------- writing
def _interval_or_none(lo_hi) -> list[float] | None:
    lo, hi = (float(x) for x in lo_hi)
    return [lo, hi] if math.isfinite(lo) and math.isfinite(hi) else None


def _finite_rows(samples, width: int) -> np.ndarray:
    s = np.asarray(samples, float).reshape(-1, width)
    return s[np.isfinite(s).all(axis=1)]


def _surface_content(a3) -> dict:
    return {"form": FORM, "params": {p: float(getattr(a3, p)) for p in PARAMS},
            "intervals": {p: _interval_or_none(a3.ci(p)) for p in PARAMS + ("a", "b")},
            "exponents": {"a": float(a3.a), "b": float(a3.b)}, "k": float(a3.k), "n_runs": int(a3.n_runs),
            "ranges": {"N": [float(x) for x in a3.n_range], "D": [float(x) for x in a3.d_range],
                       "C": [float(x) for x in a3.c_range]},
            "converged": bool(a3.converged), "warnings": list(a3.warnings),
            "samples_columns": list(PARAMS), "samples": _finite_rows(a3.samples, 5).tolist()}


def _power_content(fit) -> dict:
    def one(law: PowerLaw) -> dict:
        return {"k": float(law.k), "a": float(law.a), "k_interval": _interval_or_none(law.k_ci),
                "a_interval": _interval_or_none(law.a_ci), "a_interval_basic": bool(law.basic),
                "samples": _finite_rows(law.samples, 2).tolist()}
    return {"n_opt": one(fit.n_opt), "d_opt": one(fit.d_opt), "c_range": [float(x) for x in fit.c_range],
            "n_runs": int(fit.n_runs), "warnings": list(fit.warnings), "samples_columns": ["log_k", "a"]}


def content(sweep: str, config: FitConfig, fits: dict[str, object], failures: dict[str, str] | None = None,
            verdict: dict | None = None) -> dict:
    """The laws.json content for a sweep's fits ({"approach 1": ComputeOptimal, ..., "approach 3": LossSurface}).
    A fit whose exponents are not positive is not a usable law: it is left out, with the reason in `failures`."""
    failures = dict(failures or {})
    out = {"schema": SCHEMA, "sweep": str(sweep),
           "conventions": {"n_col": config.n_col, "c_col": config.c_col, "ci_level": config.ci_level,
                           "n_bootstrap": config.n_bootstrap, "seed": config.seed, "origin": config.origin},
           "verdict": jsonable(verdict), "approach1": None, "approach2": None, "approach3": None, "failures": failures,
           "warnings": sorted({w for f in fits.values() for w in getattr(f, "warnings", [])})}
    for name, fit in fits.items():
        if name == "approach 3":
            bad = {p: getattr(fit, p) for p in ("alpha", "beta") if not getattr(fit, p) > 0}
            if bad:
                failures[name] = f"fitted exponent(s) {bad} not > 0: not a usable law"
            else:
                out["approach3"] = _surface_content(fit)
        elif name == "downstream":   # optional: sweeps evaluated with eval.downstream (analysis/laws/downstream.py)
            entry = jsonable(fit.to_content())
            if bad := _downstream_errors({"downstream": entry}):   # e.g. an exponent fitted to 0: not a usable law
                failures[name] = "not a usable law: " + "; ".join(bad)
            else:
                out["downstream"] = entry
        elif name in APPROACHES:
            if fit.n_opt.a > 0 and fit.d_opt.a > 0:
                out[APPROACHES[name]] = _power_content(fit)
            else:
                failures[name] = f"N_opt exponent {fit.n_opt.a:.3g}, D_opt exponent {fit.d_opt.a:.3g}: not both > 0"
    errs = check(out)
    if errs:      # a bug here, not the user's: say what would have been written
        raise LawFileError("laws.json content is invalid:\n  - " + "\n  - ".join(errs))
    return out


def dumps(data: dict) -> str:
    """JSON with one bootstrap sample per line (a thousand rows stay readable, not five thousand lines)."""
    rows: dict[str, list] = {}

    def stash(d: dict | None, key: str) -> None:
        if d is not None and d.get("samples") is not None:
            rows[key] = d["samples"]
            d["samples"] = key
    data = json.loads(json.dumps(data, allow_nan=False))   # a copy, and NaN refused (not valid JSON)
    stash(data.get("approach3"), "@samples:approach3")
    for name in APPROACHES.values():
        for law in ("n_opt", "d_opt"):
            stash((data.get(name) or {}).get(law), f"@samples:{name}.{law}")
    text = json.dumps(data, indent=1)
    for key, value in rows.items():
        body = ",\n".join("   " + json.dumps(r) for r in value)
        text = text.replace(json.dumps(key), "[\n" + body + "\n  ]" if value else "[]", 1)
    return text + "\n"


def write(path: str | Path, data: dict) -> Path:
    """Write atomically: a reader never sees half a file (temp name, fsync, rename)."""
    from harness.rundir import atomic_write_bytes
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, dumps(data).encode())
    return path


# ---------------------------------------------------------------- checking
def _num(errs: list[str], d: dict, key: str, where: str, positive: bool = False) -> None:
    v = d.get(key) if isinstance(d, dict) else None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        errs.append(f"{where}.{key}: {'missing' if v is None else repr(v)}: must be a number")
    elif not math.isfinite(v):
        errs.append(f"{where}.{key} = {v}: must be finite")
    elif positive and not v > 0:
        errs.append(f"{where}.{key} = {v}: must be > 0")


def _pair(errs: list[str], v, where: str, positive: bool = False, nullable: bool = False) -> None:
    if v is None and nullable:
        return
    ok = (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                      and math.isfinite(x) for x in v))
    if not ok:
        errs.append(f"{where} = {v!r}: must be [low, high], two finite numbers" + (" or null" if nullable else ""))
    elif v[0] > v[1]:
        errs.append(f"{where} = {v}: low > high")
    elif positive and not v[0] > 0:
        errs.append(f"{where} = {v}: must be > 0")


def _samples(errs: list[str], v, width: int, where: str) -> None:
    if not isinstance(v, list):
        errs.append(f"{where}: {type(v).__name__}: must be a list of [{width} numbers] rows")
        return
    try:
        a = np.asarray(v, float)
    except (TypeError, ValueError):
        errs.append(f"{where}: rows must each be {width} numbers")
        return
    if len(v) and (a.ndim != 2 or a.shape[1] != width):
        errs.append(f"{where}: shape {list(a.shape)}: must be [n, {width}]")
    elif not np.isfinite(a).all():
        errs.append(f"{where}: {int((~np.isfinite(a)).sum())} non-finite value(s)")


def _mapping(errs: list[str], data: dict, key: str, where: str, nullable: bool = False) -> dict | None:
    v = data.get(key)
    if v is None and nullable and key in data:
        return None
    if not isinstance(v, dict):
        errs.append(f"{where}{key}: {'missing' if v is None else type(v).__name__}: must be an object"
                    + (" or null" if nullable else ""))
        return None
    return v


def check(data) -> list[str]:
    """Every problem with a laws.json's content, each naming its key; [] when it is usable."""
    if not isinstance(data, dict):
        return [f"top level: {type(data).__name__}: must be a JSON object"]
    schema = data.get("schema")
    if schema != SCHEMA:
        if isinstance(schema, str) and schema.startswith("scalemix.laws/"):
            return [f"schema = {schema!r}: written by another version of scalemix (this one reads {SCHEMA!r})"]
        return [f"schema = {schema!r}: not a scalemix laws file (expected {SCHEMA!r})"]
    errs: list[str] = []
    if not isinstance(data.get("sweep"), str):
        errs.append("sweep: must be the sweep's name (a string)")
    conv = _mapping(errs, data, "conventions", "")
    if conv is not None:
        if conv.get("n_col") not in N_COLS:
            errs.append(f"conventions.n_col = {conv.get('n_col')!r}: must be one of {N_COLS}")
        if conv.get("c_col") not in C_COLS:
            errs.append(f"conventions.c_col = {conv.get('c_col')!r}: must be one of {C_COLS}")
        _num(errs, conv, "ci_level", "conventions", positive=True)
        if isinstance(conv.get("ci_level"), (int, float)) and not conv["ci_level"] < 1:
            errs.append(f"conventions.ci_level = {conv['ci_level']}: must be in (0, 1)")
    verdict = _mapping(errs, data, "verdict", "", nullable=True)
    if verdict is not None and verdict.get("level") not in LEVELS:
        errs.append(f"verdict.level = {verdict.get('level')!r}: must be one of {LEVELS}")
    failures = _mapping(errs, data, "failures", "")
    if failures is not None and not all(isinstance(v, str) for v in failures.values()):
        errs.append("failures: must map a fit's name to the reason it was not made (strings)")
    if not isinstance(data.get("warnings"), list):
        errs.append("warnings: must be a list of strings")
    a3 = _mapping(errs, data, "approach3", "", nullable=True)
    if a3 is not None:
        w = "approach3"
        if a3.get("form") != FORM:
            errs.append(f"{w}.form = {a3.get('form')!r}: this code reads only {FORM!r}")
        params = _mapping(errs, a3, "params", f"{w}.")
        for p in PARAMS if params is not None else ():
            _num(errs, params, p, f"{w}.params", positive=True)    # E, A, B > 0 and the exponents alpha, beta > 0
        _num(errs, a3, "k", w, positive=True)
        _num(errs, a3, "n_runs", w, positive=True)
        ranges = _mapping(errs, a3, "ranges", f"{w}.")
        for r in ("N", "D", "C") if ranges is not None else ():
            _pair(errs, ranges.get(r), f"{w}.ranges.{r}", positive=True)
        intervals = _mapping(errs, a3, "intervals", f"{w}.")
        for p in PARAMS + ("a", "b") if intervals is not None else ():
            _pair(errs, intervals.get(p), f"{w}.intervals.{p}", nullable=True)
        if not isinstance(a3.get("converged"), bool):
            errs.append(f"{w}.converged: must be true or false")
        _samples(errs, a3.get("samples"), 5, f"{w}.samples")
    for name in APPROACHES.values():
        fit = _mapping(errs, data, name, "", nullable=True)
        if fit is None:
            continue
        for law in ("n_opt", "d_opt"):
            d = _mapping(errs, fit, law, f"{name}.")
            if d is not None:
                _num(errs, d, "k", f"{name}.{law}", positive=True)
                _num(errs, d, "a", f"{name}.{law}", positive=True)
                _pair(errs, d.get("a_interval"), f"{name}.{law}.a_interval", nullable=True)
                if not isinstance(d.get("a_interval_basic", False), bool):
                    errs.append(f"{name}.{law}.a_interval_basic: must be true or false (absent: false)")
                _samples(errs, d.get("samples"), 2, f"{name}.{law}.samples")
        _pair(errs, fit.get("c_range"), f"{name}.c_range", positive=True)
        _num(errs, fit, "n_runs", name, positive=True)
    errs += _downstream_errors(data)
    return errs


DOWNSTREAM_PARAMS = {"nd": ("E", "A", "B", "alpha", "beta"), "c": ("E", "A", "alpha")}
# step 2's scales (analysis.laws.downstream.Sigmoid; a test checks they agree); absent: "linear", the only one
# before session 9
DOWNSTREAM_ACC_SCALES = ("log", "linear")


def _downstream_errors(data: dict) -> list[str]:
    """The optional "downstream" entry (added within schema scalemix.laws/1: files without it stay valid, and
    readers that predate it ignore it): per task, the task-loss law and the accuracy sigmoid."""
    if data.get("downstream") is None:
        return []
    errs: list[str] = []
    ds = _mapping(errs, data, "downstream", "")
    tasks = _mapping(errs, ds, "tasks", "downstream.") if ds is not None else None
    for task, law in (tasks or {}).items():
        w = f"downstream.tasks.{task}"
        if not isinstance(law, dict):
            errs.append(f"{w}: must be an object")
            continue
        form = law.get("loss_form")
        if form not in DOWNSTREAM_PARAMS:
            errs.append(f"{w}.loss_form = {form!r}: must be one of {tuple(DOWNSTREAM_PARAMS)}")
        loss = _mapping(errs, law, "loss_params", f"{w}.")
        for p in DOWNSTREAM_PARAMS.get(form, ()) if loss is not None else ():
            _num(errs, loss, p, f"{w}.loss_params", positive=True)
        if (scale := law.get("acc_scale", "linear")) not in DOWNSTREAM_ACC_SCALES:
            errs.append(f"{w}.acc_scale = {scale!r}: must be one of {DOWNSTREAM_ACC_SCALES}")
        no_signal = law.get("no_signal")
        if no_signal is not None and not (isinstance(no_signal, str) and no_signal):
            errs.append(f"{w}.no_signal = {no_signal!r}: must be null or the reason the accuracy is not predicted")
        if no_signal and law.get("acc_params") is None:   # no signal: the task loss only, no sigmoid (by design)
            acc = None
        else:
            acc = _mapping(errs, law, "acc_params", f"{w}.")
        for p in ("chance", "top", "k", "L0") if acc is not None else ():
            _num(errs, acc, p, f"{w}.acc_params", positive=p == "k")
        _num(errs, law, "n_runs", w, positive=True)
    return errs


# ---------------------------------------------------------------- loading
def from_content(data: dict, path: str | Path = "laws.json") -> Laws:
    """Laws from a laws.json's content; LawFileError naming every problem if it is not usable."""
    errs = check(data)
    if errs:
        raise LawFileError(f"{path}: not a usable laws file:\n  - " + "\n  - ".join(errs)
                           + f"\nFix: rewrite it from the sweep's runs with `{REFIT}` (writes <sweep_dir>/report/"
                             "laws.json), or pass the sweep directory itself")
    c = data["conventions"]
    cfg = FitConfig(n_col=c["n_col"], c_col=c["c_col"], ci_level=float(c["ci_level"]),
                    n_bootstrap=int(c.get("n_bootstrap") or 0), seed=int(c.get("seed") or 0),
                    origin=str(c.get("origin", "")))
    surface = None
    if (a3 := data["approach3"]) is not None:
        r = a3["ranges"]
        surface = Surface(**{p: float(a3["params"][p]) for p in PARAMS}, k=float(a3["k"]), config=cfg,
                          n_runs=int(a3["n_runs"]), n_range=tuple(r["N"]), d_range=tuple(r["D"]),
                          c_range=tuple(r["C"]), converged=a3["converged"],
                          samples=np.asarray(a3["samples"], float).reshape(-1, 5),
                          warnings=list(a3.get("warnings", [])))
    power = {}
    for name, key in APPROACHES.items():
        if (fit := data[key]) is not None:
            laws = [PowerLaw(k=float(fit[w]["k"]), a=float(fit[w]["a"]), ci_level=cfg.ci_level,
                             samples=np.asarray(fit[w]["samples"], float).reshape(-1, 2),
                             basic=fit[w].get("a_interval_basic") is True) for w in ("n_opt", "d_opt")]
            power[name] = PowerLaws(name, *laws, config=cfg, c_range=tuple(fit["c_range"]), n_runs=int(fit["n_runs"]),
                                    warnings=list(fit.get("warnings", [])))
    return Laws(path=Path(path), sweep=data["sweep"], config=cfg, surface=surface, power=power,
                verdict=data["verdict"], failures=dict(data["failures"]), warnings=list(data["warnings"]))


def load(path: str | Path) -> Laws:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LawFileError(f"{path}: no such file; `{REFIT}` writes <sweep_dir>/report/laws.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LawFileError(f"{path}: not JSON ({e}); rewrite it with `{REFIT}`") from None
    return from_content(data, path)


def find(path: str | Path) -> Path | None:
    """The laws.json a path means: the file itself, <dir>/laws.json (a report dir), <dir>/report/laws.json (a sweep)."""
    p = Path(path)
    if p.is_file():
        return p
    for candidate in (p / "laws.json", p / "report" / "laws.json"):
        if candidate.is_file():
            return candidate
    return None


def stale(found: Path, sweep_dir: Path) -> str:
    """A note when runs of `sweep_dir` finished after `found` was written ("" when none did, or not a sweep dir)."""
    if not sweep_dir.is_dir() or found.parent.parent != sweep_dir:
        return ""
    written = found.stat().st_mtime
    newer = sum(1 for r in sweep_dir.glob("*/result.json") if r.stat().st_mtime > written)
    return (f"; {newer} run(s) finished after it was written: rerun `python -m analysis.report {sweep_dir}` to include "
            "them" if newer else "")


def verdict_of(ctx) -> dict | None:
    """The report context's verdict as a dict, where one was judged (an object with to_dict(), or a dict)."""
    v = getattr(ctx, "verdict", None)
    return v.to_dict() if hasattr(v, "to_dict") else v


def save_for_report(out_dir: str | Path, sweep: str, ctx) -> Path:
    """<out_dir>/laws.json for a report's context (its conventions, fits, failures and verdict)."""
    return write(Path(out_dir) / "laws.json", content(sweep, ctx.config, ctx.fits, ctx.failures, verdict_of(ctx)))


def jsonable(x):
    """Plain JSON values for results holding numpy scalars, arrays, tuples and NaN (NaN and +-inf become null: JSON
    has neither)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in x]
    if isinstance(x, (np.generic, float)):
        x = x.item() if isinstance(x, np.generic) else x
        return x if not isinstance(x, float) or math.isfinite(x) else None
    if isinstance(x, Path):
        return str(x)
    return x
