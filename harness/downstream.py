"""Downstream evaluation through lm-eval (lm-evaluation-harness), fully offline.

    evaluate(model, corpus, spec, ("arith", "cloze"), device) -> {"acc_arith": 0.31, "acc_cloze_code": ...}

The trainer calls `evaluate` once at the end of a run when `spec.eval.downstream` is non-empty,
and `check_tasks` (or `task_errors`, SpecError style) validates the names before training; both
also live in harness.downstream_tasks, which a planner can import without importing lm-eval.
The tasks are local (harness.downstream_tasks): `arith` and `cloze_<domain>` / `cloze`; lm-eval's
own tasks run as `lm_eval:<name>` where their datasets are already in the local HF cache.

How lm-eval is used, and how it is kept offline:
- `ScalemixLM` is an lm-eval `TemplateLM` (a subclass of `lm_eval.api.model.LM`) around a scalemix
  model (`model(idx) -> logits [B, T, V]`) and the corpus tokenizer (`data/<corpus>/tokenizer.json`).
  Every scored string is conditioned on a leading eod token, as a document is in training.
- Tasks are inline config dicts whose `custom_dataset` returns an in-memory `datasets.Dataset`,
  loaded with `TaskManager(include_defaults=False).load(...)`: lm-eval never calls
  `datasets.load_dataset`, so nothing touches the hub or the HF cache (HF_DATASETS_OFFLINE and
  HF_HUB_OFFLINE are set as well; tests/test_downstream.py runs it with sockets disabled).
  `include_defaults=False` also skips indexing lm-eval's ~15k built-in task configs (~10 s).
- `lm_eval.evaluator.evaluate` is called rather than `simple_evaluate`: the latter reseeds the
  global `random`/numpy/torch generators and collects environment info with subprocesses
  (`torch.utils.collect_env`), neither of which a training process wants.
- lm-eval's own tasks read their data with `datasets.load_dataset(<hub name>)`. With the hub off,
  that works only from the local HF cache (lm-evaluation-harness issues #1723, #1877: fetch once
  where there is network, copy ~/.cache/huggingface or point HF_HOME at a copy); a missing dataset
  raises a RuntimeError saying exactly that. Importing this module sets HF_DATASETS_OFFLINE=1 and
  HF_HUB_OFFLINE=1 unless they are already set (set them to 0 to allow downloads).
- Known limit: an MoE with a finite capacity_factor routes a whole batch jointly, so a sequence's
  score can depend on its batch-mates (padding included); dropless MoE and dense models do not.
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

# Offline before any HF library is imported: they read these once, at import (set them to 0 to allow downloads)
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from lm_eval.api.model import TemplateLM  # noqa: E402

from harness.data import tokenizer as corpus_tokenizer
from harness.data.corpus import Corpus
from harness.downstream_tasks import (
    LM_EVAL_PREFIX,
    available_tasks,
    build_docs,
    check_tasks,
    expand,
    lm_eval_config,
    task_errors,
)
from harness.spec import RunSpec
from model_zoo.spec import SpecError

__all__ = ["ScalemixLM", "check_tasks", "evaluate", "load_tokenizer", "run_lm_eval", "task_errors"]
log = logging.getLogger(__name__)
DEFAULT_DOCS = 500  # per task: a binomial standard error of at most 0.022 on an accuracy


# ---------------------------------------------------------------------------- tokenizers
class HFTokenizer:
    """A `tokenizers` tokenizer.json, used without special tokens (eod is added by the LM)."""

    def __init__(self, path: str | Path):
        self.tokenizer = corpus_tokenizer.load(Path(path))
        self.vocab_size = self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)


class ByteTokenizer:
    """UTF-8 bytes as tokens (0..255), for corpora without a tokenizer.json such as the synthetic
    test corpus. Invalid UTF-8 decodes to U+FFFD (task data goes through Arrow, which refuses the
    lone surrogates a lossless decode would need)."""

    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return bytes(ids).decode("utf-8", errors="replace")


def load_tokenizer(corpus: Corpus) -> HFTokenizer | ByteTokenizer:
    path = corpus.path / "tokenizer.json"
    if path.is_file():
        return HFTokenizer(path)
    if corpus.vocab_size < 256:
        raise FileNotFoundError(f"{path}: corpus {corpus.name!r} has no tokenizer.json and a vocabulary of "
                                f"{corpus.vocab_size} < 256 tokens, too small for the byte fallback; "
                                "prepare it with harness.data.prepare, which writes the tokenizer")
    log.warning("corpus %s has no tokenizer.json: using bytes as tokens (fine for tests, meaningless "
                "for a corpus tokenized otherwise)", corpus.name)
    return ByteTokenizer()


# ---------------------------------------------------------------------------- the lm-eval model
class ScalemixLM(TemplateLM):
    """lm-eval's view of a scalemix model: log-likelihoods of text continuations.

    Inputs longer than the model's seq_len keep their last seq_len tokens (truncated from the left,
    as lm-eval's HF model does); a continuation longer than seq_len is scored in seq_len chunks.
    Batches are sorted by length and capped at `max_batch_tokens` padded tokens, which bounds the
    [B, T, V] logits held in memory. The model must already be on `device`.
    """

    def __init__(self, model: torch.nn.Module, tokenizer, eod_id: int, seq_len: int,
                 device: torch.device | str = "cpu", max_batch_tokens: int = 16384,
                 autocast: Callable[[], AbstractContextManager] | None = None):
        super().__init__()
        self.model = getattr(model, "_orig_mod", model)  # torch.compile'd: eval shapes vary, skip recompiles
        self.tokenizer_impl = tokenizer
        self.eod_id = eod_id
        self.seq_len = seq_len
        self._device = torch.device(device)
        self.max_batch_tokens = max_batch_tokens
        self._autocast = autocast or self._default_autocast

    @property
    def eot_token_id(self) -> int:
        return self.eod_id

    @property
    def max_length(self) -> int:
        return self.seq_len

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        ids = self.tokenizer_impl.encode(string)
        return ids if add_special_tokens is False else [self.eod_id] + ids

    def tok_decode(self, ids: list[int]) -> str:
        return self.tokenizer_impl.decode(ids)

    def _default_autocast(self) -> AbstractContextManager:
        if self._device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def _rows(self, i: int, ctx: list[int], cont: list[int]):
        """Scoring rows (request, input ids, continuation ids) of one request: a continuation longer
        than seq_len is scored in chunks, each with the seq_len tokens before its end as input."""
        full = ctx + cont
        for end in range(len(full), len(ctx), -self.seq_len):
            start = max(len(ctx), end - self.seq_len)
            yield i, full[max(0, end - self.seq_len - 1):end - 1], full[start:end]

    @torch.inference_mode()
    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        """requests: ((context, continuation), context_ids, continuation_ids) -> (log p, is_greedy).
        An empty continuation scores (0.0, True)."""
        rows = []
        for i, (_, ctx, cont) in enumerate(requests):
            if not ctx:  # TemplateLM gives an empty context the eod token; a caller bypassing it must too
                raise ValueError(f"request {i}: the context must have at least one token (e.g. eod)")
            rows += self._rows(i, ctx, cont)
        rows.sort(key=lambda r: -len(r[1]))  # longest first: the first row of a batch sets its width

        logp_sum = torch.zeros(len(requests), dtype=torch.float64)
        greedy = torch.ones(len(requests), dtype=torch.bool)
        start = 0
        while start < len(rows):
            width = len(rows[start][1])
            batch = rows[start:start + max(1, self.max_batch_tokens // width)]
            start += len(batch)
            idx = torch.full((len(batch), width), self.eod_id, dtype=torch.long)
            for b, (_, inp, _) in enumerate(batch):
                idx[b, :len(inp)] = torch.tensor(inp)  # right padding: causal, so it changes nothing before it
            with self._autocast():
                logits = self.model(idx.to(self._device))
            # the positions that predict continuation tokens, all rows at once
            row_of = torch.tensor([b for b, (_, _, c) in enumerate(batch) for _ in c])
            request_of = torch.tensor([i for i, _, c in batch for _ in c])
            pos = torch.tensor([len(inp) - len(c) + k for _, inp, c in batch for k in range(len(c))])
            target = torch.tensor([t for _, _, c in batch for t in c])
            logp = F.log_softmax(logits[row_of.to(logits.device), pos.to(logits.device)].float(), dim=-1)
            target = target.to(logp.device)
            token_logp = logp.gather(-1, target[:, None])[:, 0].double().cpu()
            hit = (logp.argmax(-1) == target).cpu()
            logp_sum.index_add_(0, request_of, token_logp)
            greedy[request_of[~hit]] = False
        results = [(float(ll), bool(g)) for ll, g in zip(logp_sum, greedy)]
        for req, res in zip(requests, results):
            self.cache_hook.add_partial("loglikelihood", req[0], res)
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """Log-likelihood of whole texts after an eod: every token scored once, in seq_len chunks."""
        texts = [req.args[0] for req in requests]
        scored = self._loglikelihood_tokens(
            [((None, t), [self.eod_id], self.tok_encode(t, add_special_tokens=False)) for t in texts])
        for text, (ll, _) in zip(texts, scored):
            self.cache_hook.add_partial("loglikelihood_rolling", (text,), ll)
        return [ll for ll, _ in scored]

    @torch.inference_mode()
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy decoding (no KV cache: fine for the short answers of small models)."""
        out = []
        for req in requests:
            context, kwargs = req.args
            kwargs = dict(kwargs or {})
            if kwargs.get("do_sample"):
                raise NotImplementedError("ScalemixLM.generate_until decodes greedily only (do_sample=True asked)")
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            ids, new = self.tok_encode(context), []
            for _ in range(int(kwargs.get("max_gen_toks", 256))):
                with self._autocast():
                    logits = self.model(torch.tensor([ids[-self.seq_len:]], device=self._device))
                nxt = int(logits[0, -1].argmax())
                if nxt == self.eod_id:
                    break
                ids.append(nxt)
                new.append(nxt)
                text = self.tok_decode(new)
                if any(u in text for u in until):
                    break
            text = self.tok_decode(new)
            for u in until:
                text = text.split(u)[0]
            out.append(text)
            self.cache_hook.add_partial("generate_until", (context, req.args[1]), text)
        return out


