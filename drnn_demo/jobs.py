"""Background runs: one worker process per run, progress published in files, runs kept on disk.

A page submits a run and polls it; the run trains in its own Python process, so a crash, a
divergence or a hung kernel cannot take the server down, and a cancel is honoured within about a
second (the worker checks a flag file) or enforced two seconds later (the process is killed).

Usage (no Streamlit here; the app shares one manager through ``st.cache_resource``)::

    jobs = JobManager()                          # runs dir: $DRNN_RUNS_DIR or <project>/runs
    run_id = jobs.submit("train", config, label="reversal d=19", page="views/delayed.py",
                         params={"task": "reversal", "delay": "19"})
    jobs.poll()                                  # on every page poll: start queued runs, mark dead ones
    info = jobs.get(run_id)                      # RunInfo: status, fraction, eta, history, checkpoint ...
    jobs.cancel(run_id); jobs.delete(run_id)

Run kinds
    ``kind`` names a function ``fn(config, on_progress, should_stop, run_dir) -> result`` that the
    worker calls. It is either a key of :data:`RUN_KINDS` (add a line there for a built-in kind) or
    a dotted reference ``"package.module:function"`` that the worker imports (this is how tests
    register fake kinds without touching the registry). Kinds are code references chosen by the
    pages, never text typed by a user. ``on_progress`` takes a
    :class:`drnn_demo.training.Progress` (or any object or dict with ``step``, ``total_steps``,
    ``loss``, ``metrics``, ``elapsed``); ``should_stop()`` turns true when the run is cancelled or
    its loss became non-finite. ``result`` is a dict: ``status`` (finished | early_stopped |
    diverged | cancelled; default finished), ``message``, ``metrics``, ``checkpoint`` (path of a
    ``.safetensors`` file inside ``run_dir`` whose ``.json`` card sits beside it, or None). An
    exception is a ``failed`` run whose traceback is in ``log.txt``. ``submit(..., files=...)``
    puts input files (an uploaded checkpoint, say) into ``run_dir`` before the run is queued.

Files of a run, ``<root>/<run_id>/``
    ============== ==================================================================================
    run.json       what to run: id, kind, config, label, page, params, threads, created (written once,
                   after everything else, so a directory without it is not a run yet)
    state.json     status, step, metrics, downsampled history, times (always replaced atomically)
    progress.jsonl every progress point, one JSON object per line (append-only; a torn last line is
                   skipped by readers)
    heartbeat.json ``{pid, pid_start, time}``, rewritten by the worker every second
    proc.json      ``{pid, pid_start}``, written by the manager right after the launch
    cancel         present when a cancel was requested (contains the request time)
    log.txt        the worker's stdout and stderr: tracebacks land here
    model.*        the checkpoint, if the kind saved one
    (other)        input files given to :meth:`JobManager.submit` as ``files``
    ============== ==================================================================================
    ``pid_start`` is the process's start time as ``psutil.Process.create_time()`` (Unix seconds,
    a float).

Who writes ``state.json``: the manager before the launch (queued, then running) and after the
worker is gone (failed, interrupted, cancelled); the worker in between. A run counts as alive
while its process exists *and* is this run's worker: the manager that launched it holds its
``Popen``; any other manager (e.g. after a server restart) asks psutil, and a pid counts only if
the process is not a zombie, its command line holds ``drnn_demo.jobs`` and the run directory, and
its start time matches the recorded ``pid_start`` (within :data:`PID_START_TOLERANCE`). A recorded
integer ``pid_start`` (clock ticks, written by older versions) cannot be compared: such a worker
counts as alive only while its heartbeat is younger than :data:`STALE_AFTER`. A running run whose
process is gone without a final state becomes ``failed`` when this manager saw it exit (exit code
or signal in the message) or when its pid now belongs to some other process (a reused pid, pid 1,
a missing start time: the message says which), and ``interrupted`` when the process is simply gone
(e.g. after a server restart): never ``finished``. The launching manager reaps each worker as soon
as it exits (a daemon thread waits on it), so no zombie waits for a page to poll.

Damaged runs
    Every file of a run is read as untrusted (bounded size and depth, no symbolic links, regular
    files only) and every field used is type-checked. A run whose ``run.json`` or ``state.json``
    cannot be used is listed with status ``corrupt`` and the reason as its message (it is never
    launched, polled or counted as active, and it can be deleted); a symlinked run directory is
    not a run at all. A checkpoint recorded outside the run directory, or one that is a symbolic
    link, is refused: the run's ``checkpoint`` is None and its message says why.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import io
import json
import math
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import traceback
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO

import psutil

from .fileio import JSONFileError, loads_json
from .fileio import field as json_field

STATUSES = ("queued", "running", "finished", "early_stopped", "diverged", "cancelled", "failed", "interrupted",
            "corrupt")
ACTIVE_STATUSES = ("queued", "running")
FINAL_STATUSES = tuple(s for s in STATUSES if s not in ACTIVE_STATUSES)
KIND_STATUSES = ("finished", "early_stopped", "diverged", "cancelled")  # what a kind may return

HISTORY_POINTS = 500  # at most this many progress points in state.json (for plotting)
KILL_AFTER = 2.0  # seconds between a cancel request and killing a worker that did not stop
STALE_AFTER = 15.0  # a heartbeat older than this, with no verifiable process, means the worker is gone
HEARTBEAT_EVERY = 1.0
WRITE_EVERY = 0.2  # the worker rewrites state.json at most this often (and at the end)
PID_START_TOLERANCE = 1.5  # seconds: psutil's start times of one process may differ by a boot-time rounding
EXEC_GRACE = 0.1  # seconds to wait for the command line of a process that is still in exec()

RUN_FILE, STATE_FILE, PROGRESS_FILE = "run.json", "state.json", "progress.jsonl"
HEARTBEAT_FILE, PROC_FILE, CANCEL_FILE, LOG_FILE = "heartbeat.json", "proc.json", "cancel", "log.txt"
RUN_OWN_FILES = frozenset({RUN_FILE, STATE_FILE, PROGRESS_FILE, HEARTBEAT_FILE, PROC_FILE, CANCEL_FILE, LOG_FILE})
MAX_RUN_JSON_BYTES = 16 * 2**20  # run.json holds the config
MAX_STATE_BYTES = 8 * 2**20  # state.json holds at most HISTORY_POINTS points: well under 1 MB in practice
MAX_PID_JSON_BYTES = 64 * 2**10  # proc.json, heartbeat.json
MAX_INT = 2**63 - 1  # larger "integers" in a run's files are corruption, not counts
MAX_PID = 2**31 - 1
WORKER_MODULE = "drnn_demo.jobs"

ProgressCallback = Callable[[Any], None]
RunKind = Callable[[dict, ProgressCallback, Callable[[], bool], Path], dict]


# ----------------------------------------------------------------------------- run kinds


def run_train(config: dict, on_progress: ProgressCallback, should_stop: Callable[[], bool], run_dir: Path) -> dict:
    """The ``"train"`` kind: a :class:`drnn_demo.training.Trainer` run on a ``TrainConfig`` dict.

    The trainer's model (its best validation weights) is saved to ``run_dir/model.safetensors`` +
    ``model.json`` (card: :meth:`TrainResult.card` plus ``run_id``) whatever the status, so a
    diverged or cancelled run keeps its last good weights. The config's ``device`` ("auto" /
    "cpu" / "cuda") is the trainer's business. Final metrics: ``val_<name>`` and ``test_<name>``.
    """
    from .checkpoints import save_checkpoint
    from .training import TrainConfig, Trainer

    result = Trainer(TrainConfig.from_dict(config), on_progress, should_stop).run()
    metrics = {**{f"val_{k}": v for k, v in (result.val_metrics or {}).items()},
               **{f"test_{k}": v for k, v in (result.test_metrics or {}).items()}}
    checkpoint = None
    if result.model is not None:
        checkpoint = save_checkpoint(run_dir / "model.safetensors", result.model,
                                     result.card(run_id=run_dir.name))
    return {"status": result.status, "message": result.message, "metrics": metrics, "checkpoint": checkpoint}


RUN_KINDS: dict[str, RunKind] = {
    "train": run_train,
    "memory": lambda *args: importlib.import_module("drnn_demo.memory_analysis").run_memory_job(*args),
    "lrn_sentiment": lambda *args: importlib.import_module("drnn_demo.tasks.sentiment").run_sentiment_job(*args),
    "reproduce_cell": lambda *args: importlib.import_module("drnn_demo.reproduce").run_cell_job(*args),
    "retest": lambda *args: importlib.import_module("drnn_demo.retest").run_retest_job(*args),
}


def resolve_kind(kind: str) -> RunKind:
    """The function behind ``kind``: a :data:`RUN_KINDS` key or ``"package.module:function"``."""
    if kind in RUN_KINDS:
        return RUN_KINDS[kind]
    module, sep, name = kind.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"kind must be one of {sorted(RUN_KINDS)} or 'package.module:function', got {kind!r}")
    fn = getattr(importlib.import_module(module), name)
    if not callable(fn):
        raise ValueError(f"kind {kind!r} is not callable")
    return fn


def _check_kind_name(kind: str) -> None:
    if not isinstance(kind, str) or (kind not in RUN_KINDS and not all(kind.partition(":")[::2])):
        raise ValueError(f"kind must be one of {sorted(RUN_KINDS)} or 'package.module:function', got {kind!r}")


# ----------------------------------------------------------------------------- writing files


def _jsonable(x: Any) -> Any:
    """``x`` as plain JSON: non-finite floats become None, numpy/torch scalars plain numbers."""
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if x is None or isinstance(x, (bool, int, str)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "item"):  # numpy / torch scalars
        with contextlib.suppress(Exception):
            return _jsonable(x.item())
    return str(x)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a torn one.

    The JSON goes to a temporary file in the same directory, which then replaces ``path``
    (``os.replace`` is atomic on POSIX and Windows; it replaces a symbolic link, not its target).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(_jsonable(data), f, allow_nan=False)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)


def _open_append(path: Path) -> BinaryIO:
    """``path`` opened for appending bytes, created if missing; a symbolic link there is refused
    (``OSError``), so a worker's output never lands outside its run directory."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _O_NOFOLLOW | _O_BINARY, 0o644)
    return os.fdopen(fd, "ab")


