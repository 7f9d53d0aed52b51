"""MixtureStream: proportions, stratification, curricula, epoch caps, purity (resume, workers)."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.data.corpus import Corpus, CorpusError, resolve_corpus_path
from harness.data.mixture import MixtureError, MixtureStream, SainteLague
from harness.data.synthetic import make_synthetic_corpus
from harness.spec import DataSpec, Stage
from model_zoo.spec import SpecError

W3 = (("alpha", 0.45), ("beta", 0.45), ("gamma", 0.10))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    return Corpus(make_synthetic_corpus(tmp_path_factory.mktemp("syn") / "syn", train_tokens=60_000,
                                        heldout_tokens=5_000))


def labels(b) -> np.ndarray:
    return b.domains[:, 0].numpy()


def test_sainte_lague_is_house_monotone_and_close_to_quota():
    w = np.array([0.45, 0.45, 0.1])
    a, prev = SainteLague(w), np.zeros(3, dtype=np.int64)
    for n in range(1, 3000):
        c = a.counts(n)
        assert c.sum() == n and (c >= prev).all()
        assert np.abs(c - n * w).max() <= 1.0
        prev = c


def test_stratified_batches_hold_each_share_exactly(corpus):
    B = 8  # 0.45/0.45/0.10 of 8 is 3.6/3.6/0.8: per-batch rounding alone would bias the mix
    s = MixtureStream(corpus, DataSpec(weights=W3), batch_size=B, seq_len=16, seed=1)
    total = np.zeros(3)
    for step in range(500):
        b = s.batch(step)
        c = np.bincount(labels(b), minlength=3)
        assert (np.abs(c - B * np.array([0.45, 0.45, 0.1])) < 1 + 1e-9).all(), c
        assert (c == s.consumed((step + 1) * B) - s.consumed(step * B)).all()
        total += c
        # cumulative counts track the weights to within one sequence per domain
        assert np.abs(total - (step + 1) * B * np.array([0.45, 0.45, 0.1])).max() <= 1.0
        assert (b.domains == b.domains[:, :1]).all() and b.inputs.shape == (B, 16)
        assert (b.inputs[:, 1:] == b.targets[:, :-1]).all()


def test_random_sampling_matches_weights_statistically(corpus):
    B, steps = 32, 600
    s = MixtureStream(corpus, DataSpec(weights=W3, sampling="random"), batch_size=B, seq_len=16, seed=2)
    c = np.bincount(np.concatenate([labels(s.batch(i)) for i in range(steps)]), minlength=3)
    n, p = B * steps, np.array([0.45, 0.45, 0.10])
    assert (np.abs(c - n * p) < 4.5 * np.sqrt(n * p * (1 - p))).all(), c
    per_batch = [np.bincount(labels(s.batch(i)), minlength=3)[2] for i in range(50)]
    assert len(set(per_batch)) > 1  # random: the per-batch share varies


def test_curriculum_switches_at_the_exact_token(corpus):
    B, T = 8, 16
    start = 37 * T  # the 38th sequence, mid-way through batch 4
    data = DataSpec(weights=(("alpha", 1.0),), stages=(Stage(start_tokens=start, weights=(("beta", 1.0),)),))
    s = MixtureStream(corpus, data, batch_size=B, seq_len=T, seed=3)
    seen = np.concatenate([labels(s.batch(i)) for i in range(10)])
    assert (seen == 0).sum() == start // T and (seen == 1).sum() == 10 * B - start // T
    # the same switch from a fraction of the run's tokens
    data = DataSpec(weights=(("alpha", 1.0),), stages=(Stage(start_frac=0.8, weights=(("beta", 1.0),)),))
    s = MixtureStream(corpus, data, batch_size=B, seq_len=T, seed=3, total_tokens=100 * B * T)
    seen = np.concatenate([labels(s.batch(i)) for i in range(100)])
    assert (seen == 0).sum() == 80 * B
    assert all((labels(s.batch(i)) == 0).all() for i in range(80)) and all(
        (labels(s.batch(i)) == 1).all() for i in range(80, 100))


@pytest.mark.parametrize("sampling", ["stratified", "random"])
def test_curriculum_switches_at_an_exact_token_inside_a_sequence(corpus, sampling):
    B, T = 8, 16
    start = 37 * T + 5  # 5 targets into sequence 37, the 6th row of batch 4
    data = DataSpec(weights=(("alpha", 1.0),), sampling=sampling,
                    stages=(Stage(start_tokens=start, weights=(("beta", 1.0),)),))
    s = MixtureStream(corpus, data, batch_size=B, seq_len=T, seed=3)
    batches = [s.batch(i) for i in range(10)]
    dom = np.concatenate([b.domains.numpy() for b in batches])
    assert (dom == 0).sum() == start and (dom == 1).sum() == 10 * B * T - start
    assert all((b.domains == 0).all() for b in batches[:4]) and all((b.domains == 1).all() for b in batches[5:])
    b = batches[4]
    mixed = [i for i in range(B) if len(set(b.domains[i].tolist())) > 1]
    assert len(mixed) == 1
    i = mixed[0]
    assert b.domains[i].tolist() == [0] * 5 + [1] * (T - 5)  # the switch lands on target token 5 of that row
    assert sorted(b.domains[:, 0].tolist()) == [0] * 6 + [1] * 2  # sequences 32..36 and 37's start; 38, 39
    # the row's first 6 tokens (5 targets) open an alpha window, the rest open a beta window
    row = np.r_[b.inputs[i].numpy(), b.targets[i, -1].item()]
    alpha, beta = np.asarray(corpus.train("alpha")), np.asarray(corpus.train("beta"))
    assert any((alpha[k * T:k * T + 6] == row[:6]).all() for k in range(int(s.windows[0])))
    assert any((beta[k * T:k * T + T - 5] == row[6:]).all() for k in range(int(s.windows[1])))
    assert (b.inputs[:, 1:] == b.targets[:, :-1]).all()
    # the plan counts the same tokens; the batch is the same read alone, out of order, by a fresh stream
    plan = {p.domain: p for p in s.plan(10 * B * T).domains}
    assert plan["alpha"].tokens == start and plan["beta"].tokens == 10 * B * T - start
    again = MixtureStream(corpus, data, batch_size=B, seq_len=T, seed=3)
    for step in (9, 4, 0):
        x, y = again.batch(step), batches[step]
        assert all(torch.equal(u, v) for u, v in zip((x.inputs, x.targets, x.domains), (y.inputs, y.targets, y.domains)))


def test_a_switch_inside_a_sequence_keeps_shares_and_epochs_exact(corpus):
    B, T = 8, 16
    total = 60 * B * T
    data = DataSpec(weights=(("alpha", 0.5), ("beta", 0.5)), epoch_caps=(("gamma", 5.0),),
                    stages=(Stage(start_frac=0.5003, weights=(("alpha", 0.25), ("gamma", 0.75))),))
    s = MixtureStream(corpus, data, batch_size=B, seq_len=T, seed=6, total_tokens=total)
    start = round(0.5003 * total)
    assert start % T and s.plan().stage_start_tokens == (0, start)
    dom = np.concatenate([s.batch(i).domains.numpy().ravel() for i in range(60)])
    tokens = np.bincount(dom, minlength=3)
    assert tokens.sum() == total and (tokens == [p.tokens for p in s.plan().domains]).all()
    n_old = start // T + 1  # stage 0's slots: its sequences, the straddled one included
    old, new = s._alloc[0].counts(n_old), s._alloc[1].counts(60 * B - start // T)
    assert (s.consumed(60 * B) == old + new).all()
    sp = s.splices(0, 60 * B)
    assert len(sp) == 1 and sp[0][:2] == (start // T, start % T)
    want = (old + new) * T  # whole windows but for the spliced row's two halves
    want[sp[0][2]] -= T - start % T
    want[sp[0][3]] -= start % T
    assert (tokens == want).all() and (tokens == s.domain_tokens(60 * B)).all()
    # alpha is read in both stages: no alpha window twice within its epoch, spliced half included
    W = int(s.windows[0])
    alpha = np.asarray(corpus.train("alpha"))[:W * T + 1].astype(np.int64)
    starts = {}
    for k in range(W):
        starts.setdefault(alpha[k * T:k * T + 3].tobytes(), []).append(k)
    used = []
    for i in range(60):
        b = s.batch(i)
        row = torch.cat([b.inputs, b.targets[:, -1:]], dim=1).numpy()
        for r in range(B):
            d = b.domains[r].numpy()
            cut = int(np.argmax(d != d[0])) if (d != d[0]).any() else T  # targets before the switch
            parts = [(d[0], row[r, :cut + 1]), (d[-1], row[r, cut + 1:])] if cut < T else [(d[0], row[r])]
            for dom_i, part in parts:
                if dom_i == 0:
                    ks = [k for k in starts.get(part[:3].tobytes(), []) if (alpha[k * T:k * T + len(part)] == part).all()]
                    assert ks
                    used.append(ks[0] if len(ks) == 1 else tuple(ks))
    assert len(used) == int(s.consumed(60 * B)[0]) <= W and len(set(used)) == len(used)


def test_two_switches_in_one_sequence_are_refused(corpus):
    stages = (Stage(start_tokens=40, weights=(("beta", 1.0),)), Stage(start_tokens=44, weights=(("gamma", 1.0),)))
    with pytest.raises(SpecError, match="different sequences"):
        MixtureStream(corpus, DataSpec(weights=(("alpha", 1.0),), stages=stages), 8, 16, 0)


def test_random_sampling_follows_stages(corpus):
    B, T = 16, 16
    data = DataSpec(weights=(("alpha", 1.0),), sampling="random",
                    stages=(Stage(start_tokens=5 * B * T, weights=(("beta", 0.5), ("gamma", 0.5))),))
    s = MixtureStream(corpus, data, batch_size=B, seq_len=T, seed=4)
    assert all((labels(s.batch(i)) == 0).all() for i in range(5))
    after = np.concatenate([labels(s.batch(i)) for i in range(5, 40)])
    assert set(after) == {1, 2}


def test_named_mixtures_in_conf_are_valid_dataspecs():
    import yaml

    from harness.spec import from_plain
    files = sorted((Path(__file__).resolve().parents[1] / "conf" / "data" / "mixture").glob("*.yaml"))
    assert {"uniform", "code_heavy", "math_anneal"} <= {f.stem for f in files}
    for f in files:
        spec = from_plain(DataSpec, yaml.safe_load(f.read_text()))
        assert spec.errors() == [], f


def test_epochs_are_exact_and_caps_refuse(corpus):
    T, B = 16, 8
    s = MixtureStream(corpus, DataSpec(weights=W3), batch_size=B, seq_len=T, seed=0)
    W = (60_000 - 1) // T
    tokens = 3 * W * T  # 3*W sequences: alpha and beta read 1.35 epochs each, gamma 0.3
    ep = s.epochs_needed(tokens)
    assert ep["alpha"] == pytest.approx(0.45 * 3, abs=1 / W) and ep["gamma"] == pytest.approx(0.3, abs=1 / W)
    capped = DataSpec(weights=W3, epoch_caps=(("alpha", 1.0),))
    with pytest.raises(MixtureError, match=r"epoch_caps.alpha=1.*1\.35"):
        MixtureStream(corpus, capped, batch_size=B, seq_len=T, seed=0, total_tokens=tokens)
    ok = MixtureStream(corpus, capped, batch_size=B, seq_len=T, seed=0, total_tokens=W * T // 2)
    assert "alpha" in ok.plan().table()


def test_each_window_is_read_once_per_epoch(corpus):
    T, B = 64, 16
    s = MixtureStream(corpus, DataSpec(weights=(("alpha", 1.0),)), batch_size=B, seq_len=T, seed=5)
    W = int(s.windows[0])
    rows = np.concatenate([s.batch(i).inputs.numpy() for i in range(W // B)])
    starts = {tuple(r[:8]) for r in rows}
    assert len(starts) == len(rows)  # no window twice within the epoch
    train = np.asarray(corpus.train("alpha"))
    for r in rows[:50]:  # every row is a window of the train split at a multiple of T
        hits = [k for k in range(W) if (train[k * T:k * T + T] == r).all()]
        assert hits


def _batch_digest(args) -> str:
    path, step = args
    s = MixtureStream(Corpus(path), DataSpec(weights=W3), batch_size=8, seq_len=16, seed=7)
    b = s.batch(step)
    return hashlib.sha256(b.inputs.numpy().tobytes() + b.targets.numpy().tobytes()
                          + b.domains.numpy().tobytes()).hexdigest()


WRITER = """
import hashlib, sys
from harness.data.corpus import Corpus
from harness.data.mixture import MixtureStream
from harness.spec import DataSpec
s = MixtureStream(Corpus(sys.argv[1]), DataSpec(weights=(("alpha", 0.45), ("beta", 0.45), ("gamma", 0.10))),
                  batch_size=8, seq_len=16, seed=7)
