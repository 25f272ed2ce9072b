"""Background runs (drnn_demo.jobs) against damaged and hostile run directories, stale pids and zombies.

A runs directory is built by hand (run.json / state.json written as raw text), so every way a file can
be wrong is exercised without a worker; the process tests use real workers on tests/fake_run_kinds.py.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import psutil
import pytest
from job_helpers import wait_until

from drnn_demo.jobs import RUN_KINDS, STATUSES, JobManager, UnsafeRunFileError, identify_worker

TESTS_DIR = Path(__file__).resolve().parent
PASSWD = Path("/etc/passwd")
GOOD = "20240101-000000-aaaaaa"


@pytest.fixture(autouse=True)
def _worker_path(monkeypatch):
    """Let worker processes import fake_run_kinds (and this module), keep the environment's caps out."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("DRNN_MAX_RUNS", raising=False)
    monkeypatch.delenv("DRNN_RUNS_DIR", raising=False)


def echo_input(config, on_progress, should_stop, run_dir):
    """A run kind (imported by the worker as ``test_jobs_hostile:echo_input``) that reads a submitted file."""
    return {"status": "finished", "message": (Path(run_dir) / "input.txt").read_text()}


def make_run(root: Path, run_id: str, run: dict | str | None = None, state: dict | str | None = None) -> Path:
    """A run directory written by hand; ``run`` / ``state`` as dicts (dumped) or raw text (written as is)."""
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    if run is None:
        run = {"id": run_id, "kind": "fake_run_kinds:counting", "config": {}, "label": f"label {run_id}",
               "page": "views/x.py", "params": {"task": "reversal"}, "threads": 1, "created": 1_700_000_000.0}
    if state is None:
        state = {"status": "finished", "message": "10 steps", "step": 10, "total_steps": 10,
                 "started": 1_700_000_001.0, "ended": 1_700_000_002.0, "metrics": {"test_accuracy": 1.0},
                 "history": [{"step": 10, "loss": 0.1}], "checkpoint": "model.safetensors"}
    for name, content in (("run.json", run), ("state.json", state)):
        (run_dir / name).write_text(content if isinstance(content, str) else json.dumps(content))
    return run_dir


def good_state(**changes) -> dict:
    return {"status": "finished", "message": "done", "step": 3, "total_steps": 3, "started": 1_700_000_001.0,
            "ended": 1_700_000_002.0, "metrics": {}, "history": [], "checkpoint": "model.safetensors", **changes}


def write_checkpoint(run_dir: Path) -> None:
    (run_dir / "model.safetensors").write_bytes(b"good weights")
    (run_dir / "model.json").write_text(json.dumps({"step": 3}))




# ----------------------------------------------------------------------------- a hostile runs directory

DEEP = "[" * 100_000 + "]" * 100_000

CORRUPT = {  # run id -> (run.json or None for a sound one, state.json or None for a sound one, reason substring)
    "20240101-000001-step00": (None, good_state(step="abc"), "state.json: 'step' must be a number, found \"abc\""),
    "20240101-000002-params": ({"id": "x", "kind": "train", "params": "str"}, None, "run.json: 'params' must be"),
    "20240101-000003-trunc0": (None, '{"status": "running", "step": 12, "hist', "state.json: not valid JSON"),
    "20240101-000004-deep00": (None, '{"status": "finished", "metrics": ' + DEEP + "}", "state.json: JSON nested"),
    "20240101-000005-deeprn": ("[" * 100_000, None, "run.json: JSON nested"),
    "20240101-000006-status": (None, good_state(status="bogus"), "state.json: 'status' must be one of"),
    "20240101-000007-histor": (None, good_state(history=[1, 2]), "state.json: 'history' item 0 must be an object"),
    "20240101-000008-metric": (None, good_state(metrics=[]), "state.json: 'metrics' must be an object"),
    "20240101-000009-listst": (None, "[1, 2, 3]", "state.json: expected an object, found an array"),
    "20240101-000010-bigint": (None, '{"status": "finished", "step": ' + "9" * 5000 + "}", "state.json"),
    "20240101-000011-nanstp": (None, '{"status": "running", "started": NaN}', "NaN is not a JSON number"),
    "20240101-000012-negstp": (None, good_state(step=-1), "state.json: 'step' must be between 0"),
    "20240101-000013-thread": ({"id": "x", "kind": "train", "threads": "4"}, None, "run.json: 'threads' must be"),
    "20240101-000014-nokind": ({"id": "x"}, None, "run.json: 'kind' must be a string"),
    "20240101-000015-prmval": ({"kind": "train", "params": {"a": [1]}}, None, "run.json: params['a'] must be"),
    "20240101-000016-config": ({"kind": "train", "config": [1]}, None, "run.json: 'config' must be an object"),
    "20240101-000017-empty0": (None, "", "state.json: not valid JSON"),
    "20240101-000018-utf800": (None, b"\xff\xfe".decode("latin-1"), "state.json: not"),
    "20240101-000019-pidstr": (None, good_state(pid="1"), "state.json: 'pid' must be a number"),
    "20240101-000020-pid000": (None, good_state(status="running", pid=0), "state.json: 'pid' must be between 1"),
    "20240101-000021-hstloss": (None, good_state(history=[{"step": 1, "loss": "x"}]),
                                "state.json: 'history' item 0: 'loss' must be a number"),
}


