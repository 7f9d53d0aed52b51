"""Scoring text with a scalemix model: log-likelihoods, rolling log-likelihoods, greedy generation.

    scorer = Scorer(model, tokenizer, eod_id, seq_len, device)
    scorer.loglikelihood([(context, continuation), ...])  -> [(log p(continuation | context), is_greedy), ...]
    scorer.rolling(["text", ...])                           -> [log p(text), ...]
    scorer.generate(["context", ...], until=["\\n"], max_new_tokens=8) -> ["completion", ...]

This is what the local task suite (harness.downstream) and the lm-eval adapter (harness.lm_eval_adapter) both
call: it needs no lm-eval, so the suite also runs where lm-eval is not installed (the GPU machine).
Conventions are lm-eval's (TemplateLM): every string is conditioned on a leading eod token, as a document is in
training; a context's trailing whitespace is moved to the continuation; the continuation's tokens are those
of encode(context + continuation) after encode(context). Inputs longer than seq_len keep their last seq_len
tokens (lm-eval's HF model truncates the same way); a continuation longer than seq_len is scored in seq_len
chunks. Batches are sorted by length and capped at `max_batch_tokens` padded tokens, which bounds the
[B, T, V] logits held in memory. Generation is greedy with a key/value cache (model_zoo.decode) when the
model is a model_zoo Transformer, else by full forwards (test doubles). The model must already be on `device`.
Known limit: an MoE with a finite capacity_factor routes a whole batch jointly, so a sequence's score can
depend on its batch-mates (padding included); dropless MoE and dense models do not.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F


class Scorer:
    def __init__(self, model: torch.nn.Module, tokenizer, eod_id: int, seq_len: int,
                 device: torch.device | str = "cpu", max_batch_tokens: int = 16384,
                 autocast: Callable[[], AbstractContextManager] | None = None):
        self.model = getattr(model, "_orig_mod", model)  # torch.compile'd: eval shapes vary, skip recompiles
        self.tokenizer = tokenizer
        self.eod_id = eod_id
        self.seq_len = seq_len
        self.device = torch.device(device)
        self.max_batch_tokens = max_batch_tokens
        self.autocast = autocast or self._default_autocast

    def _default_autocast(self) -> AbstractContextManager:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    # ------------------------------------------------------------------ tokens
    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """(context ids with the leading eod, continuation ids), as lm-eval's TemplateLM._encode_pair makes them."""
        stripped = context.rstrip()
        context, continuation = stripped, context[len(stripped):] + continuation
        ctx = [self.eod_id] + self.encode(context)
        whole = [self.eod_id] + self.encode(context + continuation)
        return ctx, whole[len(ctx):]

    # ------------------------------------------------------------------ log-likelihoods
    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        return self.loglikelihood_tokens([self.encode_pair(c, x) for c, x in pairs])

    def rolling(self, texts: Sequence[str]) -> list[float]:
        """Log-likelihood of whole texts after an eod: every token scored once, in seq_len chunks."""
        return [ll for ll, _ in self.loglikelihood_tokens([([self.eod_id], self.encode(t)) for t in texts])]

    def _rows(self, i: int, ctx: list[int], cont: list[int]):
        """Scoring rows (request, input ids, continuation ids) of one request: a continuation longer
        than seq_len is scored in chunks, each with the seq_len tokens before its end as input."""
        full = ctx + cont
        for end in range(len(full), len(ctx), -self.seq_len):
            start = max(len(ctx), end - self.seq_len)
            yield i, full[max(0, end - self.seq_len - 1):end - 1], full[start:end]

    @torch.inference_mode()
    def loglikelihood_tokens(self, requests: Sequence[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """(context ids, continuation ids) -> (log p of the continuation, whether it is the greedy one).
        An empty continuation scores (0.0, True)."""
        rows = []
        for i, (ctx, cont) in enumerate(requests):
            if not ctx:
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
            with self.autocast():
                logits = self.model(idx.to(self.device))
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
        return [(float(ll), bool(g)) for ll, g in zip(logp_sum, greedy)]

    # ------------------------------------------------------------------ generation
    @torch.inference_mode()
    def generate(self, contexts: Sequence[str], until: Sequence[str] = (), max_new_tokens: int = 32) -> list[str]:
        """Greedy completions of each context (after an eod), cut before the first `until` string or an eod."""
        prompts = [[self.eod_id] + self.encode(c) for c in contexts]
        until = list(until)

        def stop(_i: int, new: list[int]) -> bool:
            return new[-1] == self.eod_id or (bool(until) and any(u in self.tokenizer.decode(new) for u in until))

        with self.autocast():
            if hasattr(self.model, "blocks") and hasattr(self.model, "spec"):   # a model_zoo Transformer
                from model_zoo.decode import greedy
                new_ids = greedy(self.model, prompts, min(max_new_tokens, self.seq_len - 1), stop)
            else:
                new_ids = [self._generate_uncached(p, max_new_tokens, stop) for p in prompts]
        out = []
        for ids in new_ids:
            text = self.tokenizer.decode(ids[:-1] if ids[-1:] == [self.eod_id] else ids)
            for u in until:
                text = text.split(u)[0]
            out.append(text)
        return out

    def _generate_uncached(self, ids: list[int], max_new_tokens: int, stop) -> list[int]:
        """Greedy decoding by a full forward per token (a sliding seq_len window): the reference for the cache."""
        ids, new = list(ids), []
        for _ in range(max_new_tokens):
            logits = self.model(torch.tensor([ids[-self.seq_len:]], device=self.device))
            new.append(int(logits[0, -1].argmax()))
            ids.append(new[-1])
            if stop(0, new):
                break
        return new
