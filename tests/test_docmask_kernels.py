"""bench/docmask_kernels.py's plumbing on the CPU: the nested-tensor views are the documents, the agreement check
tells a right kernel from a wrong one, and the CUDA-only kernels are recorded as refused, not dropped."""
import argparse
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import docmask_kernels as dk  # noqa: E402
from model_zoo import docmask  # noqa: E402


def args(**kw):
    a = dict(seq=256, doc_median=60.0, batch=2, device="cpu", agree_rows=2, calls=1, rounds=1, top=2)
    a.update(kw)
    return argparse.Namespace(**a)


@pytest.fixture(autouse=True)
def _quiet_eager_flex(monkeypatch):
    from torch.nn.attention import flex_attention
    monkeypatch.setattr(flex_attention, "_FLEX_ATTENTION_DISABLE_COMPILE_DEBUG", True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def test_nested_views_are_the_documents():
    """njt() over the packed layout: each sequence is one document, and SDPA over it (non-causal: the CPU's math
    path refuses is_causal with nested tensors) equals the dense block-diagonal mask, values and gradients, after
    the output is unpacked as the benchmark does."""
    w = dk.Width(128, args())
    q, k, v, dout = dk.leaves(w, "packed")
    seqs = dk.njt(q, w).transpose(1, 2).unbind()
    bounds = w.cu.tolist()
    assert len(seqs) == w.n_docs == len(bounds) - 1 > w.B   # more documents than rows
    for s, a, b in zip(seqs, bounds, bounds[1:]):
        assert torch.equal(s, q[a:b])
    out = F.scaled_dot_product_attention(dk.njt(q, w), dk.njt(k, w), dk.njt(v, w)).transpose(1, 2).values()
    grads = torch.autograd.grad(out, (q, k, v), dout)
    Q, K, V = (x.detach().view(w.B, w.T, w.H, w.hd).transpose(1, 2).requires_grad_() for x in (q, k, v))
    same = (w.documents.unsqueeze(2) == w.documents.unsqueeze(1)).unsqueeze(1)   # same document, both directions
    ref = F.scaled_dot_product_attention(Q, K, V, attn_mask=same)
    ref_grads = torch.autograd.grad(ref, (Q, K, V), dout.view(w.B, w.T, w.H, w.hd).transpose(1, 2))
    torch.testing.assert_close(w.common(out, "packed"), ref.transpose(1, 2), atol=1e-5, rtol=1e-5)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(w.common(g, "packed"), r.transpose(1, 2), atol=1e-5, rtol=1e-5)


def test_dry_run_accepts_checks_and_refuses():
    a = args()
    r = dk.width_main(128, ["sdpa_default", "sdpa_dense_mask", "varlen", "njt_default", "flex_b128", "flex_b64",
                               "flex_tma_b128", "flex_auto_b64", "flex_opts_b128"], a)
    ks = r["kernels"]
    for name in ("sdpa_default", "sdpa_dense_mask"):
        assert ks[name]["accepted"] and ks[name]["agrees"] and ks[name]["ms"] > 0
        assert ks[name]["profile"], name   # the ops it ran
    assert ks["sdpa_default"]["ratio_default_off"] == 1.0
    # the check can fail: the mask changes the output by far more than the tolerance
    assert r["mask_effect"][0] > 100 * dk.TOL_FP32 and r["mask_effect"][1] > 100 * dk.TOL_FP32
    for name in ("varlen", "njt_default"):   # CUDA-only here: refused with the reason, not silently dropped
        assert not ks[name]["accepted"] and ks[name]["error"]
    for name in ("flex_b128", "flex_b64", "flex_tma_b128", "flex_auto_b64", "flex_opts_b128"):   # forward only (CPU)
        assert ks[name]["forward_only"] and ks[name]["agrees_forward"], ks[name]
    assert "USE_TMA" in ks["flex_tma_b128"]["note"] and "tile 64, max-autotune" in ks["flex_auto_b64"]["note"]


def test_bf16_checked_against_bf16_rounding():
    """In bf16 (the GPU's dtype) the gaps are set against bf16's own rounding: the kernels agree, and the rounding
    is far above fp32's tolerance (so a bf16 kernel is not held to fp32's)."""
    r = dk.width_main(128, ["sdpa_default", "sdpa_dense_mask"], args(dtype="bf16"))
    assert r["dtype"] == "bfloat16"
    for name in ("sdpa_default", "sdpa_dense_mask"):
        c = r["kernels"][name]
        assert c["agrees"] and min(c["bf16_rounding"]) > dk.TOL_FP32, c


def test_a_wrong_mask_fails_the_check(monkeypatch):
    """A kernel that ignores the documents (causal over the whole row) is reported as disagreeing."""
    real = dk.build

    def wrong(name, w):
        if name == "sdpa_dense_mask":
            return "bhtd", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), ""
        return real(name, w)

    monkeypatch.setattr(dk, "build", wrong)
    r = dk.width_main(128, ["sdpa_default", "sdpa_dense_mask"], args())
    assert r["kernels"]["sdpa_default"]["agrees"] and not r["kernels"]["sdpa_dense_mask"]["agrees"]


def test_table_and_bad_kernel(tmp_path, capsys):
    a = args(out=str(tmp_path), kernels="sdpa_default varlen", widths="128", tag="t")
    dk.run_main(a)
    dk.table_main(a)
    text = (tmp_path / "kernels.txt").read_text()
    assert "sdpa_default" in text and "varlen" in text and "launches" in text
    with pytest.raises(SystemExit, match="nope"):
        dk.run_main(args(out=str(tmp_path), kernels="nope", widths="128", tag="t"))


def test_block_mask_default_tile_and_kernel_blocks_agree():
    """The default tile is the one the kernel options were tuned at, and every kernel block divides it (Inductor
    refuses a flex kernel whose blocks do not divide the BlockMask's tile)."""
    docs = docmask.document_ids(torch.tensor([[1, 2, 63, 4] * 64]), 63)
    assert docmask.block_mask(docs).BLOCK_SIZE == (docmask.BLOCK, docmask.BLOCK) == (128, 128)
    blocks = {k: v for k, v in docmask.FLEX_KERNEL_OPTIONS.items() if k.startswith("BLOCK_")}
    assert set(blocks) == {"BLOCK_M", "BLOCK_N", "BLOCK_M1", "BLOCK_N1", "BLOCK_M2", "BLOCK_N2"}
    assert all(docmask.BLOCK % v == 0 for v in blocks.values()), blocks
    # given only where they were tuned: CUDA at head dimension 64 (a copy: a kernel may not change the module's)
    q = torch.zeros(1, 1, 8, 64)
    assert docmask.flex_kernel_options(q) is None                                       # the CPU: eager flex
    cuda_q = type("Q", (), {"is_cuda": True, "shape": (1, 1, 8, 64)})()
    assert docmask.flex_kernel_options(cuda_q) == docmask.FLEX_KERNEL_OPTIONS
    assert docmask.flex_kernel_options(cuda_q) is not docmask.FLEX_KERNEL_OPTIONS
    assert docmask.flex_kernel_options(type("Q", (), {"is_cuda": True, "shape": (1, 1, 8, 128)})()) is None
