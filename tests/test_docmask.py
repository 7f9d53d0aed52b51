"""Per-document attention (data.document_mask=on) on the CPU path: model_zoo/docmask.py and its plumbing."""
import json

import numpy as np
import pytest
import torch

import model_zoo
from harness import preflight
from harness.data.shards import write_shard
from harness.data.synthetic import make_synthetic_corpus
from harness.spec import SpecError
from harness.step import LossStep
from harness.train import run
from model_zoo import counting, docmask
from model_zoo.spec import CPU_RULE
from tests.harness_util import metrics, runtime, tiny_spec

EOD = 63


def model(family="dense", seed=0):
    over = dict(family="moe", n_experts=4, top_k=2, expert_hidden=32) if family == "moe" else {}
    spec = CPU_RULE.shape(2, vocab_size=64, seq_len=48, **over)
    torch.manual_seed(seed)
    return model_zoo.build(spec).eval()


def doc(n, seed):
    return torch.randint(0, EOD, (n,), generator=torch.Generator().manual_seed(seed)).tolist() + [EOD]


def test_document_ids_positions_and_dropped_targets():
    x = torch.tensor([[5, 6, EOD, 7, EOD, 8, 9, 1]])
    assert docmask.document_ids(x, EOD).tolist() == [[0, 0, 0, 1, 1, 2, 2, 2]]   # EOD ends its document
    assert docmask.positions(docmask.document_ids(x, EOD)).tolist() == [[0, 1, 2, 0, 1, 0, 1, 2]]
    # the targets at EOD inputs are the next document's first tokens (7 and 8): dropped
    assert docmask.loss_keep(x, EOD).tolist() == [[True, True, False, True, False, True, True, True]]
    m = docmask.dense_mask(docmask.document_ids(x, EOD))[0, 0]
    assert m[3].tolist() == [False, False, False, True, False, False, False, False]   # 7 sees itself only
    assert m[7].tolist() == [False] * 5 + [True] * 3


@pytest.mark.parametrize("family", ["dense", "moe"])
def test_logits_do_not_depend_on_other_documents(family):
    """A document's logits are the same whatever precedes or follows it in the window, and wherever it starts."""
    m = model(family)
    a, b, c, a2 = doc(9, 1), doc(14, 2), doc(30, 3), doc(9, 4)
    a_long = doc(17, 5)
    rows = torch.tensor([a + b + c[:23], a2 + b + doc(24, 6)[:23], a_long + b + c[:15]])   # b: 15 tokens
    with torch.no_grad():
        logits = m(rows, documents=docmask.document_ids(rows, EOD))
        alone = m(torch.tensor([b]), documents=docmask.document_ids(torch.tensor([b]), EOD))[0]
    got = [logits[0, 10:25], logits[1, 10:25], logits[2, 18:33]]   # b's 15 positions in each row
    for g in got:
        torch.testing.assert_close(g, alone, rtol=0, atol=2e-5)
    assert torch.equal(got[0], got[1])   # the same offset: bit for bit
    # without the mask the other documents do change b's logits (the test can fail)
    with torch.no_grad():
        plain = m(rows)
    assert (plain[0, 10:25] - plain[1, 10:25]).abs().max() > 1e-3


def test_one_document_window_equals_masks_off():
    m = model()
    x = torch.randint(0, EOD, (2, 48), generator=torch.Generator().manual_seed(0))   # no EOD: one document a row
    with torch.no_grad():
        torch.testing.assert_close(m(x, documents=docmask.document_ids(x, EOD)), m(x), rtol=0, atol=2e-5)


def test_loss_step_skips_dropped_targets():
    m = model().train()
    x = torch.tensor([doc(20, 1) + doc(25, 2) + [3]])
    y = torch.roll(x, -1, 1)
    step = LossStep(m, z_loss=0.0, n_domains=1, eod_id=EOD)
    loss, stats = step(x, y, torch.zeros_like(x))
    v = step.layout.unpack(stats)
    keep = x != EOD
    ce = m(x, y, docmask.document_ids(x, EOD)).ce
    torch.testing.assert_close(loss, ce[keep].mean())
    assert v["domain_tokens"].item() == keep.sum().item() == 46
    assert v["attention_pairs"].item() == counting.attention_pairs(docmask.document_ids(x, EOD).numpy())
    assert counting.attention_pairs(docmask.document_ids(x, EOD).numpy()) == 21 * 22 // 2 + 26 * 27 // 2 + 1


