"""The varlen path of data.document_mask=on (model_zoo/docmask.sequences, attend_varlen) against the dense mask.

torch's varlen attention runs on CUDA only (its op has no CPU kernel). Here the op gets one: a per-document
reference (a plain causal softmax attention per sequence of cu_seqlens, forward and, by autograd, backward)
registered as its CPU kernel, so everything around the kernel runs as on the GPU: the cu_seqlens built from the
document ids, the [B, H, T, hd] <-> [B * T, H, hd] packing, torch's varlen_attn wrapper, its custom op and
autograd, and torch.compile (aot_eager) with the graph break at `sequences`. The flash kernel itself is checked
against the dense mask on the GPU (the CUDA-only test below; bench/gpu_docmask.sh, logits and gradients).
"""
import functools

import pytest
import torch
import torch.nn.functional as F
from harness_util import assert_only_the_changed_document_moves, assert_path_equals_dense_mask

import model_zoo
from model_zoo import docmask
from model_zoo.spec import CPU_RULE

EOD = 63


def _scores(q, k, causal, scale):
    """The (masked) [H, l, l] scores of one sequence's q, k [H, l, hd]."""
    scores = q @ k.transpose(1, 2) * (scale or q.shape[-1] ** -0.5)
    if causal:
        scores = scores.masked_fill(~torch.ones(q.shape[1], q.shape[1], dtype=torch.bool).tril(), float("-inf"))
    return scores


def _sequences(cu_seq_q, cu_seq_k, total, max_len):
    bounds = cu_seq_q.tolist()
    assert bounds == cu_seq_k.tolist() and bounds[0] == 0 and bounds[-1] == total
    assert all(0 < e - s <= max_len for s, e in zip(bounds[:-1], bounds[1:]))
    return list(zip(bounds[:-1], bounds[1:]))


def reference_forward(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, is_causal=False, scale=None,
                      window_size=None, *rest):
    """The op's outputs (out [total, H, hd], lse [H, total], rng state) by a loop over its sequences."""
    causal = is_causal or (window_size is not None and list(window_size) == [-1, 0])
    out, lse = torch.empty_like(query), query.new_empty(query.shape[1], query.shape[0], dtype=torch.float32)
    for s, e in _sequences(cu_seq_q, cu_seq_k, query.shape[0], min(max_q, max_k)):
        q, k, v = (x[s:e].transpose(0, 1).float() for x in (query, key, value))    # [H, l, hd]
        scores = _scores(q, k, causal, scale)
        lse[:, s:e] = scores.logsumexp(-1)
        out[s:e] = (scores.softmax(-1) @ v).transpose(0, 1).to(out.dtype)
    return out, lse, torch.zeros(2, dtype=torch.uint64)


def reference_backward(grad_out, query, key, value, out, lse, cu_seq_q, cu_seq_k, max_q, max_k, is_causal, rng,
                       scale=None, window_size=None):
    """dq, dk, dv of softmax attention, written out (autograd does not run inside an op's kernel)."""
    causal = is_causal or (window_size is not None and list(window_size) == [-1, 0])
    grads = [torch.empty_like(x) for x in (query, key, value)]
    c = scale or query.shape[-1] ** -0.5
    for s, e in _sequences(cu_seq_q, cu_seq_k, query.shape[0], min(max_q, max_k)):
        q, k, v, o, do = (x[s:e].transpose(0, 1).float() for x in (query, key, value, out, grad_out))
        p = _scores(q, k, causal, scale).softmax(-1)                           # [H, l, l]
        ds = p * (do @ v.transpose(1, 2) - (do * o).sum(-1, keepdim=True))
        for g, x in zip(grads, (c * ds @ k, c * ds.transpose(1, 2) @ q, p.transpose(1, 2) @ do)):
            g[s:e] = x.transpose(0, 1).to(g.dtype)
    return tuple(grads)


_REFERENCE = {"registered": False, "on": False}


