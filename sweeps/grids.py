"""Grid axes: which (model, tokens) shapes, mixtures and learning rates a sweep crosses.

A scaling grid is not a plain cartesian product: for the compute grid, tokens follow from the
budget and the model (D = C / FLOPs-per-token), and the sizes bracket each budget's expected
optimum. Each axis here is a pure function of its config; `sweeps.plan` crosses them.

    shapes    compute: per budget C, sizes from the ladder evenly spaced in log N around the
                       expected optimum (D/N = tokens_per_param), enough on each side for a parabola
              rungs:   each listed depth at D = tokens_per_param * N (the lr grid)
              fixed:   one depth at a fixed token count (the mixture grid)
    mixtures  null (the data config's weights) | simplex lattice | Dirichlet samples (seeded) | list,
              plus the pure domains
    lrs       null (train.optim.lr, or per size from an lr sweep: lr_from, with the lr law for sizes it did
              not run) | a list of learning rates
"""
from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.rundir import params_compute
from model_zoo import Counts, LadderRule, ModelSpec, count

if TYPE_CHECKING:  # lr_from imports these when it runs: planning without grid.lr_from never loads pandas
    import pandas as pd

    from analysis.laws.lr import LrLaw


@dataclass(frozen=True)
class Rung:
    depth: int
    spec: ModelSpec
    counts: Counts

    @property
    def name(self) -> str:
        s = self.spec
        moe = f"-E{s.n_experts}k{s.top_k}h{s.expert_hidden}" if s.family == "moe" else ""
        return f"L{s.n_layers}-d{s.d_model}{moe}"

    def n(self, convention: str) -> int:
        if convention == "compute":
            return params_compute(self.counts.params_active_nonembedding, self.spec.vocab_size, self.spec.d_model)
        return self.counts.n(convention)


@dataclass(frozen=True)
class Shape:
    rung: Rung
    tokens: int
    budget: float | None = None     # the compute budget C this shape was sized for (compute grid)


@dataclass(frozen=True)
class Mixture:
    name: str
    weights: tuple[tuple[str, float], ...]   # () = the data config's weights


MODEL_KEYS = ("seq_len", "vocab_size", "family", "tie_embeddings", "qk_norm", "rope_theta")


def ladder_rungs(model_cfg: dict, errors: list[str]) -> list[Rung]:
    """The rungs of model.depths under model.rule, smallest first (errors appended, not raised)."""
    rule = LadderRule(**model_cfg["rule"])
    extra = {k: model_cfg[k] for k in MODEL_KEYS if k in model_cfg}
    rungs = []
    for depth in sorted(set(model_cfg["depths"])):
        try:
            spec = rule.shape(int(depth), **extra)
            rungs.append(Rung(int(depth), spec, count(spec)))
        except ValueError as e:  # SpecError is a ValueError
            errors.append(f"model.depths: depth {depth}: {e}")
    if not rungs:
        errors.append("model.depths: no valid rung; list depths such as [1, 2, 3, 4]")
    return rungs


def compute_shapes(cfg: dict, rungs: list[Rung], errors: list[str]) -> list[Shape]:
    """Per budget C: `sizes_per_budget` rungs evenly spaced in log N (ratio `spacing`) around the
    rung whose D/N is nearest `tokens_per_param`, with D = C / flops_per_token. N is `count`: a
    Counts convention, or "compute" (active non-embedding + the head: what a tiny model's FLOPs scale with)."""
    conv, ratio, k = cfg.get("count", "nonembedding"), float(cfg["tokens_per_param"]), int(cfg["sizes_per_budget"])
    spacing = float(cfg.get("spacing", 2.0))
    min_side = int(cfg.get("min_each_side", 1))
    shapes = []
    if not rungs:
        return shapes
    log_n = np.log([r.n(conv) for r in rungs])
    for C in cfg["budgets"]:
        C = float(C)
        # expected optimum: D/N = ratio with D = C / fpt(N); solve on the ladder by interpolation in log N
        excess = np.log([C / r.counts.flops_per_token / r.n(conv) / ratio for r in rungs])  # decreasing in N
        if excess[0] < 0:
            errors.append(f"grid.shapes.budgets: C={C:.3g} is too small for the smallest model "
                          f"{rungs[0].name} (D/N={math.exp(excess[0]) * ratio:.2g} < tokens_per_param={ratio:g}): "
                          f"raise the budget or add smaller depths to model.depths")
            continue
        if excess[-1] > 0:
            errors.append(f"grid.shapes.budgets: C={C:.3g} puts the optimum above the largest model "
                          f"{rungs[-1].name}: add larger depths to model.depths or lower the budget")
            continue
        i = int(np.searchsorted(-excess, 0))          # first rung past the optimum
        t = excess[i - 1] / (excess[i - 1] - excess[i])
        log_opt = log_n[i - 1] + t * (log_n[i] - log_n[i - 1])
        targets = log_opt + math.log(spacing) * (np.arange(k) - (k - 1) / 2)
        chosen = []
        for tgt in targets:  # nearest rung not taken yet: even in log N as far as the ladder allows
            free = [j for j in range(len(rungs)) if j not in chosen]
            if free:
                chosen.append(min(free, key=lambda j: abs(log_n[j] - tgt)))
        below = sum(log_n[j] < log_opt for j in chosen)
        if below < min_side or len(chosen) - below < min_side:
            errors.append(f"grid.shapes.budgets: C={C:.3g}: only {below} size(s) below and {len(chosen) - below} above "
                          f"the expected optimum N={math.exp(log_opt):.3g}; a parabola needs at least {min_side} "
                          f"on each side: extend model.depths or move the budget")
        for j in sorted(chosen):
            shapes.append(Shape(rungs[j], int(C / rungs[j].counts.flops_per_token), C))
    return shapes


