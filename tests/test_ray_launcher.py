"""Background runs as Ray jobs (drnn_demo.jobs.launchers): the same runs, progress and cancel as local workers.

The fast tests need no cluster. The slow ones start a Ray head with its dashboard in a subprocess
(``ray start --head --block`` in a session of its own, its own temp dir and ports), point
``DRNN_RAY_ADDRESS`` at the dashboard and submit fake kinds from tests/fake_run_kinds.py through a
:class:`JobManager`; they are skipped where Ray's job submission cannot start (no ``ray[default]``),
and stop every process of that Ray at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import job_helpers
import psutil
import pytest

from drnn_demo.experiments import experiment
from drnn_demo.jobs import JobManager, launchers
from drnn_demo.jobs.launchers import GRID_KIND, LocalLauncher, RayJobLauncher
from drnn_demo.reproduce import load_results

TESTS_DIR = Path(__file__).resolve().parent
PYTHONPATH = os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")]))


@pytest.fixture(autouse=True)
def _worker_path(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", PYTHONPATH)
    for name in ("DRNN_MAX_RUNS", "DRNN_RUNS_DIR", launchers.RAY_ADDRESS_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # the test's Ray has no token (and none is turned on for good)


def wait_until(jm, pred, timeout: float = 60.0, every: float = 0.1):
    return job_helpers.wait_until(jm, pred, timeout, every)


# ----------------------------------------------------------------------------- fast: the choice of launcher


def test_without_the_variable_runs_are_local_workers_as_before(tmp_path):
    jm = JobManager(tmp_path / "runs")
    assert isinstance(jm.launcher, LocalLauncher)
    run_id = jm.submit("fake_run_kinds:counting", {"steps": 3, "sleep": 0.01})
    wait_until(jm, lambda: jm.get(run_id).status == "finished", timeout=15)
    proc = json.loads((tmp_path / "runs" / run_id / "proc.json").read_text())
    assert sorted(proc) == ["pid", "pid_start"]  # what proc.json has always been
    assert jm.get(run_id).pid == proc["pid"]


def test_the_variable_or_an_argument_picks_ray_jobs(tmp_path, monkeypatch):
    monkeypatch.setenv(launchers.RAY_ADDRESS_ENV, "  http://head:8265 ")
    jm = JobManager(tmp_path / "runs")  # no connection is made before a run is launched
    assert isinstance(jm.launcher, RayJobLauncher) and jm.launcher.address == "http://head:8265"
    monkeypatch.setenv(launchers.RAY_ADDRESS_ENV, " ")
    assert isinstance(JobManager(tmp_path / "runs").launcher, LocalLauncher)
    local = LocalLauncher()
    assert JobManager(tmp_path / "runs", launcher=local).launcher is local
    with pytest.raises(ValueError):
        RayJobLauncher("")


def test_an_unreachable_cluster_fails_the_run_at_once_with_the_reason(tmp_path):
    pytest.importorskip("ray.job_submission")
    jm = JobManager(tmp_path / "runs", launcher=RayJobLauncher(f"http://127.0.0.1:{free_port()}"))
    run_id = jm.submit("fake_run_kinds:counting", {"steps": 3})
    info = jm.get(run_id)
    assert info.status == "failed"
    assert "could not start the worker" in info.message and "Ray cluster" in info.message


def test_a_cluster_that_does_not_answer_holds_the_manager_for_seconds_at_most(tmp_path, monkeypatch):
    pytest.importorskip("ray.job_submission")
    monkeypatch.setattr(launchers, "ASK_TIMEOUT", 0.3)
    monkeypatch.setattr(launchers, "SUBMIT_TIMEOUT", 0.5)
    with socket.socket() as mute:  # accepts connections (the backlog) and never answers
        mute.bind(("127.0.0.1", 0))
        mute.listen(16)
        launcher = RayJobLauncher(f"http://127.0.0.1:{mute.getsockname()[1]}")
        jm = JobManager(tmp_path / "runs", launcher=launcher)
        start = time.monotonic()
        run_id = jm.submit("fake_run_kinds:counting", {"steps": 3})
        assert time.monotonic() - start < 5
        info = jm.get(run_id)
        assert info.status == "failed" and "no answer within 0.5 s" in info.message
        for _ in range(launchers.MAX_HUNG_CALLS + 2):
            status, why = launcher.status(run_id)
            assert status is None and "cannot be asked" in why
        assert launcher._hung == launchers.MAX_HUNG_CALLS  # no more threads are left waiting than that
        assert time.monotonic() - start < 10


# ----------------------------------------------------------------------------- slow: a Ray head here


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_processes(session: int, temp_dir: str) -> list[psutil.Process]:
    """The processes of the Ray this test started: in its session, or naming its temp dir."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error, OSError):
            named = any(temp_dir in a for a in p.info["cmdline"] or [])
            if p.pid != os.getpid() and (os.getsid(p.pid) == session or named):
                found.append(p)
    return found