# ---------------------------------------------------------------------------- evaluation
def evaluate(model: torch.nn.Module, corpus: Corpus | str | Path, spec: RunSpec, tasks: Sequence[str],
             device: torch.device | str = "cpu", n_docs: int = DEFAULT_DOCS, max_batch_tokens: int = 16384,
             autocast: Callable[[], AbstractContextManager] | None = None) -> dict[str, float]:
    """Run downstream tasks on `model`; return {"acc_<task>": accuracy}.

    `cloze` expands to every cloze_<domain> and adds acc_cloze, their unweighted mean. A local task
    with too few usable held-out documents reports NaN (and a warning) rather than failing the run.
    `lm_eval:<name>` runs lm-eval's own task <name> in full (reported as acc_<name>); its dataset
    must already be in the local Hugging Face cache (see the module docstring).
    `autocast` makes the forward's precision context (the trainer passes Hardware.autocast);
    by default bf16 autocast on CUDA, none on CPU.
    """
    if not isinstance(corpus, Corpus):  # a name under the data root ($SCALEMIX_DATA, else data/) or a path
        from harness.data.corpus import data_root, resolve_corpus_path
        corpus = Corpus(resolve_corpus_path(str(corpus), data_root()))
    check_tasks(tasks, corpus.domains)
    names = expand(tasks, corpus.domains)
    tokenizer = load_tokenizer(corpus)
    if tokenizer.vocab_size > spec.model.vocab_size:
        raise SpecError([f"model.vocab_size={spec.model.vocab_size} is smaller than the vocabulary of "
                         f"corpus {corpus.name!r}'s tokenizer ({tokenizer.vocab_size})"])
    local = available_tasks(corpus.domains)
    configs, hub_tasks = [], [n.removeprefix(LM_EVAL_PREFIX) for n in names if n.startswith(LM_EVAL_PREFIX)]
    results: dict[str, float] = {}
    for name in (n for n in names if n in local):
        docs = build_docs(name, heldout=corpus.heldout, eod_id=corpus.eod_id, decode=tokenizer.decode, n_docs=n_docs)
        if docs:
            configs.append(lm_eval_config(local[name], docs))
        else:
            log.warning("downstream task %s: no usable held-out documents; reporting NaN", name)
            results[f"acc_{name}"] = float("nan")

    lm = ScalemixLM(model, tokenizer, corpus.eod_id, spec.model.seq_len, device, max_batch_tokens, autocast)
    was_training = model.training
    model.eval()
    try:
        scores = run_lm_eval(lm, configs, hub_tasks) if configs or hub_tasks else {}
    finally:
        model.train(was_training)
    for name, metrics in scores.items():
        results[f"acc_{name}"] = metrics[local[name].metric if name in local else "acc"]
    if "cloze" in tasks:
        cloze = [results[f"acc_cloze_{d}"] for d in corpus.domains]
        results["acc_cloze"] = math.fsum(cloze) / len(cloze)
    return {k: results[k] for k in sorted(results)}