@pytest.fixture
def hostile(tmp_path):
    """A runs directory with one good run, many corrupt ones, hostile checkpoints and a symlinked run dir."""
    root = tmp_path / "runs"
    write_checkpoint(make_run(root, GOOD))
    for run_id, (run, state, _) in CORRUPT.items():
        make_run(root, run_id, run, state)
    make_run(root, "20240101-000030-nostat")
    (root / "20240101-000030-nostat" / "state.json").unlink()

    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET " * 10)
    traversal = make_run(root, "20240101-000040-travrs", state=good_state(checkpoint="../../../etc/passwd.safetensors"))
    write_checkpoint(traversal)
    make_run(root, "20240101-000041-travr2", state=good_state(checkpoint="../../../etc/passwd"))
    make_run(root, "20240101-000042-absolu", state=good_state(checkpoint=str(secret)))
    link = make_run(root, "20240101-000043-symlnk")
    (link / "model.safetensors").symlink_to(PASSWD if PASSWD.exists() else secret)
    (link / "model.json").write_text("{}")
    card_link = make_run(root, "20240101-000044-cardln")
    (card_link / "model.safetensors").write_bytes(b"weights")
    (card_link / "model.json").symlink_to(card_link / "state.json")  # a link, even to a file inside the run
    subdir = make_run(root, "20240101-000045-subdir", state=good_state(checkpoint="sub/model.safetensors"))
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "model.safetensors").write_text("TOP SECRET outside")
    (subdir / "sub").symlink_to(tmp_path / "outside")
    make_run(root, "20240101-000046-notsft", state=good_state(checkpoint="state.json"))

    state_link = make_run(root, "20240101-000050-stlink")
    (state_link / "state.json").unlink()
    (state_link / "state.json").symlink_to(secret)
    log_link = make_run(root, "20240101-000051-loglnk")
    write_checkpoint(log_link)
    (log_link / "log.txt").symlink_to(secret)

    elsewhere = make_run(tmp_path / "elsewhere", "20240101-000060-linked")
    write_checkpoint(elsewhere)
    (root / "20240101-000060-linked").symlink_to(elsewhere)
    make_run(root, ".hidden-run")
    return root, secret


def test_runs_lists_good_runs_normally_and_damaged_ones_as_corrupt(hostile):
    root, _ = hostile
    jm = JobManager(root)
    infos = {i.id: i for i in jm.runs()}

    good = infos[GOOD]
    assert (good.status, good.step, good.total_steps, good.fraction) == ("finished", 10, 10, 1.0)
    assert good.checkpoint == root / GOOD / "model.safetensors" and good.label == f"label {GOOD}"
    assert good.message == "10 steps" and good.metrics == {"test_accuracy": 1.0}

    for run_id, (run, _, reason) in CORRUPT.items():
        info = infos[run_id]
        assert info.status == "corrupt", (run_id, info)
        assert reason in info.message, (run_id, info.message)
        assert (info.step, info.total_steps, info.fraction, info.eta) == (0, None, 0.0, None)
        assert (info.history, info.metrics, info.checkpoint, info.pid) == ([], {}, None, None)
        assert not info.active and info.queue_position is None
        if run is not None:  # run.json itself is bad: nothing of it is used
            assert (info.label, info.params, info.config, info.kind) == (run_id, {}, {}, "")
        assert jm.get(run_id) == info
    assert infos["20240101-000030-nostat"].status == "corrupt"
    assert infos["20240101-000030-nostat"].message == "state.json: missing"
    state_link = infos["20240101-000050-stlink"]
    assert state_link.status == "corrupt" and "symbolic link" in state_link.message, state_link.message
    assert "corrupt" in STATUSES

    assert "20240101-000060-linked" not in infos and ".hidden-run" not in infos
    assert not jm.active()


