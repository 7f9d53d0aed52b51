"""A pytest plugin: each test's wall and CPU seconds (this process plus the children it waited for, so a test's
subprocesses and forked runs count), for timing the suite on a shared machine, where wall times follow the load.

    PYTHONPATH=$PWD:$PWD/bench nice -n 10 python -m pytest -q -p pytest_cpu tests/test_sweep.py
    PYTEST_CPU_OUT=/tmp/cpu.json ...          # where the rows go (default pytest_cpu.json in the working directory)

A module- or session-scoped fixture's cost lands on the first test that uses it. The last line printed is the
total; the rows (test, wall, cpu, the 1-minute load when it ended) are JSON.
"""
import json
import os
import resource
import time

import pytest

_rows = []


def _cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    t0, c0 = time.time(), _cpu()
    yield
    _rows.append({"test": item.nodeid, "wall": time.time() - t0, "cpu": _cpu() - c0, "load": os.getloadavg()[0]})


def pytest_sessionfinish(session, exitstatus):
    out = os.environ.get("PYTEST_CPU_OUT", "pytest_cpu.json")
    with open(out, "w") as f:
        json.dump(_rows, f, indent=0)
    print(f"\npytest_cpu: {len(_rows)} tests, wall {sum(r['wall'] for r in _rows):.1f} s, "
          f"cpu {sum(r['cpu'] for r in _rows):.1f} s -> {out}")
