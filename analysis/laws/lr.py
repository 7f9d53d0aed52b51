"""Learning rate against model size: each size's best lr from an lr sweep, and lr_opt(N) = k N^p across sizes.

    curves(runs)   the loss at each (N, D, lr) tried, averaged over seeds
    optima(runs)   one row per size (N, D) tried at 2 or more lrs: the best lr tried and a smooth estimate
    fit(runs)      LrLaw: lr_opt = k N^p through the sizes whose optimum lies inside the lr grid

Near its minimum the final loss is close to a parabola in log lr (it rises steeply past the optimum, where
training turns unstable, and slowly below it, so only the minimum's neighbourhood is a parabola). Per size
the optimum is the vertex of the parabola through the best lr tried and its two neighbours on the grid;
that vertex always lies between the two neighbours, so it interpolates and never extrapolates. Where the
best lr is the smallest or the largest tried, nothing says the loss does not keep falling past it: the size
is flagged at the edge, keeps its best lr tried, and is left out of the law.

The law is a least-squares line in (log N, log lr_opt) with every size weighted equally (an lr sweep has
one run per lr, so there is no per-size noise estimate to weight by); its interval resamples the sizes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.bootstrap import resample_weights
from analysis.laws.common import FitConfig, FitError, PowerLaw, warn

LR_COL = "lr"
HIGH, LOW = "high", "low"          # which edge of the lr grid a size's best lr sits on


def edge_note(n: float, lr: float, edge: str, tried: list[float]) -> str:
    """The warning for a size whose best lr is the grid's edge, with the grid value to add."""
    step = tried[-1] / tried[-2] if edge == HIGH else tried[0] / tried[1]   # one more grid step past the edge
    word, side = ("largest", "above") if edge == HIGH else ("smallest", "below")
    return (f"N={n:.3g}: the best lr {lr:.3g} is the {word} tried ({tried[0]:.3g}..{tried[-1]:.3g}): at edge: "
            f"the true best lr may lie {side} {lr:.3g}; extend the lr sweep's grid.lrs (add {lr * step:.3g})")


def curves(runs: pd.DataFrame, config: FitConfig | None = None) -> pd.DataFrame:
    """Columns N, D, lr, loss (the mean over seeds; inf where a seed diverged: an lr that diverges for some
    seeds is not one to train at), seeds."""
    cfg = config or FitConfig()
    need = [cfg.n_col, "tokens", LR_COL, cfg.loss_col]
    missing = [c for c in need if c not in runs.columns]
    if missing:
        raise FitError(f"lr law: the runs table lacks column(s) {missing}")
    t = pd.DataFrame({"N": runs[cfg.n_col].astype(float), "D": runs["tokens"].astype(float),
                      "lr": runs[LR_COL].astype(float), "loss": pd.to_numeric(runs[cfg.loss_col], errors="coerce")})
    t["loss"] = t["loss"].where(np.isfinite(t["loss"]), np.inf)   # a diverged run: worse than any finished one
    return (t.groupby(["N", "D", "lr"], as_index=False).agg(loss=("loss", "mean"), seeds=("loss", "size"))
            .sort_values(["N", "D", "lr"], ignore_index=True))


def has_lr_sweep(runs: pd.DataFrame, config: FitConfig | None = None) -> bool:
    """Some size (N, D) was trained at more than one lr."""
    cfg = config or FitConfig()
    if not {cfg.n_col, "tokens", LR_COL} <= set(runs.columns) or not len(runs):
        return False
    return bool((runs.groupby([cfg.n_col, "tokens"])[LR_COL].nunique() > 1).any())