def _stop_ray(head: subprocess.Popen, temp_dir: str) -> list[psutil.Process]:
    """Stop the ``ray start --block`` process (it stops its children), then any process of it left."""
    if head.poll() is None:
        head.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(timeout=30)
    left = _ray_processes(head.pid, temp_dir)
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(left, timeout=10)
    if head.poll() is None:
        head.kill()
        head.wait(timeout=10)
    return left


@pytest.fixture(scope="module")
def ray_dashboard():
    """A Ray head with its dashboard (2 CPUs, its own temp dir and ports); yields the dashboard URL."""
    pytest.importorskip("ray.job_submission")
    pytest.importorskip("aiohttp", reason="Ray's dashboard needs ray[default]")
    from ray.job_submission import JobSubmissionClient

    temp_dir = tempfile.mkdtemp(prefix="drnnray")  # short: Ray's socket paths must stay under 107 bytes
    dashboard = free_port()
    command = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--disable-usage-stats",
               "--port", str(free_port()), "--num-cpus", "2", "--temp-dir", temp_dir,
               "--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
               "--ray-client-server-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
               "--metrics-export-port", str(free_port()), "--runtime-env-agent-port", str(free_port())]
    env = {**os.environ, "PYTHONPATH": PYTHONPATH, "RAY_AUTH_MODE": "disabled"}
    with open(Path(temp_dir) / "ray-start.log", "wb") as out:
        head = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{dashboard}"
    deadline, problem = time.monotonic() + 120, None
    try:
        while True:
            try:
                JobSubmissionClient(url).list_jobs()
                break
            except Exception as err:  # not up yet
                problem = err
            if head.poll() is not None or time.monotonic() > deadline:
                log = (Path(temp_dir) / "ray-start.log").read_text(errors="replace")[-2000:]
                pytest.skip(f"Ray's job submission cannot start here: {problem}\n{log}")
            time.sleep(0.5)
        yield url
    finally:
        left = _stop_ray(head, temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not _ray_processes(head.pid, temp_dir), "Ray processes were left running"
        print(f"stopped Ray; {len(left)} stray processes killed")


@pytest.fixture
def ray_jobs(ray_dashboard, tmp_path, monkeypatch):
    monkeypatch.setenv(launchers.RAY_ADDRESS_ENV, ray_dashboard)
    jm = JobManager(tmp_path / "runs")
    yield jm
    for info in jm.runs():
        if info.active:
            jm.cancel(info.id)
    wait_until(jm, lambda: not jm.active(), timeout=30)


def _timed_run(jm: JobManager, config: dict) -> tuple[str, float]:
    start = time.monotonic()
    run_id = jm.submit("fake_run_kinds:counting", config, label="count")
    wait_until(jm, lambda: not jm.get(run_id).active, timeout=90, every=0.05)
    return run_id, time.monotonic() - start


@pytest.mark.slow
def test_a_ray_job_runs_to_finished_with_progress_like_a_local_run(ray_jobs, tmp_path):
    config = {"steps": 20, "sleep": 0.05}
    start = time.monotonic()
    run_id = ray_jobs.submit("fake_run_kinds:counting", config, label="count")
    run_dir = ray_jobs.root / run_id
    assert json.loads((run_dir / "proc.json").read_text()) == {
        "launcher": "ray", "handle": run_id, "address": ray_jobs.launcher.address}
    seen = []
    # Another manager (a restarted server, local by default) follows the run through proc.json.
    other = JobManager(ray_jobs.root, launcher=LocalLauncher())
    wait_until(ray_jobs, lambda: seen.append(ray_jobs.get(run_id).step) or not ray_jobs.get(run_id).active,
               timeout=90, every=0.05)
    first_seconds = time.monotonic() - start
    info = ray_jobs.get(run_id)
    assert info.status == "finished", info.message
    assert info.step == 20 and info.total_steps == 20 and len(info.history) == 20
    assert any(0 < s < 20 for s in seen)  # progress was seen on the way
    assert info.checkpoint is not None
    assert "[drnn_demo.jobs]" in ray_jobs.log(run_id)  # the worker's output is in log.txt
    other.poll()
    assert other.get(run_id).status == "finished"
    wait_until(ray_jobs, lambda: ray_jobs.launcher.status(run_id)[0] == "SUCCEEDED", timeout=30)  # exiting

    _, ray_seconds = _timed_run(ray_jobs, config)
    _, local_seconds = _timed_run(JobManager(tmp_path / "local"), config)
    print(f"submit to finished, 20 steps of 0.05 s: Ray job {first_seconds:.2f} s (the first), {ray_seconds:.2f} s "
          f"(the next), local worker {local_seconds:.2f} s")


@pytest.mark.slow
def test_a_ray_job_is_cancelled_through_the_cancel_file(ray_jobs):
    run_id = ray_jobs.submit("fake_run_kinds:until_cancelled", {})
    wait_until(ray_jobs, lambda: ray_jobs.get(run_id).step > 3, timeout=90)
    other = JobManager(ray_jobs.root, launcher=LocalLauncher())
    other.poll()
    assert other.get(run_id).status == "running"  # alive as Ray says, not by a pid
    ray_jobs.cancel(run_id)
    wait_until(ray_jobs, lambda: not ray_jobs.get(run_id).active, timeout=30)
    info = ray_jobs.get(run_id)
    assert info.status == "cancelled", info.message
    wait_until(ray_jobs, lambda: ray_jobs.launcher.status(run_id)[0] in ("SUCCEEDED", "STOPPED"), timeout=30)


@pytest.mark.slow
def test_a_job_stopped_on_the_cluster_is_not_finished(ray_jobs):
    run_id = ray_jobs.submit("fake_run_kinds:deaf", {})
    wait_until(ray_jobs, lambda: ray_jobs.get(run_id).step >= 1, timeout=90)
    ray_jobs.launcher.stop(run_id)  # someone stops it with `ray job stop`
    wait_until(ray_jobs, lambda: not ray_jobs.get(run_id).active, timeout=60)
    info = ray_jobs.get(run_id)
    assert info.status in ("interrupted", "failed"), info.message


@pytest.mark.slow
def test_the_whole_grid_runs_on_the_cluster_as_one_run(ray_jobs, tmp_path):
    out = tmp_path / "results"
    pairs = len(experiment("sine").cells("tiny"))
    run_id = ray_jobs.submit(GRID_KIND, {"experiment": "sine", "budget": "tiny", "directory": str(out)},
                             label="sine (tiny) on the cluster", threads=1)
    wait_until(ray_jobs, lambda: not ray_jobs.get(run_id).active, timeout=300, every=0.5)
    info = ray_jobs.get(run_id)
    assert info.status == "finished", f"{info.message}\n{ray_jobs.log(run_id)[-3000:]}"
    assert info.step == pairs and info.total_steps == pairs
    assert len(load_results("sine", "tiny", out)) == pairs



@pytest.mark.slow
def test_cancelling_the_grid_cancels_its_pending_tasks(ray_jobs, tmp_path):
    out = tmp_path / "results"
    run_id = ray_jobs.submit(GRID_KIND, {"experiment": "reversal", "budget": "tiny", "directory": str(out)}, threads=1)
    wait_until(ray_jobs, lambda: ray_jobs.get(run_id).total_steps, timeout=120)  # the tasks are submitted
    ray_jobs.cancel(run_id)
    wait_until(ray_jobs, lambda: not ray_jobs.get(run_id).active, timeout=60)
    info = ray_jobs.get(run_id)
    assert info.status == "cancelled", f"{info.message}\n{ray_jobs.log(run_id)[-3000:]}"
    assert "interrupted: cancelled" in ray_jobs.log(run_id)  # the driver cancelled what was left
    wait_until(ray_jobs, lambda: ray_jobs.launcher.status(run_id)[0] in ("SUCCEEDED", "STOPPED"), timeout=30)


# ----------------------------------------------------------------------------- the Paper experiments page

PAGE = "views/paper_experiments.py"
CLUSTER_BUTTON = "Run the whole grid on the cluster"


def _fresh_page(monkeypatch, tmp_path):
    import streamlit as st
    from apptest_helpers import open_page

    monkeypatch.setenv("DRNN_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DRNN_RESULTS_DIR", str(tmp_path / "results"))  # the job gets it too: shipped results stay
    st.cache_resource.clear()  # the page's job manager is made again, with this environment's launcher
    try:
        return open_page(PAGE, query={"paper_exp": "Runtime (inference)"})
    finally:
        st.cache_resource.clear()


def test_without_a_cluster_the_page_offers_no_cluster_run(monkeypatch, tmp_path):
    at = _fresh_page(monkeypatch, tmp_path)
    assert not at.exception
    assert CLUSTER_BUTTON not in [b.label for b in at.button]


@pytest.mark.slow
def test_the_page_runs_the_whole_grid_on_the_cluster_and_follows_it(ray_dashboard, monkeypatch, tmp_path):
    import streamlit as st
    from apptest_helpers import rerun_until

    monkeypatch.setenv(launchers.RAY_ADDRESS_ENV, ray_dashboard)
    at = _fresh_page(monkeypatch, tmp_path)
    assert not at.exception
    start = time.monotonic()
    next(b for b in at.button if b.label == CLUSTER_BUTTON).click().run()
    assert not at.exception
    run_id = at.session_state["paper_run"]
    try:
        rerun_until(at, "paper_done", timeout=400)
    finally:
        st.cache_resource.clear()
    seconds = time.monotonic() - start
    jm = JobManager(tmp_path / "runs", launcher=LocalLauncher())
    info = jm.get(run_id)
    pairs = len(experiment("runtime").cells("small"))
    assert info.kind == GRID_KIND and info.status == "finished", f"{info.message}\n{jm.log(run_id)[-3000:]}"
    assert (info.step, info.total_steps) == (pairs, pairs)
    assert len(load_results("runtime", "small", tmp_path / "results")) == pairs
    assert not at.exception and any("finished" in s.value for s in at.success)
    assert len(at.dataframe[0].value) == pairs  # the page shows what the grid stored
    print(f"runtime (small) grid of {pairs} pairs on the cluster, from the click to the page: {seconds:.1f} s")