def _only_in_tests(fn):
    """fn as a CPU kernel that answers only while a varlen_on_cpu test runs, and otherwise fails as torch's op does
    without a CPU kernel: a kernel cannot be unregistered, and one left answering leaked into every later test of
    the process (tests/test_docmask_kernels.py expects varlen refused on the CPU)."""
    @functools.wraps(fn)
    def kernel(*args, **kwargs):
        if not _REFERENCE["on"]:
            raise NotImplementedError("torch's varlen attention has no CPU kernel (tests/test_docmask_varlen.py's "
                                      "reference answers only inside its own tests)")
        return fn(*args, **kwargs)
    return kernel


@pytest.fixture
def varlen_on_cpu():
    """torch's varlen op with the reference as its CPU kernel (forward and backward ops), for this test only."""
    from torch.nn.attention import varlen
    if not _REFERENCE["registered"]:
        varlen._varlen_attn.register_kernel("cpu", _only_in_tests(reference_forward))
        varlen._varlen_attn_backward.register_kernel("cpu", _only_in_tests(reference_backward))
        _REFERENCE["registered"] = True
    _REFERENCE["on"] = True
    yield
    _REFERENCE["on"] = False


def windows(T, rows=3, seed=0):
    """rows x T tokens, documents of 1..~200 tokens; the last row one document; EODs at the very start and end."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, EOD, (rows, T), generator=g)
    x[:-1][torch.rand(rows - 1, T, generator=g) < 1 / 40] = EOD
    x[0, 0] = x[0, -1] = x[0, 5] = x[0, 6] = EOD                       # one-token documents, and at the row's end
    return x


def reference_per_document(q, k, v, documents):
    """[B, H, T, hd] attention by a loop over each row's documents (causal SDPA on each), independent of docmask."""
    out = torch.empty_like(q)
    for b in range(q.shape[0]):
        for d in documents[b].unique().tolist():
            idx = (documents[b] == d).nonzero().squeeze(1)
            out[b, :, idx] = F.scaled_dot_product_attention(q[b, :, idx], k[b, :, idx], v[b, :, idx], is_causal=True)
    return out


def test_sequences_are_the_documents_of_each_row():
    x = torch.tensor([[5, EOD, 7, 8, EOD, EOD], [1, 2, 3, 4, 5, 6], [EOD, 1, EOD, 2, 3, 4]])
    seq = docmask.sequences(docmask.document_ids(x, EOD))
    # row 0: [5 EOD] [7 8 EOD] [EOD]; row 1: one document; row 2: [EOD] [1 EOD] [2 3 4]
    assert seq.cu_seqlens.tolist() == [0, 2, 5, 6, 12, 13, 15, 18] and seq.cu_seqlens.dtype == torch.int32
    assert seq.max_len == 6
    docs = docmask.document_ids(windows(300), EOD)
    cu = docmask.sequences(docs).cu_seqlens.long()
    lengths = cu.diff()
    assert cu[0] == 0 and cu[-1] == docs.numel() and (lengths > 0).all() and lengths.max() <= 300
    assert len(lengths) == int((docs[:, -1] + 1).sum())                # every document of every row, once
    flat = (docs + torch.arange(3).unsqueeze(1) * 10_000).reshape(-1)   # ids made unique across rows
    for s, e in zip(cu[:-1].tolist(), cu[1:].tolist()):
        assert (flat[s:e] == flat[s]).all() and (s == 0 or flat[s - 1] != flat[s])


