"""Fetch Debian packages without installing them: `apt-get download` then `dpkg -x` into a cache.

Only Debian main is needed; nothing is installed and nothing outside the cache is touched.
The cache (default ~/.cache/scalemix/apt) keeps the unpacked trees, so a rebuild is offline.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


class AptError(RuntimeError):
    pass


def fetch_packages(packages: list[str], cache: Path) -> dict[str, Path]:
    """{package: unpacked root}; downloads only the packages not yet in the cache."""
    cache = Path(cache)
    debs, roots = cache / "debs", cache / "root"
    debs.mkdir(parents=True, exist_ok=True)
    roots.mkdir(parents=True, exist_ok=True)
    out = {}
    missing = [p for p in packages if not (roots / p / ".done").exists()]
    if missing:
        if not shutil.which("apt-get") or not shutil.which("dpkg"):
            raise AptError(f"packages {missing} are not in the cache {cache} and this machine has no apt-get/dpkg; "
                           "build this corpus on a Debian/Ubuntu machine (or copy the cache) or use corpus=demo")
        r = subprocess.run(["apt-get", "download", *missing], cwd=debs, capture_output=True, text=True)
        if r.returncode != 0:
            hint = "run `apt-get update` first (as root)" if "Unable to locate" in r.stderr or "E:" in r.stderr else ""
            raise AptError(f"apt-get download {' '.join(missing)} failed: {r.stderr.strip()[-800:]}\n{hint}")
    for p in packages:
        root = roots / p
        if not (root / ".done").exists():
            deb = sorted(debs.glob(f"{p}_*.deb"))
            if not deb:
                raise AptError(f"{p}: no .deb in {debs} after apt-get download")
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            r = subprocess.run(["dpkg", "-x", str(deb[-1]), str(root)], capture_output=True, text=True)
            if r.returncode != 0:
                raise AptError(f"dpkg -x {deb[-1]} failed: {r.stderr.strip()[-400:]}")
            (root / ".done").write_text(deb[-1].name)
        out[p] = root
    return out