def _create_new(path: Path, data: bytes) -> None:
    """Write a file that must not exist yet (not even as a dangling symbolic link)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_BINARY, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


# ----------------------------------------------------------------------------- reading files


class UnsafeRunFileError(ValueError):
    """A run's file that is refused: a path leaving the run directory, a symbolic link, or not a
    regular file. The message names the file and the reason."""


def _plain_name(name: Any) -> bool:
    """A plain file or directory name: no separators, not hidden, not special."""
    return (isinstance(name, str) and bool(name) and not name.startswith(".") and "/" not in name
            and "\\" not in name and "\0" not in name)


def _describe(value: Any, limit: int = 60) -> str:
    """A short rendering of a value found in a file, for error messages."""
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "an array"
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _relative_inside(recorded: Any, what: str = "path") -> PurePosixPath:
    """``recorded`` as a path relative to a run directory that cannot leave it, or
    :class:`UnsafeRunFileError` (absolute paths, ``..``, drives, backslashes, NUL)."""
    if not isinstance(recorded, str) or not recorded or "\0" in recorded or "\\" in recorded:
        raise UnsafeRunFileError(f"{what} {_describe(recorded)} is not a plain relative path")
    rel = PurePosixPath(recorded)
    if rel.is_absolute() or PureWindowsPath(recorded).anchor or ".." in rel.parts or not rel.parts:
        raise UnsafeRunFileError(f"{what} {_describe(recorded)} is outside the run directory")
    return rel


def open_run_file(run_dir: Path, relative: str | PurePosixPath) -> BinaryIO:
    """Open ``run_dir/relative`` for reading bytes, refusing anything that is not a regular file
    inside ``run_dir`` reached without symbolic links.

    ``FileNotFoundError`` when it does not exist; :class:`UnsafeRunFileError` for a path that
    leaves the directory, a symbolic link (the run directory itself, an intermediate directory or
    the file), or a FIFO, device or directory. On POSIX the directories are walked with
    ``O_NOFOLLOW`` file descriptors, so a link swapped in meanwhile is refused as well.
    """
    rel = relative if isinstance(relative, PurePosixPath) else _relative_inside(relative)
    if _O_NOFOLLOW and os.open in os.supports_dir_fd:
        try:
            dir_fd = os.open(run_dir, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeRunFileError(f"{Path(run_dir).name}: not a plain directory") from None
            raise
        try:
            for part in rel.parts[:-1]:
                try:
                    next_fd = os.open(part, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW, dir_fd=dir_fd)
                except OSError as err:
                    if err.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise UnsafeRunFileError(f"{rel}: {part} is a symbolic link or not a directory") from None
                    raise
                os.close(dir_fd)
                dir_fd = next_fd
            try:
                fd = os.open(rel.parts[-1], os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK, dir_fd=dir_fd)
            except OSError as err:
                if err.errno == errno.ELOOP:
                    raise UnsafeRunFileError(f"{rel}: a symbolic link (refused)") from None
                raise
        finally:
            os.close(dir_fd)
    else:  # pragma: no cover - no O_NOFOLLOW / dir_fd (Windows): check each step, then open
        path = Path(run_dir)
        for part in ("", *rel.parts):
            path = path / part if part else path
            if stat.S_ISLNK(os.lstat(path).st_mode):
                raise UnsafeRunFileError(f"{rel}: {path.name} is a symbolic link (refused)")
        fd = os.open(path, os.O_RDONLY | _O_BINARY)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeRunFileError(f"{rel}: not a regular file (refused)")
    return os.fdopen(fd, "rb")


def read_run_json(run_dir: Path, name: str, max_bytes: int = MAX_RUN_JSON_BYTES) -> dict:
    """The JSON object in the run file ``run_dir/name``.

    ``FileNotFoundError`` when it does not exist; :class:`~drnn_demo.fileio.JSONFileError` (a
    ``ValueError``, message starting with ``name``) for every other problem: a symbolic link or
    special file, unreadable, larger than ``max_bytes``, not UTF-8, malformed or truncated JSON,
    nested too deep, numbers too long to convert, or not an object.
    """
    try:
        with open_run_file(run_dir, name) as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise JSONFileError(f"{name}: {size:,} bytes, more than the {max_bytes:,} it may have")
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise
    except UnsafeRunFileError as err:
        raise JSONFileError(str(err) if str(err).startswith(name) else f"{name}: {err}") from None
    except OSError as err:
        raise JSONFileError(f"{name}: cannot read it ({err.strerror or err})") from None
    if len(data) > max_bytes:
        raise JSONFileError(f"{name}: more than the {max_bytes:,} bytes it may have")
    try:
        return loads_json(data, name, expect=dict)
    except JSONFileError:
        raise
    except ValueError as err:  # e.g. an integer literal beyond Python's digit limit
        raise JSONFileError(f"{name}: not valid JSON ({err})") from None


# ----------------------------------------------------------------------------- checking fields

_REQUIRED = object()


def _field(data: dict, key: str, types: type | tuple[type, ...], name: str, default: Any = _REQUIRED) -> Any:
    """:func:`drnn_demo.fileio.field`, with "required" spelled as an omitted default."""
    if default is _REQUIRED:
        return json_field(data, key, types, name)
    return json_field(data, key, types, name, default=default)


def _number(data: dict, key: str, name: str, default: Any = None) -> int | float | None:
    """A finite number (int or float, kept as found; never a bool), or ``default`` when missing / null."""
    value = data.get(key)
    if value is None:
        if default is _REQUIRED:
            raise JSONFileError(f"{name}: {key!r} must be a number, found null")
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JSONFileError(f"{name}: {key!r} must be a number, found {_describe(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise JSONFileError(f"{name}: {key!r} must be a finite number, found {value}")
    if isinstance(value, int) and abs(value) > MAX_INT:
        raise JSONFileError(f"{name}: {key!r} is out of range, found {_describe(value)}")
    return value


def _whole(data: dict, key: str, name: str, default: Any = None, minimum: int = 0,
           maximum: int = MAX_INT) -> int | None:
    """A whole number in ``[minimum, maximum]`` (an integral float like ``5.0`` is accepted)."""
    value = _number(data, key, name, default)
    if value is None:
        return None
    if isinstance(value, float):
        if not value.is_integer():
            raise JSONFileError(f"{name}: {key!r} must be a whole number, found {value}")
        value = int(value)
    if not minimum <= value <= maximum:
        raise JSONFileError(f"{name}: {key!r} must be between {minimum} and {maximum:,}, found {value}")
    return value


def _bad_param(params: Mapping) -> str | None:
    """Why ``params`` is not a dict of name -> str / number / bool (None when it is)."""
    for key, value in params.items():
        if not isinstance(key, str):
            return f"params key {_describe(key)} must be a string"
        plain = isinstance(value, str | bool) or (isinstance(value, int | float) and math.isfinite(value))
        if not plain:
            return f"params[{key!r}] must be a string, number or boolean, found {_describe(value)}"
    return None


def check_run(data: dict, name: str = RUN_FILE) -> dict:
    """``run.json``'s fields, type-checked: ``{**data, id, kind, label, page, config, params,
    threads, created}`` with defaults filled in, or :class:`JSONFileError` naming the field.

    ``kind`` is required; ``id``, ``label``, ``page`` are strings (default ""), ``config`` and
    ``params`` objects (``params`` values str / number / bool), ``threads`` a positive integer
    (default 1), ``created`` a number (default 0).
    """
    params = _field(data, "params", dict, name, default={})
    problem = _bad_param(params)
    if problem:
        raise JSONFileError(f"{name}: {problem}")
    return {**data,
            "id": _field(data, "id", str, name, default=""),
            "kind": _field(data, "kind", str, name),
            "label": _field(data, "label", str, name, default=""),
            "page": _field(data, "page", str, name, default=""),
            "config": _field(data, "config", dict, name, default={}),
            "params": params,
            "threads": _whole(data, "threads", name, default=1, minimum=1),
            "created": _number(data, "created", name, default=0.0)}


def check_state(data: dict, name: str = STATE_FILE) -> dict:
    """``state.json``'s fields, type-checked: ``{**data, status, step, total_steps, started, ended,
    progress_time, rate, metrics, history, checkpoint, message, pid}``, or :class:`JSONFileError`.

    ``status`` is required and one of :data:`STATUSES`; ``step`` a non-negative integer (default
    0); ``total_steps`` a non-negative integer or null; the times and ``rate`` finite numbers or
    null; ``metrics`` an object; ``history`` an array of objects (their ``step``, ``loss`` and
    ``elapsed`` numbers or null); ``checkpoint`` a string or null;
    ``message`` a string; ``pid`` a positive integer or null.
    """
    status = _field(data, "status", str, name)
    if status not in STATUSES:
        raise JSONFileError(f"{name}: 'status' must be one of {', '.join(STATUSES)}, found {_describe(status)}")
    history = _field(data, "history", list, name, default=[])
    for i, point in enumerate(history):
        if not isinstance(point, dict):
            raise JSONFileError(f"{name}: 'history' item {i} must be an object, found {_describe(point)}")
        for key in ("step", "loss", "elapsed"):  # what the pages plot
            _number(point, key, f"{name}: 'history' item {i}")
    return {**data,
            "status": status,
            "step": _whole(data, "step", name, default=0),
            "total_steps": _whole(data, "total_steps", name, default=None),
            **{key: _number(data, key, name) for key in ("started", "ended", "progress_time", "rate")},
            "metrics": _field(data, "metrics", dict, name, default={}),
            "history": history,
            "checkpoint": _field(data, "checkpoint", str, name, default=None),
            "message": _field(data, "message", str, name, default=""),
            "pid": _whole(data, "pid", name, default=None, minimum=1, maximum=MAX_PID)}


def check_pid_record(data: dict, name: str) -> dict:
    """``proc.json`` / ``heartbeat.json``: ``{pid, pid_start, time}``, each a number or None
    (``pid`` a positive integer; ``pid_start`` kept as found, so an old integer one stays an int)."""
    return {"pid": _whole(data, "pid", name, default=None, minimum=1, maximum=MAX_PID),
            "pid_start": _number(data, "pid_start", name),
            "time": _number(data, "time", name)}


# ----------------------------------------------------------------------------- processes


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


def downsample(points: list[dict], limit: int = HISTORY_POINTS) -> list[dict]:
    """At most ``limit`` evenly spaced points, always keeping the first and the last."""
    n = len(points)
    if n <= limit:
        return list(points)
    idx = sorted({round(i * (n - 1) / (limit - 1)) for i in range(limit)})
    return [points[i] for i in idx]


def default_runs_dir() -> Path:
    """``$DRNN_RUNS_DIR``, else ``<project>/runs`` for a source checkout, else ``./runs``."""
    env = os.environ.get("DRNN_RUNS_DIR")
    if env:
        return Path(env)
    project = Path(__file__).resolve().parents[1]
    return project / "runs" if (project / "pyproject.toml").exists() else Path.cwd() / "runs"


# ----------------------------------------------------------------------------- the manager


@dataclass
class RunInfo:
    """What a page shows about one run (a snapshot; call :meth:`JobManager.get` again to refresh).

    ``params`` are the submitting page's query params, to reopen the run where it came from.
    ``fraction`` is ``step / total_steps`` in [0, 1]; ``elapsed`` and ``eta`` are seconds (``eta``
    None when unknown or not running); ``created``/``started``/``ended`` are Unix times (None
    until they happen). ``queue_position`` is 1 for the next queued run to start, None when not
    queued. ``metrics`` are the latest values reported; ``history`` holds up to
    :data:`HISTORY_POINTS` progress points ``{"step", "loss", "elapsed", <metric>: value}`` for
    plotting (non-finite losses appear as None). ``checkpoint`` is the ``.safetensors`` file, its
    ``.json`` card beside it; None when there is none or it was refused (recorded outside the run
    directory, or a symbolic link: ``message`` then ends with ``(checkpoint refused: <why>)``).

    A run whose files are damaged has ``status == "corrupt"`` and ``message`` = the reason (e.g.
    ``state.json: 'step' must be a number, found "abc"``); its other fields are safe defaults
    (step 0, total None, fraction 0, no times but ``created``, empty metrics / history, no
    checkpoint, no pid). ``label``, ``kind``, ``page``, ``params``, ``config`` and ``created``
    come from ``run.json`` when that file is sound, else they are the run id, "", "", {}, {} and the
    directory's modification time.
    """

    id: str
    kind: str
    label: str
    page: str
    params: dict
    status: str
    message: str
    step: int
    total_steps: int | None
    fraction: float
    elapsed: float
    eta: float | None
    created: float
    started: float | None
    ended: float | None
    queue_position: int | None
    metrics: dict
    history: list[dict]
    checkpoint: Path | None
    config: dict = field(default_factory=dict)
    path: Path | None = None
    pid: int | None = None

    @property
    def active(self) -> bool:
        """Queued or running."""
        return self.status in ACTIVE_STATUSES


class JobManager:
    """Submits, starts, watches, cancels and deletes runs kept under ``root``.

    Args:
        root: the runs directory (created if needed); default :func:`default_runs_dir`.
        max_concurrent: how many runs may train at once (the rest wait in a queue); default
            ``$DRNN_MAX_RUNS`` or 1.

    One manager per server process (its methods are thread-safe); several managers, or several
    servers, on one directory coordinate through a lock file. Creating a manager polls once, so
    runs left queued by a previous server start, and runs whose worker died are marked. No method
    raises because of a damaged run directory: such a run is listed as ``corrupt``.
    """

    def __init__(self, root: str | Path | None = None, max_concurrent: int | None = None):
        self.root = Path(root) if root is not None else default_runs_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        if max_concurrent is None:
            max_concurrent = int(os.environ.get("DRNN_MAX_RUNS", "1"))
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise ValueError(f"max_concurrent must be a positive integer, got {max_concurrent!r}")
        self.max_concurrent = max_concurrent
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.RLock()
        self._cache: dict[Path, tuple[tuple, Any]] = {}
        self.poll()

    # --- public API

    def submit(self, kind: str, config: dict, label: str = "", page: str = "", params: dict | None = None,
               *, threads: int | None = None, files: Mapping[str, bytes] | None = None) -> str:
        """Queue a run of ``kind`` on ``config`` and start it if a slot is free; return its id.

        ``threads`` caps torch's threads in the worker (default ``$DRNN_RUN_THREADS`` or 1), so a
        run cannot starve the UI. ``config`` must be a JSON-serialisable dict, ``params`` a dict
        of str / number / bool values. ``files`` (name -> bytes) are written into the new run's
        directory before the run is queued, so the kind finds them in ``run_dir``; names must be
        plain (no ``/``, not starting with ``.``) and not one of the run's own files
        (:data:`RUN_OWN_FILES`). Every problem is a ``ValueError`` and leaves nothing on disk.
        """
        _check_kind_name(kind)
        if threads is None:
            threads = int(os.environ.get("DRNN_RUN_THREADS", "1"))
        if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_INT:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        if not isinstance(config, dict):
            raise ValueError(f"config must be a dict, got {type(config).__name__}")
        if not isinstance(label, str) or not isinstance(page, str):
            raise ValueError("label and page must be strings")
        params = dict(params or {})
        problem = _bad_param(params)
        if problem:
            raise ValueError(problem)
        files = self._check_files(files)
        try:
            json.dumps(config, allow_nan=False)
            json.dumps(params, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(f"config and params must be plain JSON: {e}") from None
        with self._lock:
            created = time.time()
            run_id = f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(created))}-{secrets.token_hex(3)}"
            run_dir = self.root / run_id
            run_dir.mkdir()
            try:
                for name, data in files.items():
                    _create_new(run_dir / name, data)
                write_json_atomic(run_dir / STATE_FILE, {"status": "queued", "message": "waiting for a free slot"})
                write_json_atomic(run_dir / RUN_FILE, {  # last: from now on the directory is a run
                    "id": run_id, "kind": kind, "config": config, "label": label or kind, "page": page,
                    "params": params, "threads": threads, "created": created})
            except BaseException:
                shutil.rmtree(run_dir, ignore_errors=True)
                raise
        self.poll()
        return run_id

    @staticmethod
    def _check_files(files: Mapping[str, bytes] | None) -> dict[str, bytes]:
        """``submit``'s ``files``, checked: plain names that are not the run's own files, bytes values."""
        if files is not None and not isinstance(files, Mapping):
            raise ValueError(f"files must be a dict of name -> bytes, got {type(files).__name__}")
        checked: dict[str, bytes] = {}
        for name, data in (files or {}).items():
            if not _plain_name(name) or ":" in name:
                raise ValueError(f"file name {name!r} must be a plain name "
                                 "(no '/', '\\\\' or ':', not starting with '.')")
            if name in RUN_OWN_FILES:
                own = ", ".join(sorted(RUN_OWN_FILES))
                raise ValueError(f"file name {name!r} is one of the run's own files ({own})")
            if not isinstance(data, bytes | bytearray | memoryview):
                raise ValueError(f"file {name!r} must be bytes, got {type(data).__name__}")
            checked[name] = bytes(data)
        return checked

    def poll(self) -> None:
        """Mark runs whose worker is gone, enforce overdue cancels, start queued runs while under the cap.

        Corrupt runs are skipped: they are never counted, checked or launched."""
        with self._lock, self._dir_lock():
            running, queued = 0, []
            for run_id in self._ids():
                loaded = self._usable(run_id)  # cached while unchanged; decisions below re-read it
                if loaded is None:
                    continue
                status = loaded[1]["status"]
                try:
                    if status == "running":
                        if not self._check_running(run_id):
                            running += 1
                    elif status == "queued":
                        queued.append(run_id)
                    elif run_id in self._procs and self._procs[run_id].poll() is not None:
                        del self._procs[run_id]  # reaped: the worker wrote its final state and exited
                except (FileNotFoundError, JSONFileError):  # deleted or damaged meanwhile: listed as such
                    continue
            for run_id in self._queue_order(queued):
                if running >= self.max_concurrent:
                    break
                with contextlib.suppress(FileNotFoundError, JSONFileError):
                    if self._launch(run_id):
                        running += 1

    def runs(self) -> list[RunInfo]:
        """All runs, newest first; damaged ones with status ``corrupt`` (this never raises for one
        bad directory)."""
        with self._lock:
            loaded = []
            for run_id in self._ids():
                run, state, problem = self._load_both(run_id)
                if run is None and problem is None:
                    continue  # deleted meanwhile
                loaded.append((run_id, run, state, problem))
            queue = self._queue_order([r for r, _, s, p in loaded if p is None and s["status"] == "queued"])
            positions = {run_id: i + 1 for i, run_id in enumerate(queue)}
            infos = [self._info(run_id, run, state, positions.get(run_id)) if problem is None
                     else self._corrupt_info(run_id, run, problem)
                     for run_id, run, state, problem in loaded]
        return sorted(infos, key=lambda i: (i.created, i.id), reverse=True)

    def get(self, run_id: str) -> RunInfo:
        """One run, corrupt or not (``KeyError`` if there is no such run)."""
        for info in self.runs():
            if info.id == run_id:
                return info
        raise KeyError(f"no run {run_id!r} in {self.root}")

    def cancel(self, run_id: str) -> None:
        """Cancel a run: a queued one at once; a running one asks its worker to stop and kills it
        if it has not exited :data:`KILL_AFTER` seconds later. Finished and corrupt runs are left alone."""
        with self._lock, self._dir_lock():  # not while another manager launches it
            run_dir = self._dir(run_id)
            state = self._try_state(run_id, fresh=True)
            if state is None:
                return
            if state["status"] == "queued":
                now = time.time()
                write_json_atomic(run_dir / STATE_FILE, {**state, "status": "cancelled", "ended": now,
                                                         "message": "cancelled before it started"})
                return
            if state["status"] != "running":
                return
            with contextlib.suppress(FileExistsError):
                _create_new(run_dir / CANCEL_FILE, repr(time.time()).encode())
        timer = threading.Timer(KILL_AFTER, self._kill_overdue, args=(run_id,))
        timer.daemon = True
        timer.start()

    def delete(self, run_id: str) -> None:
        """Remove a run and its directory (corrupt runs too); an active run is cancelled first, and
        killed if its worker has not exited a second later. A symbolic link is never followed."""
        run_dir = self._dir(run_id)  # KeyError if unknown
        self.cancel(run_id)
        deadline = time.monotonic() + 1.0  # the directory goes anyway: no need to wait for a slow worker
        while self._worker_alive(run_id):
            if time.monotonic() > deadline:
                self._kill(run_id)
                break
            time.sleep(0.05)
        with self._lock:
            proc = self._procs.pop(run_id, None)
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
            with contextlib.suppress(OSError):
                os.unlink(run_dir / RUN_FILE)  # no longer listed, even while the rest goes
            shutil.rmtree(run_dir, ignore_errors=True)  # refuses a symlinked directory; unlinks links inside
            for path in [p for p in self._cache if p.parent.name == run_id]:
                del self._cache[path]
        self.poll()

    def active(self) -> bool:
        """Is any run queued or running? (Pages poll only while this is true; corrupt runs are not.)"""
        with self._lock:
            return any((loaded := self._usable(r)) is not None and loaded[1]["status"] in ACTIVE_STATUSES
                       for r in self._ids())

    def checkpoint_zip(self, run_id: str) -> bytes:
        """The run's checkpoint (``.safetensors`` + ``.json`` card) as a zip archive, for download.

        ``FileNotFoundError`` when the run has no checkpoint; :class:`UnsafeRunFileError` when the
        recorded checkpoint is outside the run directory, not a ``.safetensors`` file, or either
        file is a symbolic link or not a regular file; :class:`~drnn_demo.fileio.JSONFileError`
        when the run is corrupt. Only regular files inside the run directory are read, each
        opened without following links, so no byte from outside the run ends up in the zip.
        """
        run_dir = self._dir(run_id)
        with self._lock:
            self._run(run_id, fresh=True)
            recorded = self._state(run_id, fresh=True)["checkpoint"]
        if recorded is None:
            raise FileNotFoundError(f"run {run_id!r} has no checkpoint")
        weights = self._checkpoint_path(recorded)
        members = {}
        for member in (weights, weights.with_suffix(".json")):
            try:
                with open_run_file(run_dir, member) as f:
                    members[member.name] = f.read()
            except FileNotFoundError:
                if member == weights:
                    raise FileNotFoundError(f"run {run_id!r}: its checkpoint {weights} is missing") from None
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        return buf.getvalue()

    def log(self, run_id: str, tail: int = 20_000) -> str:
        """The last ``tail`` characters of the run's worker log (stdout + stderr); "" when there is
        none, or when ``log.txt`` is a symbolic link or not a regular file (it is never followed)."""
        run_dir = self._dir(run_id)
        try:
            with open_run_file(run_dir, LOG_FILE) as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - tail))
                return f.read(tail).decode("utf-8", errors="replace")
        except (OSError, UnsafeRunFileError):
            return ""

    # --- reading

    def _ids(self) -> list[str]:
        """Names of the run directories: plain names, real directories (not symbolic links) that
        hold a ``run.json`` (whatever it contains)."""
        try:
            with os.scandir(self.root) as entries:
                return [e.name for e in entries if _plain_name(e.name) and e.is_dir(follow_symlinks=False)
                        and os.path.lexists(os.path.join(e.path, RUN_FILE))]
        except FileNotFoundError:
            return []

    def _dir(self, run_id: str) -> Path:
        """The run's directory, or ``KeyError``: a plain name, not a symbolic link, with a ``run.json``."""
        if not _plain_name(run_id):
            raise KeyError(f"no run {run_id!r} in {self.root}")
        run_dir = self.root / run_id
        if run_dir.is_symlink() or not run_dir.is_dir() or not os.path.lexists(run_dir / RUN_FILE):
            raise KeyError(f"no run {run_id!r} in {self.root}")
        return run_dir

    def _load(self, run_id: str, name: str, check: Callable[[dict, str], dict], max_bytes: int,
              fresh: bool = False) -> dict:
        """``run_id``'s file ``name``, read and checked, re-read only when the file changed
        (os.replace gives a new inode). ``FileNotFoundError`` or :class:`JSONFileError` (the
        verdict is cached too, so a damaged file is not parsed again on every poll)."""
        path = self.root / run_id / name
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self._cache.pop(path, None)
            raise
        except OSError as err:
            raise JSONFileError(f"{name}: cannot read it ({err.strerror or err})") from None
        key = (st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns)
        hit = self._cache.get(path)
        if hit is None or hit[0] != key or fresh:
            try:
                value: Any = check(read_run_json(self.root / run_id, name, max_bytes), name)
            except FileNotFoundError:
                self._cache.pop(path, None)
                raise
            except JSONFileError as err:
                value = JSONFileError(str(err))
            hit = (key, value)
            self._cache[path] = hit
        if isinstance(hit[1], JSONFileError):
            raise JSONFileError(str(hit[1]))  # a new exception each time: no traceback piles up
        return hit[1]

    def _run(self, run_id: str, fresh: bool = False) -> dict:
        return self._load(run_id, RUN_FILE, check_run, MAX_RUN_JSON_BYTES, fresh)

    def _state(self, run_id: str, fresh: bool = False) -> dict:
        return self._load(run_id, STATE_FILE, check_state, MAX_STATE_BYTES, fresh)

    def _try_state(self, run_id: str, fresh: bool = False) -> dict | None:
        """The checked state, or None when it is missing or damaged."""
        try:
            return self._state(run_id, fresh)
        except (FileNotFoundError, JSONFileError):
            return None

    def _load_both(self, run_id: str) -> tuple[dict | None, dict | None, str | None]:
        """``(run, state, problem)``: both checked and problem None; or problem says why the run is
        corrupt (``run`` is kept when only the state is bad); or all None when the run is gone."""
        try:
            run = self._run(run_id)
        except FileNotFoundError:
            return None, None, None
        except JSONFileError as err:
            return None, None, str(err)
        try:
            return run, self._state(run_id), None
        except FileNotFoundError:
            return run, None, f"{STATE_FILE}: missing"
        except JSONFileError as err:
            return run, None, str(err)

    def _usable(self, run_id: str) -> tuple[dict, dict] | None:
        """``(run, state)`` of a sound run; None for a corrupt or vanished one."""
        run, state, problem = self._load_both(run_id)
        return None if run is None or state is None or problem else (run, state)

    def _queue_order(self, run_ids: list[str]) -> list[str]:
        def created(run_id: str) -> float:
            try:
                return self._run(run_id)["created"]
            except (FileNotFoundError, JSONFileError):
                return 0.0
        return sorted(run_ids, key=lambda r: (created(r), r))

    @staticmethod
    def _checkpoint_path(recorded: str) -> PurePosixPath:
        """A recorded checkpoint as a path inside the run directory, or :class:`UnsafeRunFileError`."""
        rel = _relative_inside(recorded, "checkpoint")
        if rel.suffix != ".safetensors":
            raise UnsafeRunFileError(f"checkpoint {_describe(recorded)} is not a .safetensors file")
        return rel

    def _checked_checkpoint(self, run_dir: Path, recorded: str | None) -> tuple[Path | None, str | None]:
        """``(path, None)`` for a usable checkpoint; ``(None, why)`` for a refused one; ``(None,
        None)`` for none or a missing one. The weights and the card (if present) must be regular
        files inside the run directory, reached without symbolic links."""
        if recorded is None:
            return None, None
        try:
            weights = self._checkpoint_path(recorded)
            for member in (weights, weights.with_suffix(".json")):
                try:
                    open_run_file(run_dir, member).close()
                except FileNotFoundError:
                    if member == weights:
                        return None, None
        except UnsafeRunFileError as err:
            return None, str(err)
        except OSError as err:
            return None, f"checkpoint {_describe(recorded)} cannot be read ({err.strerror or err})"
        return run_dir / weights, None

    def _recorded_pid(self, run_id: str) -> int | None:
        with contextlib.suppress(FileNotFoundError, JSONFileError):
            return check_pid_record(read_run_json(self.root / run_id, PROC_FILE, MAX_PID_JSON_BYTES), PROC_FILE)["pid"]
        return None

    def _info(self, run_id: str, run: dict, state: dict, queue_position: int | None) -> RunInfo:
        now = time.time()
        run_dir = self.root / run_id
        status, step, total = state["status"], state["step"], state["total_steps"]
        started, ended = state["started"], state["ended"]
        if status == "finished":
            fraction = 1.0
        elif total:
            fraction = min(1.0, max(0.0, step / total))
        else:
            fraction = 0.0
        elapsed = 0.0 if started is None else max(0.0, (ended or now) - started)
        eta = None
        rate, progress_time = state["rate"], state["progress_time"]
        if status == "running" and total and rate and rate > 0 and progress_time:
            eta = max(0.0, (total - step) / rate - (now - progress_time))
        message = state["message"]
        checkpoint, refused = self._checked_checkpoint(run_dir, state["checkpoint"])
        if refused:
            message = f"{message} (checkpoint refused: {refused})" if message else f"checkpoint refused: {refused}"
        return RunInfo(
            id=run_id, kind=run["kind"], label=run["label"], page=run["page"], params=dict(run["params"]),
            status=status, message=message, step=step, total_steps=total, fraction=fraction, elapsed=elapsed,
            eta=eta, created=run["created"], started=started, ended=ended,
            queue_position=queue_position if status == "queued" else None, metrics=dict(state["metrics"]),
            history=list(state["history"]), checkpoint=checkpoint, config=dict(run["config"]), path=run_dir,
            pid=state["pid"] or self._recorded_pid(run_id))

    def _corrupt_info(self, run_id: str, run: dict | None, problem: str) -> RunInfo:
        """A damaged run, as listed: status ``corrupt``, the reason as message, safe defaults."""
        run_dir = self.root / run_id
        created = 0.0
        if run is not None:
            created = run["created"]
        else:
            with contextlib.suppress(OSError):
                created = os.lstat(run_dir).st_mtime
        run = run or {}
        return RunInfo(
            id=run_id, kind=run.get("kind", ""), label=run.get("label") or run_id, page=run.get("page", ""),
            params=dict(run.get("params", {})), status="corrupt", message=problem, step=0, total_steps=None,
            fraction=0.0, elapsed=0.0, eta=None, created=created, started=None, ended=None, queue_position=None,
            metrics={}, history=[], checkpoint=None, config=dict(run.get("config", {})), path=run_dir, pid=None)

    # --- processes

    @contextlib.contextmanager
    def _dir_lock(self):
        """An exclusive lock on the runs directory, against other managers (other servers)."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        with open(self.root / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _launch(self, run_id: str) -> bool:
        """Start the worker of a queued run; False when the run could not be started (it is then failed)."""
        run_dir = self.root / run_id
        run = self._run(run_id, fresh=True)
        state = self._state(run_id, fresh=True)
        now = time.time()
        write_json_atomic(run_dir / STATE_FILE, {**state, "status": "running", "message": "starting",
                                                 "started": now, "step": 0})
        threads = str(run["threads"])
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        try:
            with _open_append(run_dir / LOG_FILE) as log:
                proc = subprocess.Popen([sys.executable, "-m", WORKER_MODULE, os.path.abspath(run_dir)], env=env,
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        except OSError as e:
            write_json_atomic(run_dir / STATE_FILE, {**state, "status": "failed", "started": now, "ended": now,
                                                     "message": f"could not start the worker: {e}"})
            return False
        self._procs[run_id] = proc
        start = process_start_time(proc.pid)  # before the reaper can wait: a zombie still has its start time
        threading.Thread(target=proc.wait, daemon=True, name=f"reap worker {proc.pid}").start()
        write_json_atomic(run_dir / PROC_FILE, {"pid": proc.pid, "pid_start": start})
        return True

    def _pid_record(self, run_id: str) -> tuple[int | None, float | int | None, float | None, str | None]:
        """``(pid, pid start, last heartbeat time, problem)`` as published by the manager
        (proc.json) and the worker (heartbeat.json); ``problem`` says why a file was unusable."""
        run_dir = self.root / run_id
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

    def _liveness(self, run_id: str) -> tuple[str, str]:
        """``(verdict, reason)`` about the run's worker: ``"alive"``; ``"starting"`` (launched by a
        manager that has not recorded a pid yet, recently); ``"gone"`` (exited, or never recorded
        and long ago); ``"other"`` (the recorded pid is not this run's worker: reason says why)."""
        proc = self._procs.get(run_id)
        if proc is not None:
            return ("alive", "") if proc.poll() is None else ("gone", "")
        run_dir = self.root / run_id
        if not os.path.lexists(run_dir / PROC_FILE) and not os.path.lexists(run_dir / HEARTBEAT_FILE):
            state = self._try_state(run_id, fresh=True) or {}
            if time.time() - (state.get("started") or 0.0) < STALE_AFTER:
                return "starting", ""
            return "gone", "no worker was ever recorded"
        pid, start, beat, problem = self._pid_record(run_id)
        if pid is None:
            return "other", problem or "no worker pid was recorded"
        verdict, reason = identify_worker(pid, start, run_dir)
        if verdict == "unknown":  # an old integer start time: only a fresh heartbeat vouches for it
            age = time.time() - (beat or 0.0)
            if age < STALE_AFTER:
                return "alive", ""
            return "other", f"{reason}, and there is no heartbeat of the last {STALE_AFTER:g} s"
        return verdict, reason

    def _worker_alive(self, run_id: str) -> bool:
        with self._lock:
            return self._liveness(run_id)[0] == "alive"

    def _cancel_requested_at(self, run_id: str) -> float | None:
        with contextlib.suppress(OSError, ValueError), open_run_file(self.root / run_id, CANCEL_FILE) as f:
            return float(f.read(64).decode("ascii"))
        return None

    def _check_running(self, run_id: str) -> bool:
        """For a run whose state says running: enforce an overdue cancel, and if its worker is gone
        (or the pid is not its worker) write its final state. Returns True when the run is over."""
        verdict, reason = self._liveness(run_id)
        if verdict == "starting":
            return False
        if verdict == "alive":
            requested = self._cancel_requested_at(run_id)
            if requested is not None and time.time() - requested > KILL_AFTER:
                self._kill(run_id)
                verdict, reason = self._liveness(run_id)
            if verdict == "alive":
                return False
        proc = self._procs.pop(run_id, None)
        self._mark_gone(run_id, None if proc is None else proc.poll(), reason if verdict == "other" else None)
        return True

    def _mark_gone(self, run_id: str, returncode: int | None, not_ours: str | None = None) -> None:
        """The worker has exited (or ``not_ours`` says why the recorded pid is not it): keep its
        final state, or write failed / interrupted / cancelled."""
        run_dir = self.root / run_id
        state = self._try_state(run_id, fresh=True)
        if state is None or state["status"] in FINAL_STATUSES:
            return  # a damaged state is shown as corrupt: nothing to write over it
        how = f"exited with code {returncode}"
        if returncode is not None and returncode < 0:
            with contextlib.suppress(ValueError):
                how = f"was killed by {signal.Signals(-returncode).name}"
        if os.path.lexists(run_dir / CANCEL_FILE):
            status, message = "cancelled", "cancelled (the worker was stopped by force)"
        elif returncode is not None:
            status, message = "failed", f"the worker {how} before reporting a result; see its log"
        elif not_ours is not None:
            status, message = "failed", f"the worker is gone without a result: {not_ours}"
        else:
            status, message = "interrupted", "the worker process is gone (server restart or killed); see its log"
        _, _, beat, _ = self._pid_record(run_id)  # after a restart, the last sign of life is the best end time
        now = time.time()
        ended = now if returncode is not None or not beat else min(beat, now)
        write_json_atomic(run_dir / STATE_FILE, {**state, "status": status, "message": message, "ended": ended})

    def _kill(self, run_id: str) -> None:
        """SIGKILL the run's worker, if it is still the same process (verified as for liveness)."""
        with self._lock:
            proc = self._procs.get(run_id)
            if proc is not None:
                if proc.poll() is None:
                    proc.kill()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=5)
                return
            pid, start, _, _ = self._pid_record(run_id)
            run_dir = self.root / run_id
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

    def _kill_overdue(self, run_id: str) -> None:
        """Timer callback :data:`KILL_AFTER` seconds after a cancel."""
        with contextlib.suppress(Exception):
            if (self.root / run_id).exists() and self._worker_alive(run_id):
                self._kill(run_id)
            self.poll()