@pytest.mark.parametrize("T", [300, 129])
def test_varlen_attention_is_the_dense_mask_and_the_per_document_loop(T, varlen_on_cpu):
    """attend_varlen (packing, the op, unpacking) equals SDPA under the dense mask and a per-document loop that
    shares no code with docmask, forward and backward, fp32; with q, k, v strided as the model makes them."""
    docs = docmask.document_ids(windows(T), EOD)
    g = torch.Generator().manual_seed(1)
    qkv = torch.randn(3, T, 3, 4, 16, generator=g).transpose(1, 3)   # [B, H, 3, T, hd]: the model's strided view
    q, k, v = (t.detach().requires_grad_() for t in qkv.unbind(2))
    weight = torch.randn(3, 4, T, 16, generator=g)

    def run(fn):
        for t in (q, k, v):
            t.grad = None
        y = fn()
        (y * weight).sum().backward()
        return y.detach(), [t.grad.clone() for t in (q, k, v)]

    got = run(lambda: docmask.attend(q, k, v, docmask.sequences(docs)))
    dense = run(lambda: docmask.attend(q, k, v, docmask.dense_mask(docs)))
    loop = run(lambda: reference_per_document(q, k, v, docs))
    for ref in (dense, loop):
        torch.testing.assert_close(got[0], ref[0], rtol=0, atol=1e-5)
        for a, b in zip(got[1], ref[1]):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    causal = F.scaled_dot_product_attention(q, k, v, is_causal=True).detach()
    assert (got[0] - causal).abs().max() > 1e-2                         # the documents matter: the test can fail


def model(layers=2, seq_len=256):
    torch.manual_seed(0)
    return model_zoo.build(CPU_RULE.shape(layers, vocab_size=64, seq_len=seq_len))


def test_model_logits_on_the_varlen_path_equal_the_dense_path(varlen_on_cpu, monkeypatch):
    assert_path_equals_dense_mask(model().eval(), windows(256, seed=2), EOD, monkeypatch, "wants_varlen")


def test_varlen_logits_do_not_depend_on_other_documents(varlen_on_cpu, monkeypatch):
    monkeypatch.setattr(docmask, "wants_varlen", lambda documents: True)
    m = model().eval()
    x = windows(256, rows=1, seed=3).repeat(2, 1)
    x[:, 1:].masked_fill_(x[:, 1:] == EOD, 1)
    x[:, 99], x[:, 180] = EOD, EOD                                       # documents [0, 99], [100, 180], [181, ..]
    assert_only_the_changed_document_moves(m, x, EOD, 100, 180, seed=4)


def test_compiled_varlen_training_step_equals_eager_dense(varlen_on_cpu, monkeypatch):
    """The CUDA rule on the CPU (varlen when compiling): torch.compile(aot_eager) of the harness' loss step,
    loss and every gradient against the eager dense-mask step; a second batch with another number of documents
    runs without recompiling the layers (cu_seqlens marked dynamic)."""
    from harness.step import LossStep
    monkeypatch.setattr(docmask, "wants_varlen", lambda documents: torch.compiler.is_compiling())
    torch._dynamo.reset()
    m = model(seq_len=128).train()
    step = LossStep(m, 1e-4, 1, eod_id=EOD)
    graphs = []

    def backend(gm, inputs):
        graphs.append(gm)
        from functorch.compile import make_boxed_func
        from torch._dynamo.backends.common import aot_autograd
        return aot_autograd(fw_compiler=lambda g, _: make_boxed_func(g), bw_compiler=lambda g, _: make_boxed_func(g))(
            gm, inputs)

    compiled = torch.compile(step, backend=backend)

    def run(fn, x):
        m.zero_grad(set_to_none=True)
        loss, _ = fn(x[:, :-1], x[:, 1:], torch.zeros_like(x[:, 1:]))
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in m.named_parameters()}

    x1, x2 = windows(129, rows=2, seed=5), windows(129, rows=2, seed=6)
    x2[0, 40:60] = EOD                                                   # 20 more documents
    n_docs = [int(docmask.document_ids(x[:, :-1], EOD)[:, -1].add(1).sum()) for x in (x1, x2)]
    assert n_docs[0] != n_docs[1]
    for i, x in enumerate((x1, x2)):
        got, ref = run(compiled, x), run(step, x)
        torch.testing.assert_close(got[0], ref[0], rtol=0, atol=1e-5)
        for n, g in ref[1].items():
            torch.testing.assert_close(got[1][n], g, rtol=0, atol=1e-5, msg=lambda s, n=n: f"{n}: {s}")
        if i == 0:
            first = len(graphs)
            uses_varlen = any("torch_attn._varlen_attn" in str(gm.code) for gm in graphs)
    assert uses_varlen                                                   # the op is in a compiled graph
    assert len(graphs) == first                                          # the new N compiled nothing new
    torch._dynamo.reset()


