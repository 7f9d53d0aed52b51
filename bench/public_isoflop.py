"""Approach 2 and approach 3 on public isoFLOP data, beside the exponents their authors report.

Data (bench/data/, small derived CSVs with source, commit and licence in their headers):
    chinchilla   Hoffmann et al. 2022, Fig. 3 (9 budgets, 124 digitised points). Authors, approach 2 (their Table 2):
                 N_opt exponent a = 0.49 (0.462, 0.534), D_opt exponent b = 0.51 (0.483, 0.529), 10th-90th
                 percentiles of their bootstrap.
    llama3       Grattafiori et al. 2024, Fig. 2 (10 budgets, 133 digitised points; N = C / 6D as in the source).
                 Authors: D_opt = 0.29 C^0.53 (no interval given); under C = 6ND that makes a = 0.47.

    python bench/public_isoflop.py                        # both, 1000 bootstraps
    python bench/public_isoflop.py --data path.csv --budget-col C --n-col N --d-col D --loss-col L --a 0.5
                                                          # any table with one row per run
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("SCALEMIX_NO_PROGRESS", "1")

from analysis.laws import approach2, approach3  # noqa: E402
from analysis.laws.common import FitConfig, FitError  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
# name: (file, authors' a, its interval or None, authors' b, its interval or None, where the numbers come from)
PUBLISHED = {
    "chinchilla": ("chinchilla_isoflops.csv", 0.49, (0.462, 0.534), 0.51, (0.483, 0.529),
                   "Hoffmann et al. 2022, Table 2, approach 2 (10th-90th percentiles)"),
    "llama3": ("llama3_isoflops.csv", 0.47, None, 0.53, None,
               "Grattafiori et al. 2024, sec. 3.2.1: D_opt ~ C^0.53 (a = 1 - b under C = 6ND)"),
    # The same figure as `chinchilla`, extracted by Epoch AI: the authors' numbers are Hoffmann et al.'s.
    "epochai_chinchilla": ("epochai_chinchilla_isoflops.csv", 0.49, (0.462, 0.534), 0.51, (0.483, 0.529),
                           "Hoffmann et al. 2022, Table 2, approach 2 (Epoch AI's extraction of the same Fig. 3)"),
    # No exponent published for these tables that we could find (bench/README.md, "More public isoFLOP tables"):
    # the fits are compared with each other only.
    "marin_comma": ("marin_comma_isoflops.csv", None, None, None, None, "none found"),
    "marin_dclm": ("marin_dclm_isoflops.csv", None, None, None, None, "none found"),
    "marin_nemotron": ("marin_nemotron_isoflops.csv", None, None, None, None, "none found"),
    "misfitting": ("misfitting_isoflops.csv", None, None, None, None, "none found (checkpoint-interpolated slices)"),
}


def load(path: Path, budget_col="budget", n_col="params", d_col="tokens", loss_col="loss") -> pd.DataFrame:
    """A public table as the project's runs table: N in params_total and params_nonembedding (one convention, the
    source's), C = the nominal budget in `flops` and 6ND in `flops_6n`; runs are grouped by `budget`."""
    t = pd.read_csv(path, comment="#")
    C = t[budget_col].to_numpy(float)
    if d_col not in t and n_col not in t:
        raise SystemExit(f"{path}: needs a token column {d_col!r} or a parameter column {n_col!r} (--d-col / --n-col)")
    # Each table keeps its source's convention: where the source derives one of N, D from C = 6ND, so do we.
    D = t[d_col].to_numpy(float) if d_col in t else C / (6 * t[n_col].to_numpy(float))
    N = t[n_col].to_numpy(float) if n_col in t else C / (6 * D)
    return pd.DataFrame({"run_id": [f"p{i:04d}" for i in range(len(t))], "budget": C, "params_total": N,
                         "params_nonembedding": N, "tokens": D, "flops": C, "flops_6n": 6 * N * D,
                         "loss": t[loss_col].to_numpy(float)})


