"""Background runs (drnn_demo.jobs): real worker processes on fake kinds from tests/fake_run_kinds.py.

Each test uses its own runs directory; the worker imports the fake kinds through PYTHONPATH.
"""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from job_helpers import wait_until

from drnn_demo import jobs as jobs_module
from drnn_demo.jobs import HISTORY_POINTS, JobManager, downsample, write_json_atomic

TESTS_DIR = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _worker_path(monkeypatch):
    """Let worker processes import fake_run_kinds, and keep the environment's caps out of the tests."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("DRNN_MAX_RUNS", raising=False)
    monkeypatch.delenv("DRNN_RUNS_DIR", raising=False)


@pytest.fixture
def manager(tmp_path):
    jm = JobManager(tmp_path / "runs")
    yield jm
    _stop_all(jm)


def _stop_all(jm: JobManager) -> None:
    for info in jm.runs():
        if info.active:
            jm.cancel(info.id)
    wait_until(jm, lambda: not jm.active(), timeout=10)




def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def worker_pid(jm: JobManager, run_id: str) -> int:
    return wait_until(jm, lambda: jm.get(run_id).pid)


# ----------------------------------------------------------------------------- life of a run


def test_submit_runs_to_finished_with_progress_and_checkpoint(manager):
    run_id = manager.submit("fake_run_kinds:counting", {"steps": 25, "sleep": 0.04}, label="count",
                            page="views/x.py", params={"task": "reversal", "delay": "3"})
    seen, etas = [], []
    while True:
        manager.poll()
        info = manager.get(run_id)
        seen.append((info.status, info.step, info.fraction))
        if info.status == "running" and info.step >= 5 and info.eta is not None:
            etas.append(info.eta)
        if not info.active:
            break
        assert len(seen) < 2000, "run did not finish"
        time.sleep(0.02)

    assert info.status == "finished", info.message
    running = [(s, f) for status, s, f in seen if status == "running"]
    assert len({s for s, _ in running if 0 < s < 25}) >= 3, "progress should be visible while running"
    assert [s for s, _ in running] == sorted(s for s, _ in running), "progress never goes back"
    assert [f for _, f in running] == sorted(f for _, f in running)
    # ETA: the run has at most ~1 s left once 5 of 25 steps of 0.04 s are done
    assert etas and all(0 <= e <= 3.0 for e in etas), etas
    assert info.step == 25 and info.total_steps == 25 and info.fraction == 1.0
    assert [p["step"] for p in info.history] == list(range(1, 26))
    assert info.history[-1]["loss"] == pytest.approx(1 / 26)
    assert info.metrics["accuracy"] == 1.0 and info.metrics["test_accuracy"] == 1.0
    assert info.created <= info.started <= info.ended
    assert info.elapsed == pytest.approx(info.ended - info.started) and info.elapsed >= 25 * 0.04
    assert (info.label, info.page, info.params) == ("count", "views/x.py", {"task": "reversal", "delay": "3"})
    assert info.kind == "fake_run_kinds:counting" and info.config == {"steps": 25, "sleep": 0.04}
    assert info.checkpoint == manager.root / run_id / "model.safetensors"
    with zipfile.ZipFile(io.BytesIO(manager.checkpoint_zip(run_id))) as zf:
        assert sorted(zf.namelist()) == ["model.json", "model.safetensors"]
        assert zf.read("model.safetensors") == b"fake weights at step 25"
        assert json.loads(zf.read("model.json")) == {"step": 25}
    assert not manager.active()
    assert "[drnn_demo.jobs] finished" in manager.log(run_id)


def test_cancel_is_honoured_within_a_second(manager):
    run_id = manager.submit("fake_run_kinds:until_cancelled", {})
    wait_until(manager, lambda: manager.get(run_id).step > 3)
    pid = worker_pid(manager, run_id)
    t0 = time.monotonic()
    manager.cancel(run_id)
    wait_until(manager, lambda: not manager.get(run_id).active, timeout=5)
    took = time.monotonic() - t0
    info = manager.get(run_id)
    assert info.status == "cancelled" and info.message.startswith("cancelled at step"), info.message
    assert took < 1.5, took
    wait_until(manager, lambda: not pid_alive(pid), timeout=1)
    assert info.checkpoint is None
    with pytest.raises(FileNotFoundError):
        manager.checkpoint_zip(run_id)


def test_cancel_kills_a_worker_that_ignores_it(manager):
    run_id = manager.submit("fake_run_kinds:deaf", {})
    wait_until(manager, lambda: manager.get(run_id).step == 1)
    pid = worker_pid(manager, run_id)
    t0 = time.monotonic()
    manager.cancel(run_id)
    wait_until(manager, lambda: not manager.get(run_id).active, timeout=6)
    took = time.monotonic() - t0
    assert jobs_module.KILL_AFTER - 0.1 <= took < jobs_module.KILL_AFTER + 1.5, took
    assert manager.get(run_id).status == "cancelled"
    assert not pid_alive(pid)


def test_cancel_a_queued_run(tmp_path):
    jm = JobManager(tmp_path, max_concurrent=1)
    first = jm.submit("fake_run_kinds:until_cancelled", {})
    second = jm.submit("fake_run_kinds:counting", {})
    jm.cancel(second)
    info = jm.get(second)
    assert info.status == "cancelled" and info.started is None and info.queue_position is None
    jm.cancel(first)
    wait_until(jm, lambda: not jm.active())
    assert jm.get(second).started is None  # a cancelled queued run never starts


def test_cap_queues_runs_and_starts_them_in_order(tmp_path):
    jm = JobManager(tmp_path, max_concurrent=1)
    a = jm.submit("fake_run_kinds:until_cancelled", {})
    b = jm.submit("fake_run_kinds:counting", {"steps": 5})
    c = jm.submit("fake_run_kinds:counting", {"steps": 5})
    wait_until(jm, lambda: jm.get(a).status == "running")
    assert (jm.get(b).status, jm.get(b).queue_position) == ("queued", 1)
    assert (jm.get(c).status, jm.get(c).queue_position) == ("queued", 2)
    assert jm.get(a).queue_position is None
    assert [i.id for i in jm.runs()] == [c, b, a]  # newest first
    jm.cancel(a)
    max_running = 0
    while jm.active():
        jm.poll()
        max_running = max(max_running, sum(i.status == "running" for i in jm.runs()))
        if jm.get(b).status == "running":
            assert (jm.get(c).status, jm.get(c).queue_position) == ("queued", 1)
        time.sleep(0.01)
    assert max_running == 1
    assert [jm.get(r).status for r in (a, b, c)] == ["cancelled", "finished", "finished"]
    assert jm.get(a).ended <= jm.get(b).started and jm.get(b).ended <= jm.get(c).started


def test_cap_from_environment_and_checks(tmp_path, monkeypatch):
    monkeypatch.setenv("DRNN_MAX_RUNS", "2")
    assert JobManager(tmp_path).max_concurrent == 2
    with pytest.raises(ValueError, match="max_concurrent"):
        JobManager(tmp_path, max_concurrent=0)
    monkeypatch.setenv("DRNN_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert JobManager().root == tmp_path / "elsewhere"


def test_two_concurrent_runs_with_cap_two(tmp_path):
    jm = JobManager(tmp_path, max_concurrent=2)
    a = jm.submit("fake_run_kinds:until_cancelled", {})
    b = jm.submit("fake_run_kinds:until_cancelled", {})
    wait_until(jm, lambda: jm.get(a).step > 0 and jm.get(b).step > 0)
    _stop_all(jm)
    assert {jm.get(a).status, jm.get(b).status} == {"cancelled"}


# ----------------------------------------------------------------------------- failures


def test_worker_killed_from_outside_ends_failed_with_log_kept(manager):
    run_id = manager.submit("fake_run_kinds:until_cancelled", {})
    wait_until(manager, lambda: manager.get(run_id).step > 3)
    os.kill(worker_pid(manager, run_id), signal.SIGKILL)
    wait_until(manager, lambda: not manager.get(run_id).active, timeout=5)
    info = manager.get(run_id)
    assert info.status == "failed" and "SIGKILL" in info.message, info.message
    assert info.ended is not None and info.history, "the progress so far is kept"
    assert f"[drnn_demo.jobs] run {run_id}" in manager.log(run_id)
    later = manager.submit("fake_run_kinds:counting", {"steps": 3})
    wait_until(manager, lambda: manager.get(later).status == "finished")


def test_worker_stopped_by_sigterm_ends_interrupted(manager):
    """What a Ctrl-C / shutdown of the server does to its workers: they record 'interrupted' and exit."""
    run_id = manager.submit("fake_run_kinds:until_cancelled", {})
    wait_until(manager, lambda: manager.get(run_id).step > 3)
    pid = worker_pid(manager, run_id)
    os.kill(pid, signal.SIGTERM)
    wait_until(manager, lambda: not manager.get(run_id).active, timeout=5)
    info = manager.get(run_id)
    assert info.status == "interrupted" and "stop signal" in info.message, info.message
    wait_until(manager, lambda: not pid_alive(pid), timeout=2)


def test_raising_kind_fails_with_traceback_and_manager_keeps_working(manager):
    run_id = manager.submit("fake_run_kinds:boom", {})
    wait_until(manager, lambda: not manager.get(run_id).active)
    info = manager.get(run_id)
    assert info.status == "failed"
    assert "ValueError: boom at step 3" in info.message
    log = manager.log(run_id)
    assert "Traceback (most recent call last)" in log and "fake_run_kinds.py" in log and "boom at step 3" in log
    assert info.step == 3
    nxt = manager.submit("fake_run_kinds:counting", {"steps": 3})
    wait_until(manager, lambda: manager.get(nxt).status == "finished")


def test_missing_kind_module_fails_in_the_worker(manager):
    run_id = manager.submit("no_such_module_xyz:run", {})
    wait_until(manager, lambda: not manager.get(run_id).active)
    info = manager.get(run_id)
    assert info.status == "failed" and "ModuleNotFoundError" in info.message


def test_nonfinite_loss_ends_diverged(manager):
    run_id = manager.submit("fake_run_kinds:nan_loss", {"nan_at": 5})
    wait_until(manager, lambda: not manager.get(run_id).active)
    info = manager.get(run_id)
    assert info.status == "diverged" and "step 5" in info.message, info.message
    assert info.step == 5, "the worker stops the run at the first non-finite loss"
    assert [p["loss"] for p in info.history][:4] == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4])
    assert info.history[-1]["loss"] is None  # NaN is stored as JSON null


def test_bad_submissions_are_refused(manager):
    with pytest.raises(ValueError, match="kind"):
        manager.submit("no-such-kind", {})
    with pytest.raises(ValueError, match="JSON"):
        manager.submit("fake_run_kinds:counting", {"x": object()})
    with pytest.raises(ValueError, match="threads"):
        manager.submit("fake_run_kinds:counting", {}, threads=0)
    with pytest.raises(KeyError):
        manager.get("nope")
    with pytest.raises(KeyError):
        manager.delete("../x")
    assert manager.runs() == []


# ----------------------------------------------------------------------------- persistence


def test_restart_lists_old_runs_and_never_calls_a_dead_run_finished(tmp_path):
    old = JobManager(tmp_path, max_concurrent=2)
    done = old.submit("fake_run_kinds:counting", {"steps": 3})
    wait_until(old, lambda: old.get(done).status == "finished")
    dead = old.submit("fake_run_kinds:until_cancelled", {})
    alive = old.submit("fake_run_kinds:until_cancelled", {})
    wait_until(old, lambda: old.get(dead).step > 0 and old.get(alive).step > 0)
    # the server goes away: one worker is killed with it, the other outlives it
    os.kill(worker_pid(old, dead), signal.SIGKILL)
    time.sleep(0.2)

    new = JobManager(tmp_path, max_concurrent=2)  # a restarted server, without the old Popen handles
    by_id = {i.id: i for i in new.runs()}
    assert set(by_id) == {done, dead, alive}
    assert by_id[done].status == "finished" and by_id[done].checkpoint is not None
    assert by_id[dead].status == "interrupted", by_id[dead].message
    assert by_id[dead].history and by_id[dead].ended is not None
    assert by_id[alive].status == "running"
    # the new server can still cancel the orphaned run
    pid = worker_pid(new, alive)
    new.cancel(alive)
    wait_until(new, lambda: not new.get(alive).active, timeout=5)
    assert new.get(alive).status == "cancelled"
    wait_until(new, lambda: not pid_alive(pid), timeout=2)  # the worker exits right after its final write
    old.poll()  # the old manager agrees
    assert old.get(dead).status == "interrupted" and old.get(alive).status == "cancelled"


def test_stale_running_state_without_a_process_is_interrupted(tmp_path):
    """A state left 'running' by a server that died before its worker started (no pid recorded)."""
    run_dir = tmp_path / "20000101-000000-abcdef"
    run_dir.mkdir()
    long_ago = time.time() - 60
    write_json_atomic(run_dir / "run.json", {"id": run_dir.name, "kind": "train", "config": {}, "created": long_ago})
    write_json_atomic(run_dir / "state.json", {"status": "running", "started": long_ago, "step": 7})
    info = JobManager(tmp_path).get(run_dir.name)
    assert info.status == "interrupted" and info.step == 7


def test_queued_runs_survive_a_restart(tmp_path):
    old = JobManager(tmp_path, max_concurrent=1)
    a = old.submit("fake_run_kinds:until_cancelled", {})
    b = old.submit("fake_run_kinds:counting", {"steps": 3})
    old.cancel(a)
    wait_until(old, lambda: old.get(a).status == "cancelled")
    # before anyone polls the old manager again, the server restarts: b is picked up by the new one
    new = JobManager(tmp_path, max_concurrent=1)
    wait_until(new, lambda: new.get(b).status == "finished")


def test_delete_removes_the_directory(manager):
    done = manager.submit("fake_run_kinds:counting", {"steps": 2})
    wait_until(manager, lambda: manager.get(done).status == "finished")
    manager.delete(done)
    assert not (manager.root / done).exists()
    with pytest.raises(KeyError):
        manager.get(done)

    running = manager.submit("fake_run_kinds:deaf", {})
    wait_until(manager, lambda: manager.get(running).step == 1)
    pid = worker_pid(manager, running)
    manager.delete(running)
    assert not (manager.root / running).exists() and not pid_alive(pid)
    assert manager.runs() == [] and not manager.active()


# ----------------------------------------------------------------------------- files


def test_write_json_atomic_keeps_the_old_file_when_a_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    write_json_atomic(path, {"status": "running", "step": 1})

    def torn_dump(obj, f, **kw):
        f.write('{"status": "fin')
        raise OSError("disk full")

    monkeypatch.setattr("drnn_demo.fileio.json.dump", torn_dump)
    with pytest.raises(OSError):
        write_json_atomic(path, {"status": "finished", "step": 2})
    assert json.loads(path.read_text()) == {"status": "running", "step": 1}
    assert os.listdir(tmp_path) == ["state.json"], "no temporary file is left behind"


def test_readers_never_see_a_torn_state_file(manager):
    run_id = manager.submit("fake_run_kinds:fast", {"steps": 4000})
    state_file = manager.root / run_id / "state.json"
    reads, errors, stop = [], [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                text = state_file.read_text()
            except FileNotFoundError:
                continue
            try:
                reads.append(json.loads(text)["status"])
            except ValueError as e:
                errors.append(e)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        wait_until(manager, lambda: not manager.get(run_id).active)
    finally:
        stop.set()
        thread.join()
    assert not errors and "running" in reads and len(reads) > 50
    info = manager.get(run_id)
    assert info.status == "finished"
    assert len(info.history) <= HISTORY_POINTS
    assert info.history[0]["step"] == 1 and info.history[-1]["step"] == 4000
    lines = (manager.root / run_id / "progress.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(1, 4001))
    assert not [p for p in os.listdir(manager.root / run_id) if p.endswith(".tmp")]


def reference_downsample(points, limit):
    if len(points) <= limit:
        return list(points)
    chosen = []
    for i in range(limit):
        j = round(i * (len(points) - 1) / (limit - 1))
        if j not in chosen:
            chosen.append(j)
    return [points[j] for j in chosen]


@given(n=st.integers(0, 3000), limit=st.integers(2, 600))
def test_downsample_keeps_ends_and_order(n, limit):
    points = [{"step": i} for i in range(n)]
    out = downsample(points, limit)
    assert out == reference_downsample(points, limit)
    assert len(out) == min(n, limit)
    if n:
        assert out[0] == points[0] and out[-1] == points[-1]
    steps = [p["step"] for p in out]
    assert steps == sorted(set(steps))
    if n > limit:  # evenly spread: no gap is more than twice the ideal spacing
        assert max(b - a for a, b in zip(steps, steps[1:], strict=False)) <= 2 * (n - 1) / (limit - 1) + 1


# ----------------------------------------------------------------------------- the real "train" kind


@pytest.mark.slow
def test_real_train_run_on_tiny_reversal(tmp_path):
    pytest.importorskip("drnn_demo.checkpoints")
    from drnn_demo.checkpoints import load_checkpoint
    from drnn_demo.tasks import build_task
    from drnn_demo.training import TrainConfig, derived_seed, evaluate

    config = TrainConfig(task="reversal", task_args={"length": 6, "classes": 3},
                         model={"core": "delayed", "core_args": {"hidden_size": 32, "delay": 5, "cell": "lstm"}},
                         steps=300, batch_size=32, lr=2e-2, lr_schedule="cosine", eval_every=50, patience=0,
                         val_size=200, test_size=300, device="cpu", log_every=10, seed=3)
    jm = JobManager(tmp_path)
    run_id = jm.submit("train", config.to_dict(), label="tiny reversal", page="views/delayed_outputs.py")
    running_steps = []

    def done():
        info = jm.get(run_id)
        if info.status == "running":
            running_steps.append(info.step)
        return not info.active

    wait_until(jm, done, timeout=120, every=0.1)
    info = jm.get(run_id)
    assert info.status == "finished", (info.message, jm.log(run_id))
    assert len(set(running_steps) - {0, 300}) >= 2 and running_steps == sorted(running_steps)
    assert (info.step, info.total_steps, info.fraction) == (300, 300, 1.0)
    assert [p["step"] for p in info.history] == list(range(10, 301, 10))
    assert [p["step"] for p in info.history if "accuracy" in p] == list(range(50, 301, 50))
    # delay 5 = T - 1 makes exact reversal possible; a causal model (delay 0) is capped at 2/3, chance is 1/3
    assert info.metrics["test_accuracy"] > 0.85, info.metrics
    assert "torch threads 1" in jm.log(run_id)

    model, card = load_checkpoint(info.checkpoint)
    assert card["run_id"] == run_id and card["status"] == "finished"
    task = build_task("reversal", length=6, classes=3)
    x, y = task.sample(300, derived_seed(3, "test"))
    assert evaluate(model, task, x, y)["accuracy"] == pytest.approx(info.metrics["test_accuracy"])
    with zipfile.ZipFile(io.BytesIO(jm.checkpoint_zip(run_id))) as zf:
        assert sorted(zf.namelist()) == ["model.json", "model.safetensors"]


@pytest.mark.parametrize("nice_env,increment,policy", [(None, 10, "SCHED_IDLE"), ("0", 0, "SCHED_OTHER")])
def test_a_worker_runs_below_the_servers_priority(tmp_path, monkeypatch, nice_env, increment, policy):
    """A training run takes a core only when the server and the browser do not want one (nice +10 and, on Linux,
    SCHED_IDLE); $DRNN_RUN_NICE=0 keeps it at the server's priority."""
    if nice_env is not None:
        monkeypatch.setenv("DRNN_RUN_NICE", nice_env)
    jm = JobManager(tmp_path / "runs")
    run_id = jm.submit("fake_run_kinds:nice_level", {})
    wait_until(jm, lambda: not jm.get(run_id).active, timeout=30)
    info = jm.get(run_id)
    niceness, scheduler = info.message.split()
    assert info.status == "finished" and int(niceness) == min(os.nice(0) + increment, 19)
    if hasattr(os, "SCHED_IDLE"):
        assert int(scheduler) == getattr(os, policy)
