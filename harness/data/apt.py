"""Fetch Debian packages without installing them: `apt-get download` then `dpkg -x` into a cache.

Only Debian main is needed; nothing is installed and nothing outside the cache is touched.
The cache (default ~/.cache/scalemix/apt) keeps the unpacked trees, so a rebuild is offline.
A package may be pinned as `name=version` (the version as `apt-cache policy` prints it): the
cached tree is used only when it came from that version, and a mirror that no longer has it is
an error, not a silent upgrade (the corpus would change under the same recipe).
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote


class AptError(RuntimeError):
    pass


def split_pin(package: str) -> tuple[str, str | None]:
    """'name=version' -> (name, version); 'name' -> (name, None)."""
    name, _, version = package.partition("=")
    return name, version or None


def deb_version(deb_name: str) -> str:
    """The version in a .deb file name name_version_arch.deb (apt writes an epoch's ':' as %3a)."""
    return unquote(deb_name.split("_")[1])


def deb_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _cached(root: Path, version: str | None) -> bool:
    done = root / ".done"
    return done.exists() and (version is None or deb_version(done.read_text().strip()) == version)


def fetch_packages(packages: list[str], cache: Path) -> dict[str, Path]:
    """{package name: unpacked root}; downloads only the packages (at their pinned versions) not yet in the cache."""
    cache = Path(cache)
    debs, roots = cache / "debs", cache / "root"
    debs.mkdir(parents=True, exist_ok=True)
    roots.mkdir(parents=True, exist_ok=True)
    out = {}
    missing = [p for p in packages if not _cached(roots / split_pin(p)[0], split_pin(p)[1])
               and not _deb_for(debs, *split_pin(p))]
    if missing:
        if not shutil.which("apt-get") or not shutil.which("dpkg"):
            raise AptError(f"packages {missing} are not in the cache {cache} and this machine has no apt-get/dpkg; "
                           "build this corpus on a Debian/Ubuntu machine (or copy the cache) or use corpus=demo")
        r = subprocess.run(["apt-get", "download", *missing], cwd=debs, capture_output=True, text=True)
        if r.returncode != 0:
            pinned = [p for p in missing if "=" in p]
            hint = ("run `apt-get update` first (as root)" if "Unable to locate" in r.stderr else "")
            if pinned and "not found" in r.stderr:
                # a fresh machine's package lists may predate the pin (a security update): that is the common case
                hint = (f"a pinned version of {pinned} is not in this machine's package lists: run `apt-get update` "
                        "(as root) and try again; if `apt-cache policy NAME` still does not list it, the mirror has "
                        "dropped it: update the pin in the recipe (the corpus will differ) or copy a cache that has it")
            raise AptError(f"apt-get download {' '.join(missing)} failed: {r.stderr.strip()[-800:]}\n{hint}")
    for p in packages:
        name, version = split_pin(p)
        root = roots / name
        if not _cached(root, version):
            deb = _deb_for(debs, name, version)
            if deb is None:
                raise AptError(f"{p}: no .deb in {debs} after apt-get download")
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            r = subprocess.run(["dpkg", "-x", str(deb), str(root)], capture_output=True, text=True)
            if r.returncode != 0:
                raise AptError(f"dpkg -x {deb} failed: {r.stderr.strip()[-400:]}")
            (root / ".done").write_text(deb.name)
        out[name] = root
    return out


def _deb_for(debs: Path, name: str, version: str | None) -> Path | None:
    """The cached .deb of the package (of that version when pinned; else the last by name)."""
    found = sorted(p for p in debs.glob(f"{name}_*.deb") if version is None or deb_version(p.name) == version)
    return found[-1] if found else None