def test_hostile_checkpoints_are_refused_and_never_leak_outside_bytes(hostile):
    root, secret = hostile
    jm = JobManager(root)
    infos = {i.id: i for i in jm.runs()}
    for run_id in ("20240101-000040-travrs", "20240101-000041-travr2", "20240101-000042-absolu",
                   "20240101-000043-symlnk", "20240101-000044-cardln", "20240101-000045-subdir",
                   "20240101-000046-notsft"):
        info = infos[run_id]
        assert info.status == "finished" and info.checkpoint is None, (run_id, info)
        assert "checkpoint refused" in info.message, (run_id, info.message)
        with pytest.raises((UnsafeRunFileError, FileNotFoundError)):
            jm.checkpoint_zip(run_id)

    outside = [secret.read_bytes(), b"TOP SECRET"] + ([PASSWD.read_bytes()] if PASSWD.exists() else [])
    for info in infos.values():
        try:
            data = jm.checkpoint_zip(info.id)
        except (ValueError, FileNotFoundError):
            continue
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for name in zf.namelist():
                content = zf.read(name)
                assert not any(o in content for o in outside if o), (info.id, name)
    with zipfile.ZipFile(io.BytesIO(jm.checkpoint_zip(GOOD))) as zf:
        assert zf.read("model.safetensors") == b"good weights"
    with pytest.raises(ValueError):  # a corrupt run offers no download
        jm.checkpoint_zip("20240101-000001-step00")

    assert jm.log("20240101-000051-loglnk") == ""  # a symlinked log is not followed
    assert jm.get("20240101-000051-loglnk").checkpoint is not None  # the rest of that run is fine


def test_symlinked_run_directory_is_not_listed_followed_or_deleted_through(hostile, tmp_path):
    root, _ = hostile
    jm = JobManager(root)
    target = tmp_path / "elsewhere" / "20240101-000060-linked"
    for call in (jm.get, jm.delete, jm.checkpoint_zip, jm.log, jm.cancel):
        with pytest.raises(KeyError):
            call("20240101-000060-linked")
    assert (target / "run.json").exists() and (target / "model.safetensors").exists()
    assert (root / "20240101-000060-linked").is_symlink()


def test_delete_removes_corrupt_runs_and_leaves_symlink_targets_alone(hostile, tmp_path):
    root, secret = hostile
    jm = JobManager(root)
    for run_id in [*CORRUPT, "20240101-000030-nostat", "20240101-000043-symlnk", "20240101-000050-stlink"]:
        jm.delete(run_id)
        assert not (root / run_id).exists()
        with pytest.raises(KeyError):
            jm.get(run_id)
    assert secret.exists()
    assert [i.id for i in jm.runs() if i.status == "corrupt"] == []


def test_a_queued_run_with_a_damaged_run_json_is_never_launched(tmp_path):
    root = tmp_path / "runs"
    bad = make_run(root, "20240101-000001-badrun", run={"kind": "fake_run_kinds:counting", "params": "str"},
                   state={"status": "queued", "message": "waiting"})
    jm = JobManager(root)
    for _ in range(5):
        jm.poll()
    assert json.loads((bad / "state.json").read_text())["status"] == "queued"
    assert not (bad / "proc.json").exists() and not (bad / "log.txt").exists()
    assert jm.get(bad.name).status == "corrupt" and not jm.active()
    assert jm.cancel(bad.name) is None  # harmless


# ----------------------------------------------------------------------------- stale "running" states


def _stale_running(root: Path, run_id: str, pid: int, pid_start, heartbeat_age: float | None = None) -> Path:
    run_dir = make_run(root, run_id, state={"status": "running", "message": "running", "step": 4,
                                            "total_steps": 100, "started": time.time() - 60, "pid": pid})
    (run_dir / "proc.json").write_text(json.dumps({"pid": pid, "pid_start": pid_start}))
    if heartbeat_age is not None:
        (run_dir / "heartbeat.json").write_text(
            json.dumps({"pid": pid, "pid_start": pid_start, "time": time.time() - heartbeat_age}))
    return run_dir


@pytest.mark.parametrize("who", ["pid 1", "this test process", "malformed proc.json"])
def test_running_state_with_a_pid_that_is_not_our_worker_fails_and_frees_its_slot(tmp_path, who):
    root = tmp_path / "runs"
    me = psutil.Process()
    pid, start = (1, psutil.Process(1).create_time()) if who == "pid 1" else (me.pid, me.create_time())
    stale = _stale_running(root, "20240101-000001-stale0", pid, start, heartbeat_age=0.0)  # even a fresh heartbeat
    if who == "malformed proc.json":
        (stale / "proc.json").write_text('{"pid": "abc"}')
        (stale / "heartbeat.json").unlink()
    queued = make_run(root, "20240101-000002-queued", run={"id": "q", "kind": "fake_run_kinds:counting",
                                                            "config": {"steps": 2}, "created": time.time()},
                      state={"status": "queued", "message": "waiting"})
    jm = JobManager(root, max_concurrent=1)  # its first poll judges the stale run
    info = jm.get(stale.name)
    assert info.status == "failed", info
    assert "not this run's worker" in info.message or "proc.json" in info.message, info.message
    assert psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE  # nobody was killed
    wait_until(jm, lambda: jm.get(queued.name).status == "finished")


