"""WSD cooldown branches: a branch forked from a constant-lr trunk computes exactly the independent WSD
run of its length (the same lr at every step; on CPU the same weights, optimizer state and losses,
torch.equal / float ==), its FLOPs add up, and killing the trunk or the branch mid-way resumes exactly."""
import dataclasses
import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from harness_util import REPO, Forked, make_corpus, metrics, runtime, tiny_spec
from test_resume import wait_for

from harness.branches import branch_errors, membership_errors, run_branch, start_step, trunk_of
from harness.rundir import RunDir
from harness.schedule import lr_at
from harness.spec import OptimSpec, RunSpec, SpecError
from harness.train import run

LENGTHS = (10, 16)    # steps of the two branches; cooldown_frac 0.25 puts their forks at steps 8 and 12


def wsd(corpus, steps: int) -> RunSpec:
    return tiny_spec(corpus, steps=steps, optim={"schedule": "wsd", "cooldown_frac": 0.25, "cooldown_shape": "1-sqrt",
                                                 "warmup_frac": 0.0, "warmup_steps": 2},
                     eval={"heldout_tokens": 1024, "every_steps": 3})


def rt(**kw):
    return runtime(checkpoint_every=3, **kw)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Both branches forked from one trunk, and the independent run of each length (all in this process)."""
    root = tmp_path_factory.mktemp("branches")
    corpus = make_corpus(root / "syn")
    specs = [wsd(corpus, n) for n in LENGTHS]
    trunk = trunk_of(specs[-1], specs[-1].tokens)
    for s in specs:
        run_branch(trunk, root / "trunk", s, root / f"branch{s.steps}", rt())
        run(s, rt(), root / f"independent{s.steps}")
    return root, specs, trunk


def final_state(run_dir, steps):
    return torch.load(run_dir / "ckpt" / f"step_{steps:08d}.pt", weights_only=True)


def assert_same_run(a_dir, b_dir, spec):
    """Weights, optimizer state, every training line and the evals of the cooldown are identical."""
    a, b = final_state(a_dir, spec.steps), final_state(b_dir, spec.steps)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(pa[k], pb[k]) for k in pa)
    ta, tb = metrics(a_dir), metrics(b_dir)
    assert [r["step"] for r in ta] == [r["step"] for r in tb] == list(range(1, spec.steps + 1))
    for ra, rb in zip(ta, tb):
        for key in ("lr", "loss", "z_loss", "grad_norm", "train_loss_alpha", "train_loss_beta", "train_loss_gamma"):
            assert ra[key] == rb[key], (ra["step"], key)
    start = start_step(spec)
    ea, eb = ([r for r in metrics(d, "eval") if r["step"] > start] for d in (a_dir, b_dir))
    assert ea == eb and ea[-1]["step"] == spec.steps
    ra, rb = (json.loads((d / "result.json").read_text()) for d in (a_dir, b_dir))
    assert ra["loss"] == rb["loss"] and ra["train_loss"] == rb["train_loss"]


@pytest.mark.parametrize("shape", ["linear", "1-sqrt"])
def test_a_branch_has_the_independent_runs_lr_at_every_step(shape):
    """Trunk up to the fork, the branch's own schedule after it: the independent run's lr, for every length."""
    longest = 400
    for steps in (37, 100, 250, longest):
        spec = RunSpec(model=tiny_spec("x").model, tokens=steps * 256, batch_tokens=256,
                       optim=OptimSpec(lr=1.0, schedule="wsd", warmup_frac=0.0, warmup_steps=20, cooldown_frac=0.2,
                                       cooldown_shape=shape))
        trunk = trunk_of(spec, longest * 256)
        start = start_step(spec)
        assert not branch_errors(spec) and not membership_errors(trunk, spec) and start == steps - round(0.2 * steps)
        path = [lr_at(trunk.optim, s, trunk.steps) for s in range(start)] + \
               [lr_at(spec.optim, s, spec.steps) for s in range(start, steps)]
        assert path == [lr_at(spec.optim, s, steps) for s in range(steps)]
        assert path[start - 1] == 1.0 and path[start] < 1.0 and path[19] == 1.0 > path[18]
    # a warmup that is a fraction of the run would differ between lengths: refused, naming the key
    frac = dataclasses.replace(spec, optim=dataclasses.replace(spec.optim, warmup_steps=0, warmup_frac=0.02))
    assert any("optim.warmup_frac" in e and "optim.warmup_steps" in e for e in branch_errors(frac))
    assert lr_at(frac.optim, 2, 100) != lr_at(frac.optim, 2, 400)


def test_branch_equals_the_independent_run_bit_for_bit(setup):
    root, specs, _ = setup
    for s in specs:
        assert_same_run(root / f"branch{s.steps}", root / f"independent{s.steps}", s)


def test_branch_rows_flops_add_up_and_the_trunk_is_shared(setup):
    root, specs, trunk = setup
    rows = {s.steps: json.loads((root / f"branch{s.steps}" / "result.json").read_text()) for s in specs}
    alone = {s.steps: json.loads((root / f"independent{s.steps}" / "result.json").read_text()) for s in specs}
    for s in specs:
        b, ind = rows[s.steps], alone[s.steps]
        assert b["run_id"] == ind["run_id"] == s.run_id          # a branch is the same run, computed another way
        assert b["tokens"] == ind["tokens"] and b["flops"] == ind["flops"]
        assert b["trunk_run_id"] == trunk.run_id and b["branch_start_step"] == start_step(s)
        assert b["branch_start_tokens"] == start_step(s) * s.batch_tokens
        assert b["flops_trunk_share"] + b["flops_spent"] == ind["flops"]
        assert b["flops_spent"] == (s.steps - start_step(s)) * s.batch_tokens * b["flops"] // b["tokens"]
        assert "trunk_run_id" not in ind and "flops_spent" not in ind
    # what was trained: the trunk once, to the last fork, plus each cooldown
    spent = max(r["flops_trunk_share"] for r in rows.values()) + sum(r["flops_spent"] for r in rows.values())
    assert spent < sum(r["flops"] for r in alone.values())
    assert metrics(root / "trunk")[-1]["step"] == max(start_step(s) for s in specs)
    assert not (root / "trunk" / "result.json").exists()   # the trunk is not a result row


def test_branch_refuses_a_cosine_run_and_a_foreign_trunk(setup, tmp_path):
    root, specs, trunk = setup
    cosine = dataclasses.replace(specs[0], optim=dataclasses.replace(specs[0].optim, schedule="cosine"))
    with pytest.raises(SpecError, match="optim.schedule='cosine': cooldown branches need schedule=wsd"):
        run_branch(trunk, root / "trunk", cosine, tmp_path / "b", rt())
    other = dataclasses.replace(specs[0], seed=1)
    with pytest.raises(SpecError, match="is not a branch of trunk"):
        run_branch(trunk, root / "trunk", other, tmp_path / "b", rt())
    assert not (tmp_path / "b").exists()


def _branches_main(*argv: str) -> None:
    from harness.branches import main
    sys.exit(main(list(argv)))


def branch_cli(trunk, spec, trunk_dir, branch_dir, fork: bool = False) -> subprocess.Popen | Forked:
    """`python -m harness.branches trunk_dir branch_dir` in a fresh process (the job wrapper's command); fork:
    its main() in a child forked from this process (a run killed on purpose: no interpreter start to pay)."""
    RunDir(trunk_dir).prepare(trunk, rt())
    RunDir(branch_dir).prepare(spec, rt())
    if fork:
        return Forked(_branches_main, str(trunk_dir), str(branch_dir))
    env = dict(os.environ, WANDB_MODE="disabled", PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "harness.branches", str(trunk_dir), str(branch_dir)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def logged_step(run_dir) -> int:
    try:
        return max((r["step"] for r in metrics(run_dir)), default=0)
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def test_sigkill_in_the_trunk_then_in_the_branch_relaunches_bit_exact(setup):
    root, specs, trunk = setup
    spec = specs[-1]                  # forks at step 12
    t, b = root / "trunk_killed", root / "branch_killed"
    p = branch_cli(trunk, spec, t, b, fork=True)
    # in the trunk: past its checkpoint at step 3, before the fork
    wait_for(lambda: (t / "ckpt" / "step_00000003.sha256").exists() and logged_step(t) >= 5, p)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not list((b / "ckpt").glob("step_*")) and not (b / "metrics.jsonl").exists()   # not forked yet
    p = branch_cli(trunk, spec, t, b, fork=True)
    # in the cooldown: past the fork's checkpoint (the branch's metrics start with the trunk's 12 lines)
    wait_for(lambda: (b / "ckpt" / "step_00000012.sha256").exists() and logged_step(b) >= 14, p)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (b / "result.json").exists()
    q = branch_cli(trunk, spec, t, b)
    out, err = q.communicate(timeout=300)
    assert q.returncode == 0, err
    assert json.loads(out.splitlines()[-1])["trunk_run_id"] == trunk.run_id
    assert_same_run(b, root / f"independent{spec.steps}", spec)


def test_a_branch_whose_trunk_has_passed_its_fork_trains_from_step_0(setup):
    """The trunk is at step 12 after both forks; a lost branch (forking at 8) is the same run trained in full."""
    root, specs, trunk = setup
    spec, b = specs[0], root / "branch_lost"
    with pytest.warns(UserWarning, match="past run .* branch point 8: training it from step 0"):
        row = run_branch(trunk, root / "trunk", spec, b, rt())
    assert "trunk_run_id" not in row and "flops_spent" not in row
    assert_same_run(b, root / f"independent{spec.steps}", spec)