def fits(runs: pd.DataFrame, boot: int, seed: int = 0) -> list[dict]:
    cfg = FitConfig(n_col="params_total", c_col="flops", n_bootstrap=boot, seed=seed, processes=2)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in approach2.METHODS:
            t0 = time.perf_counter()
            try:
                f = approach2.fit(runs, cfg, method=m)
                out.append({"fit": f"approach 2 {m}", "a": f.n_opt.a, "a_ci": f.n_opt.a_ci, "b": f.d_opt.a,
                            "b_ci": f.d_opt.a_ci, "s": time.perf_counter() - t0, "notes": f.warnings})
            except FitError as e:
                out.append({"fit": f"approach 2 {m}", "error": str(e)})
        for s in approach3.SEARCHES:
            t0 = time.perf_counter()
            f = approach3.fit(runs, FitConfig(n_col="params_total", c_col="flops", n_bootstrap=min(boot, 200),
                                              seed=seed, processes=2), search=s)
            out.append({"fit": f"approach 3 {s}", "a": f.a, "a_ci": f.ci("a"), "b": f.b, "b_ci": f.ci("b"),
                        "s": time.perf_counter() - t0, "notes": f.warnings,
                        "extra": f"alpha {f.alpha:.3f} beta {f.beta:.3f}"})
    return out


def table(name: str, rows: list[dict], a_pub, a_ci, b_pub, b_ci) -> str:
    lines = [f"| {name} | authors | {_num(a_pub)} | {_ci(a_ci)} | | {_num(b_pub)} | {_ci(b_ci)} | | |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {name} | {r['fit']} | failed: {r['error'][:60]} | | | | | | |")
            continue
        lines.append(f"| {name} | {r['fit']} | {r['a']:.3f} | {_ci(r['a_ci'])} | {_versus(r['a'], r['a_ci'], a_pub)} | "
                     f"{r['b']:.3f} | {_ci(r['b_ci'])} | {_versus(r['b'], r['b_ci'], b_pub)} | {r['s']:.1f} |")
    return "\n".join(lines)


def _num(x) -> str:
    return "none found" if x is None else f"{x:.3f}"


def _versus(x, ci, pub) -> str:
    """Difference from the authors' value and whether the interval covers it; blank where none is published."""
    if pub is None:
        return ""
    return f"{x - pub:+.3f}, {'yes' if ci[0] <= pub <= ci[1] else 'no'}"


def _ci(ci) -> str:
    return "-" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


HEADER = ("| data | fit | a (N_opt) | 90% interval | vs authors, covers | b (D_opt) | 90% interval | vs authors, covers "
          "| s |\n|---|---|---|---|---|---|---|---|---|")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--boot", type=int, default=1000)
    p.add_argument("--only", nargs="+", default=list(PUBLISHED))
    p.add_argument("--data", help="a CSV of your own (one row per run) instead of the stored ones")
    p.add_argument("--budget-col", default="budget")
    p.add_argument("--n-col", default="params")
    p.add_argument("--d-col", default="tokens")
    p.add_argument("--loss-col", default="loss")
    p.add_argument("--a", type=float, help="with --data: the authors' N_opt exponent (none: no comparison)")
    p.add_argument("--b", type=float, help="with --data: the authors' D_opt exponent (default 1 - a)")
    p.add_argument("--notes", action="store_true", help="print each fit's warnings")
    a = p.parse_args()
    sets = ({"data": (a.data, a.a, None, a.b if a.b is not None or a.a is None else 1 - a.a, None, "given")} if a.data
            else {k: PUBLISHED[k] for k in a.only})
    print(HEADER)
    for name, (file, a_pub, a_ci, b_pub, b_ci, _) in sets.items():
        path = Path(file) if a.data else DATA / file
        runs = load(path, a.budget_col, a.n_col, a.d_col, a.loss_col)
        rows = fits(runs, a.boot)
        print(table(name, rows, a_pub, a_ci, b_pub, b_ci), flush=True)
        if a.notes:
            for r in rows:
                for n in r.get("notes", []):
                    print(f"    {r['fit']}: {n}")


if __name__ == "__main__":
    main()
