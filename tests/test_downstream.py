"""Downstream evals: exact log-likelihoods (own scorer and lm-eval adapter), KV-cache decoding, the local suite
(regenerates identically, oracle and chance), lm-eval agreement, in-order errors before compute."""
from __future__ import annotations

import json
import math
import re
import socket

import numpy as np
import pytest
import torch

from harness.data.corpus import Corpus
from harness.downstream import ByteTokenizer, HFTokenizer, check_tasks, evaluate, prepare, task_errors
from harness.downstream_tasks import available_tasks, lm_eval_config
from harness.downstream_tasks.arith import arith_docs
from harness.downstream_tasks.cloze import HeldoutDocuments, cloze_docs
from harness.scoring import Scorer
from harness.spec import RunSpec
from model_zoo.spec import ModelSpec, SpecError

needs_lm_eval = pytest.mark.skipif(__import__("importlib").util.find_spec("lm_eval") is None,
                                   reason="lm-eval not installed (the local suite needs none)")


# ---------------------------------------------------------------------------- tiny models
class TinyCausalLM(torch.nn.Module):
    """Logits from the current token and (unless bigram) the running mean of the previous ones: causal."""

    def __init__(self, vocab: int, d: int = 16, bigram: bool = False, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.emb = torch.nn.Embedding(vocab, d)
        self.head = torch.nn.Linear(2 * d, vocab)
        self.bigram = bigram

    def forward(self, idx):
        x = self.emb(idx)
        steps = torch.arange(1, idx.shape[1] + 1, device=idx.device)[None, :, None]
        past = torch.zeros_like(x) if self.bigram else x.cumsum(1) / steps
        return self.head(torch.cat([x, past], -1)) * 3


class ArithOracle(torch.nn.Module):
    """A byte-level 'model' that knows arithmetic: after 'a+b=' it puts its mass on the answer's digits, then eod."""

    QUESTION = re.compile(rb"Compute (\d+) ([-+*]) (\d+)\.\nAnswer:( ?\d*)$")

    def __init__(self, eod: int = 255):
        super().__init__()
        self.eod = eod

    def forward(self, idx):
        logits = torch.zeros(*idx.shape, 256)
        for b, row in enumerate(idx.tolist()):
            for t in range(len(row)):
                m = self.QUESTION.search(bytes(row[max(0, t - 40):t + 1]))
                if not m:
                    continue
                a, op, c, typed = int(m[1]), m[2], int(m[3]), m[4]
                answer = f" {a + c if op == b'+' else a - c if op == b'-' else a * c}".encode()
                if answer.startswith(typed):
                    logits[b, t, answer[len(typed)] if len(typed) < len(answer) else self.eod] = 20.0
        return logits


def _lm(model, tok, eod, seq_len, **kw):
    from harness.lm_eval_adapter import ScalemixLM
    return ScalemixLM(Scorer(model, tok, eod, seq_len, **kw))


def _oracle_lm(texts: list[str]):
    """An lm-eval LM that knows the true texts: log p = 0 for a continuation found in them, else -10."""
    lm = _lm(torch.nn.Identity(), ByteTokenizer(), 255, 64)
    lm.loglikelihood = lambda requests, disable_tqdm=False: [
        (0.0 if any(ctx + cont in t for t in texts) else -10.0, False) for ctx, cont in (r.args for r in requests)]
    return lm


def _instances(kind, args):
    from lm_eval.api.instance import Instance
    return [Instance(request_type=kind, doc={}, arguments=a, idx=i) for i, a in enumerate(args)]


def _run_lm_eval(*args, **kw):
    from harness.lm_eval_adapter import run_lm_eval
    return run_lm_eval(*args, **kw)


# ---------------------------------------------------------------------------- a tiny text corpus
WORDS = ("the cat dog bird sat ran flew on under over a mat tree house red big small quickly "
         "slowly and then saw heard near far garden river").split()


def _prose_doc(rng):
    sentences = [" ".join(rng.choice(WORDS, size=int(rng.integers(4, 10)))) + "." for _ in range(int(rng.integers(8, 20)))]
    return " ".join(sentences).capitalize()


@pytest.fixture(scope="module")
def text_corpus(tmp_path_factory):
    """A corpus built by the real pipeline (harness.data.prepare): the generated math domain and a
    word-salad prose domain, a byte-level BPE tokenizer.json of 384 tokens. Also its held-out texts."""
    from harness.data.prepare import prepare
    tmp = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    (tmp / "prose").mkdir()
    (tmp / "prose" / "docs.jsonl").write_text("\n".join(json.dumps({"text": _prose_doc(rng)}) for _ in range(200)))
    recipe = {"name": "tinytext", "vocab_size": 384, "heldout_frac": 0.4, "tokenizer_sample_bytes": 1e5,
              "domains": {"math": {"sources": [{"kind": "math", "bytes": 2e5}]},
                          "prose": {"sources": [{"kind": "text_dir", "path": str(tmp / "prose")}]}}}
    prepare(recipe, tmp / "tinytext", tmp / "cache", workers=1, progress=False)
    corpus = Corpus(tmp / "tinytext")
    decode = HFTokenizer(corpus.path / "tokenizer.json").decode
    return corpus, {d: list(HeldoutDocuments(corpus.heldout(d), corpus.eod_id, decode)) for d in corpus.domains}


def _spec(vocab, seq_len=64):
    return RunSpec(model=ModelSpec(d_model=16, n_layers=1, n_heads=1, ffn_hidden=32, vocab_size=vocab,
                                   seq_len=seq_len), tokens=1024, batch_tokens=64)


# ---------------------------------------------------------------------------- log-likelihoods
def _direct_loglikelihood(model, tok, eod, seq_len, ctx, cont):
    stripped = ctx.rstrip()  # lm-eval's convention: a context's trailing whitespace belongs to the continuation
    ctx, cont = stripped, ctx[len(stripped):] + cont
    ctx_ids = [eod] + tok.encode(ctx)
    cont_ids = ([eod] + tok.encode(ctx + cont))[len(ctx_ids):]
    full = (ctx_ids + cont_ids)[-(seq_len + 1):]
    logp = torch.log_softmax(model(torch.tensor([full[:-1]]))[0].double(), -1)
    n = len(cont_ids)
    return sum(logp[len(full) - 1 - n + k, cont_ids[k]].item() for k in range(n))


PAIRS = [("Compute 12 + 35.\nAnswer:", " 47"), ("The cat sat", " on the mat."), ("", "the dog"), ("a", " b"),
         ("the big red house " * 8, "near the river"), ("9*9=", "81\n")]


def test_loglikelihood_equals_direct_computation_from_logits(text_corpus):
    """The own scorer (the local suite's) on a real model_zoo Transformer, against its forward pass."""
    import model_zoo
    corpus, _ = text_corpus
    tok = HFTokenizer(corpus.path / "tokenizer.json")
    seq_len = 24
    model = model_zoo.build(_spec(corpus.vocab_size, seq_len).model).eval()
    # small batches force padding and several batches; the long context forces left truncation
    got = Scorer(model, tok, corpus.eod_id, seq_len, max_batch_tokens=50).loglikelihood(PAIRS)
    with torch.no_grad():
        want = [_direct_loglikelihood(model, tok, corpus.eod_id, seq_len, c, x) for c, x in PAIRS]
    assert len(tok.encode(PAIRS[4][0])) > seq_len  # the truncation case is real
    for (ll, greedy), w in zip(got, want):
        assert ll == pytest.approx(w, abs=1e-4)
        assert isinstance(greedy, bool)


@needs_lm_eval
def test_lm_eval_adapter_loglikelihood_equals_direct_computation(text_corpus):
    corpus, _ = text_corpus
    tok = HFTokenizer(corpus.path / "tokenizer.json")
    model = TinyCausalLM(corpus.vocab_size).eval()
    seq_len = 24
    lm = _lm(model, tok, corpus.eod_id, seq_len, max_batch_tokens=50)
    got = lm.loglikelihood(_instances("loglikelihood", PAIRS), disable_tqdm=True)
    with torch.no_grad():
        want = [_direct_loglikelihood(model, tok, corpus.eod_id, seq_len, c, x) for c, x in PAIRS]
    for (ll, greedy), w in zip(got, want):
        assert ll == pytest.approx(w, abs=1e-4)
        assert isinstance(greedy, bool)


@needs_lm_eval
def test_loglikelihood_rolling_scores_every_token_once():
    """With a bigram model, windowing cannot change a token's probability: the sum is exact."""
    model, tok, seq_len = TinyCausalLM(256, bigram=True).eval(), ByteTokenizer(), 16
    lm = _lm(model, tok, 255, seq_len, max_batch_tokens=40)
    text = "the quick brown fox jumps over the lazy dog, " * 3  # 135 tokens: 9 windows
    ids = [255] + tok.encode(text)
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids[:-1]]))[0].double(), -1)
    want = sum(logp[i, ids[i + 1]].item() for i in range(len(ids) - 1))
    got, empty = lm.loglikelihood_rolling(_instances("loglikelihood_rolling", [(text,), ("",)]))
    assert got == pytest.approx(want, abs=1e-3)
    assert empty == 0.0


