"""What a report section is made of, and the registry of sections (analysis.report renders them).

A section is a function Context -> list of blocks (Heading, Para, Table, Figure), or None when the
columns or fits it needs are absent (it is then skipped). analysis.report registers its own sections;
a law adds its section from its own module with `register(fn, after=...)` (analysis/laws/moe_report.py),
so neither imports the other's sections and the report needs no edit for a new law.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from analysis import results, validate
from analysis.laws.common import FitConfig


@dataclass
class Heading:
    text: str


@dataclass
class Para:
    text: str                       # markdown-light: **bold** and `code` are rendered in HTML too


@dataclass
class Table:
    df: pd.DataFrame
    caption: str = ""


@dataclass
class Figure:
    name: str                       # file stem under figures/
    fig: object                     # matplotlib Figure, or a function making one (made when the report draws it)
    caption: str = ""


@dataclass
class Context:
    results: results.Results
    config: FitConfig
    budgets: list[float] | None = None
    fits: dict[str, object] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    holdout: validate.Holdout | None = None
    verdict: object | None = None                # analysis.verdict.Verdict: the checks on the fits, what may be advised
    not_chinchilla: str = ""        # why the Chinchilla laws (approaches 1-3, their verdict and advice) were not fitted

    @property
    def runs(self) -> pd.DataFrame:
        """The runs the Chinchilla laws describe: the dense ones. An MoE sweep's MoE runs follow their
        own law (analysis/laws/moe.py), whose section reads results.runs."""
        r = self.results.runs
        return r[r["family"] != "moe"] if "family" in r.columns else r

    @property
    def curves(self) -> pd.DataFrame:
        c = self.results.curves
        return c[c["run_id"].isin(self.runs["run_id"])] if "run_id" in c.columns and "run_id" in self.runs else c

    @property
    def a3(self):
        return self.fits.get("approach 3")


Section = Callable[[Context], "list | None"]
SECTIONS: list[Section] = []        # in report order


def register(fn: Section, after: Section | None = None) -> Section:
    """Add a section after `after` (or at the end); returns fn, so it also serves as a decorator."""
    SECTIONS.insert(SECTIONS.index(after) + 1 if after else len(SECTIONS), fn)
    return fn
