"""The study's forecast checks, with intervals: the largest budget predicted from the smaller ones, and a run beyond
the swept range (the compute-optimal run at F x the largest budget) predicted by the whole sweep's law.

    python -m analysis.holdout runs/study --hold-largest            # fit without the largest budget, predict it
    python -m analysis.holdout runs/study --plan-big 4 [--overrides] # the run to train at 4x the largest budget
    python -m analysis.holdout runs/study --predict-run runs/study-big/<run_id>   # its loss: predicted vs measured

--hold-largest fits approach 3 (with its bootstrap) to every run but the largest budget's and predicts that budget's
isoFLOP minimum (the law's compute-optimal loss and N at its C) and each of its runs' losses, each with the law's
interval (bootstrap percentiles: the uncertainty of the fit) and a wider interval that adds the run-to-run noise
measured from the sweep's seed replicates in quadrature (what one measured run should fall in); the measured minimum
comes from the held-out budget's own runs: its local parabola's vertex (approach2.local_row: the window parabola, or
the parabola through the lowest size and its neighbours where the window's misses the runs there beyond the noise)
with a run-bootstrap interval, and the lowest run beside it; approach 2's vertex there (a profile model fitted to
every budget) is recorded too, but a model that misfits can put it below every run (measured_minimum). --plan-big reads the whole
sweep's laws.json (`python -m analysis.report` first): at C = F x the largest budget, the law's N_opt and D_opt with
intervals, and the candidate shape (the sweep's own sizes, or the ladder's rungs from --rungs) whose loss at
D = C / its FLOPs per token the law predicts lowest; --overrides prints that run's sweep overrides (grid/study_big.yaml) and nothing else.
--predict-run compares a finished run with the law's prediction at its own N and D (interval as above), and says
whether it is within 1% and inside the interval.

Each writes its block into <sweep>/report/holdout.md and its fields into <sweep>/report/laws.json ("holdout",
"big_plan", "confirm"; optional entries readers that predate them ignore): rerun these after the report, which
rewrites laws.json. Reads run directories only (analysis.results), never sweeps or training code.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import lawfile, noise, results
from analysis.bootstrap import resample_weights
from analysis.laws import approach2, approach3
from analysis.laws.common import FitConfig, FitError, usable
from harness.rundir import atomic_write_bytes

N_BOOTSTRAP = 200          # resamples for the hold-out's intervals: ~10-20 s of approach 3 on 30 runs (bench/README)
WITHIN = 0.01              # issue 12's target: the 4x run's measured loss within 1% of the prediction


# ---------------------------------------------------------------- the pieces, each a pure function of tables
def widened(lo: np.ndarray, hi: np.ndarray, point: np.ndarray, sd: float, level: float) -> tuple:
    """The law's interval widened by run-to-run noise (sd of log loss) in quadrature, on the log scale."""
    if not np.isfinite(sd):
        return lo, hi
    from scipy import stats
    z = stats.norm.ppf((1 + level) / 2)
    down = np.sqrt(np.log(point / lo) ** 2 + (z * sd) ** 2)
    up = np.sqrt(np.log(hi / point) ** 2 + (z * sd) ** 2)
    return point * np.exp(-down), point * np.exp(up)


