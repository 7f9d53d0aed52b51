"""`python -m analysis.report ... --status-on-stdin` (make demo): the report starts beside the sweep, waits for the
sweep's exit status on stdin, reports only after a 0 and otherwise ends with that status, writing nothing."""
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analysis import report

FIXTURE = Path(__file__).parent / "fixtures" / "sweep_small"
ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("SCALEMIX_NO_PROGRESS", "1")


@pytest.mark.parametrize("stdin, status", [("3\n", 3), ("", 1), ("Traceback ...\n", 1)])
def test_a_failed_or_missing_status_writes_nothing(tmp_path, monkeypatch, capsys, stdin, status):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    with pytest.raises(SystemExit) as e:
        report.main([str(tmp_path / "never_made"), "--status-on-stdin"])     # the sweep dir is not even looked at
    assert e.value.code == status
    assert f"status {status}: no report" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_status_0_reports(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("0\n"))
    made = []
    monkeypatch.setattr(report, "write_report", lambda sweep_dir, out, **kw: made.append(sweep_dir) or ("a", "b", "c"))
    report.main([str(FIXTURE), "--status-on-stdin"])
    assert made == [str(FIXTURE)] and "wrote a" in capsys.readouterr().out


def test_through_a_shell_pipe_as_make_demo_runs_it(tmp_path):
    """The Makefile's form: the upstream command's output reaches stderr, its failure becomes the pipeline's."""
    cmd = (f"{{ {sys.executable} -c 'print(\"sweep output\"); raise SystemExit(4)' 1>&2; echo $?; }} | "
           f"{sys.executable} -m analysis.report {tmp_path / 'sweep'} --status-on-stdin")
    done = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 4
    assert "sweep output" in done.stderr and "status 4: no report" in done.stderr
    assert done.stdout == "" and not (tmp_path / "sweep").exists()