def run_lm_eval(lm, configs: list[dict], hub_tasks: Sequence[str] = ()) -> dict[str, dict[str, float]]:
    """lm-eval on inline task configs and on lm-eval's own tasks named in hub_tasks, offline.

    Returns {task: {"acc": ..., "acc_norm": ... (where the task has it), "n": documents}}.
    """
    from lm_eval.evaluator import evaluate as lm_eval_evaluate
    from lm_eval.tasks import TaskManager

    with _quiet_lm_eval():
        manager = TaskManager(include_defaults=bool(hub_tasks))  # lm-eval's ~15k configs: index only if asked
        loaded = manager.load(configs) if configs else {"tasks": {}, "groups": {}, "group_map": {}}
        for name in hub_tasks:
            part = _load_cached(manager, name)
            for key in ("tasks", "groups", "group_map"):
                loaded.setdefault(key, {}).update(part.get(key, {}))
        res = lm_eval_evaluate(lm, loaded, bootstrap_iters=0, log_samples=False)
    out = {}
    for name in [c["task"] for c in configs] + list(hub_tasks):
        metrics = res["results"].get(name, {})
        if "acc,none" not in metrics:
            raise ValueError(f"lm-eval task {name!r} reports no acc metric (it reports {sorted(metrics)}): only "
                             "multiple-choice tasks, and groups that aggregate acc, fit the acc_<task> columns")
        out[name] = {m: float(metrics[f"{m},none"]) for m in ("acc", "acc_norm") if f"{m},none" in metrics}
        out[name]["n"] = int(res["n-samples"].get(name, {}).get("effective", metrics.get("sample_len", 0)))
    return out