def test_causal_spelling_of_each_torch_version():
    def v2_10(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, is_causal=False, return_aux=None):
        pass

    def v2_11(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, return_aux=None, scale=None,
              window_size=(-1, -1)):
        pass

    assert docmask.causal_spelling(v2_10) == {"is_causal": True}
    assert docmask.causal_spelling(v2_11) == {"window_size": (-1, 0)}
    assert docmask.causal_spelling(lambda q, k, v, cu_q, cu_k, mq, mk: None) is None
    assert docmask._resolve_varlen() is not None                        # this torch (2.13) has it


def test_a_torch_without_varlen_takes_the_dense_mask(monkeypatch):
    monkeypatch.setattr(docmask, "_VARLEN", None)
    monkeypatch.setattr(docmask, "_resolve_varlen", lambda: None)
    docs = docmask.document_ids(windows(64), EOD)
    with pytest.warns(UserWarning, match="ATTENTION='varlen'.*dense mask"):
        got = docmask.sequences(docs)
    assert torch.equal(got, docmask.dense_mask(docs))


def test_an_unknown_attention_kind_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(docmask, "ATTENTION", "flash")
    with pytest.raises(ValueError, match=r"docmask.ATTENTION='flash': must be one of flex, varlen, dense"):
        docmask.attention_mask(torch.zeros(1, 4, dtype=torch.long))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch's varlen kernel is CUDA-only")
