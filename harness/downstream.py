"""Downstream evaluation: the local task suite (harness.downstream_tasks) scored by the project's own evaluator,
and lm-eval tasks (a user's task YAML, lm-eval's own tasks) through the lm-eval adapter, fully offline.

    evaluate(model, corpus, spec, ("suite",), device) -> {"acc_arith": 0.31, "se_arith": 0.021,
                                                          "n_items_arith": 500, "bpb_arith": 1.9, ...}
    samples(model, corpus, spec, device, max_new_tokens) -> [{"prompt", "completion"}, ...]   (the prompt battery)

Per task: acc_<task> (the task's headline accuracy: acc, acc_norm or exact match), se_<task> (its binomial
standard error, sqrt(p (1 - p) / (n - 1)), lm-eval's), chance_<task> (guessing's accuracy), n_items_<task> and
bpb_<task>, the continuous metric:
bits per UTF-8 byte of the correct answer (sum over items of -log2 p(answer | context) / sum of the answers'
bytes; for text_<domain>, of the whole documents). `cloze` adds acc_cloze / se_cloze / bpb_cloze, the
unweighted means over domains. `downstream_suite` is the suite's fingerprint (harness.downstream_tasks.Suite).

The local suite needs no lm-eval (harness.scoring does the scoring; tests check it agrees with lm-eval on the
same items), so it runs where lm-eval is not installed. yaml:<path> and lm_eval:<name> tasks need lm-eval;
without it they are refused before any compute, with the install command.
The trainer builds the suite once before training (so a task without items fails before compute), scores a
fixed subset at every eval (eval.downstream_items) and the full suite at the end; `python -m harness.downstream
RUN_DIR` scores a run's newest checkpoint.
"""
from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import torch

from harness.data import tokenizer as corpus_tokenizer
from harness.data.corpus import Corpus, CorpusError, data_root, resolve_corpus_path
from harness.downstream_tasks import (
    DEFAULT_ITEMS,
    LM_EVAL_PREFIX,
    YAML_PREFIX,
    HeldoutDocuments,
    LocalTask,
    Suite,
    build_suite,
    check_tasks,
    expand,
    task_errors,
)
from harness.downstream_tasks.battery import battery
from harness.scoring import Scorer
from harness.spec import RunSpec
from model_zoo.spec import SpecError

__all__ = ["Scorer", "check_tasks", "evaluate", "load_tokenizer", "prepare", "samples", "task_errors"]
log = logging.getLogger(__name__)
DEFAULT_DOCS = DEFAULT_ITEMS
LN2 = math.log(2)


def __getattr__(name: str):
    """ScalemixLM and run_lm_eval live in harness.lm_eval_adapter (imports lm-eval); reachable from here as before."""
    if name in ("ScalemixLM", "run_lm_eval"):
        from harness import lm_eval_adapter
        return getattr(lm_eval_adapter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------- tokenizers
MEMO_TEXTS = 200_000   # encode_batch memo entries (a suite of 6,400 items has about 30,000 distinct strings)


class _Memo:
    """encode_batch: encode() of many texts, each distinct text encoded once per tokenizer object. The suite is a
    pure function of the corpus and SUITE_VERSION, so every eval of a run (and every run in one process) asks for
    the same strings: keyed by the text itself, the memo is never stale. Ids are kept as int32 arrays (a list of
    ints costs 36 bytes a token)."""

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        memo = self.__dict__.setdefault("_memo", {})
        missing = list(dict.fromkeys(t for t in texts if t not in memo))
        if len(memo) + len(missing) > MEMO_TEXTS:
            memo.clear()
        for t, ids in zip(missing, self._encode_uncached(missing)):
            memo[t] = np.asarray(ids, dtype=np.int32)
        return [memo[t] for t in texts]


class HFTokenizer(_Memo):
    """A `tokenizers` tokenizer.json, used without special tokens (eod is added by the LM)."""

    def __init__(self, path: str | Path):
        self.tokenizer = corpus_tokenizer.load(Path(path))
        self.vocab_size = self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def _encode_uncached(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]   # Rust, all cores

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)


class ByteTokenizer(_Memo):
    """UTF-8 bytes as tokens (0..255), for corpora without a tokenizer.json such as the synthetic
    test corpus. Invalid UTF-8 decodes to U+FFFD (task data goes through Arrow, which refuses the
    lone surrogates a lossless decode would need)."""

    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def _encode_uncached(self, texts: list[str]) -> list[np.ndarray]:
        return [np.frombuffer(t.encode("utf-8"), dtype=np.uint8) for t in texts]

    def decode(self, ids: list[int]) -> str:
        return bytes(ids).decode("utf-8", errors="replace")


