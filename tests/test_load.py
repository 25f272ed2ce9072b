"""Load: several sessions start many runs at once while the app server is up. Active workers stay
within the cap (the rest queue, with positions), a long run's history stays bounded for display,
and the server answers its health check throughout."""

import os
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from app_server import start_app, stop_app

from drnn_demo.jobs import HISTORY_POINTS, STATE_FILE, JobManager

ROOT = Path(__file__).parents[1]
CAP, SESSIONS, RUNS_PER_SESSION = 2, 3, 4


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("DRNN_MAX_RUNS", str(CAP))
    return tmp_path / "runs"


@pytest.fixture
def server(runs_dir, tmp_path):
    """The app on 127.0.0.1, sharing the runs directory and the cap; yields its base URL."""
    proc, base, _ = start_app(runs_dir, tmp_path / "server.log")
    yield base
    stop_app(proc)


class HealthProbe(threading.Thread):
    """Asks /_stcore/health every 0.2 s; records failures and the slowest answer."""

    def __init__(self, base: str):
        super().__init__(daemon=True)
        self.base, self.stop, self.failures, self.slowest, self.answers = base, threading.Event(), [], 0.0, 0

    def run(self):
        while not self.stop.is_set():
            start = time.perf_counter()
            try:
                ok = urllib.request.urlopen(self.base + "/_stcore/health", timeout=5).read() == b"ok"
                self.answers += ok
                if not ok:
                    self.failures.append("not ok")
            except OSError as e:
                self.failures.append(repr(e))
            self.slowest = max(self.slowest, time.perf_counter() - start)
            self.stop.wait(0.2)


def test_many_runs_from_several_sessions_stay_within_the_cap_while_the_server_answers(server, runs_dir):
    probe = HealthProbe(server)
    probe.start()
    sessions = [JobManager(runs_dir) for _ in range(SESSIONS)]
    ids = [s.submit("fake_run_kinds:counting", {"steps": 15, "sleep": 0.05}, label=f"session {i} run {k}")
           for i, s in enumerate(sessions) for k in range(RUNS_PER_SESSION)]
    most_running, saw_queue = 0, False
    deadline = time.time() + 180
    watcher = sessions[0]
    while time.time() < deadline:
        for s in sessions:
            s.poll()
        infos = [watcher.get(i) for i in ids]
        running = [i for i in infos if i.status == "running"]
        queued = [i for i in infos if i.status == "queued"]
        most_running = max(most_running, len(running))
        assert len(running) <= CAP, [i.label for i in running]
        if queued:
            saw_queue = True
            assert sorted(i.queue_position for i in queued) == list(range(1, len(queued) + 1))
        if not any(i.active for i in infos):
            break
        time.sleep(0.1)
    probe.stop.set()
    probe.join()
    assert [watcher.get(i).status for i in ids] == ["finished"] * len(ids)
    assert most_running == CAP and saw_queue
    assert not probe.failures and probe.answers > 10, probe.failures[:3]
    print(f"\n{len(ids)} runs, at most {most_running} at once; health answered {probe.answers} times, "
          f"slowest {probe.slowest:.2f} s")


def test_a_long_run_keeps_a_bounded_history_for_display(runs_dir):
    jobs = JobManager(runs_dir)
    run_id = jobs.submit("fake_run_kinds:counting", {"steps": 20_000, "sleep": 0.0}, label="long")
    deadline = time.time() + 120
    while jobs.get(run_id).active and time.time() < deadline:
        time.sleep(0.2)
        jobs.poll()
    info = jobs.get(run_id)
    assert info.status == "finished" and info.step == 20_000
    assert len(info.history) <= HISTORY_POINTS
    assert info.history[0]["step"] == 1 and info.history[-1]["step"] == 20_000
    assert (runs_dir / run_id / STATE_FILE).stat().st_size < 200_000  # what the pages read stays small