def hold_largest(runs: pd.DataFrame, config: FitConfig, n_bootstrap: int = N_BOOTSTRAP) -> dict:
    """Fit approach 3 without the largest budget; predict that budget's runs and isoFLOP minimum (module doc)."""
    cfg = replace(config, n_bootstrap=n_bootstrap)
    runs = usable(runs, cfg).reset_index(drop=True)
    groups = approach2.group_budgets(runs)
    if groups.nunique() < 3:
        raise FitError(f"hold-out: {groups.nunique()} budget(s); holding the largest out needs at least 3")
    top = (groups == groups.max()).to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        law = approach3.fit(runs[~top], cfg)
        full2 = approach2.fit(runs, replace(cfg, n_bootstrap=0))
    held = runs[top]
    C = float(held["budget"].iloc[0]) if "budget" in held and held["budget"].notna().all() else \
        float(np.exp(np.log(held[cfg.c_col].to_numpy(float)).mean()))
    N, D = held[cfg.n_col].to_numpy(float), held["tokens"].to_numpy(float)
    loss = held[cfg.loss_col].to_numpy(float)
    pred = law.predict(N, D)
    lo, hi = law.interval("predict", N, D)
    sd = noise.estimate(runs, cfg.loss_col, cfg.ci_level)
    wlo, whi = widened(lo, hi, pred, sd.sd, cfg.ci_level)
    table = pd.DataFrame({"run_id": held["run_id"].to_numpy() if "run_id" in held else range(len(held)),
                          "N": N, "D": D, "loss": loss, "predicted": pred, "lo": lo, "hi": hi,
                          "lo_noise": wlo, "hi_noise": whi})
    table["rel_error"] = table["loss"] / table["predicted"] - 1
    table["inside"] = (table["loss"] >= table["lo_noise"]) & (table["loss"] <= table["hi_noise"])
    table = table.sort_values("N", ignore_index=True)
    pts = full2.points
    row = pts.iloc[int(np.argmin(np.abs(np.log(pts["C"].to_numpy(float) / C))))]
    # without seed replicates the held-out parabola is tested against the residual scatter of a cubic in log N per
    # budget over the other budgets (approach2.reference, as approach2.others_smoother does for each vertex): else
    # it would go untested
    fitted = runs[~top]
    ref = approach2.reference([approach2.as_arrays(g, cfg) for _, g in fitted.groupby(groups[~top])], sd)
    measured = measured_minimum(held, cfg, ref, n_bootstrap)
    m_lo, m_hi = law.interval("loss_opt", C)
    m_pred = float(law.loss_opt(C))
    mw_lo, mw_hi = widened(np.asarray(m_lo), np.asarray(m_hi), np.asarray(m_pred), sd.sd, cfg.ci_level)
    n_lo, n_hi = law.interval("n_opt", C)
    measured_min = measured["loss"]
    return {
        "budget": C, "n_fit_runs": int(law.n_runs), "n_bootstrap": n_bootstrap, "ci_level": cfg.ci_level,
        "n_col": cfg.n_col, "law": {k: float(v) for k, v in law.params.items()},
        "noise_sd": sd.sd if sd.measured else None, "noise": sd.describe(),
        "minimum": {"loss_predicted": m_pred, "loss_interval": [float(m_lo), float(m_hi)],
                    "loss_interval_noise": [float(mw_lo), float(mw_hi)],
                    "loss_measured": measured_min, "loss_measured_interval": measured["interval"],
                    "loss_lowest_run": float(loss.min()),
                    "rel_error": measured_min / m_pred - 1,
                    "inside": bool(mw_lo <= measured_min <= mw_hi),
                    "n_opt_predicted": float(law.n_opt(C)), "n_opt_interval": [float(n_lo), float(n_hi)],
                    "n_opt_measured": measured["N"], "measured_by": measured["by"],
                    "loss_approach2": float(row["loss_opt"]), "n_opt_approach2": float(row["N_opt"]),
                    "approach2_by": f"{full2.method}, {row.get('vertex_by', 'profile')}"},
        "runs": table,
        "mean_abs_rel_error": float(table["rel_error"].abs().mean()),
        "max_abs_rel_error": float(table["rel_error"].abs().max()),
        "inside": int(table["inside"].sum()),
    }


