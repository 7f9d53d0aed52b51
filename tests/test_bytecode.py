"""sweep.bytecode_cache (sweeps.bytecode): where the installed packages ship no bytecode and Python may not write it,
a local sweep's processes share a cache folder of it, so that the second process reads what the first compiled; where
the packages have theirs, nothing changes. Checked with real child processes on a package made for the test."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sweeps import bytecode


@pytest.fixture
def pristine(monkeypatch):
    """This process' bytecode settings and environment, put back after the test whatever keep() changed."""
    monkeypatch.setattr(sys, "pycache_prefix", None)
    monkeypatch.setattr(sys, "dont_write_bytecode", sys.dont_write_bytecode)
    for name in ("PYTHONPYCACHEPREFIX", "PYTHONDONTWRITEBYTECODE"):
        monkeypatch.setenv(name, "x")   # recorded as absent-or-its-value, then removed: undone in reverse
        monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def package(tmp_path, pristine):
    """A package with sources only (no __pycache__), importable by this process and its children."""
    root = tmp_path / "site"
    (root / "srconly").mkdir(parents=True)
    (root / "srconly" / "__init__.py").write_text("from srconly.part import VALUE\n")
    (root / "srconly" / "part.py").write_text("VALUE = 42\n")
    pristine.syspath_prepend(str(root))
    pristine.setenv("PYTHONPATH", os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return root / "srconly"


def child(code: str, *flags: str) -> subprocess.CompletedProcess:
    """A fresh interpreter with this process' environment (as the sweep's workers get it)."""
    return subprocess.run([sys.executable, *flags, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ))


def test_needed_only_where_the_bytecode_is_missing_and_may_not_be_written(package, pristine):
    pristine.setattr(sys, "dont_write_bytecode", True)
    assert bytecode.needed("srconly")
    pristine.setattr(sys, "dont_write_bytecode", False)
    assert not bytecode.needed("srconly")                 # the first import writes it beside the sources
    pristine.setattr(bytecode.os, "access", lambda path, mode: False)
    assert bytecode.needed("srconly")                     # ... unless their folder is read-only
    pristine.setattr(bytecode.os, "access", os.access)
    pristine.setattr(sys, "dont_write_bytecode", True)
    pyc = bytecode.beside_source(str(package / "__init__.py"))
    pyc.parent.mkdir()
    pyc.write_bytes(b"")
    assert not bytecode.needed("srconly")                 # shipped with its bytecode
    pyc.unlink()
    pristine.setattr(sys, "pycache_prefix", "/somewhere/the/user/chose")
    assert not bytecode.needed("srconly")                 # a prefix of the user's own
    pristine.setattr(sys, "pycache_prefix", None)
    assert not bytecode.needed("no_such_package_here")
    assert bytecode.needed("srconly")


def test_processes_started_after_keep_share_the_cache(package, tmp_path, pristine):
    pristine.setattr(sys, "dont_write_bytecode", True)
    pristine.setenv("PYTHONDONTWRITEBYTECODE", "1")
    cache_dir = tmp_path / "runs" / ".pycache"
    assert child("import srconly").returncode == 0        # before: compiled from source, written nowhere
    assert not list(tmp_path.rglob("*.pyc"))

    cache = bytecode.keep(str(cache_dir), probe="srconly")
    assert cache is not None and cache.path == cache_dir and cache.fresh
    assert os.environ["PYTHONPYCACHEPREFIX"] == str(cache_dir) and "PYTHONDONTWRITEBYTECODE" not in os.environ
    first = child("import srconly; print(srconly.VALUE)")
    assert first.returncode == 0 and first.stdout.strip() == "42"
    mirrored = cache_dir / str(package).lstrip(os.sep)   # the prefix mirrors each source folder's absolute path
    tag = sys.implementation.cache_tag
    assert {p.name for p in mirrored.glob("*.pyc")} == {f"__init__.{tag}.pyc", f"part.{tag}.pyc"}
    assert not (package / "__pycache__").exists()        # nothing beside the sources
    second = child("import srconly", "-v")                # a later process loads the first one's bytecode
    assert f"code object from '{mirrored / f'part.{tag}.pyc'}'" in second.stderr, second.stderr[-3000:]

    cache.discard()                                       # a refused launch: the folders it made go
    assert not (tmp_path / "runs").exists()


def test_nothing_changes_where_the_package_has_its_bytecode(package, tmp_path, pristine):
    pristine.setattr(sys, "dont_write_bytecode", False)
    assert bytecode.keep(str(tmp_path / "cache"), probe="srconly") is None
    assert bytecode.keep(None, probe="srconly") is None   # sweep.bytecode_cache=null
    pristine.setattr(sys, "dont_write_bytecode", True)
    assert bytecode.keep(None, probe="srconly") is None
    assert "PYTHONPYCACHEPREFIX" not in os.environ and sys.pycache_prefix is None
    assert not (tmp_path / "cache").exists()


def test_an_existing_cache_stays_when_a_launch_is_refused(package, tmp_path, pristine):
    pristine.setattr(sys, "dont_write_bytecode", True)
    (tmp_path / "cache" / "kept").mkdir(parents=True)     # a study's earlier sweeps filled it
    cache = bytecode.keep(str(tmp_path / "cache"), probe="srconly")
    assert cache is not None and not cache.fresh
    cache.discard()
    assert (tmp_path / "cache" / "kept").is_dir()


def test_the_sweeps_config_names_it():
    conf = (Path(bytecode.__file__).resolve().parents[1] / "conf" / "config.yaml").read_text()
    assert "bytecode_cache: ${sweep.root}/.pycache" in conf