def test_flop_counts_of_masked_attention():
    spec = CPU_RULE.shape(2, vocab_size=64, seq_len=256)
    one = np.zeros((1, 256), dtype=np.int64)
    assert counting.attention_pairs(one) == 256 * 257 // 2
    # one document a window: within 1/T of the causal convention of flops_per_token
    exact = counting.training_flops(spec, 256, counting.attention_pairs(one))
    assert exact == 3 * (counting.matmul_flops_per_token(spec) * 256 + 4 * 64 * 2 * 256 * 257 // 2)
    assert abs(exact / (model_zoo.count(spec).flops_per_token * 256) - 1) < 1 / 256
    halves = np.repeat([[0, 1]], 128, axis=1)
    assert counting.attention_pairs(halves) == 2 * 128 * 129 // 2
    assert counting.block_pairs(halves, block=128) == 2 * 128 * 128        # two diagonal tiles, computed whole
    assert counting.block_pairs(one, block=128) == 3 * 128 * 128           # causal: 3 of 4 tiles


def test_masks_off_keeps_run_ids_and_masks_on_changes_them(tmp_path):
    corpus = make_synthetic_corpus(tmp_path / "syn", train_tokens=20_000, heldout_tokens=4_000)
    off = tiny_spec(corpus, steps=4)
    assert tiny_spec(corpus, steps=4, data={"document_mask": "off"}).run_id == off.run_id
    assert "document_mask" not in off.canonical_json()
    assert tiny_spec(corpus, steps=4, data={"document_mask": "on"}).run_id != off.run_id
    with pytest.raises(SpecError, match="data.document_mask='yes'"):
        tiny_spec(corpus, data={"document_mask": "yes"}).validate()


def test_train_with_masks_logs_setting_and_flops(tmp_path):
    corpus = make_synthetic_corpus(tmp_path / "syn", train_tokens=20_000, heldout_tokens=4_000)
    spec = tiny_spec(corpus, steps=6, data={"document_mask": "on"})
    row = run(spec, runtime(log_every=3), tmp_path / "run")
    assert row["document_mask"] == "on" and np.isfinite(row["loss"])
    train = metrics(tmp_path / "run")
    assert 0 < train[-1]["attention_pair_frac"] <= 1 and train[-1]["flops_masked"] == row["flops_masked"]
    # the synthetic documents (about 200 tokens) are longer than a 32-token window: most windows are one document
    assert 0.5 < row["flops_masked"] / row["flops"] < 1.05
    off = run(tiny_spec(corpus, steps=6), runtime(log_every=3), tmp_path / "off")
    assert off["document_mask"] == "off" and "flops_masked" not in off


def test_masks_on_a_corpus_without_eod_is_refused_before_compute(tmp_path):
    corpus = make_synthetic_corpus(tmp_path / "syn", train_tokens=20_000, heldout_tokens=4_000)
    for dom in ("alpha", "beta", "gamma"):   # rewrite the shards without a single EOD
        for split in ("train", "heldout"):
            n = 20_000 if split == "train" else 4_000
            write_shard(corpus / dom / f"{split}.bin", (np.arange(n) % 200).astype(np.uint16))
    spec = tiny_spec(corpus, data={"document_mask": "on"})
    with pytest.raises(SpecError, match=r"data.document_mask=on: corpus 'syn' has no end-of-document token"):
        preflight.check(spec, runtime())
    preflight.check(tiny_spec(corpus), runtime())   # masks off: fine
    assert not (tmp_path / "run").exists()
    json.loads((corpus / "manifest.json").read_text())


def test_sweep_with_masks_on_runs_end_to_end_and_the_report_states_it(tmp_path, monkeypatch):
    """The sweep config with `data.document_mask=on` at CPU demo scale (two tiny runs: planned from the Hydra
    config, trained as its runs' specs say), then analysis.report. In this process: the launch and worker
    processes around the runs (tests/test_sweep.py, test_worker.py) do not see the setting, which travels in each
    run's spec, and cost 20 CPU s more."""
    import warnings

    from analysis import report, results
    from analysis.laws.common import FitConfig
    from harness.rundir import RunDir
    from sweeps.plan import plan
    from tests.test_sweep import TINY, cfg
    make_synthetic_corpus(tmp_path / "data" / "syn", vocab_size=2048, train_tokens=100_000, heldout_tokens=10_000)
    monkeypatch.setenv("SCALEMIX_DATA", str(tmp_path / "data"))
    p = plan(cfg(*TINY, "data.document_mask=on", f"sweep.root={tmp_path / 'runs'}"))
    assert len(p.runs) == 2
    for r in p.runs:
        RunDir(p.run_dir(r)).prepare(r.spec, p.runtime)
        run(r.spec, p.runtime, p.run_dir(r), sweep="chinchilla")
    rows = [json.loads(f.read_text()) for f in (tmp_path / "runs" / "chinchilla").glob("*/result.json")]
    assert len(rows) == 2 and all(x["document_mask"] == "on" and x["flops_masked"] > 0 for x in rows)
    assert all(x["attention"] == "dense" for x in rows)   # the CPU's kernel for the masks, recorded with the run
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ctx = report.build_context(results.load(tmp_path / "runs" / "chinchilla"), FitConfig(n_bootstrap=0))
        md, _ = report.render(ctx, tmp_path / "report", "masks")
    assert "Attention: per-document attention (data.document_mask=on" in md.read_text()
    assert "; kernel: dense." in md.read_text()


def test_training_kernel_names_what_the_step_runs(monkeypatch):
    """result.json's `attention`: the CPU and eager steps take the dense mask; compiled CUDA steps the chosen
    kernel, except varlen in fp32 or in a torch without it (the dense mask, as attend does)."""
    assert docmask.training_kernel("cpu", True, torch.float32) == "dense"
    assert docmask.training_kernel("cuda", False, torch.bfloat16) == "dense"
    assert docmask.ATTENTION == "flex"   # the default (bench/README.md, session 13)
    assert docmask.training_kernel("cuda", True, torch.bfloat16) == "flex"
    assert docmask.training_kernel("cuda", True, torch.float32) == "flex"
    monkeypatch.setattr(docmask, "ATTENTION", "varlen")
    monkeypatch.setattr(docmask, "_VARLEN", (object(), {"window_size": (-1, 0)}))
    assert docmask.training_kernel("cuda", True, torch.bfloat16) == "varlen"
    assert docmask.training_kernel("cuda", True, torch.float32) == "dense"
    monkeypatch.setattr(docmask, "_VARLEN", False)
    assert docmask.training_kernel("cuda", True, torch.bfloat16) == "dense"
    monkeypatch.setattr(docmask, "ATTENTION", "flash")
    with pytest.raises(ValueError, match="ATTENTION='flash'"):
        docmask.training_kernel("cuda", True, torch.bfloat16)