def _load_cached(manager, name: str):
    """lm-eval's task (or group) `name`, built from the local HF cache; a clear error where it cannot be."""
    import difflib
    if name not in manager.all_tasks:
        close = difflib.get_close_matches(name, manager.all_tasks, n=5)
        raise SpecError([f"eval.downstream: {LM_EVAL_PREFIX}{name}: lm-eval has no task {name!r}"
                         + (f"; close names: {close}" if close else "")])
    try:
        return manager.load(name)
    except ConnectionError as e:  # datasets: "Couldn't reach <name> on the Hub (OfflineModeIsEnabled)"
        raise RuntimeError(
            f"lm-eval task {name!r}: its dataset is not in the local Hugging Face cache and the hub is off "
            f"(HF_DATASETS_OFFLINE={os.environ.get('HF_DATASETS_OFFLINE')}). Fetch it once where there is network: "
            f"HF_DATASETS_OFFLINE=0 HF_HUB_OFFLINE=0 python -c \"from lm_eval.tasks import TaskManager; "
            f"TaskManager().load(['{name}'])\", then copy ~/.cache/huggingface (or set HF_HOME to a copy) "
            "to this machine (EleutherAI/lm-evaluation-harness#1723).") from e


@contextmanager
def _quiet_lm_eval():
    """lm-eval logs at INFO, and warns about `custom_dataset` kwargs we do not use: keep real warnings only."""
    logger, task_logger = logging.getLogger("lm_eval"), logging.getLogger("lm_eval.api.task")
    level = logger.level

    def not_custom_kwargs(record: logging.LogRecord) -> bool:
        return "Custom kwargs can be passed" not in record.getMessage()

    logger.setLevel(logging.WARNING)
    task_logger.addFilter(not_custom_kwargs)
    try:
        yield
    finally:
        logger.setLevel(level)
        task_logger.removeFilter(not_custom_kwargs)


# ---------------------------------------------------------------------------- command line
def main(argv: Sequence[str] | None = None) -> int:
    """python -m harness.downstream RUN_DIR [--tasks arith,cloze] [--n-docs N] [--device auto]

    Evaluates the newest intact checkpoint of a run directory and prints the acc_<task> values as
    JSON (it does not write to the run directory, which belongs to the trainer)."""
    import argparse
    import json
    import time

    import model_zoo
    from harness.checkpoint import Checkpoints
    from harness.data.corpus import data_root, resolve_corpus_path
    from harness.rundir import RunDir, load_spec

    p = argparse.ArgumentParser(prog="python -m harness.downstream", description=main.__doc__)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--tasks", help="comma-separated task names (default: the spec's eval.downstream, else arith,cloze)")
    p.add_argument("--n-docs", type=int, default=DEFAULT_DOCS, help="questions per task")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    a = p.parse_args(argv)
    rd = RunDir(a.run_dir)
    spec = load_spec(rd.spec_file)
    tasks = tuple(a.tasks.split(",")) if a.tasks else (spec.eval.downstream or ("arith", "cloze"))
    corpus = Corpus(resolve_corpus_path(spec.data.corpus, data_root()))
    check_tasks(tasks, corpus.domains)  # before the checkpoint is read
    state = Checkpoints(rd.ckpt_dir).load_latest()
    if state is None:
        p.error(f"{rd.ckpt_dir}: no intact checkpoint to evaluate")
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device)
    model = model_zoo.build(spec.model)
    model.load_state_dict(state["model"])
    t0 = time.perf_counter()
    scores = evaluate(model.to(device), corpus, spec, tasks, device, n_docs=a.n_docs)
    print(json.dumps({"run_id": spec.run_id, "step": state["step"], **scores,
                      "eval_s": round(time.perf_counter() - t0, 2)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