def load_tokenizer(corpus: Corpus) -> HFTokenizer | ByteTokenizer:
    """The corpus' tokenizer; one object per tokenizer file (and its memo) for the whole process."""
    path = corpus.path / "tokenizer.json"
    if path.is_file():
        st = path.stat()
        return _hf_tokenizer(str(path.resolve()), st.st_mtime_ns, st.st_size)
    if corpus.vocab_size < 256:
        raise FileNotFoundError(f"{path}: corpus {corpus.name!r} has no tokenizer.json and a vocabulary of "
                                f"{corpus.vocab_size} < 256 tokens, too small for the byte fallback; "
                                "prepare it with harness.data.prepare, which writes the tokenizer")
    log.warning("corpus %s has no tokenizer.json: using bytes as tokens (fine for tests, meaningless "
                "for a corpus tokenized otherwise)", corpus.name)
    return _BYTES


_BYTES = ByteTokenizer()


@functools.lru_cache(maxsize=4)
def _hf_tokenizer(path: str, _mtime_ns: int, _size: int) -> HFTokenizer:
    """Keyed by the file's modification time and size too: a rewritten tokenizer.json is loaded again."""
    return HFTokenizer(path)


# ---------------------------------------------------------------------------- set-up (before any compute)
def as_corpus(corpus: Corpus | str | Path) -> Corpus:
    """A Corpus, a corpus name under the data root ($SCALEMIX_DATA, else data/), or a path."""
    if isinstance(corpus, Corpus):
        return corpus
    return Corpus(resolve_corpus_path(str(corpus), data_root()))


def prepare(corpus: Corpus, spec: RunSpec, tasks: Sequence[str], n_items: int = DEFAULT_ITEMS) -> Suite:
    """Check the task names, the tokenizer against the model, lm-eval's presence where needed, and build the local
    suite: every problem raised (SpecError, FileNotFoundError) before a model is run."""
    check_tasks(tasks, corpus.domains)
    tokenizer = load_tokenizer(corpus)
    if tokenizer.vocab_size > spec.model.vocab_size:
        raise SpecError([f"model.vocab_size={spec.model.vocab_size} is smaller than the vocabulary of "
                         f"corpus {corpus.name!r}'s tokenizer ({tokenizer.vocab_size})"])
    if any(t.startswith((YAML_PREFIX, LM_EVAL_PREFIX)) for t in tasks):
        try:
            import lm_eval  # noqa: F401
        except ImportError:
            raise SpecError([f"eval.downstream: {[t for t in tasks if t.startswith((YAML_PREFIX, LM_EVAL_PREFIX))]} "
                             "run through lm-eval, which is not installed: pip install lm-eval (or drop those "
                             "tasks; the local suite needs no lm-eval)"]) from None
    return build_suite(tasks, domains=corpus.domains, heldout=corpus.heldout, eod_id=corpus.eod_id,
                       decode=tokenizer.decode, n_items=n_items)


# ---------------------------------------------------------------------------- scoring the local suite
def _bpb(logps: Sequence[float], texts: Sequence[str]) -> float:
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    return -math.fsum(logps) / LN2 / n_bytes if n_bytes else math.nan


def _accuracy(task: LocalTask, correct: Sequence[bool]) -> dict[str, float]:
    n = len(correct)
    p = sum(correct) / n
    return {f"acc_{task.name}": p, f"se_{task.name}": math.sqrt(p * (1 - p) / (n - 1)) if n > 1 else math.nan,
            f"chance_{task.name}": task.chance}   # the downstream law's floor (analysis.laws.downstream)


