"""notebooks/fit_laws.ipynb executes headless (nbclient) from any working directory: on the committed fixture sweep
(every fit), and on a sweep too small for most fits (each skipped with its reason); no widget warnings."""
import os
import shutil
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "sweep_small"


def execute(monkeypatch, cwd: Path, sweep: str, bootstrap: int):
    monkeypatch.setenv("SCALEMIX_SWEEP", sweep)
    monkeypatch.setenv("SCALEMIX_BOOTSTRAP", str(bootstrap))
    monkeypatch.delenv("SCALEMIX_NO_PROGRESS", raising=False)     # the progress bars run: no widget warning either
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    nb = nbformat.read(ROOT / "notebooks" / "fit_laws.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "\n".join(o.get("text", "") for o in outputs)
    images = sum("image/png" in o.get("data", {}) for o in outputs)
    return text, images


@pytest.mark.slow
def test_fit_laws_notebook_runs_on_fixture_from_another_directory(monkeypatch, tmp_path):
    text, images = execute(monkeypatch, tmp_path, "tests/fixtures/sweep_small", 100)   # relative to the repository
    assert "35 finished runs" in text and f"sweep: {FIXTURE}" in text
    assert "Conventions: N = non-embedding parameters" in text and "no run's grid.json records" in text
    assert "approach 3: L(N, D)" in text and "held out the largest budget" in text and " skipped: " not in text
    assert images == 3
    assert "IProgress" not in text and "TqdmWarning" not in text


@pytest.mark.slow
def test_fit_laws_notebook_skips_what_a_small_sweep_cannot_fit(monkeypatch, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    for d in sorted(p for p in FIXTURE.iterdir() if (p / "result.json").exists())[:5]:
        shutil.copytree(d, small / d.name)
    text, images = execute(monkeypatch, tmp_path, "small", 0)                          # relative to the cwd
    assert "5 finished runs" in text
    assert "approach 2 skipped: approach 2: 5 usable run(s)" in text and "approach 3 skipped" in text
    assert "no recommendations: approach 3 was not fitted" in text and "extrapolation check skipped" in text
    assert "IProgress" not in text and "Traceback" not in text