def rung_shapes(cfg: dict, rungs: list[Rung], errors: list[str]) -> list[Shape]:
    conv = cfg.get("count", "nonembedding")
    want = cfg.get("depths") or [r.depth for r in rungs]
    by_depth = {r.depth: r for r in rungs}
    missing = [d for d in want if d not in by_depth]
    if missing:
        errors.append(f"grid.shapes.depths: {missing} not in model.depths={sorted(by_depth)}")
    return [Shape(by_depth[d], int(float(cfg["tokens_per_param"]) * by_depth[d].n(conv)))
            for d in want if d in by_depth]


def fixed_shapes(cfg: dict, rungs: list[Rung], errors: list[str]) -> list[Shape]:
    """Each depth at each token count: `depth` and `tokens` are a value or a list (several sizes, crossed, so that
    a mixture sweep varies N and D independently for the size-dependent mixing laws)."""
    by_depth = {r.depth: r for r in rungs}
    depths = cfg["depth"] if isinstance(cfg["depth"], (list, tuple)) else [cfg["depth"]]
    tokens = cfg["tokens"] if isinstance(cfg["tokens"], (list, tuple)) else [cfg["tokens"]]
    missing = [d for d in depths if d not in by_depth]
    if missing or not depths or not tokens:
        errors.append(f"grid.shapes.depth={cfg['depth']}: {missing or 'empty'} not in model.depths={sorted(by_depth)}"
                      if missing or not depths else f"grid.shapes.tokens={cfg['tokens']}: give one or more counts")
        return []
    return [Shape(by_depth[d], int(float(t))) for d in depths for t in tokens]


SHAPES = {"compute": compute_shapes, "rungs": rung_shapes, "fixed": fixed_shapes}


def conventions(cfg: dict) -> dict:
    """{"n_col", "c_col"}: the N and C the grid's shapes were designed around, named as the runs table's columns
    (recorded in each run's grid.json; analysis fits under them by default). C is the exact FLOP count: budgets
    are divided by each shape's exact FLOPs per token. {} for a grid that picks no N (the fixed shape)."""
    count = cfg.get("count")
    if count is None:
        return {}
    return {"n_col": "params_compute" if count == "compute" else f"params_{count}", "c_col": "flops"}


def shapes(cfg: dict, rungs: list[Rung], errors: list[str]) -> list[Shape]:
    kind = cfg.get("kind")
    if kind not in SHAPES:
        errors.append(f"grid.shapes.kind={kind!r}: use one of {sorted(SHAPES)}")
        return []
    return SHAPES[kind](cfg, rungs, errors)