def score_task(scorer: Scorer, task: LocalTask, items: list[dict]) -> dict[str, float]:
    """acc_, se_, n_items_, bpb_<task> of one local task (see the module docstring)."""
    name, out = task.name, {f"n_items_{task.name}": len(items)}
    if task.kind == "rolling":
        texts = [it["text"] for it in items]
        return {**out, f"bpb_{name}": _bpb(scorer.rolling(texts), texts)}
    if task.kind == "generate":
        answers = scorer.generate([it["context"] for it in items], items[0]["until"],
                                  max(len(scorer.encode(it["answer"])) for it in items) + 2)
        correct = [a.strip() == it["answer"].strip() for a, it in zip(answers, items)]
        gold = [ll for ll, _ in scorer.loglikelihood([(it["context"], it["answer"]) for it in items])]
        return {**out, **_accuracy(task, correct), f"bpb_{name}": _bpb(gold, [it["answer"] for it in items])}
    pairs = [(it["context"], c) for it in items for c in it["choices"]]
    scored = iter(ll for ll, _ in scorer.loglikelihood(pairs))
    correct, gold_ll = [], []
    for it in items:
        ll = [next(scored) for _ in it["choices"]]
        if task.metric == "acc_norm":   # lm-eval's acc_norm: log-likelihood per character of the choice
            ll_for_pick = [x / len(c) for x, c in zip(ll, it["choices"])]
        else:
            ll_for_pick = ll
        correct.append(max(range(len(ll)), key=ll_for_pick.__getitem__) == it["gold"])
        gold_ll.append(ll[it["gold"]])
    return {**out, **_accuracy(task, correct),
            f"bpb_{name}": _bpb(gold_ll, [it["choices"][it["gold"]] for it in items])}


def score_suite(scorer: Scorer, suite: Suite) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, task in suite.tasks.items():
        out.update(score_task(scorer, task, suite.items[name]))
    return out


# ---------------------------------------------------------------------------- evaluation
def evaluate(model: torch.nn.Module, corpus: Corpus | str | Path, spec: RunSpec, tasks: Sequence[str],
             device: torch.device | str = "cpu", n_docs: int = DEFAULT_ITEMS, max_batch_tokens: int | None = None,
             autocast: Callable[[], AbstractContextManager] | None = None,
             suite: Suite | None = None) -> dict[str, float | str]:
    """Run downstream tasks on `model`; return the flat result columns (the module docstring lists them).

    `suite`: the local items already built by prepare() (the trainer's); else built here from `tasks`.
    `lm_eval:<name>` and `yaml:<path>` tasks run through lm-eval (acc_<task>, se_<task>, n_items_<task>; no bpb).
    `autocast` makes the forward's precision context (the trainer passes Hardware.autocast); by default bf16
    autocast on CUDA, none on CPU.
    """
    corpus = as_corpus(corpus)
    suite = suite if suite is not None else prepare(corpus, spec, tasks, n_docs)
    scorer = Scorer(model, load_tokenizer(corpus), corpus.eod_id, spec.model.seq_len, device, max_batch_tokens,
                    autocast)
    external = [n for n in expand(tasks, corpus.domains) if n.startswith((YAML_PREFIX, LM_EVAL_PREFIX))]
    was_training = model.training
    model.eval()
    try:
        results: dict[str, float | str] = score_suite(scorer, suite)
        if external:
            results.update(_lm_eval_tasks(scorer, external))
    finally:
        model.train(was_training)
    if "cloze" in tasks or "suite" in tasks:
        for prefix in ("acc", "bpb"):
            vals = [results[f"{prefix}_cloze_{d}"] for d in corpus.domains]
            results[f"{prefix}_cloze"] = math.fsum(vals) / len(vals)
        results["se_cloze"] = math.sqrt(math.fsum(results[f"se_cloze_{d}"] ** 2 for d in corpus.domains)) \
            / len(corpus.domains)
        # the aggregate's floor and item count, as every task has them (the downstream law's chance and weights)
        results["chance_cloze"] = math.fsum(results[f"chance_cloze_{d}"] for d in corpus.domains) / len(corpus.domains)
        results["n_items_cloze"] = sum(int(results[f"n_items_cloze_{d}"]) for d in corpus.domains)
    if suite.tasks:
        results["downstream_suite"] = suite.fingerprint
    return {k: results[k] for k in sorted(results)}


def _lm_eval_tasks(scorer: Scorer, names: Sequence[str]) -> dict[str, float]:
    from harness.lm_eval_adapter import ScalemixLM, run_lm_eval
    hub = [n.removeprefix(LM_EVAL_PREFIX) for n in names if n.startswith(LM_EVAL_PREFIX)]
    yamls = [n.removeprefix(YAML_PREFIX) for n in names if n.startswith(YAML_PREFIX)]
    out = {}
    for task, m in run_lm_eval(ScalemixLM(scorer), [], hub, yamls).items():
        p, n = m.get("acc", m.get("exact_match")), m["n"]
        out[f"acc_{task}"] = p
        # lm-eval leaves stderr out when it does not bootstrap (bootstrap_iters=0): acc is a mean of 0/1 scores
        out[f"se_{task}"] = m["acc_stderr"] if math.isfinite(m["acc_stderr"]) else (
            math.sqrt(p * (1 - p) / (n - 1)) if n > 1 else math.nan)
        out[f"n_items_{task}"] = n
    return out


