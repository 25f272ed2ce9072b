"""Launchers: where a run's worker runs. Local processes by default, Ray jobs past one machine.

A launcher starts the worker ``python -m drnn_demo.jobs RUN_DIR`` and answers for it:
``launch(run_dir, env, cpus) -> handle``, ``alive(handle) -> bool | None`` (None: it cannot tell),
``stop(handle)``, and ``record(handle)``, what :class:`~drnn_demo.jobs.JobManager` writes to
``proc.json`` so that another manager (a restarted server) finds the worker again. Everything
else stays as it is whoever launched the worker: the worker writes ``state.json``,
``progress.jsonl`` and ``heartbeat.json`` into the run directory and stops when the ``cancel``
file appears, so progress, cancel and the pages do not know where it runs.

:class:`LocalLauncher` (the default) is what :mod:`drnn_demo.jobs.process` does: a ``Popen``, its
output appended to ``log.txt``, liveness by the ``Popen`` or psutil, a kill by SIGKILL.

:class:`RayJobLauncher` (``$DRNN_RAY_ADDRESS`` set to a Ray dashboard's address, e.g.
``http://HEAD:8265``) submits the worker as a Ray job through Ray's job submission API
(``ray.job_submission.JobSubmissionClient``: plain HTTP, so the server holds no Ray driver), the
submission id being the run id; it needs ``ray[default]`` on the server and a cluster started with
its dashboard. The job's environment is the Ray node's, plus the run's thread caps and the server's
``DRNN_*`` settings (:func:`forwarded_env`); its output is appended to ``log.txt`` as a local
worker's. ``proc.json`` is then ``{"launcher": "ray", "handle": <run id>, "address": ...}``.
The job runs the server's own ``sys.executable``, so every node needs the same venv at the same
path, and the run directory must be on a filesystem all the cluster's nodes share (on one machine
it is; on several, put ``$DRNN_RUNS_DIR`` on NFS or the like). A job asks Ray for as many CPUs as
the run's ``threads``, so Ray places it on a node with room, and waits (``PENDING``, still alive
here) while there is none.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from ..fileio import JSONFileError
from .layout import LOG_FILE, MAX_PID_JSON_BYTES, PROC_FILE, open_append, read_run_json
from .process import STALE_AFTER, WORKER_MODULE, kill_launched, popen_worker, read_pid_record, start_reaper

RAY_ADDRESS_ENV = "DRNN_RAY_ADDRESS"  # a Ray dashboard address: background runs become Ray jobs
RAY_ALIVE = ("PENDING", "RUNNING")  # Ray job statuses of a worker that is (or will be) running
GRID_KIND = "drnn_demo.jobs.launchers:run_reproduce_grid"  # a whole experiment's grid, driven from a Ray job
# Ray's job client has no timeout of its own: the manager (page polls, under its lock) waits this long at most.
ASK_TIMEOUT, SUBMIT_TIMEOUT, MAX_HUNG_CALLS = 5.0, 60.0, 4


class Launcher(Protocol):
    """Starts and answers for the workers of runs (see the module's description)."""

    kind: str

    def launch(self, run_dir: Path, env: dict[str, str], cpus: float = 1) -> Any: ...

    def record(self, handle: Any) -> dict: ...

    def alive(self, handle: Any) -> bool | None: ...

    def stop(self, handle: Any) -> None: ...


class LocalLauncher:
    """A worker process on this machine (today's behaviour): ``handle`` is its ``Popen``."""

    kind = "local"

    def launch(self, run_dir: Path, env: dict[str, str], cpus: float = 1) -> subprocess.Popen:
        """Start the worker (``OSError`` when it cannot): :func:`~drnn_demo.jobs.process.popen_worker`."""
        return popen_worker(run_dir, env)

    def record(self, handle: subprocess.Popen) -> dict:
        """``{"pid", "pid_start"}``; also starts the thread that reaps the worker when it exits."""
        return {"pid": handle.pid, "pid_start": start_reaper(handle)}

    def alive(self, handle: subprocess.Popen) -> bool:
        return handle.poll() is None

    def stop(self, handle: subprocess.Popen) -> None:
        kill_launched(handle)


def forwarded_env() -> dict[str, str]:
    """The server's ``DRNN_*`` settings (``$DRNN_RESULTS_DIR`` ...), which a Ray job gets as a local
    worker would; ``$DRNN_RAY_ADDRESS`` stays behind. The rest of a job's environment is the Ray node's."""
    return {k: v for k, v in os.environ.items() if k.startswith("DRNN_") and k != RAY_ADDRESS_ENV}


class RayJobLauncher:
    """A worker as a Ray job on the cluster whose dashboard is at ``address``: ``handle`` is the
    submission id (the run id). Ray is imported only when the first client is made."""

    kind = "ray"

    def __init__(self, address: str):
        if not isinstance(address, str) or not address.strip():
            raise ValueError(f"a Ray dashboard address is needed, got {address!r}")
        self.address = address.strip()
        self._client = None
        self._lock = threading.Lock()
        self._hung = 0  # calls still waiting for a cluster that did not answer in time
        self._hung_lock = threading.Lock()

    def client(self):
        """The ``JobSubmissionClient`` (made once; it checks that the dashboard answers). A cluster
        with token authentication needs the token here too (``~/.ray/auth_token`` or
        ``$RAY_AUTH_TOKEN``), as for ``reproduce --backend ray --address``."""
        with self._lock:
            if self._client is None:
                from ..ray_backend import prepare_environment

                prepare_environment(self.address)  # token mode when a token is found: read as Ray is imported
                from ray.job_submission import JobSubmissionClient

                self._client = JobSubmissionClient(self.address)
            return self._client

    def _call(self, timeout: float, method: str, *args, **kwargs):
        """``client().method(*args, **kwargs)``, given up after ``timeout`` seconds (``TimeoutError``;
        the call goes on in a daemon thread, and at most :data:`MAX_HUNG_CALLS` are left so)."""
        with self._hung_lock:
            if self._hung >= MAX_HUNG_CALLS:
                raise TimeoutError(f"{self._hung} calls are still waiting for an answer")
        result: dict = {}

        def call() -> None:
            try:
                value = getattr(self.client(), method)(*args, **kwargs)
            except BaseException as err:  # handed to the caller
                value = err
            with self._hung_lock:
                result["done"] = value
                if result.get("late"):
                    self._hung -= 1

        thread = threading.Thread(target=call, daemon=True, name=f"ray job {method}")
        thread.start()
        thread.join(timeout)
        with self._hung_lock:
            if "done" not in result:
                result["late"] = True
                self._hung += 1
                raise TimeoutError(f"no answer within {timeout:g} s")
        if isinstance(result["done"], BaseException):
            raise result["done"]
        return result["done"]

    def launch(self, run_dir: Path, env: dict[str, str], cpus: float = 1) -> str:
        """Submit the worker of ``run_dir`` as the job named after the run (``OSError`` when the
        cluster refuses it or cannot be reached). Its output is appended to ``log.txt`` too."""
        run_dir = Path(os.path.abspath(run_dir))
        with open_append(run_dir / LOG_FILE):  # created here as a regular file (a link is refused)
            pass
        log = shlex.quote(str(run_dir / LOG_FILE))
        entrypoint = f"{shlex.quote(sys.executable)} -m {WORKER_MODULE} {shlex.quote(str(run_dir))} >> {log} 2>&1"
        try:
            return self._call(SUBMIT_TIMEOUT, "submit_job", entrypoint=entrypoint, submission_id=run_dir.name,
                              runtime_env={"env_vars": {**forwarded_env(), **env}}, entrypoint_num_cpus=cpus,
                              metadata={"drnn_demo_run": run_dir.name})
        except Exception as err:  # ConnectionError, RuntimeError from the dashboard, ImportError ...
            raise OSError(f"the Ray cluster at {self.address} did not take the job: {err}") from err

    def record(self, handle: str) -> dict:
        return {"launcher": self.kind, "handle": handle, "address": self.address}

    def status(self, handle: str) -> tuple[str | None, str]:
        """``(Ray job status, message)``; ``(None, why)`` when the cluster cannot be asked."""
        try:
            info = self._call(ASK_TIMEOUT, "get_job_info", handle)
        except Exception as err:
            return None, f"the Ray cluster at {self.address} cannot be asked about job {handle}: {err}"
        status = getattr(info.status, "value", str(info.status))
        return status, f"Ray job {handle} is {status}" + (f": {info.message}" if info.message else "")

    def alive(self, handle: str) -> bool | None:
        """True while the job is PENDING or RUNNING, False once it has ended, None when Ray cannot tell."""
        status, _ = self.status(handle)
        return None if status is None else status in RAY_ALIVE

    def stop(self, handle: str) -> None:
        """Ask Ray to stop the job (SIGTERM, then SIGKILL after Ray's grace period); errors are ignored."""
        with contextlib.suppress(Exception):
            self._call(ASK_TIMEOUT, "stop_job", handle)


def ray_liveness(run_dir: Path, launcher: RayJobLauncher, handle: str) -> tuple[str, str]:
    """The manager's ``(verdict, reason)`` about a Ray job: ``"alive"`` while it is PENDING or RUNNING;
    ended (with no final state written, or the manager would not ask) is ``"other"``, so the run is
    failed with Ray's message as the reason; when Ray cannot be asked, alive while the worker's
    heartbeat is younger than :data:`~drnn_demo.jobs.process.STALE_AFTER`, then ``"gone"`` (interrupted)."""
    status, why = launcher.status(handle)
    if status in RAY_ALIVE:
        return "alive", ""
    if status is not None:
        return "other", why
    _, _, beat, _ = read_pid_record(run_dir)
    return ("alive", "") if time.time() - (beat or 0.0) < STALE_AFTER else ("gone", why)


def launcher_from_env() -> LocalLauncher | RayJobLauncher:
    """A :class:`RayJobLauncher` when ``$DRNN_RAY_ADDRESS`` is set (and not blank), else a :class:`LocalLauncher`."""
    address = os.environ.get(RAY_ADDRESS_ENV, "").strip()
    return RayJobLauncher(address) if address else LocalLauncher()


def recorded_launch(run_dir: Path) -> dict | None:
    """``{"launcher", "handle", "address"}`` from ``proc.json`` when a non-local launcher wrote it, else None."""
    with contextlib.suppress(FileNotFoundError, JSONFileError):
        data = read_run_json(run_dir, PROC_FILE, MAX_PID_JSON_BYTES)
        if data.get("launcher") == RayJobLauncher.kind and all(
                isinstance(data.get(k), str) and data[k] for k in ("handle", "address")):
            return {k: data[k] for k in ("launcher", "handle", "address")}
    return None


# ----------------------------------------------------------------------------- the reproduce_grid kind

_DONE = re.compile(r"^\[(\d+)/(\d+) done\]")
_TOTAL = re.compile(r": (\d+) \(cell, seed\) pairs to run on ")


def run_reproduce_grid(config: dict, on_progress, should_stop, run_dir: Path) -> dict:
    """The grid run kind (:data:`GRID_KIND`): ``reproduce EXP --budget B --backend ray`` in the worker.

    ``config``: ``experiment``, ``budget``, optional ``address`` (the cluster's GCS address; inside a
    Ray job Ray's own ``RAY_ADDRESS`` is used, so the grid runs on the cluster that runs the job) and
    ``directory``. Progress is (cell, seed) pairs done / total; a cancel interrupts the driver, which
    cancels the pending tasks (the results recorded so far stay).
    """
    import _thread

    from ..ray_backend import run_experiment_ray

    name, budget = config["experiment"], config.get("budget", "small")
    address = config.get("address") or os.environ.get("RAY_ADDRESS") or "auto"
    directory = Path(config["directory"]) if config.get("directory") else None
    total = [None]

    def log(line: str) -> None:
        print(line, flush=True)
        if (m := _TOTAL.search(line)) is not None:
            total[0] = int(m.group(1))
            on_progress({"step": 0, "total_steps": total[0]})
        elif (m := _DONE.match(line)) is not None:
            on_progress({"step": int(m.group(1)), "total_steps": int(m.group(2)), "message": line})

    finished = threading.Event()

    def watch() -> None:  # a cancel becomes Ctrl-C in the driver, which then cleans up after itself
        while not finished.wait(0.2):
            if should_stop():
                _thread.interrupt_main()
                return

    threading.Thread(target=watch, daemon=True, name="grid cancel").start()
    start = time.monotonic()
    try:
        run = run_experiment_ray(name, budget, address=address, directory=directory, log=log)
    except KeyboardInterrupt:
        return {"status": "cancelled", "message": f"{name} ({budget}): cancelled; the results recorded so far stay"}
    finally:
        finished.set()
    failed = f", {len(run.failed)} failed" if run.failed else ""
    return {"status": "finished",
            "message": f"{name} ({budget}): {run.ran} (cell, seed) pairs run on Ray{failed}, "
                       f"{len(run.rows)} stored, in {time.monotonic() - start:.0f} s",
            "metrics": {"pairs_run": run.ran, "pairs_failed": len(run.failed), "rows": len(run.rows)}}
