"""The local downstream tasks: names, what each is built from, and its lm-eval task config.

    arith            arithmetic multiple choice (generated; harness.downstream_tasks.arith)
    cloze_<domain>   next-words cloze on held-out documents of one corpus domain (.cloze)
    cloze            shorthand for every cloze_<domain> of the corpus, plus their mean
    lm_eval:<name>   lm-eval's own task or group <name> (e.g. lm_eval:hellaswag), run in full; its
                     dataset must be in the local Hugging Face cache (the hub is off at run time)

Each task is an lm-eval `multiple_choice` task given to lm-eval as an inline config dict whose
`custom_dataset` returns an in-memory `datasets.Dataset`: the cloze tasks depend on the corpus'
domains, and building the documents in-process means no files, no HF datasets cache and no hub.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.downstream_tasks.arith import arith_docs
from harness.downstream_tasks.cloze import HeldoutDocuments, cloze_docs
from model_zoo.spec import SpecError

LM_EVAL_PREFIX = "lm_eval:"
TASK_SEED = 1234  # fixed, not the run's seed: every run of a sweep answers the same questions


@dataclass(frozen=True)
class LocalTask:
    name: str
    metric: str  # the lm-eval metric reported as acc_<name>
    description: str


def available_tasks(domains: Sequence[str]) -> dict[str, LocalTask]:
    tasks = {"arith": LocalTask("arith", "acc", "2-digit +, -, * multiple choice, 4 choices")}
    for d in domains:
        tasks[f"cloze_{d}"] = LocalTask(f"cloze_{d}", "acc_norm",
                                        f"next 4 words of a held-out {d} document, 4 choices")
    return tasks


def expand(names: Sequence[str], domains: Sequence[str]) -> list[str]:
    """Task names with the `cloze` shorthand replaced by one cloze task per domain (order kept, no repeats)."""
    out: list[str] = []
    for n in names:
        for m in ([f"cloze_{d}" for d in domains] if n == "cloze" else [n]):
            if m not in out:
                out.append(m)
    return out


def task_errors(names: Sequence[str], domains: Sequence[str] | None = None) -> list[str]:
    """One SpecError-style line per unknown task name. With domains=None (corpus not known yet),
    any cloze_<x> passes; evaluate() checks again against the corpus. lm_eval:<name> is checked
    against lm-eval's task index only when evaluated (indexing it takes 10 s or more)."""
    known = available_tasks(domains or ())
    bad = [n for n in names if n != "cloze" and n not in known
           and not (domains is None and n.startswith("cloze_") and len(n) > len("cloze_"))
           and not (n.startswith(LM_EVAL_PREFIX) and len(n) > len(LM_EVAL_PREFIX))]
    listed = ["arith", "cloze"] + ([f"cloze_{d}" for d in domains] if domains is not None else ["cloze_<domain>"])
    listed.append(f"{LM_EVAL_PREFIX}<lm-eval task with its dataset in the local HF cache>")
    return [f"eval.downstream: unknown task {n!r}; available tasks: {listed}" for n in bad]


def check_tasks(names: Sequence[str], domains: Sequence[str] | None = None) -> None:
    """Raise SpecError naming every unknown task and listing the available ones (no lm-eval import)."""
    if errs := task_errors(names, domains):
        raise SpecError(errs)


def build_docs(name: str, *, heldout: Callable[[str], object], eod_id: int,
               decode: Callable[[list[int]], str], n_docs: int) -> list[dict]:
    """The documents of one task. heldout(domain) gives that domain's held-out token array."""
    if name == "arith":
        return arith_docs(n_docs, seed=TASK_SEED)
    domain = name.removeprefix("cloze_")
    return cloze_docs(HeldoutDocuments(heldout(domain), eod_id, decode), n_docs, seed=TASK_SEED)


def lm_eval_config(task: LocalTask, docs: list[dict]) -> dict:
    """An inline lm-eval task config (lm_eval.config.task.TaskConfig fields) serving `docs`."""
    def dataset(**_metadata):
        import datasets  # imported by lm_eval anyway; kept out of this module's import time
        return {"test": datasets.Dataset.from_list(docs)}

    return {
        "task": task.name,
        "custom_dataset": dataset,
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "context",       # names of document fields: used verbatim, no Jinja
        "doc_to_choice": "choices",
        "doc_to_target": "gold",
        "target_delimiter": "",         # choices carry their own leading whitespace
        "num_fewshot": 0,
        "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True}
                        for m in ("acc", "acc_norm")],
        "metadata": {"version": 1.0, "description": task.description},
    }