def samples(model: torch.nn.Module, corpus: Corpus, spec: RunSpec, device: torch.device | str = "cpu",
            max_new_tokens: int = 32, autocast: Callable[[], AbstractContextManager] | None = None,
            prompts: Sequence[str] | None = None) -> list[dict[str, str]]:
    """Greedy completions of the prompt battery (harness.downstream_tasks.battery): [{"prompt", "completion"}]."""
    tokenizer = load_tokenizer(corpus)
    if prompts is None:
        prompts = battery({d: HeldoutDocuments(corpus.heldout(d)[:20000], corpus.eod_id, tokenizer.decode)
                           for d in corpus.domains})
    scorer = Scorer(model, tokenizer, corpus.eod_id, spec.model.seq_len, device, autocast=autocast)
    was_training = model.training
    model.eval()
    try:
        completions = scorer.generate(prompts, (), min(max_new_tokens, spec.model.seq_len - 1))
    finally:
        model.train(was_training)
    return [{"prompt": p, "completion": c} for p, c in zip(prompts, completions)]


# ---------------------------------------------------------------------------- in training
class InTraining:
    """What a run does downstream (harness.train.Trainer calls it): built before training, so a bad task fails
    before compute. Each method returns the metrics.jsonl rows to write.

        eval.downstream_items > 0  at every eval: {"kind": "downstream_subset", ...} on the first items of each task
        eval.downstream            at the end:    {"kind": "downstream", ...} on the full suite (result.json columns)
        eval.samples_tokens > 0    at each checkpoint: {"kind": "samples", "samples": [{"prompt", "completion"}]}
    """

    def __init__(self, spec: RunSpec, corpus: Corpus, device, autocast):
        self.spec, self.corpus, self.device, self.autocast = spec, corpus, device, autocast
        self.tasks = tuple(spec.eval.downstream)
        self.suite = prepare(corpus, spec, self.tasks) if self.tasks else None
        self.subset = self.suite.subset(spec.eval.downstream_items) if spec.eval.downstream_items else None
        self.prompts = None
        if spec.eval.samples_tokens:
            tokenizer = load_tokenizer(corpus)
            self.prompts = battery({d: HeldoutDocuments(corpus.heldout(d)[:20000], corpus.eod_id, tokenizer.decode)
                                    for d in corpus.domains})

    @classmethod
    def for_run(cls, spec: RunSpec, corpus: Corpus, device, autocast) -> InTraining | None:
        e = spec.eval
        return cls(spec, corpus, device, autocast) if e.downstream or e.samples_tokens else None

    def _row(self, kind: str, step: int, **values) -> dict:
        return {"kind": kind, "step": step, "tokens": step * self.spec.batch_tokens, **values}

    def at_eval(self, model: torch.nn.Module, step: int) -> list[dict]:
        if self.subset is None:
            return []
        local = [t for t in self.tasks if not t.startswith((YAML_PREFIX, LM_EVAL_PREFIX))]  # lm-eval's: at the end
        scores = evaluate(model, self.corpus, self.spec, local, self.device, autocast=self.autocast, suite=self.subset)
        return [self._row("downstream_subset", step, **scores)]

    def at_checkpoint(self, model: torch.nn.Module, step: int) -> list[dict]:
        if self.prompts is None:
            return []
        out = samples(model, self.corpus, self.spec, self.device, self.spec.eval.samples_tokens, self.autocast,
                      self.prompts)
        return [self._row("samples", step, samples=out)]

    def at_end(self, model: torch.nn.Module, step: int) -> tuple[dict, list[dict]]:
        """(result.json columns, rows)."""
        if self.suite is None:
            return {}, []
        scores = evaluate(model, self.corpus, self.spec, self.tasks, self.device, autocast=self.autocast,
                          suite=self.suite)
        return scores, [self._row("downstream", step, **scores)]


