"""A sweep's laws for the commands that reuse them (analysis.recommend, analysis.compare): read from its
laws.json (analysis.lawfile), or fitted now as the report fits them when there is none. Apart from lawfile so
that reading a saved law never imports the report, and the report never imports this."""
from __future__ import annotations

import time
import warnings
from pathlib import Path

from analysis import lawfile


def resolve(path: str | Path, n_col: str | None = None, c_col: str | None = None,
            n_bootstrap: int | None = None) -> tuple[lawfile.Laws, str]:
    """(laws, how they were obtained) for a laws.json, a report dir or a sweep dir. A sweep dir without a laws.json,
    or whose laws.json was fitted under other conventions than an explicit n_col / c_col, is fitted now (every
    approach the report fits); `how` says so. A laws.json alone cannot be converted to other conventions."""
    found, p = lawfile.find(path), Path(path)
    if found is not None:
        laws = lawfile.load(found)
        differs = [f"{k}={want} (it has {have})" for k, want, have in
                   (("n_col", n_col, laws.config.n_col), ("c_col", c_col, laws.config.c_col))
                   if want is not None and want != have]
        if not differs:
            return laws, f"read {found}" + lawfile.stale(found, p)
        if not p.is_dir():
            raise lawfile.LawFileError(f"{found}: asked for {', '.join(differs)}: a saved law cannot be converted to another "
                               "convention without its runs; pass the sweep directory instead (it is refitted), or "
                               f"rewrite the file with `python -m analysis.report <sweep_dir> --n-col .. --c-col ..`")
    elif not p.is_dir():
        raise lawfile.LawFileError(f"{path}: neither a laws.json nor a directory; give a sweep dir (runs/<sweep>) or its "
                           "report/laws.json")
    from analysis import report, results  # the fit's whole stack (pandas, scipy, plots): only when refitting
    if not results.run_dirs(p):
        raise lawfile.LawFileError(f"{p}: holds no laws.json and no run directories (spec.yaml / result.json): not a sweep dir; "
                           "give runs/<sweep> or a laws.json")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = results.load(p)
        kw = {} if n_bootstrap is None else {"n_bootstrap": n_bootstrap}
        ctx = report.build_context(res, res.fit_config(n_col=n_col, c_col=c_col, **kw))
    laws = lawfile.from_content(lawfile.content(p.name, ctx.config, ctx.fits, ctx.failures, lawfile.verdict_of(ctx)), p)
    why = "its laws.json has other conventions" if found is not None else "no laws.json there"
    return laws, (f"refitted {p} from its {len(res.runs)} runs in {time.perf_counter() - t0:.0f} s ({why}; "
                  f"`python -m analysis.report {p}` saves the laws)")
