"""The import graph: each package imports only the ones below it, analysis reads run directories
through one format module (harness.rundir), and no module imports itself back through others.

    model_zoo  <-  harness  <-  sweeps  <-  sweep.py, hydra_plugins
    analysis   reads runs/ through harness.rundir only (never training, launch or torch code)
"""
import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("model_zoo", "harness", "sweeps", "analysis", "hydra_plugins")
# what each package may import from the project besides itself
ALLOWED = {
    "model_zoo": set(),
    "harness": {"model_zoo"},
    "sweeps": {"model_zoo", "harness", "analysis.laws"},   # pure law code (the lr law behind grid.lr_from)
    "hydra_plugins": {"model_zoo", "harness", "sweeps"},
    "analysis": {"harness.rundir"},
}


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    out["sweep"] = ROOT / "sweep.py"
    return out


def imports(path: Path, known: set[str]) -> set[str]:
    """Project modules `path` imports, at the top or inside a function (a lazy import is still an arrow; an
    import for annotations only, under `if TYPE_CHECKING:`, is not)."""
    found = set()
    tree = ast.parse(path.read_text())
    type_only = {id(n) for block in ast.walk(tree)      # `if TYPE_CHECKING:` imports never run
                 if isinstance(block, ast.If) and getattr(block.test, "id", None) == "TYPE_CHECKING"
                 for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    g = {}
    for name, path in mods.items():
        deps = imports(path, set(mods))
        # `from pkg import sub` names both pkg and pkg.sub: keep the submodule only
        g[name] = {d for d in deps if d != name and not any(o.startswith(d + ".") for o in deps)}
    return g


def top(name: str) -> str:
    return name.split(".")[0]


def test_each_package_imports_only_what_is_below_it():
    wrong = []
    for mod, deps in graph().items():
        if mod == "sweep":
            continue
        allowed = ALLOWED[top(mod)]
        for d in deps:
            if top(d) != top(mod) and not any(d == a or d.startswith(a + ".") or top(d) == a for a in allowed):
                wrong.append(f"{mod} -> {d}")
    assert not wrong, "imports against the layering (model_zoo <- harness <- sweeps; analysis reads run " \
                      "directories through harness.rundir only):\n" + "\n".join(sorted(wrong))


def test_no_import_cycles():
    g = graph()
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):   # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in g:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_analysis_loads_without_training_launch_or_torch_code():
    """What the import graph cannot see (the format module's own imports, third-party ones): importing
    every analysis module leaves torch, the trainer and the launcher unloaded."""
    names = [m for m in modules() if top(m) == "analysis"]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in names) +
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('sweeps', 'harness.train', "
            "'harness.step', 'harness.data', 'model_zoo.dense', 'model_zoo.moe')))\nprint(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"analysis imports {out.stdout.strip()}"


def test_a_local_launch_plans_and_checks_a_cpu_runtime_without_torch():
    """A launch's own process (sweep.py, the sweeper, sweeps.launch: the plan, the machine check, the GPUs it spreads
    runs over, the status) loads no torch, pandas, matplotlib or scipy: the workers train and import torch, the
    launcher only plans and waits. With a CPU-only build of torch the machine check of the default runtime (device
    auto) needs no torch either, and finds nothing to refuse; a GPU build is asked (it may see a GPU)."""
    code = """if True:
        import json, sys
        from hydra import compose, initialize_config_dir
        import sweep, hydra_plugins.scalemix_sweeper.sweeper
        from harness.device import gpu_build
        from sweeps.launch import machine_errors, visible_gpus
        from sweeps.plan import plan
        from sweeps.status import sweep_status
        with initialize_config_dir(config_dir=sys.argv[1], version_base="1.3"):
            cfg = compose(config_name="config", overrides=["+grid=chinchilla", "sweep.root=" + sys.argv[2]],
                          return_hydra_config=True)
        p = plan(cfg, strict=False)
        sweep_status(p, 2)
        heavy = ["pandas", "matplotlib", "scipy"] + ([] if gpu_build() else ["torch"])
        errors, gpus = (machine_errors(p.runtime), visible_gpus("auto")) if not gpu_build() else ([], 0)
        print(json.dumps({"loaded": sorted(m for m in heavy if m in sys.modules), "errors": errors, "gpus": gpus,
                          "runs": len(p.runs)}))
    """
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "conf"), str(ROOT / "no-such-runs")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["runs"] > 0 and got["loaded"] == [] and got["errors"] == [] and got["gpus"] == 0, got


def test_gpu_build_agrees_with_torch():
    """harness.device.gpu_build, which reads torch/version.py (so that the launcher can skip torch), says what torch
    itself says about its build."""
    import torch

    from harness.device import gpu_build
    assert gpu_build() == bool(torch.version.cuda or torch.version.hip)


def test_the_checker_sees_a_wrong_arrow(tmp_path, monkeypatch):
    """The graph walk finds imports inside functions too (a lazy import is still an arrow)."""
    p = tmp_path / "m.py"
    p.write_text("def f():\n    from harness.train import run\n    import sweeps.plan\n")
    assert imports(p, {"harness", "harness.train", "sweeps", "sweeps.plan"}) >= {"harness.train", "sweeps.plan"}
