"""`python -m analysis.recommend <sweep dir | report dir | laws.json> --budget C`: the command line of
analysis.recommend (its functions live in analysis/recommend/__init__.py; this module is apart so that the
report, which uses those functions, and this command, which may refit through the report, import no cycle)."""
from __future__ import annotations

import argparse
import json
import sys
import warnings

import numpy as np

from analysis.recommend import ExtrapolationError, data_constrained, inference_optimal, recommend

# ---------------------------------------------------------------- command line
CLI_DOC = """Recommend a model size and token count for a budget from a sweep's saved laws, without refitting:

    python -m analysis.recommend runs/chinchilla --budget 1e20 [--inference-tokens T] [--unique-tokens U] [--json]

LAW is a laws.json (written by `python -m analysis.report`), a report dir, or a sweep dir (its report/laws.json;
a sweep without one is fitted now, which takes longer and is said). The verdict on how well the runs determine the
law comes first; a law judged *not determined* gives no recommendation unless --force. Budgets more than 1e4x
outside the fitted compute range are refused unless --allow-far."""


def _check_lines(verdict: dict) -> list[str]:
    """The verdict's checks as lines; each check a string or a dict (its message, and whether it passed)."""
    lines = []
    for c in verdict.get("checks") or []:
        if isinstance(c, dict):
            ok = next((c[k] for k in ("passed", "ok", "pass") if isinstance(c.get(k), bool)), None)
            text = next((str(c[k]) for k in ("message", "detail", "reason", "text") if c.get(k)), None)
            text = text or ", ".join(f"{k}={v}" for k, v in c.items() if k not in ("passed", "ok", "pass"))
            name = c.get("name") or c.get("check")
            lines.append(("" if ok is None else "ok    " if ok else "FAIL  ") + (f"{name}: " if name else "") + text)
        else:
            lines.append(str(c))
    return lines


def _fmt_ci(lo_hi, spec: str = ".3g") -> str:
    lo, hi = lo_hi
    if np.isnan(lo) or np.isnan(hi):
        return "(no interval: fitted without bootstrap)"
    return f"[{lo:{spec}}, {hi:{spec}}]"


def _text(out: dict) -> str:
    lines = []
    v = out["verdict"]
    if v is None:
        lines.append("verdict: not judged (this laws.json carries no verdict); read the intervals and warnings")
    else:
        lines.append(f"verdict: {v['level']}")
        lines += [f"  {c}" for c in _check_lines(v)]
    lines += [f"law: {out['how']}", f"  sweep {out['sweep']}: {out['conventions']}",
              f"  fitted to {out['fitted']['n_runs']} runs: N {out['fitted']['N'][0]:.3g}..{out['fitted']['N'][1]:.3g}, "
              f"D {out['fitted']['D'][0]:.3g}..{out['fitted']['D'][1]:.3g}, "
              f"C {out['fitted']['C'][0]:.3g}..{out['fitted']['C'][1]:.3g} FLOPs"]
    if "refused" in out:
        return "\n".join(lines + [f"no recommendation: {out['refused']}"])
    r, lvl = out["recommendation"], out["ci_level"]
    head = (f"target loss {r['target_loss']:.4g}: budget C = {r['C']:.3g} FLOPs" if r.get("target_loss") is not None
            else f"budget C = {r['C']:.3g} FLOPs")
    lines += ["", f"{head} ({lvl:.0%} bootstrap intervals)",
              f"  N_opt          {r['N_opt']:<10.3g} {_fmt_ci(r['N_ci'])} parameters",
              f"  D_opt          {r['D_opt']:<10.3g} {_fmt_ci(r['D_ci'])} tokens",
              f"  tokens/param   {r['tokens_per_param']:<10.3g} {_fmt_ci(r['tokens_per_param_ci'])}",
              f"  loss           {r['loss']:<10.4g} {_fmt_ci(r['loss_ci'])}"]
    if (inf := out.get("inference")) is not None:
        lines += ["", f"to reach loss {inf['target_loss']:.4g} and then serve {inf['inference_tokens']:.3g} tokens "
                      f"(Sardana et al. 2023; 2N FLOPs per inference token):",
                  f"  train N = {inf['N']:.3g} {_fmt_ci(inf['N_ci'])} on D = {inf['D']:.3g} {_fmt_ci(inf['D_ci'])} "
                  f"({inf['tokens_per_param']:.3g} tokens/param)",
                  f"  {inf['total_flops']:.3g} FLOPs in all, {inf['saving']:.1%} {_fmt_ci(inf['saving_ci'], '.1%')} less than "
                  f"the compute-optimal N = {inf['chinchilla_N']:.3g} ({inf['chinchilla_total_flops']:.3g} FLOPs)"]
    if (dc := out.get("data_constrained")) is not None:
        lines += ["", f"with only {dc['unique_tokens']:.3g} unique tokens (Muennighoff et al. 2023, R* = {dc['r_star']}):",
                  f"  train N = {dc['N']:.3g} {_fmt_ci(dc['N_ci'])} for {dc['epochs']:.3g} epochs "
                  f"({dc['effective_tokens']:.3g} effective tokens)",
                  f"  loss {dc['loss']:.4g} {_fmt_ci(dc['loss_ci'])} against {dc['unconstrained_loss']:.4g} with "
                  f"unlimited data (N = {dc['unconstrained_N']:.3g})"]
    if out["warnings"]:
        lines += ["", "warnings:"] + [f"  - {w}" for w in out["warnings"]]
    return "\n".join(lines)


