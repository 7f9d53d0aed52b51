"""bench/moe_bench.py runs end to end on CPU (tiny shapes) and reports every model with its ratio to dense."""
import importlib.util
import json
from pathlib import Path

import pytest


def load_bench():
    path = Path(__file__).resolve().parents[1] / "bench" / "moe_bench.py"
    spec = importlib.util.spec_from_file_location("moe_bench", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_cpu_benchmark_writes_rows_and_profile(tmp_path):
    bench = load_bench()
    out = tmp_path / "moe.json"
    report = bench.main(["--device", "cpu", "--tiny", "--steps", "1", "--impls", "grouped", "padded", "loop",
                         "--out", str(out)])
    rows = {r["model"]: r for r in report["rows"]}
    assert set(rows) == {"dense", "moe-grouped", "moe-padded", "moe-loop"}
    assert rows["dense"]["ratio_vs_dense"] == 1.0
    # the twin has the dense model's active parameters up to the router (d * E per layer)
    d, layers = rows["dense"]["d"], rows["dense"]["layers"]
    assert rows["moe-grouped"]["params_active_nonembedding"] - rows["dense"]["params_active_nonembedding"] == \
        layers * d * 8
    assert rows["moe-grouped"]["profile"]["ms_per_step"]["grouped gemm"] > 0
    assert json.loads(out.read_text())["rows"][1]["model"] == "moe-grouped"


@pytest.mark.parametrize("name,cls", [
    ("void cutlass::device_kernel<cutlass::gemm::kernel::GemmUniversal<cutlass::gemm::GroupProblemShape<>>>",
     "grouped gemm"),
    ("nvjet_hsh_256x128_64x4_2x1_v_bz_coopA_TNT", "gemm"),
    ("triton_poi_fused_index_mul_sum_3", "gather/scatter"),
    ("void at_cuda_detail::cub::DeviceRadixSortOnesweepKernel<>", "sort"),
    ("flash_fwd_kernel", "attention"),
    ("triton_red_fused__to_copy_rms_norm_2", "other"),
])
def test_kernel_names_are_classified(name, cls):
    assert load_bench().classify(name) == cls


def test_real_token_windows_from_a_corpus_and_forced_splits(tmp_path):
    """--data takes a corpus directory (or the .npy --save-data wrote); inputs and targets are shifted windows
    of it; grouped-s2 runs the grouped path with a 2-way split weight gradient."""
    import numpy as np
    import torch

    from harness.data.synthetic import make_synthetic_corpus
    bench = load_bench()
    corpus = make_synthetic_corpus(tmp_path / "corpus", train_tokens=20_000, heldout_tokens=2_000)
    sample = tmp_path / "sample.npy"
    assert bench.main(["--data", str(corpus), "--save-data", str(sample), "--vocab", "256"]) is None
    ids = np.load(sample)
    assert len(ids) == 3 * 20_000 and ids.max() < 256
    dense, _ = bench.twin_specs(2, 256, 64, 8, 2, tiny=True)
    x, y = bench.token_sampler(dense, 4, torch.device("cpu"), torch.from_numpy(ids.astype(np.int64)))()
    assert x.shape == (4, 64) and torch.equal(x[:, 1:], y[:, :-1])
    windows = np.lib.stride_tricks.sliding_window_view(ids, 65)
    for row, target in zip(x.numpy(), y.numpy()):                 # each row is some window of the corpus
        assert (windows == np.append(row, target[-1])).all(axis=1).any()
    report = bench.main(["--device", "cpu", "--tiny", "--steps", "1", "--no-profile", "--data", str(sample),
                         "--impls", "grouped-s2"])
    assert [r["model"] for r in report["rows"]] == ["dense", "moe-grouped-s2"]
    with pytest.raises(SystemExit):
        bench.main(["--device", "cpu", "--tiny", "--impls", "grouped-sx"])
