"""bench/first_run_profile.py's CPU dry run (--smoke, dynamo's eager backend) in a fresh process, as the GPU call
runs it: it marks the imports, the device, each shape's set-up and first-step phases; each shape's first step
compiles through the trainer's regional path (two frames: the block, shared by every block of a width, and the
tail; the second shape is another width, so two more), and nothing recompiles at steps 2-3; --compare merges the
processes' JSONs into one table and says which process is missing."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "first_run_profile.py"


def test_smoke_marks_phases_and_compares(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor"),
           "LAUNCH_T": "0"}
    out = tmp_path / "p.json"
    r = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--backend", "eager", "--label", "cold",
                        "--json", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(out.read_text())
    marks = [m["mark"] for m in d["marks"]]
    for name in ("import torch", "import harness.train", "harness.device.resolve (CUDA: context via set_device)",
                 "first fp32 matmul (cuBLAS handle, TF32)"):
        assert name in marks, (name, marks)
    assert d["env"]["args"]["device"] == "cpu" and d["env"]["args"]["compile"] == "regional"
    first, second = d["phases"]
    assert (first["shape"], second["shape"]) == ("L1-d8", "L2-d16")
    fwd = "step 1 forward (trace + AOT + inductor fwd + run)"
    for row in (first, second):
        # regional: the first call compiles the block's and the tail's frames (a new width: both again), and
        # nothing afterwards (a recompile at step 2 or 3 would be counted there)
        assert row["phases"][fwd]["frames_compiled"] == 2, row["phases"][fwd]
        assert row["phases"][fwd]["counters"]["stats.unique_graphs"] == 2
        for later in ("step 2 (whole)", "step 3 (whole)"):
            assert row["phases"][later]["frames_compiled"] == 0
        assert row["eval"] == {"compiled_eval": False, "regional_eval": False, "call_size": row["eval"]["call_size"]}
    assert d["total_since_top_s"] > 0 and d["compile_times"]
    merged = tmp_path / "all.json"
    c = subprocess.run([sys.executable, str(SCRIPT), "--compare", str(merged), str(out), str(tmp_path / "none.json")],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert c.returncode == 0, c.stderr[-2000:]
    assert "seconds per mark" in c.stdout and "(no " in c.stdout
    assert list(json.loads(merged.read_text())) == ["cold"]
