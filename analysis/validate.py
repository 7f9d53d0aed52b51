"""Extrapolation check: fit without the largest budget, predict its runs, report the error.

A scaling law is only as good as its forecasts. Holding out the largest budget (the runs a law is
used to extrapolate to) and predicting it from the smaller ones gives an honest error bar on the
recommendations, which in-sample residuals do not.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from analysis.laws import approach2, approach3
from analysis.laws.common import FitConfig, FitError, usable


@dataclass
class Holdout:
    budget: float                  # the held-out budget (geometric mean of its runs' C)
    table: pd.DataFrame            # held-out runs: N, D, C, loss, predicted, rel_error
    n_opt_measured: float          # approach 2's vertex (default method) on the held-out isoFLOP line (nan if none)
    n_opt_predicted: float         # approach 3 fitted on the smaller budgets
    n_fit_runs: int

    @property
    def mean_abs_rel_error(self) -> float:
        return float(self.table["rel_error"].abs().mean())

    @property
    def max_abs_rel_error(self) -> float:
        return float(self.table["rel_error"].abs().max())

    def summary(self) -> str:
        s = (f"held out the largest budget C={self.budget:.3g} ({len(self.table)} runs), fitted approach 3 on "
             f"{self.n_fit_runs} runs: loss error mean {self.mean_abs_rel_error:.2%}, max {self.max_abs_rel_error:.2%}")
        if np.isfinite(self.n_opt_measured):
            s += (f"; N_opt predicted {self.n_opt_predicted:.3g} vs isoFLOP vertex {self.n_opt_measured:.3g} "
                  f"({self.n_opt_predicted / self.n_opt_measured - 1:+.0%})")
        return s


def holdout_largest_budget(runs: pd.DataFrame, config: FitConfig | None = None) -> Holdout:
    cfg = replace(config or FitConfig(), n_bootstrap=0)      # a point forecast; the bootstrap is for the full fit
    runs = usable(runs, cfg).reset_index(drop=True)
    groups = approach2.group_budgets(runs)
    top = groups == groups.max()
    if groups.nunique() < 3:
        raise FitError(f"extrapolation check: {groups.nunique()} budget(s); holding one out needs at least 3")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        law = approach3.fit(runs[~top], cfg)
    held = runs[top]
    N, D, C = (held[c].to_numpy(float) for c in (cfg.n_col, "tokens", cfg.c_col))
    pred = law.predict(N, D)
    table = pd.DataFrame({"run_id": held.get("run_id", pd.Series(range(len(held)))).to_numpy(), "N": N, "D": D,
                          "C": C, "loss": held[cfg.loss_col].to_numpy(float), "predicted": pred})
    table["rel_error"] = table["predicted"] / table["loss"] - 1
    budget = float(np.exp(np.log(C).mean()))
    return Holdout(budget=budget, table=table.sort_values("N", ignore_index=True),
                   n_opt_measured=approach2.budget_optimum(N, D, table["loss"].to_numpy()),
                   n_opt_predicted=float(law.n_opt(budget)), n_fit_runs=law.n_runs)
