"""A clone of this repository is all it needs: no file points outside it (at the sibling notes folder the developers
read, say), and what CI, the benchmarks and the docs name is in the tree."""
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTES = "shared"    # the sibling notes folder's name: a path up into it, or its environment variable, is refused


def tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    if out.returncode == 0 and out.stdout.strip():
        return [ROOT / f for f in out.stdout.splitlines()]
    return [p for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts]   # an export without .git


def text(p: Path) -> str:
    try:
        return p.read_text()
    except (UnicodeDecodeError, OSError):
        return ""


def test_no_file_points_outside_the_repository():
    outside = re.compile(r"\.\./" + NOTES + "|SCALEMIX_" + NOTES.upper())
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in tracked() if p.exists() and p != Path(__file__)
            for i, line in enumerate(text(p).splitlines(), 1) if outside.search(line)]
    assert not hits, "files that need something outside the clone: " + ", ".join(hits)


def test_what_ci_benchmarks_and_docs_name_is_in_the_tree():
    for path in (".ci/run", ".ci/slurm.sh", ".ci/slurm/start.sh", ".ci/slurm/stop.sh", "bench/ref_throughput.py",
                 "DESIGN.md"):
        assert (ROOT / path).is_file(), path
    assert "slurm/start.sh" in (ROOT / ".ci/slurm.sh").read_text()
    assert "bench/ref_throughput.py" in (ROOT / "bench/gpu_throughput.sh").read_text()
    # every repository path DESIGN.md and README.md name in backquotes exists
    for doc in ("DESIGN.md", "README.md"):
        for name in re.findall(r"`([\w./-]+\.(?:py|yaml|sh|md|ipynb))`", (ROOT / doc).read_text()):
            assert (ROOT / name).exists() or not (ROOT / name.split("/")[0]).exists(), f"{doc} names {name}"
