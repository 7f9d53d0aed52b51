"""A scalemix model as an lm-eval model (lm-evaluation-harness), fully offline.

    ScalemixLM(Scorer(model, tokenizer, eod_id, seq_len, device))   lm-eval's TemplateLM
    run_lm_eval(lm, configs, hub_tasks, yaml_paths) -> {task: {"acc", "acc_stderr", "acc_norm", "n"}}

harness.downstream runs the local suite with its own evaluator (harness.scoring, no lm-eval needed) and comes
here only for lm-eval tasks: a user's task YAML (yaml:<path>) or lm-eval's own tasks (lm_eval:<name>).
ScalemixLM implements loglikelihood, loglikelihood_rolling and generate_until (greedy, with a KV cache) by
delegating to harness.scoring.Scorer, so lm-eval and the local suite score text identically.

How it stays offline:
- Inline task configs whose `custom_dataset` returns an in-memory `datasets.Dataset` are loaded with
  `TaskManager(include_defaults=False).load(...)`: lm-eval never calls `datasets.load_dataset`, so nothing
  touches the hub or the HF cache (HF_DATASETS_OFFLINE and HF_HUB_OFFLINE are set as well).
  `include_defaults=False` also skips indexing lm-eval's ~15k built-in task configs (~10 s).
- `lm_eval.evaluator.evaluate` is called rather than `simple_evaluate`: the latter reseeds the global
  `random`/numpy/torch generators and collects environment info with subprocesses (`torch.utils.collect_env`),
  neither of which a training process wants.
- lm-eval's own tasks read their data with `datasets.load_dataset(<hub name>)`. With the hub off, that works
  only from the local HF cache (lm-evaluation-harness issues #1723, #1877: fetch once where there is network,
  copy ~/.cache/huggingface or point HF_HOME at a copy); a missing dataset raises a RuntimeError saying exactly
  that. Importing this module sets HF_DATASETS_OFFLINE=1 and HF_HUB_OFFLINE=1 unless they are already set.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

# Offline before any HF library is imported: they read these once, at import (set them to 0 to allow downloads)
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lm_eval.api.model import TemplateLM  # noqa: E402

from harness.downstream_tasks import LM_EVAL_PREFIX, read_task_yaml  # noqa: E402
from harness.scoring import Scorer  # noqa: E402
from model_zoo.spec import SpecError  # noqa: E402

__all__ = ["ScalemixLM", "run_lm_eval"]


class ScalemixLM(TemplateLM):
    """lm-eval's view of a scalemix model (harness.scoring.Scorer does the work; see its conventions)."""

    def __init__(self, scorer: Scorer):
        super().__init__()
        self.scorer = scorer

    @property
    def eot_token_id(self) -> int:
        return self.scorer.eod_id

    @property
    def max_length(self) -> int:
        return self.scorer.seq_len

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        ids = self.scorer.encode(string)
        return ids if add_special_tokens is False else [self.scorer.eod_id] + ids

    def tok_decode(self, ids: list[int]) -> str:
        return self.scorer.tokenizer.decode(ids)

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """TemplateLM.loglikelihood with the pairs tokenized together (Scorer.encode_pairs: each distinct string
        once, through the tokenizer's batch encoder) instead of two encode calls per request; same token ids."""
        pairs = [tuple(req.args) for req in requests]
        results = self.scorer.loglikelihood(pairs)
        for pair, res in zip(pairs, results):
            self.cache_hook.add_partial("loglikelihood", pair, res)
        return results

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        """requests: ((context, continuation), context_ids, continuation_ids) -> (log p, is_greedy)."""
        results = self.scorer.loglikelihood_tokens([(ctx, cont) for _, ctx, cont in requests])
        for req, res in zip(requests, results):
            self.cache_hook.add_partial("loglikelihood", req[0], res)
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        texts = [req.args[0] for req in requests]
        scored = self.scorer.rolling(texts)
        for text, ll in zip(texts, scored):
            self.cache_hook.add_partial("loglikelihood_rolling", (text,), ll)
        return scored

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy decoding with a KV cache; requests with the same stop strings and length are batched."""
        out: list[str | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, req in enumerate(requests):
            kwargs = dict(req.args[1] or {})
            if kwargs.get("do_sample"):
                raise NotImplementedError("ScalemixLM.generate_until decodes greedily only (do_sample=True asked)")
            until = kwargs.get("until") or []
            until = (until,) if isinstance(until, str) else tuple(until)
            groups.setdefault((until, int(kwargs.get("max_gen_toks", 256))), []).append(i)
        for (until, max_new), members in groups.items():
            texts = self.scorer.generate([requests[i].args[0] for i in members], until, max_new)
            for i, text in zip(members, texts):
                out[i] = text
                self.cache_hook.add_partial("generate_until", (requests[i].args[0], requests[i].args[1]), text)
        return out


def run_lm_eval(lm, configs: list[dict], hub_tasks: Sequence[str] = (),
                yaml_paths: Sequence[str | Path] = ()) -> dict[str, dict[str, float]]:
    """lm-eval on inline task configs, on lm-eval's own tasks named in hub_tasks, and on task YAML files, offline.

    Returns {task: {"acc": ..., "acc_stderr": ..., "acc_norm": ... (where the task has them), "n": documents}}.
    """
    from lm_eval.evaluator import evaluate as lm_eval_evaluate
    from lm_eval.tasks import TaskManager

    yaml_names = [read_task_yaml(p)["task"] for p in yaml_paths]
    with _quiet_lm_eval():
        include = sorted({str(Path(p).resolve().parent) for p in yaml_paths}) or None
        manager = TaskManager(include_path=include, include_defaults=bool(hub_tasks))
        loaded = manager.load(configs) if configs else {"tasks": {}, "groups": {}, "group_map": {}}
        for name in list(hub_tasks) + yaml_names:
            part = _load_cached(manager, name)
            for key in ("tasks", "groups", "group_map"):
                loaded.setdefault(key, {}).update(part.get(key, {}))
        res = lm_eval_evaluate(lm, loaded, bootstrap_iters=0, log_samples=False)
    out = {}
    for name in [c["task"] for c in configs] + list(hub_tasks) + yaml_names:
        metrics = res["results"].get(name, {})
        found = [m for m in ("acc", "exact_match") if f"{m},none" in metrics]
        if not found:
            raise ValueError(f"lm-eval task {name!r} reports neither acc nor exact_match (it reports "
                             f"{sorted(metrics)}): only such tasks, and groups that aggregate them, fit the "
                             "acc_<task> columns")
        out[name] = {m: float(metrics[f"{m},none"]) for m in ("acc", "acc_norm", "exact_match")
                     if f"{m},none" in metrics}
        stderr = metrics.get(f"{found[0]}_stderr,none")
        out[name]["acc_stderr"] = float(stderr) if isinstance(stderr, (int, float)) else float("nan")
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