@pytest.fixture
def lookalike(tmp_path):
    """A process whose command line looks like a worker of ``runs/<id>`` (python -c ... drnn_demo.jobs RUN_DIR)."""
    run_dir = tmp_path / "runs" / "20240101-000001-lookal"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "drnn_demo.jobs", str(run_dir)])
    yield proc, run_dir
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("recorded, heartbeat_age, expected", [
    ("exact", None, "running"),          # command line and start time match: our worker
    ("off by 100 s", 0.0, "failed"),     # the pid was reused by a later worker-looking process
    ("missing", 0.0, "failed"),          # no start time: cannot be told apart from a reused pid
    ("old int", 0.0, "running"),         # an old tick count: a fresh heartbeat vouches for it
    ("old int", 60.0, "failed"),         # ... a stale one does not
])
def test_a_worker_is_recognised_by_command_line_and_start_time(lookalike, recorded, heartbeat_age, expected):
    proc, run_dir = lookalike
    created = psutil.Process(proc.pid).create_time()
    pid_start = {"exact": created, "off by 100 s": created - 100, "missing": None, "old int": 123456}[recorded]
    _stale_running(run_dir.parent, run_dir.name, proc.pid, pid_start, heartbeat_age)
    jm = JobManager(run_dir.parent)
    jm.poll()
    info = jm.get(run_dir.name)
    assert info.status == expected, info.message
    assert proc.poll() is None, "a process that is not verified as the worker is never killed"


def test_a_worker_is_recognised_the_moment_it_is_launched(tmp_path):
    """Popen returns while the child is still in exec() and its command line can read as empty: another
    manager polling at that moment must not take the new worker for a reused pid."""
    run_dir = tmp_path / "runs" / "20240101-000001-launch"
    verdicts = []
    for _ in range(150):
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)", "drnn_demo.jobs", str(run_dir)])
        try:
            verdicts.append(identify_worker(proc.pid, psutil.Process(proc.pid).create_time(), run_dir))
        finally:
            proc.kill()
            proc.wait()
    assert [v for v in verdicts if v[0] != "alive"] == []


def test_a_finished_worker_is_reaped_within_a_second_without_any_poll(tmp_path):
    jm = JobManager(tmp_path / "runs")
    run_id = jm.submit("fake_run_kinds:counting", {"steps": 2, "sleep": 0.01})  # submit starts it; no poll after
    run_dir = jm.root / run_id
    pid = json.loads((run_dir / "proc.json").read_text())["pid"]
    deadline = time.monotonic() + 15
    while json.loads((run_dir / "state.json").read_text())["status"] != "finished":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    done = time.monotonic()
    while True:
        try:
            zombie = psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            break
        assert time.monotonic() - done < 1.2, f"worker {pid} still {'a zombie' if zombie else 'running'}"
        time.sleep(0.02)


# ----------------------------------------------------------------------------- submit(files=...) and kinds


def test_submit_writes_files_into_the_run_directory_for_the_kind(tmp_path):
    jm = JobManager(tmp_path / "runs")
    run_id = jm.submit("test_jobs_hostile:echo_input", {}, files={"input.txt": b"hello from an upload"})
    assert (jm.root / run_id / "input.txt").read_bytes() == b"hello from an upload"
    wait_until(jm, lambda: not jm.get(run_id).active)
    info = jm.get(run_id)
    assert info.status == "finished" and info.message == "hello from an upload", (info.message, jm.log(run_id))


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "", "state.json", "run.json", "log.txt",
                                  "proc.json", "heartbeat.json", "cancel", "progress.jsonl", "c:x", "a\\b"])
def test_submit_refuses_bad_file_names_and_leaves_nothing(tmp_path, name):
    jm = JobManager(tmp_path / "runs")
    with pytest.raises(ValueError):
        jm.submit("fake_run_kinds:counting", {}, files={name: b"x"})
    with pytest.raises(ValueError):
        jm.submit("fake_run_kinds:counting", {}, files={"ok.bin": "not bytes"})
    assert [p.name for p in jm.root.iterdir() if not p.name.startswith(".")] == []
    assert not (tmp_path / "escape").exists()


def test_submit_refuses_params_that_would_make_a_corrupt_run(tmp_path):
    jm = JobManager(tmp_path / "runs")
    with pytest.raises(ValueError, match="params"):
        jm.submit("fake_run_kinds:counting", {}, params={"a": {"nested": 1}})
    assert jm.runs() == []


def test_retest_is_a_built_in_kind():
    assert "retest" in RUN_KINDS
