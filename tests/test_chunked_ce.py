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


@pytest.mark.parametrize("n,vocab,chunk_elements,z", [(512, 2048, 1 << 18, 1e-4), (77, 300, 1 << 12, 1e-2),
                                                      (5, 50, 1 << 18, 0.0)])
def test_fused_loss_and_gradients_match_plain(n, vocab, chunk_elements, z, monkeypatch):
    """chunked_head_loss (gradients formed in the forward) against the plain head: mean CE + z * mean lse^2."""
    monkeypatch.setattr(chunked_ce, "CHUNK_ELEMENTS", chunk_elements)
    torch.manual_seed(0)
    h = torch.randn(2, n, 16, dtype=torch.float64, requires_grad=True)
    w = torch.randn(vocab, 16, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, vocab, (2, n))
    ce, lse = plain(h, w, t)
    want = ce.mean() + z * lse.square().mean()
    loss, ce2, lse2 = chunked_ce.chunked_head_loss(h, w, t, z)
    assert not ce2.requires_grad and not lse2.requires_grad    # statistics: the gradient flows through the loss
    for a, b in [(want, loss), (ce, ce2), (lse, lse2),
                 *zip(torch.autograd.grad(3.0 * want, (h, w)), torch.autograd.grad(3.0 * loss, (h, w)))]:
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-10, atol=1e-10)


def test_loss_step_on_the_fused_head_matches_the_plain_head():
    """The trainer's loss and statistics, eager fp32 CPU (fused head) vs the same model through the plain head."""
    from harness.step import LossStep
    from model_zoo import dense
    torch.manual_seed(0)
    spec = ModelSpec(d_model=16, n_layers=2, n_heads=2, ffn_hidden=48, vocab_size=256, seq_len=32)
    model = Transformer(spec)
    x, y, dom = torch.randint(0, 256, (3, 32)), torch.randint(0, 256, (3, 32)), torch.randint(0, 2, (3, 32))
    runs = []
    for fused in (True, False):
        model.zero_grad(set_to_none=True)
        with pytest.MonkeyPatch.context() as m:
            if not fused:
                m.setattr(dense, "use_chunked_head", lambda h: False)
            loss, stats = LossStep(model, 1e-2, 2)(x, y, dom)
            loss.backward()
        runs.append((loss.detach(), stats, *(p.grad.clone() for p in model.parameters())))
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
