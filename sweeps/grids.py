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
    lrs       null (train.optim.lr, or per size from an lr sweep: lr_from) | a list of learning rates
"""
from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_zoo import Counts, LadderRule, ModelSpec, count


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
        if convention == "compute":  # what a token is multiplied by: active non-embedding + the output head
            return self.counts.params_active_nonembedding + self.spec.vocab_size * self.spec.d_model
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
    by_depth = {r.depth: r for r in rungs}
    if cfg["depth"] not in by_depth:
        errors.append(f"grid.shapes.depth={cfg['depth']}: not in model.depths={sorted(by_depth)}")
        return []
    return [Shape(by_depth[cfg["depth"]], int(float(cfg["tokens"])))]


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


def dirichlet_mixtures(cfg: dict, domains: list[str], errors: list[str]) -> list[dict[str, float]] | None:
    """Seeded Dirichlet samples. center=uniform: alpha = grid.mixtures.alpha for every domain. center=natural
    (RegMix, Liu et al. 2024): alpha = c * K * natural proportions, so samples spread around the natural mixture,
    with the concentration c drawn log-uniformly from grid.mixtures.concentration ([lo, hi]) per sample, so that
    both near-natural and lopsided mixtures are covered. How many: grid.mixtures.samples, or
    samples_per_domain x the number of domains (a law has about K to 2K parameters per target)."""
    rng = np.random.default_rng(int(cfg.get("seed", 0)))
    K = len(domains)
    n = cfg.get("samples")
    n = int(n) if n is not None else int(cfg.get("samples_per_domain", 4)) * K
    center = cfg.get("center", "uniform")
    if center == "uniform":
        alpha = np.full(K, float(cfg.get("alpha", 1.0)))
        return [dict(zip(domains, map(float, rng.dirichlet(alpha)))) for _ in range(n)]
    if center != "natural":
        errors.append(f"grid.mixtures.center={center!r}: use natural (RegMix: around the corpus's token "
                      "proportions) or uniform")
        return None
    nat = natural_weights(cfg, domains, errors)
    if nat is None:
        return None
    conc = cfg.get("concentration", [0.5, 5.0])
    lo, hi = (float(conc), float(conc)) if np.isscalar(conc) else map(float, conc)
    if not 0 < lo <= hi:
        errors.append(f"grid.mixtures.concentration={conc}: a positive number or [lo, hi] with 0 < lo <= hi")
        return None
    base = np.maximum(np.array([nat[d] for d in domains]), 1e-3)     # a domain with no tokens still gets sampled
    out = []
    for _ in range(n):
        c = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        out.append(dict(zip(domains, map(float, rng.dirichlet(c * K * base / base.sum())))))
    return out


def mixtures(cfg: dict | None, domains: list[str], errors: list[str]) -> list[Mixture]:
    if not cfg:
        return [Mixture("data", ())]
    kind = cfg.get("kind")
    found: list[dict[str, float]] = []
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

def best_lrs(sweep_dir: str | Path) -> dict[int, float]:
    """Non-embedding N -> the learning rate with the lowest loss, from an lr sweep's result.json files."""
    best: dict[int, tuple[float, float]] = {}
    for f in Path(sweep_dir).glob("*/result.json"):
        r = json.loads(f.read_text())
        n = int(r["params_nonembedding"])
        if n not in best or r["loss"] < best[n][0]:
            best[n] = (float(r["loss"]), float(r["lr"]))
    return {n: lr for n, (_, lr) in sorted(best.items())}


def lr_for(n: int, table: dict[int, float]) -> float:
    """The tuned lr of the nearest size in log N (sizes outside the table take the nearest end's)."""
    return table[min(table, key=lambda m: abs(math.log(m / n)))]
