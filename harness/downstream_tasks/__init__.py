"""The local downstream task suite: names, what each is built from, how it is scored.

    arith            2-digit +, -, * multiple choice by log-likelihood, 4 choices (generated; .arith)
    arith_em         the same kind of question answered by greedy generation, exact match (.arith)
    cloze_<domain>   next-words cloze on held-out documents of one corpus domain, 4 choices (.cloze)
    code             next-line completion on held-out files of the corpus' `code` domain, 4 choices (.code)
    text_<domain>    bits per byte on held-out documents of one domain (.text)
    cloze, text      shorthands for every cloze_<domain> / text_<domain> (cloze adds their mean)
    suite            every local task above that the corpus has
    yaml:<path>      a user's lm-eval task YAML (run through lm-eval, which must be installed)
    lm_eval:<name>   lm-eval's own task or group <name> (e.g. lm_eval:hellaswag), run in full; its
                     dataset must be in the local Hugging Face cache (the hub is off at run time)

The local tasks are a pure function of (SUITE_VERSION, corpus held-out split, item count): items are generated
by rules from a fixed seed (TASK_SEED, not the run's: every run of a sweep answers the same questions), and the
suite's fingerprint (a hash of every item) is logged with each result, so two results are comparable exactly
when their fingerprints are equal. Each task has up to DEFAULT_ITEMS items, or the whole usable held-out pool
when that is smaller (the item count is reported with every result). Kinds: "choice" (pick the most likely of
the choices: acc, acc_norm), "generate" (greedy answer, exact match), "rolling" (bits per byte only); every
kind also reports the continuous metric, bits per byte of the correct answer.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.downstream_tasks.arith import arith_docs, arith_em_docs
from harness.downstream_tasks.cloze import HeldoutDocuments, cloze_docs
from harness.downstream_tasks.code import code_docs
from harness.downstream_tasks.text import text_docs
from model_zoo.spec import SpecError

LM_EVAL_PREFIX = "lm_eval:"
YAML_PREFIX = "yaml:"
TASK_SEED = 1234       # fixed, not the run's seed: every run of a sweep answers the same questions
SUITE_VERSION = 2      # bump when a rule that makes items changes (1: the lm-eval-only arith/cloze tasks)
DEFAULT_ITEMS = 500    # per task: a binomial standard error of at most 0.022 on an accuracy
CODE_DOMAIN = "code"
SHORTHANDS = ("cloze", "text", "suite")


@dataclass(frozen=True)
class LocalTask:
    name: str
    kind: str              # "choice" | "generate" | "rolling"
    metric: str            # the headline accuracy reported as acc_<name> ("" for rolling: bits per byte only)
    chance: float          # the accuracy of guessing (the downstream law's floor)
    description: str
    domain: str | None = None


def available_tasks(domains: Sequence[str]) -> dict[str, LocalTask]:
    tasks = {"arith": LocalTask("arith", "choice", "acc", 0.25, "2-digit +, -, * multiple choice, 4 choices"),
             "arith_em": LocalTask("arith_em", "generate", "exact_match", 0.0,
                                   "2-digit +, -, * answered by greedy generation, exact match")}
    for d in domains:
        tasks[f"cloze_{d}"] = LocalTask(f"cloze_{d}", "choice", "acc_norm", 0.25,
                                        f"next 4 words of a held-out {d} document, 4 choices", d)
    if CODE_DOMAIN in domains:
        tasks["code"] = LocalTask("code", "choice", "acc_norm", 0.25,
                                  f"next line of a held-out {CODE_DOMAIN} file, 4 choices", CODE_DOMAIN)
    for d in domains:
        tasks[f"text_{d}"] = LocalTask(f"text_{d}", "rolling", "", 0.0, f"bits per byte on held-out {d} documents", d)
    return tasks


def expand(names: Sequence[str], domains: Sequence[str]) -> list[str]:
    """Task names with the shorthands (cloze, text, suite) replaced by their tasks (order kept, no repeats)."""
    local = available_tasks(domains)
    groups = {"cloze": [f"cloze_{d}" for d in domains], "text": [f"text_{d}" for d in domains], "suite": list(local)}
    out: list[str] = []
    for n in names:
        for m in groups.get(n, [n]):
            if m not in out:
                out.append(m)
    return out


def read_task_yaml(path: str | Path):
    """An lm-eval task YAML's content; lm-eval's `!function` tags are read as strings (lm-eval loads their
    code itself when the task runs). Raises yaml.YAMLError when the file does not parse."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass
    Loader.add_multi_constructor("!", lambda loader, suffix, node: f"!{suffix}")
    return yaml.load(Path(path).read_text(), Loader=Loader)


