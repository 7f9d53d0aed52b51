"""notebooks/fit_laws.ipynb executes headless (nbclient) on the committed fixture sweep."""
import os
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_fit_laws_notebook_runs_on_fixture(monkeypatch):
    monkeypatch.setenv("SCALEMIX_SWEEP", str(ROOT / "tests" / "fixtures" / "sweep_small"))
    monkeypatch.setenv("SCALEMIX_BOOTSTRAP", "100")
    monkeypatch.setenv("SCALEMIX_NO_PROGRESS", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    nb = nbformat.read(ROOT / "notebooks" / "fit_laws.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "35 finished runs" in text
    assert "approach 3: L(N, D)" in text and "held out the largest budget" in text
    images = sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert images == 3
