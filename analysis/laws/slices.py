"""IsoFLOP slices from training curves: a point at each budget a run's curve passes, where that is valid.

A run's eval point at cumulative compute C is an isoFLOP point only if the model there is what a run
trained to exactly C would be, and that depends on the learning-rate schedule (Hägele et al. 2024;
Porian et al. 2024 take slices from constant-lr runs the same way):

    constant  every point after warm-up is at the same (peak) lr, like a constant-lr run stopped there:
              all of them are comparable with each other, final included ("constant" points).
    wsd       points after warm-up and before the cooldown starts are constant-lr points ("constant");
              the end of the cooldown, the run's final point (or a cooldown branch's, itself a run),
              is an annealed point ("annealed"). Points during the cooldown are neither.
    cosine    only the final point ("annealed"): earlier points are mid-decay, at a higher lr than a
              cosine run sized to that budget would have had, so their loss is not that run's loss.

Constant-lr points sit above annealed ones (the cooldown's gain, which varies with N), so the two
kinds are never mixed in one fit: `kind="annealed"` uses the annealed points only, `"constant"` the
constant-lr ones, `"auto"` annealed where any run anneals and constant otherwise. Points inside a
run's curve are interpolated linearly in log tokens between the two eval points that bracket the
budget, both constant-lr; C(t) = C_final * t / tokens_final holds for 6ND and exact FLOPs alike
(FLOPs per token do not change during a run).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.laws.common import FitConfig, FitError, curve_set, usable

KINDS = ("auto", "annealed", "constant")
# The harness's defaults (harness/spec.py OptimSpec), used where the runs table lacks the columns.
DEFAULT_WARMUP_FRAC, DEFAULT_COOLDOWN_FRAC = 0.02, 0.2
PER_DECADE = 3                # budgets per decade where they come from the curves alone
SAME_BUDGET_DEX = 0.02        # a budget this close to a run's own final C is that final point, not a slice


def budgets_of(runs: pd.DataFrame, cfg: FitConfig, gap_dex: float = 0.1) -> np.ndarray:
    """The budgets to slice at, in exact FLOPs (the planner's unit, and approach 2's grouping): the grid's `budget`
    column, else the geometric centre of each cluster of the runs' FLOPs."""
    if "budget" in runs and runs["budget"].notna().all():
        return np.sort(runs["budget"].unique().astype(float))
    lc = np.sort(np.log10(runs["flops"].to_numpy(float)))
    cuts = np.concatenate([[0], np.flatnonzero(np.diff(lc) > gap_dex) + 1, [len(lc)]])
    return np.array([10 ** lc[a:b].mean() for a, b in zip(cuts[:-1], cuts[1:])])


def budgets_along_curves(runs: pd.DataFrame, by_run: dict, cfg: FitConfig) -> np.ndarray:
    """Where the runs end at fewer than 3 budgets (long runs to one budget, sliced): PER_DECADE budgets per decade
    of C, log-spaced, from where a quarter of the runs' curves have begun up to the largest final C."""
    first = [r["flops"] * by_run[r["run_id"]]["tokens"].min() / r["tokens"] for r in runs.to_dict("records")
             if r["run_id"] in by_run and len(by_run[r["run_id"]])]
    lo, hi = np.log10(np.quantile(first, 0.25)) if first else np.inf, np.log10(runs["flops"].max())
    grid = np.arange(np.ceil(lo * PER_DECADE), np.floor(hi * PER_DECADE) + 1) / PER_DECADE
    return 10 ** grid


def constant_stretch(schedule: str, steps: int, warmup_frac: float, cooldown_frac: float) -> tuple[int, int]:
    """[first, last] steps of a run at constant (peak) lr, after warm-up; (1, 0) for none (cosine)."""
    first = int(warmup_frac * steps) + 1                   # eval steps count updates done; warm-up's last is peak
    if schedule == "constant":
        return first, steps
    if schedule == "wsd":
        return first, steps - int(round(cooldown_frac * steps))
    return 1, 0