def _positive(name: str):
    def parse(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} {text!r}: not a number (e.g. 1e20)") from None
        if not (np.isfinite(x) and x > 0):
            raise argparse.ArgumentTypeError(f"{name} {text}: must be a finite number > 0")
        return x
    return parse


def main(argv: list[str] | None = None) -> int:
    from analysis import lawfile, refit

    p = argparse.ArgumentParser(prog="python -m analysis.recommend", description=CLI_DOC,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("law", help="laws.json, a report dir, or a sweep dir")
    ask = p.add_mutually_exclusive_group(required=True)
    ask.add_argument("--budget", type=_positive("--budget"), help="training FLOPs C, in the law's C convention")
    ask.add_argument("--target-loss", type=_positive("--target-loss"), help="or: the cheapest C that reaches this loss")
    p.add_argument("--inference-tokens", type=_positive("--inference-tokens"),
                   help="also: the N, D that minimise training + inference FLOPs for the recommended loss")
    p.add_argument("--unique-tokens", type=_positive("--unique-tokens"),
                   help="also: the best N at this budget when only this many unique tokens exist (repeated epochs)")
    p.add_argument("--force", action="store_true", help="recommend even from a law judged not determined")
    p.add_argument("--allow-far", action="store_true", help="answer budgets more than 1e4x outside the fitted range")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args(argv)

    def fail(msg: str) -> int:
        if args.json:
            print(json.dumps({"error": msg}))
        else:
            print(f"analysis.recommend: {msg}", file=sys.stderr)
        return 1

    try:
        laws, how = refit.resolve(args.law)
    except (lawfile.LawFileError, ValueError, FileNotFoundError) as e:
        return fail(str(e))
    law = laws.surface
    if law is None:
        return fail(f"{how}: it holds no approach-3 law (not fitted: {laws.failures.get('approach 3', 'no reason')}); "
                    "recommendations need one: sweep more runs (at least 8, over 3+ budgets) and rerun the report")
    out = {"law": str(laws.path), "how": how, "sweep": laws.sweep, "verdict": laws.verdict,
           "conventions": law.config.describe() + (f" ({law.config.origin})" if law.config.origin else ""),
           "n_col": law.config.n_col, "c_col": law.config.c_col, "ci_level": law.config.ci_level,
           "fitted": {"n_runs": law.n_runs, "N": law.n_range, "D": law.d_range, "C": law.c_range},
           "warnings": list(law.warnings)}
    if laws.verdict is not None and laws.verdict["level"] == "not determined" and not args.force:
        out["refused"] = ("the law is judged not determined by its runs (see the checks above), so its numbers would "
                          "mislead: sweep what the checks ask for, or pass --force to see them anyway")
        print(json.dumps(lawfile.jsonable(out), indent=1) if args.json else _text(out))
        return 3
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")       # each warning is kept with its result and printed below
            rec = recommend(law, budget=args.budget, target_loss=args.target_loss, allow_far=args.allow_far)
            out["recommendation"] = {**rec.row(), "target_loss": rec.target_loss, "N_ci": rec.n_ci, "D_ci": rec.d_ci,
                                     "tokens_per_param_ci": rec.tokens_per_param_ci, "loss_ci": rec.loss_ci}
            del out["recommendation"]["warnings"]
            out["warnings"] += rec.warnings
            if args.inference_tokens:
                out["inference"] = inference_optimal(law, rec.loss, args.inference_tokens)
            if args.unique_tokens:
                out["data_constrained"] = dc = data_constrained(law, rec.budget, args.unique_tokens,
                                                                allow_far=args.allow_far)
                out["warnings"] += [w for w in dc["warnings"] if w not in out["warnings"]]
    except ExtrapolationError as e:
        return fail(f"refused: {e}".replace("allow_far=True", "--allow-far"))
    except ValueError as e:
        return fail(str(e))
    print(json.dumps(lawfile.jsonable(out), indent=1) if args.json else _text(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