# ---------------------------------------------------------------------------- command line
def _evaluate_run(run_dir: Path, a, suites: dict, device: torch.device) -> dict:
    """One run's newest intact checkpoint scored on the tasks: the result columns plus run_id, step, timings.
    Raises SpecError naming the run and the fix when it cannot be scored as asked."""
    import time

    import model_zoo
    from harness.checkpoint import Checkpoints
    from harness.rundir import RunDir, load_spec, read_json_object

    rd = RunDir(run_dir)
    if not rd.spec_file.exists():
        raise SpecError([f"{run_dir}: no spec.yaml: not a run directory"])
    spec = load_spec(rd.spec_file)
    final_steps = None
    if a.write:   # the scores stand beside the run's result: only a finished run's final weights may give them
        result, problem = read_json_object(rd.result_file)
        if result is None:
            raise SpecError([f"{run_dir}: {problem}: --write scores finished runs only (let the run finish, or "
                             "drop --write to print a mid-run checkpoint's scores)"])
        final_steps = result.get("steps")
    tasks = tuple(a.tasks.split(",")) if a.tasks else (spec.eval.downstream or ("suite",))
    corpus = as_corpus(spec.data.corpus)
    key = (str(corpus.path), tasks, a.n_docs, spec.model.vocab_size)
    t0 = time.perf_counter()
    if key not in suites:   # built once per corpus and task list: a sweep's runs share it
        suites[key] = prepare(corpus, spec, tasks, a.n_docs)   # before the checkpoint is read
    build_s = time.perf_counter() - t0
    state = Checkpoints(rd.ckpt_dir).load_latest()
    if state is None:
        raise SpecError([f"{rd.ckpt_dir}: no intact checkpoint to evaluate (finished runs carried without their "
                         "checkpoints cannot be scored afterwards: train with eval=downstream instead)"])
    if final_steps is not None and state["step"] != final_steps:
        raise SpecError([f"{run_dir}: the newest checkpoint is at step {state['step']}, the run's result at step "
                         f"{final_steps}: --write scores the final weights only"])
    model = model_zoo.build(spec.model)
    model.load_state_dict(state["model"])
    t0 = time.perf_counter()
    scores = evaluate(model.to(device), corpus, spec, tasks, device, suite=suites[key])
    out = {"run_id": spec.run_id, "step": state["step"], "tasks": list(tasks), "n_docs": a.n_docs, **scores,
           "build_s": round(build_s, 2), "eval_s": round(time.perf_counter() - t0, 2)}
    if a.samples:
        out["samples"] = samples(model, corpus, spec, device, a.samples)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """python -m harness.downstream RUN_DIR [RUN_DIR ...] [--tasks suite] [--n-docs N] [--device auto] [--samples N]
                                  [--write]

    Scores the newest intact checkpoint of each run directory on the downstream tasks and prints the result
    columns as JSON, one object per run. With --write (finished runs only, scored at their final step) each run's
    scores also go to RUN_DIR/downstream.json (atomic; the trainer's result.json is never touched), which
    analysis.results joins to the run's row: a sweep trained without eval=downstream gets its accuracies
    afterwards, while its checkpoints are still there. A run that cannot be scored is named with the reason and
    the others go on; the exit status is 1 when any failed."""
    import argparse
    import json

    from harness.rundir import DOWNSTREAM_FILE, atomic_write_bytes

    p = argparse.ArgumentParser(prog="python -m harness.downstream", description=main.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    p.add_argument("--tasks", help="comma-separated task names (default: the spec's eval.downstream, else suite)")
    p.add_argument("--n-docs", type=int, default=DEFAULT_ITEMS, help="items per task")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--samples", type=int, default=0, help="also sample the prompt battery, this many tokens each")
    p.add_argument("--write", action="store_true", help=f"also write RUN_DIR/{DOWNSTREAM_FILE} (finished runs)")
    a = p.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    if a.n_docs < 1:
        p.error(f"--n-docs={a.n_docs}: give at least 1 item per task")
    missing = [str(d) for d in a.run_dirs if not d.is_dir()]
    if missing:
        p.error(f"not a directory: {', '.join(missing)}")
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device)
    suites: dict = {}
    failed = []
    for i, run_dir in enumerate(a.run_dirs):
        try:
            out = _evaluate_run(run_dir, a, suites, device)
        except (SpecError, CorpusError, FileNotFoundError) as e:
            failed.append(str(run_dir))
            log.error("%s: %s", run_dir, e)
            continue
        text = json.dumps(out, indent=1)
        print(text, flush=True)
        if a.write:
            atomic_write_bytes(run_dir / DOWNSTREAM_FILE, (text + "\n").encode())
        log.info("[%d/%d] %s step %d: %.1f s", i + 1, len(a.run_dirs), run_dir, out["step"], out["eval_s"])
    if failed:
        log.error("%d of %d run(s) not scored: %s", len(failed), len(a.run_dirs), ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
