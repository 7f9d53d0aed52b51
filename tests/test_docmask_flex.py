"""The flex-attention path of data.document_mask=on (model_zoo/docmask.block_mask) against the dense-mask path.

On the CPU flex runs eagerly (forward only: it has no CPU backward); the GPU runs the same BlockMask compiled
(bench/gpu_docmask.sh). Lengths that are not a multiple of flex's 128-token tile are the point: the H200 crashed
at 1023.
"""
import warnings

import pytest
import torch
import torch.nn.functional as F
from harness_util import assert_only_the_changed_document_moves, assert_path_equals_dense_mask

import model_zoo
from model_zoo import docmask
from model_zoo.spec import CPU_RULE

EOD = 63
LENGTHS = [1023, 1024, 1000, 129]


@pytest.fixture(autouse=True)
def _eager_flex(monkeypatch):
    """Eager flex without its per-call compile wrapper (the same unfused math, seconds less per new mask)."""
    from torch.nn.attention import flex_attention
    monkeypatch.setattr(flex_attention, "_FLEX_ATTENTION_DISABLE_COMPILE_DEBUG", True)
    with warnings.catch_warnings():   # eager flex warns that it is unfused (the point of a CPU check)
        warnings.simplefilter("ignore", UserWarning)
        yield


def windows(T, seed=0, rows=3):
    """rows x T tokens: documents of 1..300 tokens, the last row a single document (its tiles are 'full')."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, EOD, (rows, T), generator=g)
    x[:-1][torch.rand(rows - 1, T, generator=g) < 1 / 150] = EOD
    return x


@pytest.mark.parametrize("block", [docmask.BLOCK, 64])
@pytest.mark.parametrize("T", LENGTHS + [1, 200])
def test_block_mask_is_the_dense_mask_in_tiles(T, block):
    docs = docmask.document_ids(windows(T), EOD)
    bm = docmask.block_mask(docs, block) if block != docmask.BLOCK else docmask.block_mask(docs)
    assert bm.seq_lengths == (T, T) and bm.BLOCK_SIZE == (block, block)
    n = -(-T // block)
    pad = n * block - T
    tiles = F.pad(docmask.dense_mask(docs), (0, pad, 0, pad)).view(3, 1, n, block, n, block)
    # the tiles the kernel visits are those with an attended pair; those it runs without the mask are all True
    assert torch.equal(bm.to_dense().bool(), tiles.any(5).any(3))
    full = torch.zeros(3, 1, n, n, dtype=torch.bool)
    for b in range(3):
        for q in range(n):
            full[b, 0, q, bm.full_kv_indices[b, 0, q, :bm.full_kv_num_blocks[b, 0, q]].long()] = True
    assert not (full & ~tiles.all(5).all(3)).any()
    if T >= 2 * block:   # the one-document row: every tile below the diagonal (inside T) is full
        inside = n if pad == 0 else n - 1
        assert full[-1, 0].sum() == inside * (inside - 1) // 2


def test_padded_ids_are_in_bounds_and_attend_nothing_real():
    docs = docmask.document_ids(windows(1000), EOD)
    p = docmask.padded_documents(docs)
    assert p.shape == (3, 1024) and torch.equal(p[:, :1000], docs)
    assert (p[:, 1000:] == docs[:, -1:] + 1).all()                     # a document of their own, after the last
    assert (p[:, 1:] >= p[:, :-1]).all()                               # still nondecreasing
    assert docmask.padded_documents(p) is p                            # a multiple of the tile: unchanged


def model(layers=1):
    torch.manual_seed(0)
    return model_zoo.build(CPU_RULE.shape(layers, vocab_size=64, seq_len=1024)).eval()


@pytest.fixture
def flex(monkeypatch):
    """The flex path for every forward (on the CPU: eager flex)."""
    monkeypatch.setattr(docmask, "wants_flex", lambda documents: True)


@pytest.mark.parametrize("T", LENGTHS)
def test_flex_path_equals_dense_mask_path(T, monkeypatch):
    assert_path_equals_dense_mask(model(), windows(T, seed=T, rows=2), EOD, monkeypatch, "wants_flex")


def test_flex_logits_do_not_depend_on_other_documents(flex):
    """T = 1023: a document's logits are the same whatever other document shares its window (flex path)."""
    m = model()
    x = windows(1023, seed=1, rows=1).repeat(2, 1)
    x[:, 399], x[:, 700] = EOD, EOD                                     # documents [0, 399], [400, 700], [701, ..]
    assert_only_the_changed_document_moves(m, x, EOD, 400, 700, seed=2)