@needs_lm_eval
def test_generate_until_is_greedy_and_stops():
    lm = _lm(ArithOracle(), ByteTokenizer(), 255, 32)
    out = lm.generate_until(_instances("generate_until", [("Compute 12 + 35.\nAnswer:", {"until": ["\n"]}),
                                                          ("Compute 7 * 8.\nAnswer:", {"max_gen_toks": 2})]))
    assert out == [" 47", " 5"]


# ---------------------------------------------------------------------------- tasks
def test_arith_docs_are_well_formed():
    docs = arith_docs(300)
    assert docs == arith_docs(300)  # a pure function of (n, seed)
    for d in docs:
        a, op, b = re.fullmatch(r"Compute (\d+) ([-+*]) (\d+)\.\nAnswer:", d["context"]).groups()
        answer = eval(f"{a}{op}{b}")
        assert d["choices"][d["gold"]] == f" {answer}"
        assert len(set(d["choices"])) == 4 and {len(c) for c in d["choices"]} == {len(str(answer)) + 1}
    assert sorted({d["gold"] for d in docs}) == [0, 1, 2, 3]


def test_cloze_gold_is_the_true_continuation(text_corpus):
    _, texts = text_corpus
    documents = texts["prose"]
    docs = cloze_docs(documents, n_docs=50)
    assert len(docs) == 50
    for d in docs:
        assert len(set(d["choices"])) == 4
        assert any(t.startswith(d["context"] + d["choices"][d["gold"]]) for t in documents)
        assert len(d["context"]) >= 64