# ----------------------------------------------------------------------------- the worker


class _Terminated(BaseException):
    """Raised in the worker on SIGTERM."""


class _Publisher:
    """Worker side: collects progress, answers should_stop, writes state.json and the heartbeat."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        try:
            self.state = dict(read_run_json(run_dir, STATE_FILE, MAX_STATE_BYTES))
        except (OSError, JSONFileError):  # the manager wrote it; if it is damaged, start afresh
            self.state = {}
        self.t0 = time.time()
        self.state.update(status="running", message="running", pid=os.getpid(), step=0)
        self.state.setdefault("started", self.t0)
        self.history: list[dict] = []
        self.metrics: dict = {}
        self.first: tuple[float, int] | None = None
        self.diverged_at: int | None = None
        self.cancelled = False
        self._last_write = 0.0
        self._last_cancel_check = 0.0
        self._dirty = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pid_start = process_start_time(os.getpid())
        self._progress_log = io.TextIOWrapper(_open_append(run_dir / PROGRESS_FILE), encoding="utf-8")
        self._beat = threading.Thread(target=self._heartbeat, daemon=True)

    def start(self) -> None:
        self._write_beat()
        self._write_state()
        self._beat.start()

    def _write_beat(self) -> None:
        write_json_atomic(self.run_dir / HEARTBEAT_FILE,
                          {"pid": os.getpid(), "pid_start": self._pid_start, "time": time.time()})

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_EVERY):
            with contextlib.suppress(OSError):
                self._write_beat()
                with self._lock:
                    if self._dirty:
                        self._write_state()

    def _write_state(self) -> None:
        """Write state.json (the caller holds the lock or is the only writer)."""
        self.state["metrics"] = self.metrics
        self.state["history"] = downsample(self.history)
        write_json_atomic(self.run_dir / STATE_FILE, self.state)
        self._last_write = time.monotonic()
        self._dirty = False

    def on_progress(self, p: Any) -> None:
        get = p.get if isinstance(p, Mapping) else (lambda k: getattr(p, k, None))
        now = time.time()
        step = int(get("step") or 0)
        loss = get("loss")
        loss = None if loss is None else float(loss)
        metrics = _jsonable(dict(get("metrics") or {}))
        elapsed = get("elapsed")
        point = {**metrics, "step": step, "loss": loss, "elapsed": now - self.t0 if elapsed is None else float(elapsed)}
        point = _jsonable(point)
        with self._lock:
            if loss is not None and not math.isfinite(loss) and self.diverged_at is None:
                self.diverged_at = step
            self.history.append(point)
            self.metrics.update(metrics)
            self._progress_log.write(json.dumps(point, allow_nan=False) + "\n")
            self._progress_log.flush()
            if self.first is None:
                self.first = (now, step)
            t_first, s_first = self.first
            total = get("total_steps")
            self.state.update(step=step, total_steps=None if total is None else int(total),
                              loss=point["loss"], progress_time=now,
                              rate=(step - s_first) / (now - t_first) if step > s_first and now > t_first else None)
            self._dirty = True
            if time.monotonic() - self._last_write >= WRITE_EVERY:
                self._write_state()

    def should_stop(self) -> bool:
        if self.diverged_at is not None or self.cancelled:
            return True
        now = time.monotonic()
        if now - self._last_cancel_check >= 0.05:
            self._last_cancel_check = now
            self.cancelled = os.path.lexists(self.run_dir / CANCEL_FILE)
        return self.cancelled

    def finish(self, status: str, message: str, metrics: Mapping | None = None, checkpoint: Any = None) -> None:
        self._stop.set()
        self._beat.join(timeout=5)
        with self._lock:
            if self.diverged_at is not None and status in ("finished", "early_stopped", "cancelled"):
                status = "diverged"
                message = f"the loss became non-finite at step {self.diverged_at}"
            self.metrics.update(_jsonable(dict(metrics or {})))
            if checkpoint is not None:
                checkpoint = Path(checkpoint)
                with contextlib.suppress(ValueError):
                    checkpoint = checkpoint.resolve().relative_to(self.run_dir.resolve())
            self.state.update(status=status, message=message, ended=time.time(),
                              checkpoint=None if checkpoint is None else str(checkpoint))
            print(f"[drnn_demo.jobs] {status}: {message}", flush=True)  # the log is complete before the state
            self._write_state()
            self._progress_log.close()


def _worker_main(run_dir: Path) -> int:
    """Run one run in this process (``python -m drnn_demo.jobs RUN_DIR``); returns the exit code."""
    try:
        run = check_run(read_run_json(run_dir, RUN_FILE), RUN_FILE)
    except (OSError, JSONFileError) as e:
        print(f"[drnn_demo.jobs] cannot start: {e}", file=sys.stderr, flush=True)
        return 2
    threads = str(run["threads"])
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = threads

    def on_sigterm(signum, frame):
        raise _Terminated()

    signal.signal(signal.SIGTERM, on_sigterm)
    print(f"[drnn_demo.jobs] run {run['id'] or run_dir.name} kind {run['kind']} pid {os.getpid()} threads {threads}",
          flush=True)
    pub = _Publisher(run_dir)
    pub.start()
    try:
        fn = resolve_kind(run["kind"])
        result = fn(run["config"], pub.on_progress, pub.should_stop, run_dir) or {}
        status = result.get("status", "finished")
        if status not in KIND_STATUSES:
            raise ValueError(f"run kind returned status {status!r}; expected one of {list(KIND_STATUSES)}")
        if "torch" in sys.modules:
            print(f"[drnn_demo.jobs] torch threads {sys.modules['torch'].get_num_threads()}", flush=True)
        pub.finish(status, result.get("message") or status.replace("_", " "), result.get("metrics"),
                   result.get("checkpoint"))
        return 0
    except (KeyboardInterrupt, _Terminated):
        pub.finish("interrupted", "interrupted (the worker received a stop signal)")
        return 130
    except BaseException as e:  # every failure of a kind is reported, never raised
        traceback.print_exc()
        sys.stderr.flush()
        last = traceback.format_exception_only(type(e), e)[-1].strip()
        pub.finish("failed", f"{last} (traceback in the log)")
        return 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m drnn_demo.jobs RUN_DIR", file=sys.stderr)
        sys.exit(2)
    code = _worker_main(Path(sys.argv[1]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the final state is written: do not wait for threads a kind may have left behind
