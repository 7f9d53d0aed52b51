"""The prompt battery: a fixed set of prompts sampled greedily at every checkpoint, to read what a model writes
as it trains (metrics.jsonl {"kind": "samples"} lines, and a wandb table when wandb is on).

Fixed prompts, plus the first words of the first held-out document of each corpus domain: the same prompts
for every run on a corpus, so samples compare across runs and steps.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

PROMPTS = (
    "Compute 12 + 7.\nAnswer:",
    "Compute 45 - 18.\nAnswer:",
    "Compute 6 * 7.\nAnswer:",
    "def main(",
    "The ",
    "In this section",
)
DOMAIN_PROMPT_WORDS = 8


def battery(documents_by_domain: dict[str, Sequence[str]]) -> list[str]:
    """PROMPTS, then the first DOMAIN_PROMPT_WORDS words of each domain's first non-empty held-out document."""
    out = list(PROMPTS)
    for domain in sorted(documents_by_domain):
        first = next((d for d in documents_by_domain[domain] if d.strip()), "")
        words = re.findall(r"\s*\S+", first)[:DOMAIN_PROMPT_WORDS]
        if words and (p := "".join(words)) not in out:
            out.append(p)
    return out