def isoflop_slices(runs: pd.DataFrame, curves: pd.DataFrame, cfg: FitConfig, gap_dex: float = 0.1,
                   kind: str = "auto", budgets=None) -> pd.DataFrame:
    """A runs-like table of isoFLOP points: each run's final point plus, for constant-lr stretches, a point at
    every budget (exact FLOPs) the curve passes. Columns: run_id, N (cfg.n_col), tokens, cfg.c_col and flops at
    that point, loss, budget, slice (annealed / constant), step (eval step, nan where interpolated), schedule;
    attrs: slice_kind (the kind used) and dropped (points of the other kind)."""
    if kind not in KINDS:
        raise FitError(f"isoFLOP slices: kind={kind!r}: use one of {KINDS}")
    need = [c for c in ("run_id", "schedule", "steps") if c not in runs]
    cneed = [c for c in ("run_id", "tokens", cfg.loss_col) if c not in curves]
    if need or cneed:
        raise FitError(f"isoFLOP slices: the runs table lacks {need} / the curves table lacks {cneed}; slices need "
                       "each run's schedule and steps (result.json) and its eval curve (metrics.jsonl)")
    runs = usable(runs, cfg)
    by_run = {rid: g.sort_values("tokens") for rid, g in curves.groupby("run_id")}
    # runs whose evals scored a curve subset (eval.curve_tokens): every point of theirs, the final one included, on
    # the subset (the final eval reports it beside the full set), so a slice never mixes the two sets
    subset = curve_set(curves[curves["run_id"].isin(set(runs["run_id"]))], "isoFLOP slices") > 0
    if budgets is not None:
        C_all = np.sort(np.asarray(budgets, float))
    elif len(C_all := budgets_of(runs, cfg, gap_dex)) < 3:
        C_all = budgets_along_curves(runs, by_run, cfg)
    rows = []
    for r in runs.to_dict("records"):
        sched = str(r["schedule"])
        annealing = sched in ("cosine", "wsd")
        final = r[cfg.loss_col]
        if subset:
            end = by_run.get(r["run_id"], pd.DataFrame({"step": []}))
            end = end[end["step"] == r["steps"]]
            if not len(end):
                raise FitError(f"isoFLOP slices: run {r['run_id']} scored its curve on a subset (eval.curve_tokens) "
                               "but its metrics.jsonl has no final eval line with that subset's loss: fit without "
                               "slices (slices=False)")
            final = float(end[cfg.loss_col].iloc[-1])
        rows.append({"run_id": r["run_id"], cfg.n_col: r[cfg.n_col], "tokens": r["tokens"], cfg.c_col: r[cfg.c_col],
                     "flops": r["flops"], cfg.loss_col: final, "budget": r.get("budget", np.nan),
                     "slice": "annealed" if annealing else "constant", "step": r["steps"], "schedule": sched})
        first, last = constant_stretch(sched, int(r["steps"]), float(r.get("warmup_frac", DEFAULT_WARMUP_FRAC)),
                                       float(r.get("cooldown_frac", DEFAULT_COOLDOWN_FRAC)))
        cur = by_run.get(r["run_id"])
        if cur is None or last < first or "step" not in cur:
            continue
        cur = cur[(cur["step"] >= first) & (cur["step"] <= last)]
        cur = cur[np.isfinite(cur[cfg.loss_col].to_numpy(float))]
        if len(cur) < 2:
            continue
        lt = np.log(cur["tokens"].to_numpy(float))
        for C in C_all:
            t = C * r["tokens"] / r["flops"]
            if abs(np.log10(C / r["flops"])) < SAME_BUDGET_DEX or not lt[0] <= np.log(t) <= lt[-1]:
                continue
            loss = float(np.interp(np.log(t), lt, cur[cfg.loss_col].to_numpy(float)))
            rows.append({"run_id": r["run_id"], cfg.n_col: r[cfg.n_col], "tokens": t,
                         cfg.c_col: r[cfg.c_col] * t / r["tokens"], "flops": C,
                         cfg.loss_col: loss, "budget": np.nan, "slice": "constant", "step": np.nan,
                         "schedule": sched})
    table = pd.DataFrame(rows)
    # each point's budget: its run's grid budget, else the nearest planned budget (else its own FLOPs)
    fl = table["flops"].to_numpy(float)
    near = np.abs(np.log10(fl)[:, None] - np.log10(C_all)[None]).argmin(1)
    close = np.abs(np.log10(fl / C_all[near])) < gap_dex
    table["budget"] = table["budget"].fillna(pd.Series(np.where(close, C_all[near], fl), index=table.index))
    counts = table["slice"].value_counts()
    use = kind
    if kind == "auto":     # annealed points where they make an isoFLOP analysis (>= 2 budgets), else constant-lr
        ann = np.sort(np.log10(table.loc[table["slice"] == "annealed", "budget"].to_numpy(float)))
        use = "annealed" if len(ann) and (np.diff(ann) > gap_dex).sum() >= 1 else "constant"
    table = table[table["slice"] == use].reset_index(drop=True)
    if table.empty:
        raise FitError(f"isoFLOP slices: no {use} points (schedules: {sorted(runs['schedule'].unique())}): a cosine "
                       "run gives one valid point, its final; slice constant-lr or WSD runs (before their cooldown), "
                       "or run cosine/WSD runs (or cooldown branches) that end at 2 or more budgets")
    table.attrs["slice_kind"] = use
    table.attrs["dropped"] = {k: int(v) for k, v in counts.items() if k != use}
    return table