start, stop = int(sys.argv[3]), int(sys.argv[4])
with open(sys.argv[2], "a") as f:
    for step in range(start, stop):
        b = s.batch(step)
        d = hashlib.sha256(b.inputs.numpy().tobytes() + b.targets.numpy().tobytes() + b.domains.numpy().tobytes())
        f.write(f"{step} {d.hexdigest()}\\n"); f.flush()
        if step >= start + 20: import time; time.sleep(0.05)
"""


def test_sigkill_and_resume_give_identical_batches_with_any_worker_count(corpus, tmp_path):
    steps = 60
    reference = [_batch_digest((corpus.path, i)) for i in range(steps)]
    log = tmp_path / "log.txt"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(corpus.path), str(log), "0", str(steps)], env=env)
    deadline = time.time() + 60
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 25):
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = [ln for ln in log.read_text().splitlines() if len(ln.split()) == 2 and len(ln.split()[1]) == 64]
    last = int(done[-1].split()[0])
    assert 20 <= last < steps - 1, "the writer should have been killed mid-way"
    log.write_text("".join(ln + "\n" for ln in done))  # drop a line the kill may have cut
    subprocess.run([sys.executable, "-c", WRITER, str(corpus.path), str(log), str(last + 1), str(steps)],
                   env=env, check=True)
    got = dict(ln.split() for ln in log.read_text().splitlines() if len(ln.split()) == 2)
    assert [got[str(i)] for i in range(steps)] == reference
    with ProcessPoolExecutor(2) as ex:  # two workers, steps handed out in reverse order
        two = list(ex.map(_batch_digest, [(corpus.path, i) for i in reversed(range(steps))]))
    assert two[::-1] == reference


def test_bad_mixtures_are_refused_before_training(corpus, tmp_path):
    with pytest.raises(SpecError, match=r"sum to 0\.9"):
        MixtureStream(corpus, DataSpec(weights=(("alpha", 0.5), ("beta", 0.4))), 8, 16, 0)
    with pytest.raises(SpecError, match="non-negative"):
        MixtureStream(corpus, DataSpec(weights=(("alpha", 1.2), ("beta", -0.2))), 8, 16, 0)
    with pytest.raises(SpecError, match=r"\['delta'\] not in corpus"):
        MixtureStream(corpus, DataSpec(weights=(("alpha", 0.5), ("delta", 0.5))), 8, 16, 0)
    with pytest.raises(SpecError, match="needs total_tokens"):
        MixtureStream(corpus, DataSpec(stages=(Stage(0.5, (("alpha", 1.0),)),)), 8, 16, 0)
    with pytest.raises(CorpusError, match=r"data.corpus='nope'.*harness.data.prepare corpus=nope"):
        resolve_corpus_path("nope", tmp_path)
