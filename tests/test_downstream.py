"""Downstream evals through lm-eval: exact log-likelihoods, offline local tasks, oracle and chance."""
from __future__ import annotations

import json
import re
import socket

import numpy as np
import pytest
import torch

from harness.data.corpus import Corpus
from harness.downstream import (
    ByteTokenizer,
    HFTokenizer,
    ScalemixLM,
    check_tasks,
    evaluate,
    run_lm_eval,
    task_errors,
)
from harness.downstream_tasks import available_tasks, lm_eval_config
from harness.downstream_tasks.arith import arith_docs
from harness.downstream_tasks.cloze import HeldoutDocuments, cloze_docs
from harness.spec import RunSpec
from model_zoo.spec import ModelSpec, SpecError

lm_eval_instance = pytest.importorskip("lm_eval.api.instance")
Instance = lm_eval_instance.Instance


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


class OracleLM(ScalemixLM):
    """An lm-eval LM that knows the true texts: log p = 0 for a continuation found in them, else -10."""

    def __init__(self, texts: list[str]):
        super().__init__(torch.nn.Identity(), ByteTokenizer(), 255, 64)
        self.texts = texts

    def loglikelihood(self, requests, disable_tqdm=False):
        return [(0.0 if any(ctx + cont in t for t in self.texts) else -10.0, False) for ctx, cont in
                (r.args for r in requests)]


def _instances(kind, args):
    return [Instance(request_type=kind, doc={}, arguments=a, idx=i) for i, a in enumerate(args)]


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


def test_loglikelihood_equals_direct_computation_from_logits(text_corpus):
    corpus, _ = text_corpus
    tok = HFTokenizer(corpus.path / "tokenizer.json")
    model = TinyCausalLM(corpus.vocab_size).eval()
    seq_len = 24
    # small batches force padding and several batches; the long context forces left truncation
    lm = ScalemixLM(model, tok, corpus.eod_id, seq_len, max_batch_tokens=50)
    pairs = [("Compute 12 + 35.\nAnswer:", " 47"), ("The cat sat", " on the mat."), ("", "the dog"), ("a", " b"),
             ("the big red house " * 8, "near the river"), ("9*9=", "81\n")]
    got = lm.loglikelihood(_instances("loglikelihood", pairs), disable_tqdm=True)
    with torch.no_grad():
        want = [_direct_loglikelihood(model, tok, corpus.eod_id, seq_len, c, x) for c, x in pairs]
    assert len(tok.encode(pairs[4][0])) > seq_len  # the truncation case is real
    for (ll, greedy), w in zip(got, want):
        assert ll == pytest.approx(w, abs=1e-4)
        assert isinstance(greedy, bool)


def test_loglikelihood_rolling_scores_every_token_once():
    """With a bigram model, windowing cannot change a token's probability: the sum is exact."""
    model, tok, seq_len = TinyCausalLM(256, bigram=True).eval(), ByteTokenizer(), 16
    lm = ScalemixLM(model, tok, 255, seq_len, max_batch_tokens=40)
    text = "the quick brown fox jumps over the lazy dog, " * 3  # 135 tokens: 9 windows
    ids = [255] + tok.encode(text)
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids[:-1]]))[0].double(), -1)
    want = sum(logp[i, ids[i + 1]].item() for i in range(len(ids) - 1))
    got, empty = lm.loglikelihood_rolling(_instances("loglikelihood_rolling", [(text,), ("",)]))
    assert got == pytest.approx(want, abs=1e-3)
    assert empty == 0.0


def test_generate_until_is_greedy_and_stops():
    lm = ScalemixLM(ArithOracle(), ByteTokenizer(), 255, 32)
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


def test_arith_oracle_scores_one_and_random_model_is_near_chance():
    configs = [lm_eval_config(available_tasks([])["arith"], arith_docs(200))]
    oracle = run_lm_eval(ScalemixLM(ArithOracle(), ByteTokenizer(), 255, 32), configs)
    assert oracle["arith"]["acc"] == 1.0 and oracle["arith"]["n"] == 200
    chance = [run_lm_eval(ScalemixLM(TinyCausalLM(256, seed=s).eval(), ByteTokenizer(), 255, 32), configs)
              ["arith"]["acc"] for s in range(3)]
    assert 0.15 < np.mean(chance) < 0.35, chance  # 1/4 +- 4 standard errors of 600 answers