def measured_minimum(held: pd.DataFrame, config: FitConfig, sd: noise.Noise, n_bootstrap: int) -> dict:
    """The held-out budget's isoFLOP minimum as its own runs measure it: the vertex of its local parabola
    (approach2.local_row, tested against `sd`: the run-to-run noise measured from seed replicates, else the residual
    scatter of a cubic in log N per budget, approach2.reference; untested where neither is measured) and a percentile interval
    from resampling its runs (the same parabola refitted), at config.ci_level. A model fitted to every budget is not
    used: where its shape misfits, its vertex can lie below every run (issue 12: 6% below on the GPU study)."""
    N, D = held[config.n_col].to_numpy(float), held["tokens"].to_numpy(float)
    loss = held[config.loss_col].to_numpy(float)
    C = float(np.exp(np.log(held[config.c_col].to_numpy(float)).mean()))
    row = approach2.local_row(N, D, C, loss, approach2.WINDOW_DEX, sd.sd if sd.measured else float("nan"),
                              sd.dof if sd.measured else float("nan"))
    if row is None:
        raise FitError(f"hold-out: the held-out budget C={C:.3g} has no local minimum in its {len(N)} runs "
                       f"({len(np.unique(N))} sizes): add sizes around its lowest run")
    W = resample_weights(len(N), n_bootstrap, config.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        boot = [approach2.local_vertex(np.log(N), loss, np.log(D), row["vertex_by"], approach2.WINDOW_DEX, w)
                for w in W]
    vals = np.array([v["loss_opt"] for v in boot if v is not None], float)
    q = [(1 - config.ci_level) / 2, (1 + config.ci_level) / 2]
    interval = [float(x) for x in np.quantile(vals, q)] if len(vals) >= 10 else [float("nan")] * 2
    what = {"window": f"the parabola within {approach2.WINDOW_DEX:g} decades of its vertex",
            "bracket": "the parabola through the lowest size and its neighbours"}[row["vertex_by"]]
    return {"loss": float(row["loss_opt"]), "N": float(row["N_opt"]), "interval": interval,
            "by": f"the held-out runs' local vertex: {what}"}


RUNG_KEYS = ("params_compute", "params_nonembedding", "params_total", "params_active_nonembedding", "params_active")


def sweep_rungs(runs: pd.DataFrame) -> list[dict]:
    """The distinct model shapes a sweep trained, as candidates for --plan-big: depth, name, FLOPs per token (the
    runs' exact flops / tokens) and every N convention the runs table has. A ladder's rungs beyond the sweep's sizes
    come from a --rungs file instead (bench/study_rungs.py writes the GPU ladder's: analysis counts no models)."""
    out = []
    for (layers, d), g in runs.groupby(["n_layers", "d_model"]):
        out.append({"depth": int(layers), "name": f"L{int(layers)}-d{int(d)}",
                    "flops_per_token": float(np.median(g["flops"] / g["tokens"])),
                    **{k: float(g[k].iloc[0]) for k in RUNG_KEYS if k in g}})
    return sorted(out, key=lambda r: r["flops_per_token"])


def plan_big(law, rungs: list[dict], budget: float, batch_tokens: int, max_tokens: float | None = None) -> dict:
    """The ladder rung the law predicts best at `budget` FLOPs (D = budget / its FLOPs per token, whole batches),
    among those reading at most `max_tokens` (the corpus's repeat cap: the law knows nothing of repeated data)."""
    n_col = law.config.n_col
    rows, capped = [], []
    for r in rungs:
        if n_col not in r:
            raise FitError(f"plan-big: the law's N is {n_col!r}, which the ladder counts do not give")
        D = int(budget / r["flops_per_token"]) // batch_tokens * batch_tokens
        if D <= 0:
            continue
        row = {**r, "tokens": D, "loss": float(law.predict(r[n_col], D))}
        (capped if max_tokens and D > max_tokens else rows).append(row)
    if not rows:
        raise FitError(f"plan-big: every rung needs more than --max-tokens {max_tokens:.3g} tokens at {budget:.3g} FLOPs")
    best = min(rows, key=lambda x: x["loss"])
    unconstrained = min(rows + capped, key=lambda x: x["loss"])
    lo, hi = law.interval("predict", best[n_col], best["tokens"])
    n_lo, n_hi = law.interval("n_opt", budget)
    d_lo, d_hi = law.interval("d_opt", budget)
    return {"budget": budget, "n_col": n_col, "n_opt": float(law.n_opt(budget)), "n_opt_interval": [float(n_lo), float(n_hi)],
            "d_opt": float(law.d_opt(budget)), "d_opt_interval": [float(d_lo), float(d_hi)],
            "loss_opt": float(law.loss_opt(budget)), "depth": best["depth"], "name": best["name"], "N": best[n_col],
            "tokens": best["tokens"], "flops": best["tokens"] * best["flops_per_token"],
            "loss_predicted": best["loss"], "loss_interval": [float(lo), float(hi)],
            "neighbours": [{"name": r["name"], "tokens": r["tokens"], "loss": r["loss"]} for r in rows
                           if abs(r["depth"] - best["depth"]) <= 2],
            "max_tokens": max_tokens, "data_limited": unconstrained is not best,
            "unconstrained": {"name": unconstrained["name"], "tokens": unconstrained["tokens"],
                              "loss": unconstrained["loss"]}}


def predict_run(law, run: pd.Series, noise_sd: float | None) -> dict:
    """A finished run's loss against the law's prediction at its own N and D (module doc)."""
    n_col = law.config.n_col
    N, D, loss = float(run[n_col]), float(run["tokens"]), float(run["loss"])
    pred = float(law.predict(N, D))
    lo, hi = law.interval("predict", N, D)
    wlo, whi = widened(np.asarray(lo), np.asarray(hi), np.asarray(pred), noise_sd if noise_sd else float("nan"),
                       law.config.ci_level)
    rel = loss / pred - 1
    return {"run_id": str(run.get("run_id", "")), "n_col": n_col, "N": N, "D": D, "flops": float(run["flops"]),
            "loss_measured": loss, "loss_predicted": pred, "loss_interval": [float(lo), float(hi)],
            "loss_interval_noise": [float(wlo), float(whi)], "rel_error": rel, "within_1pct": abs(rel) <= WITHIN,
            "inside": bool(wlo <= loss <= whi), "loss_opt_at_its_flops": float(law.loss_opt(float(run["flops"]))),
            "ci_level": law.config.ci_level}


# ---------------------------------------------------------------- writing
def pct(x: float) -> str:
    return f"{x:+.2%}" if np.isfinite(x) else "–"


def holdout_md(h: dict) -> str:
    m, lvl = h["minimum"], h["ci_level"]
    lines = ["## Hold-out: the largest budget predicted from the smaller ones\n",
             f"Approach 3 fitted to {h['n_fit_runs']} runs of the smaller budgets ({h['n_bootstrap']} bootstrap "
             f"resamples; N = {h['n_col']}) predicts the held-out budget C = {h['budget']:.3g} FLOPs. Intervals: "
             f"{lvl:.0%}, the law's (fit uncertainty) and, in brackets after it, with the run-to-run noise added "
             f"({h['noise']}).\n",
             f"**IsoFLOP minimum:** predicted loss {m['loss_predicted']:.4f} [{m['loss_interval'][0]:.4f}, "
             f"{m['loss_interval'][1]:.4f}] ([{m['loss_interval_noise'][0]:.4f}, {m['loss_interval_noise'][1]:.4f}]), "
             f"measured {m['loss_measured']:.4f} [{m['loss_measured_interval'][0]:.4f}, "
             f"{m['loss_measured_interval'][1]:.4f}] ({m['measured_by']}; lowest run {m['loss_lowest_run']:.4f}; "
             f"approach 2's vertex there {m['loss_approach2']:.4f}, {m['approach2_by']}): "
             f"{pct(m['rel_error'])}, {'inside' if m['inside'] else '**outside**'} the interval. N_opt predicted "
             f"{m['n_opt_predicted']:.3g} [{m['n_opt_interval'][0]:.3g}, {m['n_opt_interval'][1]:.3g}], measured "
             f"{m['n_opt_measured']:.3g}.\n",
             f"**Each run:** mean |error| {h['mean_abs_rel_error']:.2%}, worst {h['max_abs_rel_error']:.2%}; "
             f"{h['inside']} of {len(h['runs'])} inside their interval with noise.\n",
             "| run | N | D | measured | predicted | interval | with noise | error |", "|---|---|---|---|---|---|---|---|"]
    for r in h["runs"].itertuples():
        lines.append(f"| {r.run_id} | {r.N:.3g} | {r.D:.3g} | {r.loss:.4f} | {r.predicted:.4f} | [{r.lo:.4f}, "
                     f"{r.hi:.4f}] | [{r.lo_noise:.4f}, {r.hi_noise:.4f}] | {pct(r.rel_error)} |")
    return "\n".join(lines) + "\n"


def plan_md(p: dict) -> str:
    n = p["n_opt_interval"]
    d = p["d_opt_interval"]
    return (f"## The run at {p['budget']:.3g} FLOPs (compute-optimal by the whole sweep's law)\n\n"
            f"The law's optimum: N_opt {p['n_opt']:.3g} [{n[0]:.3g}, {n[1]:.3g}] ({p['n_col']}), D_opt {p['d_opt']:.3g} "
            f"[{d[0]:.3g}, {d[1]:.3g}], loss {p['loss_opt']:.4f}. On the ladder: **{p['name']}** (N {p['N']:.3g}) on "
            f"{p['tokens']:,} tokens ({p['flops']:.3g} FLOPs), predicted loss {p['loss_predicted']:.4f} "
            f"[{p['loss_interval'][0]:.4f}, {p['loss_interval'][1]:.4f}]; neighbours: "
            + ", ".join(f"{x['name']} {x['loss']:.4f}" for x in p["neighbours"]) + "."
            + (f" **Data-limited:** the law's best rung, {p['unconstrained']['name']}, would read "
               f"{p['unconstrained']['tokens']:,} tokens, past --max-tokens {p['max_tokens']:.3g}."
               if p.get("data_limited") else "") + "\n")


def confirm_md(c: dict) -> str:
    lo, hi = c["loss_interval"]
    wlo, whi = c["loss_interval_noise"]
    verdict = ("within 1% and inside the interval" if c["within_1pct"] and c["inside"] else
               f"{'within' if c['within_1pct'] else '**not within**'} 1%, "
               f"{'inside' if c['inside'] else '**outside**'} the interval")
    return (f"## The run beyond the sweep: measured against the law\n\n"
            f"Run {c['run_id']} (N {c['N']:.3g} = {c['n_col']}, D {c['D']:.3g}, {c['flops']:.3g} FLOPs): measured loss "
            f"{c['loss_measured']:.4f}, predicted {c['loss_predicted']:.4f} [{lo:.4f}, {hi:.4f}] (with noise "
            f"[{wlo:.4f}, {whi:.4f}], {c['ci_level']:.0%}): error {pct(c['rel_error'])}: {verdict}.\n")


def write_block(report_dir: Path, key: str, value: dict, md: str) -> None:
    """Merge `key` into laws.json (when the report wrote one) and the markdown block into holdout.md (by heading)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    laws = report_dir / "laws.json"
    if laws.is_file():
        data = json.loads(laws.read_text())
        data[key] = lawfile.jsonable(value)
        lawfile.write(laws, data)
    path = report_dir / "holdout.md"
    blocks = {}
    if path.is_file():
        for chunk in path.read_text().split("\n## ")[0:]:
            chunk = chunk.removeprefix("## ")
            if chunk.strip():
                blocks[chunk.split("\n", 1)[0]] = "## " + chunk.rstrip() + "\n"
    blocks[md.split("\n", 1)[0].removeprefix("## ")] = md
    atomic_write_bytes(path, "\n".join(blocks.values()).encode())


def figure(h: dict, runs: pd.DataFrame, config: FitConfig, path: Path) -> None:
    """Measured loss against N per budget; the held-out budget's predictions with their interval band."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = approach2.group_budgets(runs)
    for _, sub in runs.groupby(groups):
        sub = sub.sort_values(config.n_col)
        ax.plot(sub[config.n_col], sub[config.loss_col], "o-", color="0.7", ms=4, lw=1)
    t = h["runs"]
    ax.fill_between(t["N"], t["lo_noise"], t["hi_noise"], color="tab:blue", alpha=0.15, label="interval with noise")
    ax.fill_between(t["N"], t["lo"], t["hi"], color="tab:blue", alpha=0.3, label="law's interval")
    ax.plot(t["N"], t["predicted"], "-", color="tab:blue", label="predicted (fit without this budget)")
    ax.plot(t["N"], t["loss"], "o", color="tab:red", label=f"measured, C = {h['budget']:.3g}")
    m = h["minimum"]
    ax.errorbar([m["n_opt_predicted"]], [m["loss_predicted"]],
                yerr=[[m["loss_predicted"] - m["loss_interval_noise"][0]], [m["loss_interval_noise"][1] - m["loss_predicted"]]],
                fmt="*", color="tab:blue", ms=12, capsize=3, label="predicted minimum")
    ax.plot([m["n_opt_measured"]], [m["loss_measured"]], "*", color="tab:red", ms=12, label="measured minimum")
    ax.set_xscale("log")
    ax.set_xlabel(f"N ({config.n_col})")
    ax.set_ylabel("held-out loss")
    ax.set_title("Largest budget held out: predicted vs measured (grey: the other budgets)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- command line
def batch_tokens_of(sweep_dir: Path) -> int:
    from harness.rundir import load_yaml
    for spec_path in sorted(sweep_dir.glob("*/spec.yaml")):
        return int(load_yaml(spec_path)["batch_tokens"])
    raise FitError(f"plan-big: no spec.yaml under {sweep_dir}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.holdout", description=__doc__.split("\n")[0])
    p.add_argument("sweep_dir", type=Path)
    p.add_argument("--hold-largest", action="store_true", help="fit without the largest budget and predict it")
    p.add_argument("--plan-big", type=float, metavar="F", help="the compute-optimal run at F x the largest budget")
    p.add_argument("--overrides", action="store_true", help="with --plan-big: print only its sweep overrides")
    p.add_argument("--rungs", type=Path, help="with --plan-big: a JSON list of candidate shapes (depth, name, "
                                               "flops_per_token, params_* counts; bench/study_rungs.py); default: "
                                               "the sweep's own sizes")
    p.add_argument("--max-tokens", type=float, help="with --plan-big: rungs reading more tokens are left out (the "
                                                     "corpus's repeat cap, e.g. 5 epochs of it)")
    p.add_argument("--predict-run", type=Path, metavar="RUN_DIR", help="a finished run against the law's prediction")
    p.add_argument("--bootstrap", type=int, default=N_BOOTSTRAP)
    a = p.parse_args(argv)
    if not (a.hold_largest or a.plan_big or a.predict_run):
        a.hold_largest = True
    if a.overrides and not a.plan_big:
        p.error("--overrides goes with --plan-big F")
    if a.plan_big is not None and not a.plan_big > 0:
        p.error(f"--plan-big {a.plan_big}: give a positive factor, e.g. 4")
    from analysis.results import sweep_dir_problem
    if problem := sweep_dir_problem(str(a.sweep_dir)):
        p.error(problem)
    report_dir = a.sweep_dir / "report"
    res = results.load(a.sweep_dir)
    config = res.fit_config()
    say = (lambda *x: print(*x, file=sys.stderr)) if a.overrides else print
    try:
        if a.hold_largest:
            h = hold_largest(res.runs, config, a.bootstrap)
            md = holdout_md(h)
            write_block(report_dir, "holdout", {k: (v.to_dict("records") if isinstance(v, pd.DataFrame) else v)
                                                for k, v in h.items()}, md)
            figure(h, usable(res.runs, config), config, report_dir / "figures" / "holdout.png")
            say(md + f"\nwrote {report_dir / 'holdout.md'}, {report_dir / 'figures' / 'holdout.png'}"
                + (f", {report_dir / 'laws.json'} (\"holdout\")" if (report_dir / "laws.json").is_file() else ""))
        if a.plan_big or a.predict_run:
            found = lawfile.find(a.sweep_dir)
            if found is None:
                p.error(f"no laws.json for {a.sweep_dir}: run `python -m analysis.report {a.sweep_dir}` first")
            if note := lawfile.stale(found, a.sweep_dir):
                p.error(f"{found} is stale{note}")
            laws = lawfile.load(found)
            if laws.surface is None:
                raise FitError(f"{found}: approach 3 was not fitted ({laws.failures.get('approach 3', '?')})")
            law = laws.surface
        if a.plan_big:
            batch = batch_tokens_of(a.sweep_dir)
            rungs = json.loads(a.rungs.read_text()) if a.rungs else sweep_rungs(res.runs)
            largest = float(res.runs["budget"].max()) if "budget" in res.runs else float(res.runs[config.c_col].max())
            plan = plan_big(law, rungs, a.plan_big * largest, batch, a.max_tokens)
            plan["factor"] = a.plan_big
            write_block(report_dir, "big_plan", plan, plan_md(plan))
            say(plan_md(plan))
            if a.overrides:
                print(f"grid.shapes.depth={plan['depth']} grid.shapes.tokens={plan['tokens']}")
        if a.predict_run:
            run_dir = a.predict_run
            if not (run_dir / "result.json").is_file():
                p.error(f"--predict-run {run_dir}: no result.json there (the run has not finished)")
            one = results.load(run_dir.parent).runs
            row = one[one["run_id"] == run_dir.name]
            if row.empty:
                p.error(f"--predict-run {run_dir}: not in the runs table of {run_dir.parent}")
            sd = noise.estimate(res.runs, config.loss_col, config.ci_level)
            c = predict_run(law, row.iloc[0], sd.sd if sd.measured else None)
            write_block(report_dir, "confirm", c, confirm_md(c))
            say(confirm_md(c))
    except FitError as e:
        raise SystemExit(f"analysis.holdout: {e}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