@needs_lm_eval
def test_arith_oracle_scores_one_and_random_model_is_near_chance():
    configs = [lm_eval_config(available_tasks([])["arith"], arith_docs(200))]
    oracle = _run_lm_eval(_lm(ArithOracle(), ByteTokenizer(), 255, 32), configs)
    assert oracle["arith"]["acc"] == 1.0 and oracle["arith"]["n"] == 200
    chance = [_run_lm_eval(_lm(TinyCausalLM(256, seed=s).eval(), ByteTokenizer(), 255, 32), configs)
              ["arith"]["acc"] for s in range(3)]
    assert 0.15 < np.mean(chance) < 0.35, chance  # 1/4 +- 4 standard errors of 600 answers


@needs_lm_eval
def test_cloze_oracle_scores_one_through_lm_eval(text_corpus):
    _, texts = text_corpus
    configs = [lm_eval_config(available_tasks(["math"])["cloze_math"], cloze_docs(texts["math"], 40))]
    res = _run_lm_eval(_oracle_lm(texts["math"]), configs)["cloze_math"]
    assert res["acc"] == 1.0 and res["acc_norm"] == 1.0 and res["n"] == 40


def test_evaluate_end_to_end_offline(text_corpus, monkeypatch):
    corpus, _ = text_corpus
    _no_network(monkeypatch)
    model = TinyCausalLM(corpus.vocab_size)
    out = evaluate(model, corpus, _spec(corpus.vocab_size), ("arith", "cloze", "arith_em", "text"), "cpu", n_docs=30)
    tasks = ["arith", "arith_em", "cloze_math", "cloze_prose"]
    assert {k for k in out if k.startswith("acc_")} == {f"acc_{t}" for t in tasks + ["cloze"]}
    assert {k for k in out if k.startswith("bpb_")} == {f"bpb_{t}" for t in tasks + ["cloze", "text_math", "text_prose"]}
    assert all(0.0 <= out[f"acc_{t}"] <= 1.0 and 0 < out[f"n_items_{t}"] <= 30 for t in tasks)
    assert out["n_items_arith"] == 30 and out["se_arith"] == pytest.approx(
        math.sqrt(out["acc_arith"] * (1 - out["acc_arith"]) / 29))
    assert all(out[f"bpb_{t}"] > 0 for t in tasks)
    assert out["acc_cloze"] == pytest.approx((out["acc_cloze_math"] + out["acc_cloze_prose"]) / 2)
    assert out["downstream_suite"].startswith("v2-")
    assert model.training  # train/eval mode restored