def moe_shapes(cfg: dict | None, base: list[Shape], errors: list[str]) -> list[Shape]:
    """The MoE axis (grid.moe; null: none): each shape becomes its dense model (if `dense`) and, per
    n_experts x top_k, an MoE with the same attention and expert_hidden = ffn_hidden / top_k, so top_k
    active experts have the dense MLP's parameters (granularity G = top_k, Krajewski et al. 2024).
    Compute-grid shapes keep their budget: D = C / (the MoE's FLOPs per token)."""
    if not cfg:
        return base
    import dataclasses
    out: list[Shape] = list(base) if cfg.get("dense", True) else []
    fields = {k: cfg[k] for k in ("n_shared_experts", "capacity_factor", "router_aux_coef", "router_z_coef")
              if k in cfg}
    for shape in base:
        dense = shape.rung.spec
        for n_experts in cfg.get("n_experts", []):
            for top_k in cfg.get("top_k", []):
                if dense.ffn_hidden % int(top_k):
                    errors.append(f"grid.moe.top_k={top_k}: does not divide ffn_hidden={dense.ffn_hidden} of "
                                  f"{shape.rung.name}: expert_hidden = ffn_hidden / top_k must be whole")
                    continue
                spec = dataclasses.replace(dense, family="moe", n_experts=int(n_experts), top_k=int(top_k),
                                           expert_hidden=dense.ffn_hidden // int(top_k), **fields)
                if bad := spec.errors():
                    prefix = f"grid.moe: {shape.rung.name} E={n_experts} top_k={top_k}: "
                    errors += [prefix + e for e in bad if prefix + e not in errors]
                    continue
                rung = Rung(shape.rung.depth, spec, count(spec))
                tokens = int(shape.budget / rung.counts.flops_per_token) if shape.budget else shape.tokens
                out.append(Shape(rung, tokens, shape.budget))
    return out


# ---------------------------------------------------------------------------------------- mixtures

def normalized(w: dict[str, float]) -> tuple[tuple[str, float], ...]:
    """Weights rounded to 6 decimals that still sum to 1 (the largest absorbs the rounding)."""
    total = math.fsum(w.values())
    r = {d: round(v / total, 6) for d, v in sorted(w.items())}
    top = max(r, key=r.get)
    r[top] = round(1 - math.fsum(v for d, v in r.items() if d != top), 6)
    return tuple((d, v) for d, v in r.items())


def simplex_lattice(domains: list[str], step: float) -> list[dict[str, float]]:
    n = round(1 / step)
    return [dict(zip(domains, (c / n for c in combo)))
            for combo in itertools.product(range(n + 1), repeat=len(domains)) if sum(combo) == n]


def natural_weights(cfg: dict, domains: list[str], errors: list[str]) -> dict[str, float] | None:
    """The corpus's natural token proportions: grid.mixtures.natural ({domain: weight}) or, from the manifest
    of grid.mixtures.corpus, each domain's share of the train tokens."""
    if cfg.get("natural"):
        w = {d: float(cfg["natural"].get(d, 0.0)) for d in domains}
    else:
        from harness.data.corpus import data_root, open_corpus
        corpus = open_corpus(str(cfg.get("corpus") or ""), data_root()) if cfg.get("corpus") else None
        if corpus is None:
            errors.append(f"grid.mixtures.center=natural: corpus {cfg.get('corpus')!r} is not built here, so its "
                          "token proportions are unknown: build it (python -m harness.data.prepare corpus=<name>), "
                          "set grid.mixtures.natural={domain: weight}, or use grid.mixtures.center=uniform")
            return None
        w = {d: float(corpus.manifest["domains"][d]["train_tokens"]) for d in domains}
    total = math.fsum(w.values())
    if total <= 0:
        errors.append(f"grid.mixtures.natural: no positive weight over the domains {domains}")
        return None
    return {d: v / total for d, v in w.items()}


# select=spread: candidates drawn per sample (the distance targets' nearest candidates then lie within a fraction of a
# step of them), and the candidates' distance quantiles the samples span: not the extremes (the 1-in-50 most
# lopsided candidate is where a law's error is largest and its value the noisiest).
SPREAD_POOL = 50
SPREAD_QUANTILES = (0.02, 0.98)


def dirichlet_mixtures(cfg: dict, domains: list[str], errors: list[str]) -> list[dict[str, float]] | None:
    """Seeded Dirichlet samples. center=uniform: alpha = grid.mixtures.alpha for every domain. center=natural
    (RegMix, Liu et al. 2024): alpha = c * K * natural proportions, so samples spread around the natural mixture,
    with the concentration c drawn log-uniformly from grid.mixtures.concentration ([lo, hi]) per sample, so that
    both near-natural and lopsided mixtures are covered. How many: grid.mixtures.samples, or
    samples_per_domain x the number of domains (a law has about K to 2K parameters per target). select: iid takes
    the samples as drawn; spread draws SPREAD_POOL x as many and keeps those whose Hellinger distance from the
    centre (the natural or the uniform mixture) is evenly spaced (spread_subset), so that the held-out mixtures'
    objective spreads evenly."""
    rng = np.random.default_rng(int(cfg.get("seed", 0)))
    K = len(domains)
    n = cfg.get("samples")
    n = int(n) if n is not None else int(cfg.get("samples_per_domain", 4)) * K
    center = cfg.get("center", "uniform")
    if center not in ("natural", "uniform"):
        errors.append(f"grid.mixtures.center={center!r}: use natural (RegMix: around the corpus's token "
                      "proportions) or uniform")
        return None
    if not select_ok(cfg, errors):
        return None
    select = cfg.get("select", "iid")
    pool = n * (SPREAD_POOL if select == "spread" else 1)     # select=spread: candidates to choose from
    if center == "uniform":
        mean = np.full(K, 1 / K)
        alpha = np.full(K, float(cfg.get("alpha", 1.0)))
        W = np.array([rng.dirichlet(alpha) for _ in range(pool)])
        return _as_mixtures(spread_subset(W, mean, n) if select == "spread" else W, domains)
    nat = natural_weights(cfg, domains, errors)
    if nat is None:
        return None
    conc = cfg.get("concentration", [0.5, 5.0])
    lo, hi = (float(conc), float(conc)) if np.isscalar(conc) else map(float, conc)
    if not 0 < lo <= hi:
        errors.append(f"grid.mixtures.concentration={conc}: a positive number or [lo, hi] with 0 < lo <= hi")
        return None
    base = np.maximum(np.array([nat[d] for d in domains]), 1e-3)     # a domain with no tokens still gets sampled
    mean = base / base.sum()
    W = []
    for _ in range(pool):
        c = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        W.append(rng.dirichlet(c * K * mean))
    W = np.array(W)
    return _as_mixtures(spread_subset(W, mean, n) if select == "spread" else W, domains)


def _as_mixtures(W: np.ndarray, domains: list[str]) -> list[dict[str, float]]:
    return [dict(zip(domains, map(float, w))) for w in W]


def select_ok(cfg: dict, errors: list[str]) -> bool:
    """Whether grid.mixtures.select is a known choice (else an error naming them). Checked for every kind and centre,
    though it applies only to Dirichlet samples: a typo is refused rather than silently ignored."""
    select = cfg.get("select", "iid")
    if select in ("iid", "spread"):
        return True
    errors.append(f"grid.mixtures.select={select!r}: use spread (evenly spaced in distance from the natural mixture) "
                  "or iid (independent samples)")
    return False


def hellinger_from(center: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Hellinger distance sqrt(1 - sum_i sqrt(center_i w_i)) of each row of W from `center`: how far a training
    mixture is from the one scored on, bounded by 1 (a domain left out counts once, however small its weight; KL
    would count 0.001 far beyond 0.01 and crowd the design into near-empty domains, where the loss no longer moves)."""
    return np.sqrt(np.maximum(1.0 - np.sqrt(center[None] * W).sum(-1), 0.0))


def spread_subset(P: np.ndarray, center: np.ndarray, n: int) -> np.ndarray:
    """n of the candidate mixtures P, at Hellinger distances from `center` evenly spaced between the candidates'
    SPREAD_QUANTILES (each target takes the nearest candidate not yet taken). The held-out Spearman ranks mixtures
    whose objective grows with that distance: evenly spaced distances spread the objective evenly over the design,
    where iid samples crowd near the center (bench/README.md, "Mixing: a design whose held-out mixtures spread")."""
    s = hellinger_from(center, P)
    targets = np.linspace(*np.quantile(s, SPREAD_QUANTILES), n)
    free = np.ones(len(P), bool)
    take = []
    for x in targets:
        j = int(np.argmin(np.where(free, np.abs(s - x), np.inf)))
        free[j] = False
        take.append(j)
    return P[take]


def mixtures(cfg: dict | None, domains: list[str], errors: list[str]) -> list[Mixture]:
    if not cfg:
        return [Mixture("data", ())]
    kind = cfg.get("kind")
    found: list[dict[str, float]] = []
    if not select_ok(cfg, errors):
        return []
    if not domains and kind != "list":
        errors.append("grid.mixtures: no domain names: set data.weights, or build the corpus "
                      "(its manifest lists the domains)")
        return []
    if kind == "simplex":
        step = float(cfg["step"])
        if not 0 < step <= 1 or abs(round(1 / step) * step - 1) > 1e-9:
            errors.append(f"grid.mixtures.step={step}: must be 1/n for a whole n (0.5, 0.25, 0.2 ...)")
            return []
        found = simplex_lattice(domains, step)
    elif kind == "dirichlet":
        found = dirichlet_mixtures(cfg, domains, errors)
        if found is None:
            return []
    elif kind == "list":
        found = [dict(m) for m in cfg["list"]]
    else:
        errors.append(f"grid.mixtures.kind={kind!r}: use simplex | dirichlet | list (or null for data.weights)")
        return []
    if cfg.get("include_pure", True) and kind != "list":
        found += [{d: float(d == e) for d in domains} for e in domains]
    if cfg.get("include_uniform", False) and kind != "list":
        found.append({d: 1 / len(domains) for d in domains})
    if cfg.get("include_natural", False) and kind != "list":
        if (nat := natural_weights(cfg, domains, errors)) is None:
            return []
        found.append(nat)
    out, seen = [], set()
    for w in found:
        nz = normalized({d: v for d, v in w.items() if v > 0})
        if nz not in seen:
            seen.add(nz)
            out.append(Mixture("+".join(f"{d}{v:.2g}" for d, v in nz), nz))
    return out


# ---------------------------------------------------------------------------------- learning rates

@dataclass(frozen=True)
class LrChoice:
    lr: float
    source: str         # where it came from, as the plan table shows it: "lr sweep", "lr law", ...


# The planner rounds a chosen lr to 3 significant digits: an lr optimum is not known better than that (the loss
# is flat near it), and the rounded value keeps run ids stable when the same optimum is recomputed.
LR_DIGITS = 3
# Sizes past the swept ones take the lr law's trend within this factor of N of the nearest swept size: wide enough
# to hold 3-6 sizes of a ladder spaced 1.5-2x (a slope from more than two points), narrow enough to be the trend at
# that end rather than across regimes (LrSweep says why).
LOCAL_SPAN = 10.0
RERUN = "then rerun `python sweep.py +grid=lr` and plan again"


@dataclass
class LrSweep:
    """What grid.lr_from found: each swept size's optimum (analysis.laws.lr.optima) and lr_opt(N) = k N^p (None
    with the reason in law_error when fewer than 2 sizes have their optimum inside the lr grid).

    A size the lr sweep ran takes its own optimum: measured at that very N, it assumes nothing about the form of
    lr(N), and near the optimum the loss is flat, so the noise of a 3-lr parabola costs little; a power law that
    misfits a measured size would be a silent systematic error instead (the report shows the law's residuals
    at the swept sizes). A size between two swept ones takes the straight line in (log N, log lr) between their
    optima. A size outside the swept ones takes a power law through the swept sizes within LOCAL_SPAN of the
    nearest end, not the law through all of them: lr_opt(N) is not one power law from the smallest models up (the
    GPU study's 1-layer d64 model's optimum sat 3x above the trend of the next four sizes and alone doubled the
    fitted exponent, halving the lr it gave 5x further up; bench/README.md, "lr law"), and a size past the
    largest swept one continues the trend at that end. The nearest size's lr (what the law replaced) is off by
    (N ratio)^p, a factor of 1.3 for p = -0.4 and sizes 2x apart."""
    path: str
    optima: pd.DataFrame             # one row per swept (N, D)
    law: LrLaw | None
    law_error: str = ""

    def choose(self, n: int, tokens: int, errors: list[str], warnings: list[str]) -> LrChoice | None:
        """The lr for non-embedding size n trained on `tokens`; problems appended (each message once)."""
        def note(sink: list[str], msg: str) -> None:
            if msg not in sink:
                sink.append(msg)
        rows = self.optima[self.optima["N"] == n]
        key = f"grid.lr_from={self.path!r}"
        if len(rows):
            row = rows.iloc[int(np.argmin(np.abs(np.log(rows["D"].to_numpy(float) / max(tokens, 1)))))]
            if row["edge"] == "diverged":
                note(errors, f"{key}: {row['note']}, {RERUN}")
                return None
            if row["edge"]:
                law = f"; the lr law gives {self.law(n):.3g} here" if self.law is not None else ""
                note(warnings, f"{key}: {row['note']}, {RERUN}. Until then runs at N={n:,} use the edge lr "
                               f"{row['lr_best']:.3g}{law}")
                return LrChoice(float(row["lr_best"]), "lr sweep, at edge")
            return LrChoice(float(f"{row['lr_opt']:.{LR_DIGITS}g}"), "lr sweep")
        inside = self.interior(tokens)
        if len(inside) >= 2 and inside["N"].iloc[0] < n < inside["N"].iloc[-1]:
            hi = int(np.searchsorted(inside["N"].to_numpy(float), n))
            (n0, lr0), (n1, lr1) = inside.iloc[hi - 1], inside.iloc[hi]
            t = np.log(n / n0) / np.log(n1 / n0)
            return LrChoice(float(f"{np.exp((1 - t) * np.log(lr0) + t * np.log(lr1)):.{LR_DIGITS}g}"),
                            "lr sweep, interpolated")
        if len(inside) < 2 and self.law is None:
            note(errors, f"{key}: N={n:,} was not in the lr sweep and the lr law could not be fitted: "
                         f"{self.law_error}. Add this size to the lr grid (grid.shapes.depths) or fix the lr grid, "
                         f"{RERUN}")
            return None
        if self.law is not None:
            if far := self.law.extrapolation(n):
                note(warnings, f"{key}: {far}; add this size to the lr grid (grid.shapes.depths), {RERUN}")
            for left_out in self.law.left_out["note"]:   # the law used here is blind to those sizes
                note(warnings, f"{key}: the lr law (used for sizes the lr sweep did not run) leaves out {left_out}, "
                               f"{RERUN}")
        return LrChoice(float(f"{self.local_law(inside, n):.{LR_DIGITS}g}"), "lr law")

    def interior(self, tokens: int) -> pd.DataFrame:
        """N, lr_opt of the swept sizes whose optimum is inside the lr grid, by N (per N the row whose D is nearest
        `tokens`)."""
        rows = self.optima[self.optima["edge"] == ""]
        if not len(rows):
            return rows[["N", "lr_opt"]]
        dist = np.abs(np.log(rows["D"].to_numpy(float) / max(tokens, 1)))
        best = rows.assign(dist=dist).sort_values("dist").groupby("N", as_index=False).first()
        return best.sort_values("N", ignore_index=True)[["N", "lr_opt"]]

    def local_law(self, inside: pd.DataFrame, n: float) -> float:
        """lr at n outside the swept sizes: the power law through those within LOCAL_SPAN of the nearest end (the
        two nearest when fewer lie there); the law through all of them when fewer than 2 are inside the grid."""
        from analysis.laws.common import PowerLaw
        if len(inside) < 2:
            return float(self.law(n))
        ns = inside["N"].to_numpy(float)
        end = ns[0] if n < ns[0] else ns[-1]
        near = inside[np.abs(np.log(ns / end)) <= np.log(LOCAL_SPAN)]
        if len(near) < 2:
            near = inside.iloc[:2] if n < ns[0] else inside.iloc[-2:]
        return float(PowerLaw.fit(near["N"], near["lr_opt"])(n))


def lr_from(sweep_dir: str | Path, errors: list[str], warnings: list[str]) -> LrSweep | None:
    """Read an lr sweep's result.json files (problems appended, not raised; None when nothing is usable)."""
    import warnings as warnings_

    import pandas as pd

    from analysis.laws import lr as lr_law
    from analysis.laws.common import FitConfig, FitError
    path = Path(sweep_dir)
    key = f"grid.lr_from={str(sweep_dir)!r}"
    found = sorted(path.glob("*/result.json"))
    if not found:
        errors.append(f"{key}: no result.json found there; run the lr grid first (python sweep.py +grid=lr) "
                      "or unset grid.lr_from")
        return None
    table = pd.DataFrame([json.loads(f.read_text()) for f in found])
    try:
        optima = lr_law.optima(table)
    except FitError as e:
        errors.append(f"{key}: {e}")
        return None
    if not len(optima):
        errors.append(f"{key}: no size there was trained at 2 or more lrs: point it at an lr sweep "
                      "(python sweep.py +grid=lr, whose grid.lrs lists the lrs)")
        return None
    try:  # the planner needs the law's value, not its interval; its notes reach the plan through choose()
        with warnings_.catch_warnings():
            warnings_.simplefilter("ignore")
            law, why = lr_law.fit(table, FitConfig(n_bootstrap=0)), ""
    except FitError as e:
        law, why = None, str(e)
    unfinished = sum(1 for d in path.iterdir() if (d / "spec.yaml").exists() and not (d / "result.json").exists())
    if unfinished:
        warnings.append(f"{key}: {unfinished} run(s) of the lr sweep have no result.json (pending or failed): "
                        f"the lrs are chosen from its {len(found)} finished run(s)")
    return LrSweep(str(sweep_dir), optima, law, why)
