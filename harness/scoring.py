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
chunks.

Batching (what makes a suite take seconds on a GPU): all requests of a call are scored together, their rows sorted
by length (longest first, ties in request order: deterministic) and cut into batches of at most `max_batch_tokens`
padded tokens, so rows of a batch have nearly equal lengths. Only the positions that predict continuation tokens go
through the head and the softmax (for a model_zoo Transformer: the other positions' [T, vocab] logits are never
made); sums and greedy checks stay on the device and come back in ONE device-to-host copy per call. Tokenization
goes through the tokenizer's encode_batch when it has one (harness.downstream's tokenizers memoise it, so a suite
is tokenized once per process). Generation is greedy with a key/value cache (model_zoo.decode: prompts of any
lengths batched together, no host sync per token) when the model is a model_zoo Transformer, else by full
forwards (test doubles). The model must already be on `device`.
Known limit: an MoE with a finite capacity_factor routes a whole batch jointly, so a sequence's score can
depend on its batch-mates (padding included); dropless MoE and dense models do not.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import torch
import torch.nn.functional as F

# Padded tokens per forward when the caller gives none. The logits are only made for continuation positions, so
# a batch holds [tokens, d_model] activations, not [tokens, vocab] logits: a GPU takes large batches (fewer, fuller
# forwards); on a CPU the speed hardly depends on it past a few thousand tokens, and smaller batches stay in cache.
DEFAULT_BATCH_TOKENS = {"cuda": 65536, "cpu": 8192}
HEAD_CHUNK = 16384   # continuation positions per head + softmax: bounds the fp32 [positions, vocab] logits held


def is_transformer(model: torch.nn.Module) -> bool:
    """A model_zoo Transformer (or MoE): its parts can be run separately (features, head, KV-cache decoding)."""
    return all(hasattr(model, a) for a in ("embed", "blocks", "norm", "head", "spec", "cos"))


def features(model: torch.nn.Module, idx: torch.Tensor) -> torch.Tensor:
    """model_zoo.dense.Transformer.forward(idx) without the head: the normed last hidden states [B, T, d_model]."""
    T = idx.shape[1]
    x = model.embed(idx)
    for block in model.blocks:
        x = block(x, model.cos[:T], model.sin[:T])[0]   # (x, aux loss, stats), dense and MoE alike
    return model.norm(x)