def test_evaluate_on_a_corpus_without_tokenizer_uses_bytes(tmp_path):
    """The synthetic test corpus (Markov-chain ids, no tokenizer.json): invalid UTF-8 must not break anything."""
    from harness.data.synthetic import make_synthetic_corpus
    path = make_synthetic_corpus(tmp_path / "synth", domains=("alpha", "beta"), train_tokens=1000, heldout_tokens=20000)
    model = TinyCausalLM(256)
    out = evaluate(model, path, _spec(256), ("arith", "cloze"), n_docs=20)
    assert {k for k in out if k.startswith("acc_")} == {"acc_arith", "acc_cloze", "acc_cloze_alpha", "acc_cloze_beta"}
    assert all(0.0 <= v <= 1.0 for k, v in out.items() if k.startswith("acc_"))


def test_unknown_tasks_are_reported_early(text_corpus):
    corpus, _ = text_corpus
    with pytest.raises(SpecError) as e:
        check_tasks(("arith", "hellaswag", "cloze_code"), corpus.domains)
    assert len(e.value.errors) == 2 and "cloze_math" in str(e.value) and "'hellaswag'" in str(e.value)
    check_tasks(("arith", "cloze", "cloze_prose", "suite", "text"), corpus.domains)
    assert task_errors(("cloze_code", "code", "text_x", "lm_eval:hellaswag")) == []  # corpus unknown: any domain
    assert len(task_errors(("cloze_", "lm_eval:"))) == 2
    with pytest.raises(SpecError, match="unknown task 'nope'"):
        evaluate(torch.nn.Identity(), corpus, _spec(corpus.vocab_size), ("nope",))


class Exploding(torch.nn.Module):
    """A model that fails the test if it is ever run: errors must come before compute."""

    def forward(self, idx):
        raise AssertionError("the model was run before the input was checked")


