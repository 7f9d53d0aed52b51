"""`python -m analysis.compare A B`: two sweeps' laws side by side (e.g. two mixtures, or dense against MoE).

A and B are sweep dirs or laws.json files (analysis/lawfile.py: a sweep's report/laws.json is read; a sweep without
one is fitted). Writes to --out (default ./compare/):

    compare.md          a table: conventions, verdicts, approach-3 parameters and exponents with intervals, the
                        exponents of approaches 1 and 2, and N_opt, D_opt, loss at common budgets
    compare_optimal.png N_opt(C) and loss_opt(C) of both laws overlaid, with bootstrap bands; solid over each fitted
                        compute range, dashed where extrapolated

Laws fitted under different conventions (N or C) are not comparable: N_opt under params_compute and under
params_nonembedding are different numbers, and exact FLOPs and 6ND differ per model. Converting needs the runs, so
the comparison is refused unless both are sweep dirs and --n-col / --c-col name one convention to refit both under.
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from analysis import lawfile, recommend, refit
from analysis.laws.common import C_COLS, N_COLS

COLORS = ("#1b9e77", "#7570b3")


class CompareError(ValueError):
    """The two laws cannot be set side by side as they are."""


def check_comparable(a: lawfile.Laws, b: lawfile.Laws, names: tuple[str, str]) -> list[str]:
    """Refuse different N or C conventions; return notes on what differs but can be stated (interval levels)."""
    differ = [(k, getattr(a.config, k), getattr(b.config, k)) for k in ("n_col", "c_col")
              if getattr(a.config, k) != getattr(b.config, k)]
    if differ:
        what = "; ".join(f"{k}: {names[0]} has {x}, {names[1]} has {y}" for k, x, y in differ)
        raise CompareError(
            f"the laws were fitted under different conventions ({what}): their N_opt and C are different quantities, "
            "and converting one into the other needs each run's parameter and FLOP counts. Refit both under one "
            "convention: pass both sweep dirs with --n-col and --c-col (e.g. --n-col "
            f"{a.config.n_col} --c-col {a.config.c_col}), or rewrite each laws.json with `python -m analysis.report "
            "<sweep_dir> --n-col .. --c-col ..`")
    notes = []
    if a.config.ci_level != b.config.ci_level:
        notes.append(f"interval levels differ: {names[0]} {a.config.ci_level:.0%}, {names[1]} {b.config.ci_level:.0%}")
    return notes


def fmt(x: float) -> str:
    if not np.isfinite(x):
        return "–"
    return f"{x:.4g}" if 1e-3 <= abs(x) < 1e5 or x == 0 else f"{x:.3g}"


def with_ci(x: float, lo_hi) -> str:
    lo, hi = (float(v) for v in lo_hi)
    return fmt(x) + (f" [{fmt(lo)}, {fmt(hi)}]" if np.isfinite(lo) and np.isfinite(hi) else "")


def describe_verdict(v: dict | None) -> str:
    return v["level"] if v else "not judged"


def default_budgets(laws: list[lawfile.Laws]) -> list[float]:
    """The larger of the two largest swept budgets, and 10x and 100x it."""
    hi = max(x.surface.c_range[1] for x in laws if x.surface is not None)
    return [hi, 10 * hi, 100 * hi]


def rows(laws: list[lawfile.Laws], budgets: list[float]) -> list[tuple[str, ...]]:
    """(quantity, A, B) rows of the side-by-side table."""
    def each(fn) -> tuple[str, ...]:
        return tuple(fn(x) for x in laws)

    out = [("verdict", *each(lambda x: describe_verdict(x.verdict))),
           ("conventions", *each(lambda x: f"N = `{x.config.n_col}`, C = `{x.config.c_col}`, "
                                           f"{x.config.ci_level:.0%} intervals")),
           ("runs (approach 3)", *each(lambda x: str(x.surface.n_runs) if x.surface else "–")),
           ("fitted C range", *each(lambda x: f"{fmt(x.surface.c_range[0])} .. {fmt(x.surface.c_range[1])}"
                                    if x.surface else "–"))]
    for p in lawfile.PARAMS:
        out.append((f"approach 3: {p}", *each(lambda x, p=p: with_ci(getattr(x.surface, p), x.surface.ci(p))
                                               if x.surface else "not fitted")))
    for e, what in (("a", "N_opt ∝ C^a"), ("b", "D_opt ∝ C^b")):
        out.append((f"approach 3: {e} ({what})", *each(lambda x, e=e: with_ci(getattr(x.surface, e), x.surface.ci(e))
                                                        if x.surface else "not fitted")))
        for name in ("approach 1", "approach 2"):
            law = "n_opt" if e == "a" else "d_opt"
            out.append((f"{name}: {e}", *each(lambda x, name=name, law=law: with_ci(
                getattr(x.power[name], law).a, getattr(x.power[name], law).a_ci) if name in x.power else "not fitted")))
    for C in budgets:
        recs = []
        for x in laws:
            if x.surface is None:
                recs.append(None)
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    recs.append(recommend.recommend(x.surface, budget=C))
            except recommend.ExtrapolationError:
                recs.append("refused: more than 1e4x outside its fitted range")
        show = lambda r, f: (f(r) if isinstance(r, recommend.Recommendation) else r or "not fitted")  # noqa: E731
        out += [(f"C = {fmt(C)}: N_opt", *(show(r, lambda r: with_ci(r.n_opt, r.n_ci)) for r in recs)),
                (f"C = {fmt(C)}: D_opt", *(show(r, lambda r: with_ci(r.d_opt, r.d_ci)) for r in recs)),
                (f"C = {fmt(C)}: loss", *(show(r, lambda r: with_ci(r.loss, r.loss_ci)) for r in recs))]
    return out


def md_table(header: tuple[str, ...], body: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body])


def figure(laws: list[lawfile.Laws], names: tuple[str, str], budgets: list[float]):
    """N_opt(C) and loss_opt(C) of each law (approach 3), bands from its bootstrap; approach 2's N_opt dotted."""
    from analysis.plots import plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    fitted = [x for x in laws if x.surface is not None]
    lo = min(x.surface.c_range[0] for x in fitted) / 3
    hi = max(max(budgets), max(x.surface.c_range[1] for x in fitted) * 10)
    C = np.geomspace(lo, hi, 120)
    for x, name, color in zip(laws, names, COLORS):
        s = x.surface
        if s is None:
            continue
        inside = (C >= s.c_range[0]) & (C <= s.c_range[1])
        for ax, fn in zip(axes, ("n_opt", "loss_opt")):
            y, (ylo, yhi) = getattr(s, fn)(C), s.interval(fn, C)
            label = f"{name}: N_opt ∝ C^{s.a:.3f}" if fn == "n_opt" else f"{name}: E = {s.E:.3g}"
            ax.plot(C, np.where(inside, y, np.nan), color=color, lw=2, label=label)
            ax.plot(C, y, color=color, lw=1.2, ls="--")
            if np.isfinite(ylo).any():
                ax.fill_between(C, ylo, yhi, color=color, alpha=0.15, lw=0)
        if "approach 2" in x.power:
            n2 = x.power["approach 2"].n_opt
            axes[0].plot(C, n2(C), color=color, lw=1, ls=":", label=f"{name}: approach 2, C^{n2.a:.3f}")
    for ax, ylabel in zip(axes, ("N_opt (parameters)", "compute-optimal loss")):
        for C_b in budgets:
            ax.axvline(C_b, color="grey", lw=0.6, alpha=0.5)
        ax.set(xscale="log", yscale="log" if ylabel.startswith("N") else "linear",
               xlabel=f"training compute C (FLOPs: {laws[0].config.c_col})", ylabel=ylabel)
        ax.legend(fontsize=8)
    axes[0].set_title(f"Compute-optimal size (N = {laws[0].config.n_col})")
    axes[1].set_title("Loss at the optimum (solid: fitted range; grey: table budgets)")
    fig.tight_layout()
    return fig


