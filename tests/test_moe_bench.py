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