def test_flash_varlen_kernel_equals_the_dense_mask_on_cuda():
    docs = docmask.document_ids(windows(1023).cuda(), EOD)
    q, k, v = (torch.randn(3, 4, 1023, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    got = docmask.attend(q, k, v, docmask.sequences(docs))
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=docmask.dense_mask(docs))
    assert (got.float() - ref).abs().max() < 2e-2


# ---- the sequences built on the host, with the batch (docmask.document_starts), read by the compiled step


def test_host_starts_are_the_sequences_and_split_by_rows():
    """document_starts (host, from the inputs) gives sequences(document_ids)'s cu_seqlens; a batch split into
    micro-batches gives each its own rows' sequences (after from_starts' offset), EODs at row ends included."""
    from harness.data.batch import TokenBatch
    x = windows(300, rows=4, seed=7)
    x[1, -1] = x[2, 0] = EOD
    starts, row_index = docmask.document_starts(x, EOD)
    docs = docmask.document_ids(x, EOD)
    assert torch.equal(starts, docmask.sequences(docs).cu_seqlens) and starts.dtype == torch.int32
    assert row_index.tolist()[0] == 0 and row_index.tolist()[-1] == len(starts) - 1
    batch = TokenBatch(x, x, torch.zeros_like(x)).with_starts(EOD)
    for n in (1, 2, 4):
        for i, mb in enumerate(batch.split(n)):
            want = docmask.sequences(docmask.document_ids(mb.inputs, EOD)).cu_seqlens
            got = docmask.from_starts(docs[:len(mb)], mb.starts).cu_seqlens
            assert torch.equal(got, want), (n, i)
            assert torch.equal(mb.row_index, docmask.document_starts(mb.inputs, EOD)[1])


def test_mixture_batches_carry_their_starts(tmp_path):
    from harness.data.corpus import Corpus
    from harness.data.mixture import MixtureStream
    from harness.data.synthetic import make_synthetic_corpus
    from harness.spec import DataSpec
    corpus = Corpus(make_synthetic_corpus(tmp_path / "syn", train_tokens=20_000, heldout_tokens=4_000))
    on = MixtureStream(corpus, DataSpec(document_mask="on"), 4, 256, 0).batch(3)
    off = MixtureStream(corpus, DataSpec(), 4, 256, 0).batch(3)
    assert off.starts is None and torch.equal(on.inputs, off.inputs)
    assert len(on.starts) > 5                                            # documents of ~200 tokens: several a row
    assert torch.equal(on.starts, docmask.sequences(docmask.document_ids(on.inputs, corpus.eod_id)).cu_seqlens)


def test_logits_with_host_starts_equal_the_dense_path_and_ignore_other_documents(varlen_on_cpu, monkeypatch):
    m = model().eval()
    x = windows(256, seed=2)
    starts = docmask.document_starts(x, EOD)[0]
    docs = docmask.document_ids(x, EOD)
    with torch.no_grad():
        dense = m(x, documents=docs)
        monkeypatch.setattr(docmask, "wants_varlen", lambda documents: True)
        monkeypatch.setattr(docmask, "sequences", None)                   # the host starts must be what is used
        got = m(x, documents=docs, starts=starts)
    torch.testing.assert_close(got, dense, rtol=0, atol=1e-4)
    x = windows(256, rows=1, seed=3).repeat(2, 1)
    x[:, 1:].masked_fill_(x[:, 1:] == EOD, 1)
    x[:, 99], x[:, 180] = EOD, EOD
    x[1, 100:180] = torch.randint(0, EOD, (80,), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        a, b = m(x, documents=docmask.document_ids(x, EOD), starts=docmask.document_starts(x, EOD)[0]).unbind(0)
    keep = torch.ones(256, dtype=torch.bool)
    keep[100:181] = False
    torch.testing.assert_close(a[keep], b[keep], rtol=0, atol=1e-5)
    assert (a[~keep] - b[~keep]).abs().max() > 1e-2


def test_compiled_step_with_host_starts_is_one_graph_without_a_host_read(varlen_on_cpu, monkeypatch):
    """The harness' loss step under torch.compile (aot_eager) given the batch's starts (step_args): ONE graph (no
    break), no nonzero or item in it (the old path's host read), the varlen op inside; loss and every gradient equal
    to the eager dense step; micro-batches and a batch with another number of documents compile nothing new."""
    from harness.data.batch import TokenBatch
    from harness.step import LossStep, step_args
    monkeypatch.setattr(docmask, "wants_varlen", lambda documents: torch.compiler.is_compiling())
    torch._dynamo.reset()
    m = model(seq_len=128).train()
    step = LossStep(m, 1e-4, 1, eod_id=EOD)
    graphs, codes = [], []

    def backend(gm, inputs):
        graphs.append(gm)
        from functorch.compile import make_boxed_func
        from torch._dynamo.backends.common import aot_autograd

        def keep(g, _):
            codes.append(g.code)
            return make_boxed_func(g)
        return aot_autograd(fw_compiler=keep, bw_compiler=keep)(gm, inputs)

    compiled = torch.compile(step, backend=backend)

    def run(fn, mb):
        m.zero_grad(set_to_none=True)
        loss, _ = fn(*mb)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in m.named_parameters()}

    def batch(seed, rows=4, more=False):
        x = windows(129, rows=rows, seed=seed)
        if more:
            x[0, 40:60] = EOD
        return TokenBatch(x[:, :-1], x[:, 1:], torch.zeros_like(x[:, 1:])).with_starts(EOD)

    b1, b2 = batch(5), batch(6, more=True)
    assert len(b1.starts) != len(b2.starts)
    for i, mb in enumerate([b1, b2, *batch(7, rows=8).split(2)]):   # micro-batches: slices of the batch's starts
        got, ref = run(compiled, step_args(mb)), run(step, (mb.inputs, mb.targets, mb.domains))
        torch.testing.assert_close(got[0], ref[0], rtol=0, atol=1e-5)
        for n, g in ref[1].items():
            torch.testing.assert_close(got[1][n], g, rtol=0, atol=1e-5, msg=lambda s, n=n: f"{n}: {s}")
        if i == 0:
            assert len(graphs) == 1                                      # no graph break
            forward = codes[0]
            assert "torch_attn._varlen_attn" in forward
            assert "aten.nonzero" not in forward and "_local_scalar_dense" not in forward   # no host read
    assert len(graphs) == 1                                              # another N, micro-batches: no recompile
    explained = torch._dynamo.explain(step)(*step_args(b2))
    assert explained.graph_break_count == 0 and explained.graph_count == 1
    torch._dynamo.reset()
