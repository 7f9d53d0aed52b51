"""A sweep's run directories (spec.yaml, runtime.yaml) written as `python sweep.py` would write them, launching nothing.

    python bench/prepare_runs.py +grid=chinchilla scale=gpu ... sweep.root=/tmp/scratch    # prints the sweep dir last

The overrides are sweep.py's: the config is composed from conf/ as Hydra composes it for sweep.py, planned by
sweeps.plan.plan and each run's directory prepared as sweeps.launch.launch_planned does before its launch
(RunDir.prepare(spec, runtime), a cooldown trunk's own directory too). No grid.json, no launch folder, no job: the
directories exist so that bench/solo_rates.py can train each of the grid's shapes alone, e.g. to fill an Inductor
cache with exactly the grid's shapes ahead of a timed sweep (bench/gpu_sweep_efficiency.sh WARM_CACHE=1).
Exit 0 with one line per run (id and label) and the sweep dir last; 2 where sweep.py would refuse the config.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from harness.branches import trunk_dir, write_group  # noqa: E402
from harness.rundir import RunDir  # noqa: E402
from harness.spec import SpecError  # noqa: E402
from sweeps.branching import trunks  # noqa: E402
from sweeps.plan import Plan, plan  # noqa: E402


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))


def prepare(overrides: list[str]) -> Plan:
    """Plan the sweep the overrides describe and write its run directories; SpecError where sweep.py would refuse
    it (its errors, or a blocker such as a corpus that is not built)."""
    p = plan(compose(overrides))
    if p.blockers:
        raise SpecError(p.blockers)
    for r in p.runs:
        RunDir(p.run_dir(r)).prepare(r.spec, p.runtime)
    for trunk, branches in trunks(p.runs).values():   # a trunk's job trains from its own directory (sweeps.job)
        RunDir(trunk_dir(p.sweep_dir, trunk.run_id)).prepare(trunk, p.runtime)
        write_group(trunk_dir(p.sweep_dir, trunk.run_id), trunk, [(r.run_id, r.branch.start_step) for r in branches])
    return p


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    try:
        p = prepare(args)
    except SpecError as e:
        print(f"prepare_runs: nothing written: {e}", file=sys.stderr)
        return 2
    for r in p.runs:
        print(f"{r.run_id} {r.label}")
    print(p.sweep_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
