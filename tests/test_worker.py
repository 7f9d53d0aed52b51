"""sweep.worker: runs trained back to back in one process equal the same runs trained alone, bit for bit;
an exception fails its run only (the rest of the queue goes to a fresh worker); a worker killed mid-run has
that run recorded as failed, the rest of the queue trained by a fresh worker, and the killed run resumes
bit-exact."""
import json
import os
import signal
import threading
import time

import pytest
import torch
from harness_util import Forked, forked, locked_pid, make_corpus, metrics, runtime, tiny_spec

from harness.rundir import RunDir
from model_zoo.spec import CPU_RULE
from sweeps.jobqueue import JobQueue
from sweeps.pool import run_pool
from sweeps.status import failure, run_status
from sweeps.worker import RESTART_EXIT_CODE, serve

STEPS = 16
RT = runtime(checkpoint_every=4)


@pytest.fixture(autouse=True)
def keep_dynamo_config(monkeypatch):
    """serve() in this process would change dynamo's process-wide settings for the tests after these (the pool's
    worker processes, which set them for real, are separate processes)."""
    import sweeps.worker
    monkeypatch.setattr(sweeps.worker, "configure_compiler", lambda: None)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Three runs (two of one shape, one of another) and each trained alone, in its own (forked) process."""
    root = tmp_path_factory.mktemp("worker")
    corpus = make_corpus(root / "syn")
    other_shape = {"model": CPU_RULE.shape(3, vocab_size=256, seq_len=32).to_dict()}
    specs = [tiny_spec(corpus, steps=STEPS), tiny_spec(corpus, steps=STEPS, **other_shape),
             tiny_spec(corpus, steps=STEPS, seed=1, optim={"lr": 1e-3})]
    procs = [forked(s, RT, root / "alone" / s.run_id) for s in specs]
    for p in procs:
        p.join(timeout=600)
    assert [p.exitcode for p in procs] == [0] * len(specs)
    return root, specs


def queue_of(root, specs, name: str, slots: int = 1) -> JobQueue:
    sweep_dir = root / name
    for s in specs:
        RunDir(sweep_dir / s.run_id).prepare(s, RT)
    return JobQueue.write(sweep_dir / ".hydra" / "launch" / "queue.json", [s.run_id for s in specs],
                          sweep_dir=str(sweep_dir), sweep=name, retries=0, slots=slots, slot_gpus=None)


def assert_same_as_alone(root, run_dir):
    alone = root / "alone" / run_dir.name
    a, b = (torch.load(d / "ckpt" / f"step_{STEPS:08d}.pt", weights_only=True) for d in (alone, run_dir))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    keys = ("step", "loss", "z_loss", "grad_norm", "lr", "train_loss_alpha", "train_loss_beta", "train_loss_gamma")
    assert [[r[k] for k in keys] for r in metrics(alone)] == [[r[k] for k in keys] for r in metrics(run_dir)]
    assert metrics(alone, "eval") == metrics(run_dir, "eval")
    ra, rb = (json.loads((d / "result.json").read_text()) for d in (alone, run_dir))
    assert {k: v for k, v in ra.items() if k.startswith("loss")} == {k: v for k, v in rb.items() if k.startswith("loss")}
    assert ra["train_loss"] == rb["train_loss"] and rb["sweep"] == run_dir.parent.name


def test_runs_back_to_back_in_one_process_equal_runs_alone(setup, monkeypatch):
    root, specs = setup
    q = queue_of(root, specs, "together")
    assert serve(q.path, 0) == 0 and q.take() is None
    for s in specs:
        assert_same_as_alone(root, root / "together" / s.run_id)
    ran = [json.loads(x) for x in (q.path.parent / f"{specs[0].run_id}.log").read_text().splitlines()[-1:]]
    assert ran[0]["run_id"] == specs[0].run_id            # each run's own log ends with its summary line
    assert serve(q.path, 0) == 0                          # an empty queue: nothing to do


def test_an_exception_fails_its_run_and_the_queue_goes_on(setup, monkeypatch):
    root, specs = setup
    from harness.train import Trainer
    bad = specs[1].run_id
    step = Trainer.train_step

    def boom(self, batch):
        if self.spec.run_id == bad and self.step == 5:
            raise RuntimeError("boom at step 5")
        return step(self, batch)
    monkeypatch.setattr(Trainer, "train_step", boom)
    q = queue_of(root, specs, "crash")
    assert serve(q.path, 0) == RESTART_EXIT_CODE      # the pool starts a fresh worker for the rest of the queue
    assert serve(q.path, 0) == 0
    sweep_dir = root / "crash"
    rec = failure(sweep_dir / bad)       # recorded as the child process' exit would be: exit 1, the exception line
    assert rec["rc"] == 1 and rec["reason"] == "RuntimeError: boom at step 5 [exit 1]" and rec["attempts"] == 1
    assert run_status(sweep_dir / bad, bad, retries=0).state == "failed"
    for s in (specs[0], specs[2]):       # before and after it: done, and still equal to the runs alone
        assert_same_as_alone(root, sweep_dir / s.run_id)




def slow_final_write(monkeypatch, run_id: str, then=None, error: Exception | None = None):
    """The final checkpoint write of run `run_id` waits until the next run has started training (or 60 s), records
    what it sees then (`then(seen)`), and raises `error` if given; every other write as usual."""
    from harness.checkpoint import Checkpoints
    from harness.train import Trainer
    write, started, seen = Checkpoints._write, threading.Event(), {}
    init = Trainer.__init__

    def tracking_init(self, spec, *a, **kw):
        init(self, spec, *a, **kw)
        if spec.run_id != run_id:
            started.set()
    monkeypatch.setattr(Trainer, "__init__", tracking_init)

    def slow(self, step, state):
        if self.dir.parent.name == run_id and step == STEPS:
            seen["next_started"] = started.wait(60)
            if then is not None:
                then(seen)
            if error is not None:
                raise error
        return write(self, step, state)
    monkeypatch.setattr(Checkpoints, "_write", slow)
    return seen


def test_a_run_returns_before_its_final_write_and_the_next_trains_beside_it(setup, monkeypatch, capsys):
    """In a worker, a run's final checkpoint and result.json are written while the next run starts; the run's locks
    are held until then, its result.json comes after the checkpoint, and both runs equal the runs alone."""
    from harness.rundir import RunDirBusy
    from sweeps.lock import RunLock
    root, specs = setup
    first = root / "beside" / specs[0].run_id

    def look(seen):
        seen["result_before_checkpoint"] = (first / "result.json").exists()
        seen["sweep_lock_free"] = RunLock(first).acquire()
        try:
            with RunDir(first).exclusive():
                seen["train_lock_free"] = True
        except RunDirBusy:
            seen["train_lock_free"] = False
    seen = slow_final_write(monkeypatch, specs[0].run_id, then=look)
    q = queue_of(root, specs[:2], "beside")
    assert serve(q.path, 0) == 0
    assert seen == {"next_started": True, "result_before_checkpoint": False, "sweep_lock_free": False,
                    "train_lock_free": False}
    for s in specs[:2]:
        assert_same_as_alone(root, root / "beside" / s.run_id)
        assert run_status(root / "beside" / s.run_id, s.run_id, retries=0).state == "done"
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"status"' in x]
    assert [(x["run_id"], x["status"]) for x in lines] == [(s.run_id, "done") for s in specs[:2]]
    events = [json.loads(x) for x in (q.path.parent / "timeline.jsonl").read_text().splitlines()]
    order = [(e["event"], e.get("job")) for e in events if e["event"] in ("job_start", "job_trained", "job_end")]
    a, b = specs[0].run_id, specs[1].run_id
    assert order == [("job_start", a), ("job_trained", a), ("job_start", b), ("job_end", a), ("job_trained", b),
                     ("job_end", b)]   # a's write waited for b's start


def test_a_failed_final_write_fails_its_run_and_the_queue_goes_on(setup, monkeypatch):
    root, specs = setup
    slow_final_write(monkeypatch, specs[0].run_id, error=OSError(28, "No space left on device"))
    q = queue_of(root, specs[:2], "full")
    assert serve(q.path, 0) == 0
    bad = root / "full" / specs[0].run_id
    assert not (bad / "result.json").exists()
    rec = failure(bad)
    assert rec["rc"] == 1 and "No space left on device" in rec["reason"] and "not written" in rec["reason"]
    assert run_status(bad, bad.name, retries=0).state == "failed"
    assert_same_as_alone(root, root / "full" / specs[1].run_id)


def test_a_worker_killed_while_a_run_s_final_write_waits_leaves_that_run_to_resume_exactly(setup, monkeypatch,
                                                                                             tmp_path):
    """The run that had returned but whose final checkpoint was not yet written has no result.json and no lock
    after the kill: not done, not failed; the next launch resumes it from its last checkpoint, bit for bit."""
    from harness.checkpoint import Checkpoints
    root, specs = setup
    first, second = (root / "killed_tail" / s.run_id for s in specs[:2])
    blocked = tmp_path / "blocked"
    write = Checkpoints._write

    def never(self, step, state):
        if self.dir.parent == first and step == STEPS:
            blocked.touch()
            time.sleep(600)
        return write(self, step, state)
    monkeypatch.setattr(Checkpoints, "_write", never)
    q = queue_of(root, specs[:2], "killed_tail")
    worker = Forked(serve, q.path, 0)
    end = time.monotonic() + 300
    while time.monotonic() < end and not (blocked.exists() and (second / "metrics.jsonl").exists()):
        time.sleep(0.05)
    assert blocked.exists() and worker.poll() is None
    worker.send_signal(signal.SIGKILL)
    assert worker.wait(60) == -signal.SIGKILL
    monkeypatch.setattr(Checkpoints, "_write", write)   # (not undo(): the autouse fixture's patch stays)
    assert not (first / "result.json").exists() and locked_pid(first / ".lock") is None
    st = run_status(first, first.name, retries=0)
    assert st.state == "pending" and "resumes from step" in st.reason and not failure(first)
    q2 = JobQueue.write(root / "killed_tail" / ".hydra" / "again" / "queue.json", [first.name],
                        sweep_dir=str(root / "killed_tail"), sweep="killed_tail", retries=0, slots=1, slot_gpus=None)
    assert serve(q2.path, 0) == 0
    assert_same_as_alone(root, first)


def test_a_killed_worker_fails_its_run_a_fresh_one_takes_the_rest_and_the_run_resumes_exactly(setup):
    root, specs = setup
    q = queue_of(root, specs, "killed")
    first = root / "killed" / specs[0].run_id
    killed = []

    def kill_after_first_checkpoint():
        end = time.monotonic() + 300
        while time.monotonic() < end and not killed:
            if list(first.glob("ckpt/*.sha256")) and (pid := locked_pid(first / ".train.lock")):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.01)
    t = threading.Thread(target=kill_after_first_checkpoint)
    t.start()
    run_pool([s.run_id for s in specs], q.path.parent, sweep_dir=root / "killed", sweep="killed", retries=1, slots=1,
             slot_gpus=None, inductor_cache=None, threads=1, poll_s=0.05)
    t.join()
    assert killed
    rec = failure(first)
    assert rec["rc"] == -9 and rec["reason"].endswith("[exit -9 (killed by SIGKILL)]")
    st = run_status(first, first.name, retries=1)
    assert st.state == "pending" and "resumes from step" in st.reason
    for s in specs[1:]:                 # the queue went on in a fresh worker
        assert_same_as_alone(root, root / "killed" / s.run_id)
    q2 = JobQueue.write(root / "killed" / ".hydra" / "again" / "queue.json", [first.name], sweep_dir=str(root / "killed"),
                        sweep="killed", retries=1, slots=1, slot_gpus=None)
    assert serve(q2.path, 0) == 0
    assert_same_as_alone(root, first)    # resumed from its checkpoint, bit for bit
    assert not failure(first)            # done: the failure record is cleared


def test_the_option_is_validated():
    from sweeps.schema import errors
    assert errors({"sweep": {"worker": "yes"}}) == ["sweep.worker='yes': expected true or false"]
    assert errors({"sweep": {"worker": False}}) == []


def test_compile_ahead_takes_each_new_shape_after_the_workers_first_jobs(setup, monkeypatch, capsys):
    """sweeps.ahead skips the jobs the workers start with, and shapes already seen; a CPU runtime compiles nothing."""
    import harness.warm
    from sweeps import ahead
    root, specs = setup
    a, b, c = specs                                   # c has a's shape
    q = queue_of(root, [a, b, c], "ahead")
    compiled = []
    monkeypatch.setattr(harness.warm, "compile_ahead", lambda spec, rt: compiled.append(spec.run_id) or 1.0)
    monkeypatch.setattr(os, "nice", lambda n: 0)
    monkeypatch.setattr(ahead, "configure_compiler", lambda: None)
    assert ahead.main([str(q.path)]) == 0
    assert compiled == [b.run_id]                    # a: the worker's first job; c: a's shape, compiled by then
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["job"] == b.run_id
    monkeypatch.undo()
    from harness.warm import compile_ahead
    assert compile_ahead(b, RT) is None               # compile=auto on CPU: off, nothing to do