def compare(a: str | Path, b: str | Path, out_dir: str | Path = "compare", budgets: list[float] | None = None,
            names: tuple[str, str] | None = None, n_col: str | None = None, c_col: str | None = None) -> Path:
    """Write compare.md and compare_optimal.png to out_dir; returns compare.md's path."""
    resolved = [refit.resolve(p, n_col=n_col, c_col=c_col) for p in (a, b)]
    laws = [r[0] for r in resolved]
    if names is None:
        names = tuple(x.sweep for x in laws)
        if names[0] == names[1]:
            names = (f"A ({names[0]})", f"B ({names[1]})")
    notes = check_comparable(*laws, names)
    if all(x.surface is None for x in laws):
        raise CompareError("neither sweep has an approach-3 law (" + "; ".join(
            f"{n}: {x.failures.get('approach 3', '?')}" for n, x in zip(names, laws)) + "): nothing to compare")
    budgets = sorted(budgets or default_budgets(laws))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig = figure(laws, names, budgets)
    fig.savefig(out / "compare_optimal.png", bbox_inches="tight")
    from analysis.plots import plt
    plt.close(fig)
    cfg = laws[0].config
    text = [f"# {names[0]} against {names[1]}\n",
            *[f"- {n}: {how}" for n, (_, how) in zip(names, resolved)],
            f"- conventions (both): N = `{cfg.n_col}`, C = `{cfg.c_col}`",
            *[f"- note: {n}" for n in notes], "",
            md_table(("quantity", *names), rows(laws, budgets)), "",
            "Brackets: bootstrap intervals (resampling runs). Budgets more than 1e4x outside a law's fitted compute "
            "range are refused, not extrapolated.\n",
            "![N_opt and loss against compute](compare_optimal.png)\n",
            "*N_opt(C) and the compute-optimal loss of both laws (approach 3) with their bootstrap bands; solid over "
            "each fitted range, dashed beyond it; dotted: approach 2's N_opt power law.*\n"]
    for n, x in zip(names, laws):
        text += [f"**{n} warning:** {w}\n" for w in x.warnings]
        text += [f"**{n}: {k} not fitted:** {why}\n" for k, why in x.failures.items() if k != "holdout"]
    md = out / "compare.md"
    md.write_text("\n".join(text))
    return md


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis.compare", description=__doc__.split("\n")[0])
    p.add_argument("a", help="sweep dir or laws.json")
    p.add_argument("b", help="sweep dir or laws.json")
    p.add_argument("--out", default="compare", help="output directory (default ./compare)")
    p.add_argument("--budgets", type=float, nargs="+", help="FLOP budgets for the table (default: the larger largest "
                                                            "swept budget, 10x and 100x it)")
    p.add_argument("--names", nargs=2, metavar=("NAME_A", "NAME_B"), help="labels (default: the sweeps' names)")
    p.add_argument("--n-col", choices=N_COLS, help="refit both sweeps under this N (sweep dirs only)")
    p.add_argument("--c-col", choices=C_COLS, help="refit both sweeps under this C (sweep dirs only)")
    args = p.parse_args(argv)
    if args.budgets and not all(np.isfinite(x) and x > 0 for x in args.budgets):
        p.error(f"--budgets {args.budgets}: each must be a finite number of FLOPs > 0")
    try:
        md = compare(args.a, args.b, args.out, args.budgets, tuple(args.names) if args.names else None,
                     args.n_col, args.c_col)
    except (CompareError, lawfile.LawFileError) as e:
        raise SystemExit(f"analysis.compare: {e}") from None
    print(f"wrote {md}\nwrote {md.parent / 'compare_optimal.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