def test_cloze_oracle_scores_one_through_lm_eval(text_corpus):
    _, texts = text_corpus
    configs = [lm_eval_config(available_tasks(["math"])["cloze_math"], cloze_docs(texts["math"], 40))]
    res = run_lm_eval(OracleLM(texts["math"]), configs)["cloze_math"]
    assert res["acc"] == 1.0 and res["acc_norm"] == 1.0 and res["n"] == 40


def test_evaluate_end_to_end_offline(text_corpus, monkeypatch):
    corpus, _ = text_corpus
    _no_network(monkeypatch)
    model = TinyCausalLM(corpus.vocab_size)
    out = evaluate(model, corpus, _spec(corpus.vocab_size), ("arith", "cloze"), "cpu", n_docs=30)
    assert sorted(out) == ["acc_arith", "acc_cloze", "acc_cloze_math", "acc_cloze_prose"]
    assert all(0.0 <= v <= 1.0 for v in out.values())
    assert out["acc_cloze"] == pytest.approx((out["acc_cloze_math"] + out["acc_cloze_prose"]) / 2)
    assert model.training  # train/eval mode restored


def test_evaluate_on_a_corpus_without_tokenizer_uses_bytes(tmp_path):
    """The synthetic test corpus (Markov-chain ids, no tokenizer.json): invalid UTF-8 must not break Arrow."""
    from harness.data.synthetic import make_synthetic_corpus
    path = make_synthetic_corpus(tmp_path / "synth", domains=("alpha", "beta"), train_tokens=1000, heldout_tokens=20000)
    model = TinyCausalLM(256)
    out = evaluate(model, path, _spec(256), ("arith", "cloze"), n_docs=20)
    assert sorted(out) == ["acc_arith", "acc_cloze", "acc_cloze_alpha", "acc_cloze_beta"]
    assert all(0.0 <= v <= 1.0 for v in out.values())


def test_unknown_tasks_are_reported_early(text_corpus):
    corpus, _ = text_corpus
    with pytest.raises(SpecError) as e:
        check_tasks(("arith", "hellaswag", "cloze_code"), corpus.domains)
    assert len(e.value.errors) == 2 and "cloze_math" in str(e.value) and "'hellaswag'" in str(e.value)
    check_tasks(("arith", "cloze", "cloze_prose"), corpus.domains)
    assert task_errors(("cloze_code", "lm_eval:hellaswag")) == []  # corpus unknown: any domain may exist
    assert len(task_errors(("cloze_", "lm_eval:"))) == 2
    with pytest.raises(SpecError, match="unknown task 'nope'"):
        evaluate(torch.nn.Identity(), corpus, _spec(corpus.vocab_size), ("nope",))


def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("downstream evaluation tried to open a network connection")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


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
                        lambda include_defaults=True: real(include_path=str(tmp_path), include_defaults=False))
    lm = ScalemixLM(ArithOracle(), ByteTokenizer(), 255, 64)
    res = run_lm_eval(lm, [], ["local_arith"])
    assert res["local_arith"]["acc"] == 1.0 and res["local_arith"]["n"] == 40
    with pytest.raises(RuntimeError, match="not in the local Hugging Face cache"):
        run_lm_eval(lm, [], ["hub_only"])
    with pytest.raises(SpecError, match="close names: \\['local_arith'\\]"):
        run_lm_eval(lm, [], ["local_arth"])


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
    assert main([str(rd.path), "--tasks", "arith,cloze_math", "--n-docs", "10", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["run_id"] == spec.run_id and out["step"] == 7
    with torch.no_grad():
        direct = evaluate(model, corpus, spec, ("arith", "cloze_math"), "cpu", n_docs=10)
    assert {k: out[k] for k in direct} == direct


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
    cpu = ScalemixLM(model, tok, corpus.eod_id, 64).loglikelihood(_instances("loglikelihood", pairs))
    gpu = ScalemixLM(model.cuda(), tok, corpus.eod_id, 64, "cuda").loglikelihood(_instances("loglikelihood", pairs))
    for (a, _), (b, _) in zip(cpu, gpu):
        assert b == pytest.approx(a, rel=0.02, abs=0.05)  # bf16 autocast on CUDA vs fp32 on CPU
    out = evaluate(model, corpus, spec, ("arith", "cloze"), "cuda", n_docs=50)
    assert all(0 <= v <= 1 for v in out.values())
