"""Start and stop a real `streamlit run app.py` on 127.0.0.1 for the browser and load tests."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(runs_dir: Path, log_path: Path, timeout: float = 90) -> tuple[subprocess.Popen, str, float]:
    """The app serving runs from ``runs_dir``; returns (process, base URL, seconds until /_stcore/health
    answered). Raises RuntimeError (after killing it) if it never becomes healthy."""
    port = free_port()
    env = dict(os.environ, DRNN_RUNS_DIR=str(runs_dir), PYTHONPATH=os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    start = time.time()
    while time.time() - start < timeout:
        try:
            if urllib.request.urlopen(base + "/_stcore/health", timeout=2).read() == b"ok":
                return proc, base, time.time() - start
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"the app server never became healthy (log: {log_path})")


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