def yaml_task_errors(name: str) -> list[str]:
    """Problems with a yaml:<path> task: the file must exist and parse as an lm-eval task (a mapping with `task`)."""
    import yaml
    path = Path(name.removeprefix(YAML_PREFIX))
    key = f"eval.downstream: {name}"
    if not path.is_file():
        return [f"{key}: no such file; give the path of an lm-eval task YAML (yaml:/abs/path/task.yaml)"]
    try:
        conf = read_task_yaml(path)
    except yaml.YAMLError as e:
        return [f"{key}: does not parse as YAML ({' '.join(str(e).split())}); fix the file"]
    if not isinstance(conf, dict) or not isinstance(conf.get("task"), str):
        return [f"{key}: not an lm-eval task config (a mapping with a `task: <name>` key)"]
    return []


def task_errors(names: Sequence[str], domains: Sequence[str] | None = None) -> list[str]:
    """One SpecError-style line per unknown or unusable task name. With domains=None (corpus not known yet),
    any cloze_<x> / text_<x> / code passes; evaluate() checks again against the corpus. lm_eval:<name> is
    checked against lm-eval's task index only when evaluated (indexing it takes 10 s or more)."""
    known = available_tasks(domains or ())
    errs: list[str] = []
    bad = []
    for n in names:
        if n.startswith(YAML_PREFIX):
            errs += yaml_task_errors(n)
        elif not (n in SHORTHANDS or n in known
                  or (domains is None and (n == "code" or any(n.startswith(p) and len(n) > len(p)
                                                              for p in ("cloze_", "text_"))))
                  or (n.startswith(LM_EVAL_PREFIX) and len(n) > len(LM_EVAL_PREFIX))):
            bad.append(n)
    listed = list(SHORTHANDS) + (list(known) if domains is not None
                                 else ["arith", "arith_em", "cloze_<domain>", "code", "text_<domain>"])
    listed += [f"{YAML_PREFIX}<path of an lm-eval task YAML>",
               f"{LM_EVAL_PREFIX}<lm-eval task with its dataset in the local HF cache>"]
    return [f"eval.downstream: unknown task {n!r}; available tasks: {listed}" for n in bad] + errs


def check_tasks(names: Sequence[str], domains: Sequence[str] | None = None) -> None:
    """Raise SpecError naming every unknown task and listing the available ones (no lm-eval import)."""
    if errs := task_errors(names, domains):
        raise SpecError(errs)


def build_docs(name: str, *, heldout: Callable[[str], object], eod_id: int,
               decode: Callable[[list[int]], str], n_docs: int) -> list[dict]:
    """The items of one local task. heldout(domain) gives that domain's held-out token array."""
    if name == "arith":
        return arith_docs(n_docs, seed=TASK_SEED)
    if name == "arith_em":
        return arith_em_docs(n_docs, seed=TASK_SEED + 1)   # other questions than arith's
    kind, _, domain = name.partition("_")
    domain = domain or CODE_DOMAIN
    documents = HeldoutDocuments(heldout(domain), eod_id, decode)
    make = {"cloze": cloze_docs, "code": code_docs, "text": text_docs}[kind]
    return make(documents, n_docs, seed=TASK_SEED)


@dataclass
class Suite:
    """The items of each local task, built once (a run builds it before training and reuses it)."""
    tasks: dict[str, LocalTask]
    items: dict[str, list[dict]]
    version: int = SUITE_VERSION

    @property
    def fingerprint(self) -> str:
        """"v<version>-<hash of every item>": equal fingerprints, identical questions."""
        blob = json.dumps({n: self.items[n] for n in sorted(self.items)}, sort_keys=True, ensure_ascii=False)
        return f"v{self.version}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"

    def subset(self, n_items: int) -> Suite:
        """The first n_items of each task: a fixed subset (the in-training curves)."""
        return Suite(self.tasks, {n: items[:n_items] for n, items in self.items.items()}, self.version)


def build_suite(names: Sequence[str], *, domains: Sequence[str], heldout: Callable[[str], object], eod_id: int,
                decode: Callable[[list[int]], str], n_items: int = DEFAULT_ITEMS) -> Suite:
    """Every local task among `names` (shorthands expanded) with its items; SpecError naming each task that
    has no items (e.g. a domain whose held-out documents are all too short), before any model is run."""
    local = available_tasks(domains)
    names = [n for n in expand(names, domains) if n in local]
    items = {n: build_docs(n, heldout=heldout, eod_id=eod_id, decode=decode, n_docs=n_items) for n in names}
    if empty := [n for n, docs in items.items() if not docs]:
        raise SpecError([f"eval.downstream: task {n!r} has no items: the held-out split of domain "
                         f"{local[n].domain!r} has no usable document (too few or too short); drop the task "
                         "or prepare the corpus with more held-out text (heldout_frac)" for n in empty])
    return Suite({n: local[n] for n in names}, items)


def lm_eval_config(task: LocalTask, docs: list[dict]) -> dict:
    """An inline lm-eval task config (lm_eval.config.task.TaskConfig fields) serving a choice task's `docs`
    (tests check that lm-eval's accuracies equal harness.downstream's own on the same items)."""
    if task.kind != "choice":
        raise ValueError(f"{task.name}: only choice tasks have an lm-eval multiple_choice config")

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
        "metadata": {"version": float(SUITE_VERSION), "description": task.description},
    }
