"""lr schedules: values at the boundaries, monotonicity, the 1-sqrt cooldown formula."""
import math

import pytest

from harness.schedule import cooldown_steps, lr_at, warmup_steps
from harness.spec import OptimSpec

N = 1000


def curve(**kw):
    o = OptimSpec(lr=1.0, min_lr_ratio=0.1, **kw)
    return o, [lr_at(o, s, N) for s in range(N)]


@pytest.mark.parametrize("schedule", ["cosine", "wsd", "constant"])
def test_warmup_is_linear_to_the_peak(schedule):
    o, lr = curve(schedule=schedule, warmup_frac=0.05)
    w = warmup_steps(o, N)
    assert w == 50
    assert lr[0] == pytest.approx(1 / 50)
    assert lr[w - 1] == 1.0 and lr[w] == pytest.approx(1.0)
    assert all(b > a for a, b in zip(lr[:w], lr[1:w]))
    assert lr[24] == pytest.approx(25 / 50)


def test_cosine_ends_at_min_and_decreases():
    o, lr = curve(schedule="cosine", warmup_frac=0.1)
    assert lr[-1] == pytest.approx(0.1, abs=1e-12)
    after = lr[100:]
    assert all(b <= a for a, b in zip(after, after[1:]))
    mid = 100 + (N - 1 - 100) / 2   # half way through the decay: half way between peak and floor
    assert lr_at(o, int(mid), N) == pytest.approx(0.55, abs=2e-3)


def test_constant_is_flat_after_warmup():
    _, lr = curve(schedule="constant", warmup_frac=0.02)
    assert set(lr[20:]) == {1.0}


@pytest.mark.parametrize("shape", ["linear", "1-sqrt"])
def test_wsd_stable_then_cooldown(shape):
    o, lr = curve(schedule="wsd", warmup_frac=0.1, cooldown_frac=0.2, cooldown_shape=shape)
    cool = cooldown_steps(o, N)
    assert cool == 200
    assert set(lr[100:N - cool]) == {1.0}
    assert lr[-1] == pytest.approx(0.1, abs=1e-12)
    tail = lr[N - cool - 1:]
    assert all(b < a for a, b in zip(tail, tail[1:]))


def test_wsd_cooldown_shapes_follow_their_formulas():
    o_lin, lin = curve(schedule="wsd", warmup_frac=0.0, cooldown_frac=0.2, cooldown_shape="linear")
    o_sq, sq = curve(schedule="wsd", warmup_frac=0.0, cooldown_frac=0.2, cooldown_shape="1-sqrt")
    start = N - 200
    for k in (0, 49, 99, 150, 199):   # x = fraction of the cooldown done after step start+k
        x = (k + 1) / 200
        assert lin[start + k] == pytest.approx(1 - 0.9 * x, abs=1e-12)
        # Hägele et al. 2024: lr = peak * (1 - sqrt(x)), here decaying to min_lr_ratio instead of 0
        assert sq[start + k] == pytest.approx(1 - 0.9 * math.sqrt(x), abs=1e-12)
    # 1-sqrt drops faster early in the cooldown and meets linear at the end
    assert sq[start + 49] < lin[start + 49]
    assert sq[-1] == pytest.approx(lin[-1])


def test_degenerate_lengths():
    o = OptimSpec(lr=2.0, schedule="cosine", warmup_frac=0.0, min_lr_ratio=0.5)
    assert lr_at(o, 0, 1) == 1.0   # a one-step run takes the final value
    assert lr_at(o, 0, 2) == 2.0 and lr_at(o, 1, 2) == 1.0
    w = OptimSpec(lr=2.0, schedule="wsd", warmup_frac=0.0, cooldown_frac=0.0)
    assert [lr_at(w, s, 10) for s in range(10)] == [2.0] * 10
