"""The worker processes: launching one, telling whether a pid is still a run's worker, killing, reaping.

A worker is ``python -m drnn_demo.jobs RUN_DIR`` (:data:`WORKER_MODULE`; the entry point is
``drnn_demo/jobs/__main__.py``, the code :mod:`drnn_demo.jobs.worker`), started by
:func:`launch_worker` with the run's ``threads`` as its OpenMP / MKL thread cap and its stdout
and stderr appended to the run's ``log.txt``. This is the default launcher's way
(:class:`drnn_demo.jobs.launchers.LocalLauncher`); a Ray job is the other
(:class:`~drnn_demo.jobs.launchers.RayJobLauncher`), whose liveness Ray tells.

Liveness
    A run counts as alive while its process exists *and* is this run's worker: the manager that
    launched it holds its ``Popen``; any other manager (e.g. after a server restart) asks psutil
    (:func:`recorded_liveness`, :func:`identify_worker`), and a pid counts only if the process is
    not a zombie, its command line holds ``drnn_demo.jobs`` and the run directory, and its start
    time matches the recorded ``pid_start`` (within :data:`PID_START_TOLERANCE`). A recorded
    integer ``pid_start`` (clock ticks, written by older versions) cannot be compared: such a worker
    counts as alive only while its heartbeat is younger than :data:`STALE_AFTER`. The launching
    manager reaps each worker as soon as it exits (:func:`start_reaper`: a daemon thread waits on
    it), so no zombie waits for a page to poll. What the manager writes when a worker is gone is
    described in :mod:`drnn_demo.jobs`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from ..fileio import JSONFileError
from .layout import (
    HEARTBEAT_FILE,
    LOG_FILE,
    MAX_PID_JSON_BYTES,
    PROC_FILE,
    check_pid_record,
    open_append,
    read_run_json,
)

WORKER_MODULE = "drnn_demo.jobs"  # launched as `python -m WORKER_MODULE RUN_DIR`; identified by it too
STALE_AFTER = 15.0  # a heartbeat older than this, with no verifiable process, means the worker is gone
PID_START_TOLERANCE = 1.5  # seconds: psutil's start times of one process may differ by a boot-time rounding
EXEC_GRACE = 0.1  # seconds to wait for the command line of a process that is still in exec()


# ----------------------------------------------------------------------------- launching and reaping


def worker_env(threads: int) -> dict[str, str]:
    """What a worker's environment adds: unbuffered output, OpenMP / MKL capped at ``threads``."""
    threads = str(threads)
    return {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def popen_worker(run_dir: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start the worker of the run in ``run_dir`` with ``env`` on top of this environment
    (``OSError`` when it cannot be started); its stdout and stderr go to ``log.txt`` (opened
    without following a symbolic link), its stdin is empty."""
    with open_append(run_dir / LOG_FILE) as log:
        return subprocess.Popen([sys.executable, "-m", WORKER_MODULE, os.path.abspath(run_dir)],
                                env={**os.environ, **env}, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)


def launch_worker(run_dir: Path, threads: int) -> subprocess.Popen:
    """Start the worker of the run in ``run_dir``, OpenMP / MKL capped at ``threads`` (see :func:`popen_worker`)."""
    return popen_worker(run_dir, worker_env(threads))


def start_reaper(proc: subprocess.Popen) -> float | None:
    """Reap ``proc`` as soon as it exits (a daemon thread waits on it); returns its start time,
    read first: a zombie still has its start time, a reaped process none."""
    start = process_start_time(proc.pid)
    threading.Thread(target=proc.wait, daemon=True, name=f"reap worker {proc.pid}").start()
    return start


def reap(proc: subprocess.Popen, timeout: float = 5) -> None:
    """Wait up to ``timeout`` seconds for ``proc`` to exit (and reap it)."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)


def describe_exit(returncode: int) -> str:
    """``"exited with code 1"``, ``"was killed by SIGKILL"``: how a worker ended, for messages."""
    how = f"exited with code {returncode}"
    if returncode < 0:
        with contextlib.suppress(ValueError):
            how = f"was killed by {signal.Signals(-returncode).name}"
    return how


# ----------------------------------------------------------------------------- identifying a worker


def process_start_time(pid: int) -> float | None:
    """When process ``pid`` started (``psutil.Process.create_time()``, Unix seconds), or None."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError, ValueError, OverflowError):
        return None


def _is_worker_cmdline(cmdline: list[str], run_dir: Path) -> bool:
    """Is this the command line of ``python -m drnn_demo.jobs <run_dir>``?"""
    if WORKER_MODULE not in cmdline or len(cmdline) < 2:
        return False
    last = cmdline[-1]
    return last in (str(run_dir), os.path.abspath(run_dir)) or os.path.realpath(last) == os.path.realpath(run_dir)


def identify_worker(pid: int, pid_start: float | int | None, run_dir: Path) -> tuple[str, str]:
    """Is ``pid`` the worker of the run in ``run_dir`` that started at ``pid_start``?

    Returns ``(verdict, reason)``: ``"alive"`` (it is), ``"gone"`` (no such process, or a zombie:
    it has exited), ``"other"`` (a different process now has this pid, one we may not inspect, or
    no start time was recorded to tell) or ``"unknown"`` (the command line matches but the
    recorded start time is an old integer one that cannot be compared). ``reason`` explains any
    verdict but ``"alive"``. An empty command line (a worker still in ``exec()``, right after its
    launch) is read again for up to :data:`EXEC_GRACE` seconds before it counts as another program.
    """
    try:
        process = psutil.Process(pid)
        deadline = time.monotonic() + EXEC_GRACE
        while True:
            with process.oneshot():
                if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                    return "gone", f"pid {pid} has exited"
                cmdline = process.cmdline()
                created = process.create_time()
            # A process in the middle of exec() shows an empty command line for a moment (Popen returns
            # before the new program's arguments are in place); a kernel thread shows one for ever.
            if cmdline or time.monotonic() > deadline:
                break
            time.sleep(0.002)
    except psutil.NoSuchProcess:  # includes ZombieProcess
        return "gone", f"pid {pid} no longer exists"
    except psutil.AccessDenied:  # our workers run as our user, so we can always inspect them
        return "other", f"pid {pid} belongs to another user: it is not this run's worker"
    except (psutil.Error, OSError, ValueError, OverflowError) as err:
        return "other", f"pid {pid} cannot be inspected ({err})"
    if not _is_worker_cmdline(cmdline, run_dir):
        return "other", f"pid {pid} is another program, not this run's worker (the pid was reused)"
    if pid_start is None:
        return "other", f"no start time was recorded for pid {pid}, so it cannot be told apart from a reused pid"
    if isinstance(pid_start, int):
        return "unknown", f"pid {pid}'s recorded start time is in an old format"
    if abs(created - pid_start) > PID_START_TOLERANCE:
        return "other", f"pid {pid} started at {created:.2f}, not at the recorded {pid_start:.2f} (the pid was reused)"
    return "alive", ""


def read_pid_record(run_dir: Path) -> tuple[int | None, float | int | None, float | None, str | None]:
    """``(pid, pid start, last heartbeat time, problem)`` as published by the manager
    (proc.json) and the worker (heartbeat.json); ``problem`` says why a file was unusable."""
    records, problems = {}, []
    for name in (PROC_FILE, HEARTBEAT_FILE):
        try:
            records[name] = check_pid_record(read_run_json(run_dir, name, MAX_PID_JSON_BYTES), name)
        except FileNotFoundError:
            records[name] = {}
        except JSONFileError as err:
            records[name] = {}
            problems.append(str(err))
    proc, beat = records[PROC_FILE], records[HEARTBEAT_FILE]
    pid = proc.get("pid") or beat.get("pid")
    start = next((r["pid_start"] for r in (proc, beat)
                  if pid is not None and r.get("pid") == pid and r["pid_start"] is not None), None)
    beat_time = beat.get("time") if beat.get("pid") in (None, pid) else None
    return pid, start, beat_time, "; ".join(problems) or None


def recorded_pid(run_dir: Path) -> int | None:
    """The worker pid in ``proc.json``, or None (missing or damaged)."""
    with contextlib.suppress(FileNotFoundError, JSONFileError):
        return check_pid_record(read_run_json(run_dir, PROC_FILE, MAX_PID_JSON_BYTES), PROC_FILE)["pid"]
    return None


def recorded_liveness(run_dir: Path) -> tuple[str, str]:
    """``(verdict, reason)`` about the worker recorded in ``proc.json`` / ``heartbeat.json``:
    ``"alive"``, ``"gone"`` (it has exited) or ``"other"`` (the recorded pid is not this run's
    worker, or none was recorded: reason says why). An old integer start time is vouched for only
    by a heartbeat younger than :data:`STALE_AFTER`."""
    pid, start, beat, problem = read_pid_record(run_dir)
    if pid is None:
        return "other", problem or "no worker pid was recorded"
    verdict, reason = identify_worker(pid, start, run_dir)
    if verdict == "unknown":  # an old integer start time: only a fresh heartbeat vouches for it
        age = time.time() - (beat or 0.0)
        if age < STALE_AFTER:
            return "alive", ""
        return "other", f"{reason}, and there is no heartbeat of the last {STALE_AFTER:g} s"
    return verdict, reason


# ----------------------------------------------------------------------------- killing


def kill_launched(proc: subprocess.Popen) -> None:
    """SIGKILL a worker this process launched (if it is still running) and reap it."""
    if proc.poll() is None:
        proc.kill()
        reap(proc)


def kill_recorded(run_dir: Path) -> None:
    """SIGKILL the worker recorded for ``run_dir``, if it is still the same process (verified as
    for liveness), and wait up to 5 s for it to be gone."""
    pid, start, _, _ = read_pid_record(run_dir)
    try:
        process = psutil.Process(pid) if pid is not None else None  # before the check: see kill()
    except (psutil.Error, OSError, ValueError, OverflowError):
        return
    if process is None or identify_worker(pid, start, run_dir)[0] not in ("alive", "unknown"):
        return  # "unknown": the command line names this run's directory, so it is our worker
    with contextlib.suppress(psutil.Error, OSError):
        process.kill()  # psutil refuses if the pid now belongs to a process started after `process`
    deadline = time.monotonic() + 5
    while identify_worker(pid, start, run_dir)[0] in ("alive", "unknown") and time.monotonic() < deadline:
        time.sleep(0.02)
