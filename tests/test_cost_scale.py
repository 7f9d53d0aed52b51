"""The plan's scale lines (sweeps/cost.py): the device's peak and measured MFU, the final run at
sweep.target_flops, and the published runs beside the grid."""
import json

import pytest

from sweeps.cost import Throughput, chinchilla_run, known_runs, scale_lines


@pytest.fixture
def table(tmp_path):
    rows = [{"d": d, "flops_per_token": fpt, "tokens_per_s": tps, "mfu": fpt * tps / 989e12, "device": "NVIDIA H100",
             "date": "2026-11-30"} for d, fpt, tps in ((128, 1.1e7, 1.3e7), (768, 6.0e8, 6.0e5))]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return Throughput.load(str(path), "H100")


def test_peak_and_mfu_come_from_the_measured_rows(table):
    assert table.peak == pytest.approx(989e12)
    assert table.mfu_largest == pytest.approx(6.0e8 * 6.0e5 / 989e12) and table.largest.startswith("d 768")
    assert table.large_run_hours(1e22) == pytest.approx(1e22 / (6.0e8 * 6.0e5) / 3600)


def test_final_run_and_known_runs(table):
    n, d = chinchilla_run(5.76e23)   # Chinchilla's own budget gives about its own shape (70B, 1.4T)
    assert 6 * n * d == pytest.approx(5.76e23) and d == pytest.approx(20 * n) and 6.5e10 < n < 7.5e10
    runs = {r["name"]: r for r in known_runs()}
    assert runs["MPT-7B"]["gpu_hours"] == 440 * 9.5 * 24 and runs["MPT-7B"]["cost_kind"] == "published"
    assert runs["Llama 2 7B"]["cost_usd"] == 184320 * 2.0 and runs["Llama 2 7B"]["cost_kind"] == "estimate"
    assert runs["Chinchilla 70B"]["flops"] == 5.76e23 and all(r["source"] for r in runs.values())
    text = "\n".join(scale_lines(table, 2.5, 1e22, 7.2e17))
    hours = 1e22 / (6.0e8 * 6.0e5) / 3600
    assert "H100 bf16 peak 989 TFLOP/s" in text and f"{hours:,.0f} GPU-h" in text and f"${hours * 2.5:,.0f}" in text
    assert "Chinchilla 70B" in text and "$200,000" in text and "arXiv:2203.15556" in text


def test_unmeasured_device_says_so(tmp_path):
    text = "\n".join(scale_lines(Throughput("B200"), 3.0, 1e22, 1e18))
    assert "no measured MFU for device kind 'B200'" in text and "GPU-hours unmeasured" in text
    assert scale_lines(Throughput("cpu"), 0.0, None, 1e12) == []
