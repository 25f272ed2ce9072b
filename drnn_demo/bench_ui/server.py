"""The UI benchmark's servers: the app and the bare page under ``streamlit run``, and the load on them.

:func:`servers` starts both with this Python and the test suite's flags (:data:`SERVER_FLAGS`: 127.0.0.1,
headless, no file watcher, no usage stats) in a temporary ``DRNN_RUNS_DIR`` and waits until both answer
``/_stcore/health``; :func:`training_run` trains one background run on the app's runs directory (for
``--while-training``), started the way a page starts one.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .pages import BARE_PAGE

SERVER_FLAGS = ["--server.headless", "true", "--server.fileWatcherType", "none", "--browser.gatherUsageStats",
                "false", "--server.address", "127.0.0.1"]


def _free_ports(n: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    base: str
    log: Path
    ready: float = 0.0  # seconds until /_stcore/health answered

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def start_server(name: str, script: Path, port: int, env: dict, log: Path) -> Server:
    """``python -m streamlit run script`` (this Python) on 127.0.0.1:port, from the script's directory."""
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", script.name, "--server.port", str(port),
                                 *SERVER_FLAGS], cwd=script.parent, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    return Server(name, proc, f"http://127.0.0.1:{port}", log)


def wait_healthy(servers: list[Server], timeout: float = 120) -> None:
    start = time.monotonic()
    pending = list(servers)
    while pending:
        for server in list(pending):
            if server.proc.poll() is not None:
                raise RuntimeError(f"the {server.name} server exited ({server.proc.returncode}):\n{server.log_tail()}")
            try:
                if urllib.request.urlopen(server.base + "/_stcore/health", timeout=2).read() == b"ok":
                    server.ready = time.monotonic() - start
                    pending.remove(server)
            except OSError:
                pass
        if pending:
            if time.monotonic() - start > timeout:
                raise RuntimeError(f"the {pending[0].name} server never became healthy:\n{pending[0].log_tail()}")
            time.sleep(0.2)


@contextlib.contextmanager
def servers(app: Path, workdir: Path) -> Iterator[tuple[Server, Server, Path]]:
    """The app and the bare page, started together with the same Python; yields (app, bare, runs dir)."""
    runs = workdir / "runs"
    runs.mkdir()
    bare_script = workdir / "bare" / "bare_page.py"
    bare_script.parent.mkdir()
    bare_script.write_text(BARE_PAGE)
    env = dict(os.environ, DRNN_RUNS_DIR=str(runs),
               PYTHONPATH=os.pathsep.join(filter(None, [str(app.parent), os.environ.get("PYTHONPATH")])))
    app_port, bare_port = _free_ports(2)
    started = []
    try:
        started.append(start_server("app", app, app_port, env, workdir / "app.log"))
        started.append(start_server("bare", bare_script, bare_port, env, workdir / "bare.log"))
        wait_healthy(started)
        yield started[0], started[1], runs
    finally:
        for server in started:
            server.stop()


@contextlib.contextmanager
def training_run(runs: Path, log=print) -> Iterator[dict]:
    """One reversal LSTM training in the background (100,000 steps: it outlasts the pass), started by a
    JobManager on the app's runs directory exactly as a page starts one; cancelled on exit."""
    from ..jobs import JobManager
    from ..pretrained import BUDGET, REVERSAL
    from ..training import TrainConfig

    jobs = JobManager(runs)
    config = TrainConfig(task="reversal", task_args=dict(REVERSAL),
                         model={"core": "delayed", "core_args": {"hidden_size": 64, "delay": 9, "cell": "lstm"}},
                         steps=100_000, eval_every=1000, patience=0, seed=0, device="cpu", lr=BUDGET["reversal"]["lr"])
    run_id = jobs.submit("train", config.to_dict(), label="bench-ui background run")
    info = {"run_id": run_id, "config": "reversal, delayed LSTM h=64 d=9, batch 64, 100,000 steps, 1 thread"}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # measure only once it trains (torch imported, first steps done)
            jobs.poll()
            run = jobs.get(run_id)
            if not run.active:
                raise RuntimeError(f"the background run ended before the pass: {run.status} {run.message}")
            if run.step and run.step > 0:
                break
            time.sleep(0.5)
        start_step, start = jobs.get(run_id).step or 0, time.monotonic()
        log(f"  background run {run_id} training (step {start_step})")
        yield info
        jobs.poll()
        run = jobs.get(run_id)
        info["steps_per_s"] = ((run.step or 0) - start_step) / max(time.monotonic() - start, 1e-9)
        info["status_at_end"] = run.status
    finally:
        jobs.cancel(run_id)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            jobs.poll()
            if not jobs.get(run_id).active:
                break
            time.sleep(0.3)