class Scorer:
    def __init__(self, model: torch.nn.Module, tokenizer, eod_id: int, seq_len: int,
                 device: torch.device | str = "cpu", max_batch_tokens: int | None = None,
                 autocast: Callable[[], AbstractContextManager] | None = None):
        self.model = getattr(model, "_orig_mod", model)  # torch.compile'd: eval shapes vary, skip recompiles
        self.tokenizer = tokenizer
        self.eod_id = eod_id
        self.seq_len = seq_len
        self.device = torch.device(device)
        self.max_batch_tokens = max_batch_tokens or DEFAULT_BATCH_TOKENS.get(self.device.type,
                                                                             DEFAULT_BATCH_TOKENS["cpu"])
        self.autocast = autocast or self._default_autocast

    def _default_autocast(self) -> AbstractContextManager:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    # ------------------------------------------------------------------ tokens
    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def encode_many(self, texts: Sequence[str]) -> list[Sequence[int]]:
        """encode() of each text; through the tokenizer's encode_batch (parallel, memoised) when it has one."""
        batch = getattr(self.tokenizer, "encode_batch", None)
        return list(batch(texts)) if batch is not None else [self.encode(t) for t in texts]

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """(context ids with the leading eod, continuation ids), as lm-eval's TemplateLM._encode_pair makes them."""
        ctx, cont = self.encode_pairs([(context, continuation)])[0]
        return list(ctx), list(cont)

    def encode_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """encode_pair of many pairs, each distinct string encoded once (the choices of a question share its
        context): (context ids with the leading eod, continuation ids) as int64 arrays."""
        split = []
        for context, continuation in pairs:
            stripped = context.rstrip()
            split.append((stripped, context[len(stripped):] + continuation))
        texts = list(dict.fromkeys([c for c, _ in split] + [c + x for c, x in split]))
        ids = dict(zip(texts, self.encode_many(texts)))
        eod = np.array([self.eod_id], dtype=np.int64)
        out = []
        for context, continuation in split:
            ctx = np.concatenate([eod, np.asarray(ids[context], dtype=np.int64)])
            whole = np.concatenate([eod, np.asarray(ids[context + continuation], dtype=np.int64)])
            out.append((ctx, whole[len(ctx):]))
        return out

    # ------------------------------------------------------------------ log-likelihoods
    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        return self.loglikelihood_tokens(self.encode_pairs(pairs))

    def rolling(self, texts: Sequence[str]) -> list[float]:
        """Log-likelihood of whole texts after an eod: every token scored once, in seq_len chunks."""
        return [ll for ll, _ in self.loglikelihood_tokens([([self.eod_id], ids) for ids in self.encode_many(texts)])]

    def _rows(self, i: int, ctx: np.ndarray, cont: np.ndarray):
        """Scoring rows (request, window, n continuation tokens) of one request: the window is the row's input plus
        its last target (window[:-1] goes in, the last n positions predict window[-n:]). A continuation longer
        than seq_len is scored in chunks, each with the seq_len tokens before its end as input."""
        full = np.concatenate([ctx, cont])
        for end in range(len(full), len(ctx), -self.seq_len):
            start = max(len(ctx), end - self.seq_len)
            yield i, full[max(0, end - self.seq_len - 1):end], end - start

    @torch.inference_mode()
    def loglikelihood_tokens(self, requests: Sequence[tuple[Sequence[int], Sequence[int]]]
                             ) -> list[tuple[float, bool]]:
        """(context ids, continuation ids) -> (log p of the continuation, whether it is the greedy one).
        An empty continuation scores (0.0, True)."""
        rows = []
        for i, (ctx, cont) in enumerate(requests):
            if not len(ctx):
                raise ValueError(f"request {i}: the context must have at least one token (e.g. eod)")
            rows += self._rows(i, np.asarray(ctx, dtype=np.int64), np.asarray(cont, dtype=np.int64))
        rows.sort(key=lambda r: -len(r[1]))  # longest first (stable: ties in request order); a batch's first
        if not rows:                           # row sets its width
            return [(0.0, True)] * len(requests)
        # Every batch's inputs are laid out here and sent to the device in one copy; the batches then run with no
        # host round trip (no Python per token, no boolean-mask syncs) and their sums come back in one copy.
        batches, flat_parts, offset, start = [], [], 0, 0
        while start < len(rows):
            width = len(rows[start][1]) - 1
            batch = rows[start:start + max(1, self.max_batch_tokens // width)]
            start += len(batch)
            windows = np.full((len(batch), width + 1), self.eod_id, dtype=np.int64)
            for b, (_, w, _) in enumerate(batch):
                windows[b, :len(w)] = w   # right padding: causal, so it changes nothing before it
            n_in = np.array([len(w) - 1 for _, w, _ in batch], dtype=np.int64)
            n_cont = np.array([n for _, _, n in batch], dtype=np.int64)
            # flat [B * width] indices of the positions that predict continuation tokens, row by row
            first = np.repeat(np.arange(len(batch)) * width + n_in - n_cont, n_cont)
            within = np.arange(n_cont.sum()) - np.repeat(np.cumsum(n_cont) - n_cont, n_cont)
            batches.append((len(batch), width, offset, windows.size, len(first)))
            flat_parts += [windows.ravel(), first + within]
            offset += windows.size + len(first)
        flat = torch.from_numpy(np.concatenate(flat_parts)).to(self.device)
        sums = [self._score_batch(flat, *shape) for shape in batches]
        row_sum, row_miss = torch.stack([torch.cat([s for s, _ in sums]),
                                         torch.cat([m for _, m in sums]).double()]).cpu().tolist()  # the one sync
        logp: list[list[float]] = [[] for _ in requests]
        greedy = [True] * len(requests)
        for (i, _, _), s, m in zip(rows, row_sum, row_miss):
            logp[i].append(s)
            greedy[i] = greedy[i] and not m
        return [(float(np.sum(v)) if len(v) > 1 else (v[0] if v else 0.0), g) for v, g in zip(logp, greedy)]

    def _score_batch(self, flat: torch.Tensor, n_rows: int, width: int, offset: int, size: int, n_predict: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row of one batch: (sum of log p of its continuation tokens (float64), 1 where any of them is not
        the argmax). flat[offset:offset + size] holds the batch's windows [rows, width + 1] (input, then its last
        target), the next n_predict entries the flat indices of the positions that predict continuation tokens."""
        windows = flat[offset:offset + size].view(n_rows, width + 1)
        where = flat[offset + size:offset + size + n_predict]
        idx = windows[:, :-1]
        target = windows[:, 1:].reshape(-1)[where]
        with self.autocast():
            if is_transformer(self.model):
                h, head = features(self.model, idx).flatten(0, 1)[where], self.model.head
            else:                                            # any causal LM returning logits (test doubles)
                h, head = self.model(idx).flatten(0, 1)[where], torch.nn.Identity()
            token_logp, hit = [], []
            for a in range(0, n_predict, HEAD_CHUNK):
                logits = head(h[a:a + HEAD_CHUNK]).float()
                t = target[a:a + HEAD_CHUNK, None]
                token_logp.append(F.log_softmax(logits, -1).gather(-1, t)[:, 0])   # one fused pass over vocab
                hit.append(logits.argmax(-1) == t[:, 0])
        per_pos = torch.zeros(n_rows * width, dtype=torch.float64, device=flat.device)
        per_pos[where] = torch.cat(token_logp).double()
        miss = torch.zeros(n_rows * width, dtype=torch.bool, device=flat.device)
        miss[where] = ~torch.cat(hit)
        # plain reductions over each row (indices are distinct): deterministic, unlike atomic adds
        return per_pos.view(n_rows, width).sum(1), miss.view(n_rows, width).any(1)

    # ------------------------------------------------------------------ generation
    @torch.inference_mode()
    def generate(self, contexts: Sequence[str], until: Sequence[str] = (), max_new_tokens: int = 32) -> list[str]:
        """Greedy completions of each context (after an eod), cut before the first `until` string or an eod."""
        prompts = [[self.eod_id] + list(ids) for ids in self.encode_many(contexts)]
        until = list(until)

        def stop(_i: int, new: list[int]) -> bool:
            return new[-1] == self.eod_id or (bool(until) and any(u in self.tokenizer.decode(new) for u in until))

        with self.autocast():
            if is_transformer(self.model):
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
