"""The chunked head + cross-entropy (model_zoo/chunked_ce.py) equals the plain head and token_losses."""
import pytest
import torch

from model_zoo import chunked_ce
from model_zoo.chunked_ce import chunked_head_losses
from model_zoo.dense import Transformer, token_losses
from model_zoo.spec import ModelSpec


def plain(h, w, t):
    return token_losses(h @ w.t(), t)


@pytest.mark.parametrize("n,vocab,chunk_elements", [(512, 2048, 1 << 18), (77, 300, 1 << 12), (5, 50, 1 << 18)])
def test_outputs_and_gradients_match_plain(n, vocab, chunk_elements, monkeypatch):
    monkeypatch.setattr(chunked_ce, "CHUNK_ELEMENTS", chunk_elements)   # several chunks, a ragged last one
    torch.manual_seed(0)
    h = torch.randn(2, n, 16, dtype=torch.float64, requires_grad=True)
    w = torch.randn(vocab, 16, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, vocab, (2, n))
    grads = []
    for fn in (plain, chunked_head_losses):
        ce, lse = fn(h, w, t)
        # a loss using both outputs with different weights per token, as CE + z-loss + per-domain sums do
        loss = (ce * torch.linspace(0.5, 1.5, ce.numel()).view_as(ce)).sum() + 1e-2 * lse.square().sum()
        gh, gw = torch.autograd.grad(loss, (h, w))
        grads.append((ce.detach(), lse.detach(), gh, gw))
    for a, b in zip(*grads):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_model_uses_it_eagerly_on_cpu_and_matches_the_plain_head():
    torch.manual_seed(0)
    spec = ModelSpec(d_model=16, n_layers=1, n_heads=2, ffn_hidden=48, vocab_size=256, seq_len=32,
                     tie_embeddings=True)
    model = Transformer(spec)
    x, y = torch.randint(0, 256, (3, 32)), torch.randint(0, 256, (3, 32))
    out = model(x, y)
    ce, lse = token_losses(model(x).float(), y)   # no targets: logits through the plain head
    torch.testing.assert_close(out.ce, ce, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.lse, lse, rtol=1e-5, atol=1e-5)
    out.ce.mean().backward()   # the tied weight gets the head's and the embedding's gradients
    assert model.embed.weight.grad is not None and torch.isfinite(model.embed.weight.grad).all()