def vertex(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(x, y) at the minimum of the parabola through 3 points whose middle one is lowest."""
    c2, c1, c0 = np.polyfit(x, y, 2)
    if c2 <= 0:                        # three equal losses: no curvature, the middle point is as good as any
        return float(x[1]), float(y[1])
    return float(-c1 / (2 * c2)), float(c0 - c1 * c1 / (4 * c2))


def optimum(lrs: np.ndarray, losses: np.ndarray) -> dict:
    """One size's optimum from its lrs (ascending) and losses: lr_best (tried), lr_opt (interpolated), edge."""
    i = int(np.argmin(losses))
    out = {"lr_best": float(lrs[i]), "loss_best": float(losses[i]), "lr_opt": float(lrs[i]),
           "loss_opt": float(losses[i]), "edge": "", "method": "grid point"}
    if not np.isfinite(losses[i]):
        return {**out, "lr_opt": np.nan, "edge": "diverged", "method": "every lr diverged"}
    if i in (0, len(lrs) - 1):
        return {**out, "edge": LOW if i == 0 else HIGH, "method": "grid point (at the edge: not extrapolated)"}
    x, y = np.log(lrs[i - 1:i + 2]), losses[i - 1:i + 2]
    if not np.isfinite(y).all():       # the lr above diverged: the optimum is below it, but no parabola fits
        return {**out, "method": "grid point (a neighbour diverged)"}
    xv, yv = vertex(x, y)
    return {**out, "lr_opt": float(np.exp(xv)), "loss_opt": yv, "method": "parabola through 3 lrs"}


def optima(runs: pd.DataFrame, config: FitConfig | None = None) -> pd.DataFrame:
    """One row per size (N, D) tried at 2 or more lrs: N, D, n_lrs, lrs, lr_best, loss_best, lr_opt, loss_opt,
    edge ("" inside the grid, "low", "high" or "diverged"), method, note (the warning for an edge)."""
    rows = []
    for (n, d), g in curves(runs, config).groupby(["N", "D"]):
        if len(g) < 2:
            continue
        lrs, losses = g["lr"].to_numpy(), g["loss"].to_numpy()
        o = optimum(lrs, losses)
        if o["edge"] in (LOW, HIGH):
            note = edge_note(n, o["lr_best"], o["edge"], list(lrs))
        elif o["edge"] == "diverged":
            note = (f"N={n:.3g}: every lr tried ({lrs[0]:.3g}..{lrs[-1]:.3g}) diverged; add smaller lrs to the lr "
                    "sweep's grid.lrs")
        else:
            note = ""
        rows.append({"N": n, "D": d, "n_lrs": len(g), "lrs": tuple(lrs), **o, "note": note})
    cols = ["N", "D", "n_lrs", "lrs", "lr_best", "loss_best", "lr_opt", "loss_opt", "edge", "method", "note"]
    return pd.DataFrame(rows, columns=cols)


@dataclass
class LrLaw:
    """lr_opt(N) = k N^p, fitted to the sizes whose optimum is inside the lr grid."""
    power: PowerLaw                    # k, a (= p), bootstrap samples of (log k, p)
    points: pd.DataFrame               # the optima rows it was fitted to
    left_out: pd.DataFrame             # optima rows at the grid's edge (or diverged)
    config: FitConfig
    warnings: list[str] = field(default_factory=list)

    @property
    def k(self) -> float:
        return self.power.k

    @property
    def p(self) -> float:
        return self.power.a

    @property
    def p_ci(self) -> tuple[float, float]:
        return self.power.a_ci

    @property
    def n_range(self) -> tuple[float, float]:
        return float(self.points["N"].min()), float(self.points["N"].max())

    def __call__(self, n):
        return self.power(n)

    def interval(self, n) -> tuple[np.ndarray, np.ndarray]:
        return self.power.interval(n)

    @property
    def rms_log_residual(self) -> float:
        r = np.log(self.points["lr_opt"].to_numpy()) - np.log(self(self.points["N"].to_numpy()))
        return float(np.sqrt(np.mean(r ** 2)))

    def extrapolation(self, n: float) -> str:
        """"" inside the sizes the law was fitted to; else a note saying how far outside."""
        lo, hi = self.n_range
        if lo <= n <= hi:
            return ""
        factor = lo / n if n < lo else n / hi
        return (f"N={n:.3g} is {factor:.3g}x {'below' if n < lo else 'above'} the sizes the lr law was fitted to "
                f"({lo:.3g}..{hi:.3g}): its lr is extrapolated")

    def summary(self) -> str:
        lo, hi = self.p_ci
        band = f" ({self.config.ci_level:.0%} interval {lo:.3f} to {hi:.3f})" if np.isfinite(lo) else ""
        return (f"lr_opt = {self.k:.4g} * N^{self.p:.3f}{band}, from {len(self.points)} size(s) with N in "
                f"{self.n_range[0]:.3g}..{self.n_range[1]:.3g}")


def fit(runs: pd.DataFrame, config: FitConfig | None = None) -> LrLaw:
    """lr_opt(N) = k N^p through the interior optima; FitError when fewer than 2 sizes have one."""
    cfg = config or FitConfig()
    opt = optima(runs, cfg)
    inside = opt[opt["edge"] == ""]
    if inside["N"].nunique() < 2:
        why = "; ".join(opt.loc[opt["edge"] != "", "note"]) or "no size was trained at 2 or more lrs"
        raise FitError(f"lr law: {inside['N'].nunique()} size(s) have their best lr inside the lr grid "
                       f"(of {len(opt)} swept); lr_opt = k N^p needs at least 2: {why}")
    notes: list[str] = []
    for note in opt["note"]:
        if note:
            warn(f"lr law: size left out: {note}", notes)
    x, y = inside["N"].to_numpy(), inside["lr_opt"].to_numpy()
    power = PowerLaw.fit(x, y)
    power.ci_level = cfg.ci_level
    if len(inside) < 3:
        warn(f"lr law: fitted to {len(inside)} sizes: the exponent has no error estimate; sweep 3 or more sizes",
             notes)
    elif cfg.n_bootstrap:
        power.samples = bootstrap(np.log(x), np.log(y), cfg)
    return LrLaw(power, inside.reset_index(drop=True), opt[opt["edge"] != ""].reset_index(drop=True), cfg, notes)


def bootstrap(lx: np.ndarray, ly: np.ndarray, cfg: FitConfig) -> np.ndarray:
    """[n_bootstrap, 2] of (log k, p): sizes resampled with replacement, each resample's weighted least-squares
    line in closed form (all at once); a resample that drew a single size is nan."""
    w = resample_weights(len(lx), cfg.n_bootstrap, cfg.seed)
    total = w.sum(axis=1)
    mx, my = w @ lx / total, w @ ly / total
    dx = lx[None, :] - mx[:, None]
    sxx = (w * dx * dx).sum(axis=1)
    sxy = (w * dx * (ly[None, :] - my[:, None])).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(sxx > 1e-12, sxy / sxx, np.nan)
    return np.column_stack([my - p * mx, p])