def test_bad_input_is_refused_before_compute(text_corpus, tmp_path):
    corpus, _ = text_corpus
    spec = _spec(corpus.vocab_size)
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: x\n  metric_list: [acc\n")
    not_task = tmp_path / "list.yaml"
    not_task.write_text("- 1\n- 2\n")
    with pytest.raises(SpecError) as e:
        evaluate(Exploding(), corpus, spec, ("arith", f"yaml:{bad}", f"yaml:{not_task}", f"yaml:{tmp_path}/none.yaml"))
    msg = str(e.value)
    assert "does not parse as YAML" in msg and "not an lm-eval task config" in msg and "no such file" in msg
    # a task whose domain has no usable document: every held-out document shorter than a context
    from harness.downstream_tasks import build_suite
    with pytest.raises(SpecError, match="task 'cloze_prose' has no items"):
        build_suite(("cloze_prose",), domains=["prose"], heldout=lambda d: np.array([5, 6, 0, 7], np.uint16),
                    eod_id=0, decode=lambda ids: "ab")
    # a model whose vocabulary the tokenizer overflows, and a corpus with neither a tokenizer nor room for bytes
    with pytest.raises(SpecError, match="model.vocab_size=100 is smaller"):
        evaluate(Exploding(), corpus, _spec(100), ("arith",))
    from harness.data.synthetic import make_synthetic_corpus
    small = make_synthetic_corpus(tmp_path / "small", vocab_size=64, train_tokens=1000, heldout_tokens=2000)
    with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
        evaluate(Exploding(), small, _spec(64), ("arith",))


def test_tasks_regenerate_identically(text_corpus):
    """The suite is a pure function of the corpus and SUITE_VERSION: two builds, same items, same fingerprint;
    items are spread over documents and (code) the gold line is the document's own next line."""
    from harness.downstream_tasks.code import code_docs
    from harness.downstream_tasks.text import text_docs
    corpus, texts = text_corpus
    spec = _spec(corpus.vocab_size)
    one, two = prepare(corpus, spec, ("suite",), 60), prepare(corpus, spec, ("suite",), 60)
    assert one.items == two.items and one.fingerprint == two.fingerprint
    assert set(one.items) == {"arith", "arith_em", "cloze_math", "cloze_prose", "text_math", "text_prose"}
    assert prepare(corpus, spec, ("suite",), 59).fingerprint != one.fingerprint
    assert one.subset(5).items["cloze_prose"] == one.items["cloze_prose"][:5]
    documents = texts["prose"]
    code = code_docs(documents, 40, min_line_chars=2)
    for d in code:
        assert len(set(d["choices"])) == 4
        gold = d["choices"][d["gold"]]
        assert any(d["context"] + gold + "\n" in t or t.endswith(d["context"] + gold) for t in documents)
    pieces = text_docs(documents, 1000, max_chars=200)
    assert len(pieces) > len(documents) and all(any(p["text"] in t for t in documents) for p in pieces)
    cloze = cloze_docs(documents, n_docs=len(documents) + 20)
    assert len(cloze) > len(documents)  # more questions than documents: a document gives several


def test_kv_cache_decoding_equals_full_forwards(text_corpus):
    """model_zoo.decode (a KV cache, prompts batched by length) against a full forward per token, dense and MoE."""
    import model_zoo
    corpus, _ = text_corpus
    tok = HFTokenizer(corpus.path / "tokenizer.json")
    prompts = ["Compute 12 + 35.\nAnswer:", "The cat", "Compute 3 * 4.\nAnswer:", "a"]
    for extra in ({}, {"family": "moe", "n_experts": 4, "top_k": 2, "expert_hidden": 32}):
        spec = RunSpec(model=ModelSpec(d_model=32, n_layers=2, n_heads=2, ffn_hidden=64, vocab_size=corpus.vocab_size,
                                       seq_len=48, **extra), tokens=1024, batch_tokens=48)
        torch.manual_seed(1)
        model = model_zoo.build(spec.model).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(20)   # large weights: a non-trivial greedy path instead of one repeated token
        scorer = Scorer(model, tok, corpus.eod_id, spec.model.seq_len)
        cached = scorer.generate(prompts, (), 12)
        uncached = []
        for p in prompts:
            ids = [corpus.eod_id] + tok.encode(p)
            new = scorer._generate_uncached(ids, 12, lambda _i, n: n[-1] == corpus.eod_id)
            uncached.append(tok.decode(new[:-1] if new[-1] == corpus.eod_id else new))
        assert cached == uncached, extra
        assert len({c for c in cached}) > 1


@needs_lm_eval
def test_own_evaluator_agrees_with_lm_eval(text_corpus):
    """On the same choice items, the local suite's own accuracies equal lm-eval's acc / acc_norm."""
    from harness.downstream import score_task
    corpus, texts = text_corpus
    tok = HFTokenizer(corpus.path / "tokenizer.json")
    model = TinyCausalLM(corpus.vocab_size, seed=3).eval()
    tasks = available_tasks(corpus.domains)
    items = {"arith": arith_docs(60), "cloze_prose": cloze_docs(texts["prose"], 60)}
    scorer = Scorer(model, tok, corpus.eod_id, 64)
    theirs = _run_lm_eval(_lm(model, tok, corpus.eod_id, 64), [lm_eval_config(tasks[n], d) for n, d in items.items()])
    for name, docs in items.items():
        ours = score_task(scorer, tasks[name], docs)
        assert ours[f"acc_{name}"] == pytest.approx(theirs[name][tasks[name].metric], abs=1e-12), name
        assert ours[f"n_items_{name}"] == theirs[name]["n"] == len(docs)


def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("downstream evaluation tried to open a network connection")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@needs_lm_eval
def test_lm_eval_tasks_by_name_read_local_files_offline(tmp_path, monkeypatch):
    """lm_eval:<name> goes through lm-eval's own YAML loader and datasets.load_dataset, offline. The
    task index is a temporary folder instead of lm-eval's ~15k configs (10-40 s to index) to stay fast."""
    import lm_eval.tasks
    _no_network(monkeypatch)
    (tmp_path / "arith.jsonl").write_text("\n".join(json.dumps(d) for d in arith_docs(40)))
    common = ("output_type: multiple_choice\ntest_split: test\ndoc_to_text: context\ndoc_to_choice: choices\n"
              "doc_to_target: gold\ntarget_delimiter: ''\nmetric_list:\n  - metric: acc\n")
    (tmp_path / "local_arith.yaml").write_text(
        f"task: local_arith\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {tmp_path}/arith.jsonl\n"
        f"  cache_dir: {tmp_path}/hf\n" + common)
    (tmp_path / "hub_only.yaml").write_text("task: hub_only\ndataset_path: nobody/not_cached_here\n" + common)
    real = lm_eval.tasks.TaskManager
    monkeypatch.setattr(lm_eval.tasks, "TaskManager",
                        lambda include_defaults=True, **kw: real(include_path=str(tmp_path), include_defaults=False))
    lm = _lm(ArithOracle(), ByteTokenizer(), 255, 64)
    res = _run_lm_eval(lm, [], ["local_arith"])
    assert res["local_arith"]["acc"] == 1.0 and res["local_arith"]["n"] == 40
    with pytest.raises(RuntimeError, match="not in the local Hugging Face cache"):
        _run_lm_eval(lm, [], ["hub_only"])
    with pytest.raises(SpecError, match="close names: \\['local_arith'\\]"):
        _run_lm_eval(lm, [], ["local_arth"])


@needs_lm_eval
def test_a_users_yaml_task_runs_through_evaluate(text_corpus, tmp_path, monkeypatch):
    """eval.downstream: [yaml:<path>]: a user's lm-eval task file, next to the local suite, offline."""
    corpus, _ = text_corpus
    _no_network(monkeypatch)
    (tmp_path / "arith.jsonl").write_text("\n".join(json.dumps(d) for d in arith_docs(30)))
    (tmp_path / "mine.yaml").write_text(
        f"task: my_arith\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {tmp_path}/arith.jsonl\n"
        f"  cache_dir: {tmp_path}/hf\noutput_type: multiple_choice\ntest_split: test\ndoc_to_text: context\n"
        "doc_to_choice: choices\ndoc_to_target: gold\ntarget_delimiter: ''\nmetric_list:\n  - metric: acc\n")
    out = evaluate(TinyCausalLM(corpus.vocab_size), corpus, _spec(corpus.vocab_size),
                   ("arith", f"yaml:{tmp_path}/mine.yaml"), n_docs=30)
    assert out["n_items_my_arith"] == 30 and 0 <= out["acc_my_arith"] <= 1 and out["se_my_arith"] > 0


def test_cli_evaluates_the_newest_checkpoint(text_corpus, tmp_path, capsys):
    """The real model interface (model_zoo.build(spec)(idx) -> logits) through `python -m harness.downstream`."""
    import model_zoo
    from harness.checkpoint import Checkpoints
    from harness.downstream import main
    from harness.rundir import RunDir
    from harness.spec import DataSpec, Runtime
    corpus, _ = text_corpus
    spec = RunSpec(model=_spec(corpus.vocab_size, seq_len=32).model, tokens=1024, batch_tokens=64,
                   data=DataSpec(corpus=str(corpus.path)))
    rd = RunDir(tmp_path / spec.run_id)
    rd.prepare(spec, Runtime())
    model = model_zoo.build(spec.model)
    Checkpoints(rd.ckpt_dir).save(7, {"step": 7, "model": model.state_dict()})
    assert main([str(rd.path), "--tasks", "arith,cloze_math", "--n-docs", "10", "--device", "cpu", "--samples", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["run_id"] == spec.run_id and out["step"] == 7
    with torch.no_grad():
        direct = evaluate(model, corpus, spec, ("arith", "cloze_math"), "cpu", n_docs=10)
    assert {k: out[k] for k in direct} == direct
    assert len(out["samples"]) >= 6 and all(isinstance(x["completion"], str) for x in out["samples"])


@pytest.mark.gpu
def test_cuda_bf16_loglikelihoods_match_cpu(text_corpus):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    import model_zoo
    corpus, _ = text_corpus
    spec = _spec(corpus.vocab_size, seq_len=64)
    tok = HFTokenizer(corpus.path / "tokenizer.json")
    pairs = [("Compute 12 + 35.\nAnswer:", " 47"), ("The cat sat", " on the mat."), ("the big red house " * 8, "near")]
    model = model_zoo.build(spec.model).eval()
    cpu = Scorer(model, tok, corpus.eod_id, 64).loglikelihood(pairs)
    gpu = Scorer(model.cuda(), tok, corpus.eod_id, 64, "cuda").loglikelihood(pairs)
    for (a, _), (b, _) in zip(cpu, gpu):
        assert b == pytest.approx(a, rel=0.02, abs=0.05)  # bf16 autocast on CUDA vs fp32 on CPU
    out = evaluate(model, corpus, spec, ("suite",), "cuda", n_docs=50)
    assert all(0 <= v <= 1 for k, v in out.items() if k.startswith("acc_"))


# ---------------------------------------------------------------------------- batching (issue 17: speed)
def test_scores_do_not_depend_on_batching_and_repeat_exactly(text_corpus):
    """Rows sorted and packed into batches of any size give the same log-likelihoods and greedy flags (one row per
    forward is the reference); a second call gives bit-identical results."""
    import model_zoo
    corpus, texts = text_corpus
    tok = HFTokenizer(corpus.path / "tokenizer.json")
    model = model_zoo.build(_spec(corpus.vocab_size, seq_len=24).model).eval()
    pairs = PAIRS + [(t[:40], t[40:90]) for t in texts["prose"][:6]] + [("", texts["math"][0][:200])]  # chunked
    ref = Scorer(model, tok, corpus.eod_id, 24, max_batch_tokens=1).loglikelihood(pairs)
    for budget in (30, 100, None):
        got = Scorer(model, tok, corpus.eod_id, 24, max_batch_tokens=budget).loglikelihood(pairs)
        assert [g for _, g in got] == [g for _, g in ref], budget
        assert [ll for ll, _ in got] == pytest.approx([ll for ll, _ in ref], abs=1e-4), budget
    assert Scorer(model, tok, corpus.eod_id, 24).loglikelihood(pairs) == got
    assert Scorer(model, tok, corpus.eod_id, 24).loglikelihood([]) == []


def test_many_sequences_per_forward():
    """A call's requests share forwards: 40 short requests, one forward (not one per request or per task)."""
    calls = []
    model = TinyCausalLM(256).eval()
    forward = model.forward
    model.forward = lambda idx: calls.append(idx.shape) or forward(idx)
    out = Scorer(model, ByteTokenizer(), 255, 32).loglikelihood([(f"Compute {i} + 1.", f" {i + 1}") for i in range(40)])
    assert len(out) == 40 and calls == [torch.Size([40, 18])]   # eod + 15 + 3 bytes, less the last


def test_batched_generation_with_stop_strings_equals_one_prompt_at_a_time(text_corpus):
    """Prompts of different lengths decoded together (left padding, several batches, stop checks every few tokens)
    give each prompt's own full-forward greedy completion, cut at the stop string."""
    import model_zoo
    from model_zoo.decode import greedy
    corpus, _ = text_corpus
    tok = HFTokenizer(corpus.path / "tokenizer.json")
    spec = RunSpec(model=ModelSpec(d_model=32, n_layers=2, n_heads=2, ffn_hidden=64, vocab_size=corpus.vocab_size,
                                   seq_len=40), tokens=1024, batch_tokens=40)
    torch.manual_seed(2)
    model = model_zoo.build(spec.model).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(20)
    prompts = ["Compute 12 + 35.\nAnswer:", "The cat", "a", "the big red house near the river and the tree", "9"]
    scorer = Scorer(model, tok, corpus.eod_id, 40)
    ids = [[corpus.eod_id] + tok.encode(p) for p in prompts]
    for until in ((), (" ", "e")):
        def stop(_i, new, until=until):
            return new[-1] == corpus.eod_id or any(u in tok.decode(new) for u in until)
        batched = greedy(model, ids, 10, stop, max_batch=2, check_every=3)
        with torch.no_grad():
            alone = [scorer._generate_uncached(p, 10, stop) for p in ids]
        assert batched == alone, until
    assert len({tuple(a) for a in alone}) > 1
    texts = [tok.decode(a[:-1] if a[-1] == corpus.eod_id else a) for a in alone]
    assert scorer.generate(prompts, until, 10) == [t.split(" ")[0].split("e")[0] for t in texts]


def test_tokenization_is_memoised_per_tokenizer(text_corpus, monkeypatch):
    """encode_batch equals encode; each distinct text is tokenized once per process (load_tokenizer returns one
    object per tokenizer file), so a run's repeated evals do not tokenize the suite again."""
    from harness.downstream import load_tokenizer
    corpus, texts = text_corpus
    tok = load_tokenizer(corpus)
    assert load_tokenizer(corpus) is tok
    sample = texts["prose"][:5] + ["", "Compute 1 + 2.\nAnswer:"]
    assert [list(x) for x in tok.encode_batch(sample)] == [tok.encode(t) for t in sample]
    asked = []
    real = tok._encode_uncached
    monkeypatch.setattr(tok, "_encode_uncached", lambda ts: asked.extend(ts) or real(ts))
    tok.encode_batch(sample + ["a new text"])
    assert asked == ["a new text"]
    assert [list(x) for x in ByteTokenizer().encode_batch(["é!", ""])] == [[195, 169, 33], []]


def test_cli_write_scores_finished_runs_and_analysis_joins_them(text_corpus, tmp_path, capsys):
    """--write: a finished run's final checkpoint scored into its downstream.json, which analysis.results joins to
    the run's row; a run whose newest checkpoint is not its final step, and one without checkpoints, are named and
    left unscored while the others go on (exit 1)."""
    import model_zoo
    from analysis.results import load
    from harness.checkpoint import Checkpoints
    from harness.downstream import main
    from harness.rundir import DOWNSTREAM_FILE, RunDir, atomic_write_bytes
    from harness.spec import DataSpec, Runtime
    corpus, _ = text_corpus
    sweep = tmp_path / "sweep"
    dirs = []
    for seed, ckpt_step in ((0, 16), (1, 9), (2, None)):
        spec = RunSpec(model=_spec(corpus.vocab_size, seq_len=32).model, tokens=1024, batch_tokens=64, seed=seed,
                       data=DataSpec(corpus=str(corpus.path)))
        rd = RunDir(sweep / spec.run_id)
        rd.prepare(spec, Runtime())
        if ckpt_step is not None:
            Checkpoints(rd.ckpt_dir).save(ckpt_step, {"step": ckpt_step, "model": model_zoo.build(spec.model).state_dict()})
        row = {"run_id": spec.run_id, "loss": 5.0 + seed, "steps": 16, "tokens": 1024, "flops": 1e9}
        atomic_write_bytes(rd.result_file, json.dumps(row).encode())
        dirs.append(rd.path)
    assert main([*map(str, dirs), "--tasks", "arith", "--n-docs", "10", "--device", "cpu", "--write"]) == 1
    assert (dirs[0] / DOWNSTREAM_FILE).is_file()
    assert not (dirs[1] / DOWNSTREAM_FILE).exists() and not (dirs[2] / DOWNSTREAM_FILE).exists()
    written = json.loads((dirs[0] / DOWNSTREAM_FILE).read_text())
    assert written["step"] == 16 and written["n_items_arith"] == 10
    runs = load(sweep).runs.set_index("run_id")
    scored = runs.loc[dirs[0].name]
    assert scored["acc_arith"] == written["acc_arith"] and scored["downstream_source"] == "post-hoc"
    assert runs["acc_arith"].isna().sum() == 2
    # a file that is not this run's final step is left out, with a warning that names it
    written["step"] = 15
    atomic_write_bytes(dirs[0] / DOWNSTREAM_FILE, json.dumps(written).encode())
    with pytest.warns(UserWarning, match="final step 16"):
        runs = load(sweep).runs
    assert "acc_arith" not in runs.columns
