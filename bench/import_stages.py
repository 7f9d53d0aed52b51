"""Seconds per import stage of a sweep worker's start, in THIS fresh process (issue 12 item 1).

    python bench/import_stages.py [--json out.json]

The stages are the worker's (sweeps.worker.WARM_IMPORTS, then what the first compile imports: torch._inductor's
compile_fx and Triton's driver) plus the sweep's machine check (harness.device.compile_problem: has_triton) and
CUDA's start, each timed on its own so that a slow one is named. Also: where Python found each heavy package's
bytecode (a __pycache__ beside the sources, or none: then every process compiles it again).
"""
import time

T0 = time.perf_counter()
import importlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def stages():
    yield "import torch", lambda: importlib.import_module("torch")
    yield "import torch._dynamo", lambda: importlib.import_module("torch._dynamo")
    yield "import triton", lambda: importlib.import_module("triton")
    yield "has_triton() (machine check)", lambda: __import__("torch.utils._triton", fromlist=["x"]).has_triton()
    yield "triton driver.active", lambda: importlib.import_module("triton.runtime.driver").driver.active.get_current_device()
    yield "import harness.train", lambda: importlib.import_module("harness.train")
    yield "import harness.__main__, harness.branches", lambda: [importlib.import_module(m) for m in
                                                                ("harness.__main__", "harness.branches")]
    yield "import torch._inductor.compile_fx", lambda: importlib.import_module("torch._inductor.compile_fx")
    yield "import torch._inductor.codecache, async_compile", lambda: [importlib.import_module(m) for m in
        ("torch._inductor.codecache", "torch._inductor.async_compile", "torch._inductor.runtime.triton_heuristics")]
    yield "torch.cuda.init + first tensor", lambda: __import__("torch").ones(1, device="cuda").sum().item()
    yield "first bf16 matmul", lambda: (lambda t: (t.ones(256, 256, device="cuda", dtype=t.bfloat16) @
                                                   t.ones(256, 256, device="cuda", dtype=t.bfloat16)).sum().item())(
        __import__("torch"))


def main():
    out = {"top": round(T0, 3), "stages": []}
    t = time.perf_counter()
    for name, f in stages():
        try:
            f()
            err = None
        except Exception as e:
            err = f"{type(e).__name__}: {e}"[:200]
        now = time.perf_counter()
        out["stages"].append({"stage": name, "s": round(now - t, 3), "error": err})
        print(f"{now - t:7.3f} s  {name}" + (f"  ERROR {err}" if err else ""), flush=True)
        t = now
    out["total_s"] = round(time.perf_counter() - T0, 3)
    print(f"{out['total_s']:7.3f} s  total (this file's first line to here)")
    for pkg in ("torch", "triton", "sympy"):
        m = sys.modules.get(pkg)
        if m is None:
            continue
        root = Path(m.__file__).parent
        py = sum(1 for _ in root.rglob("*.py"))
        pyc = sum(1 for _ in root.rglob("__pycache__/*.pyc"))
        ok = all(Path(x.__cached__).exists() for x in list(sys.modules.values())
                 if getattr(x, "__file__", "") and str(x.__file__).startswith(str(root)) and getattr(x, "__cached__", None))
        out[pkg] = {"py": py, "pyc": pyc, "loaded_modules_have_pyc": ok, "root": str(root)}
        print(f"{pkg}: {py} .py, {pyc} .pyc under {root}; every loaded module's .pyc present: {ok}")
    print("sys.flags.dont_write_bytecode", sys.flags.dont_write_bytecode, "pycache_prefix", sys.pycache_prefix)
    if len(sys.argv) > 2 and sys.argv[1] == "--json":
        Path(sys.argv[2]).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
