"""A run directory: the names of its files, writing and reading them safely, the checks of their fields.

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

Damaged runs
    Every file of a run is read as untrusted (bounded size and depth, no symbolic links, regular
    files only) and every field used is type-checked (:func:`check_run`, :func:`check_state`,
    :func:`check_pid_record`). A run whose ``run.json`` or ``state.json`` cannot be used is listed
    with status ``corrupt`` and the reason as its message (it is never launched, polled or counted
    as active, and it can be deleted); a symlinked run directory is not a run at all. A checkpoint
    recorded outside the run directory, or one that is a symbolic link, is refused: the run's
    ``checkpoint`` is None and its message says why.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO

from ..fileio import JSONFileError, read_json_from
from ..fileio import field as json_field

STATUSES = ("queued", "running", "finished", "early_stopped", "diverged", "cancelled", "failed", "interrupted",
            "corrupt")
ACTIVE_STATUSES = ("queued", "running")
FINAL_STATUSES = tuple(s for s in STATUSES if s not in ACTIVE_STATUSES)
KIND_STATUSES = ("finished", "early_stopped", "diverged", "cancelled")  # what a kind may return

HISTORY_POINTS = 500  # at most this many progress points in state.json (for plotting)

RUN_FILE, STATE_FILE, PROGRESS_FILE = "run.json", "state.json", "progress.jsonl"
HEARTBEAT_FILE, PROC_FILE, CANCEL_FILE, LOG_FILE = "heartbeat.json", "proc.json", "cancel", "log.txt"
RUN_OWN_FILES = frozenset({RUN_FILE, STATE_FILE, PROGRESS_FILE, HEARTBEAT_FILE, PROC_FILE, CANCEL_FILE, LOG_FILE})
MAX_RUN_JSON_BYTES = 16 * 2**20  # run.json holds the config
MAX_STATE_BYTES = 8 * 2**20  # state.json holds at most HISTORY_POINTS points: well under 1 MB in practice
MAX_PID_JSON_BYTES = 64 * 2**10  # proc.json, heartbeat.json
MAX_INT = 2**63 - 1  # larger "integers" in a run's files are corruption, not counts
MAX_PID = 2**31 - 1

# ----------------------------------------------------------------------------- writing files

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)


def open_append(path: Path) -> BinaryIO:
    """``path`` opened for appending bytes, created if missing; a symbolic link there is refused
    (``OSError``), so a worker's output never lands outside its run directory."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _O_NOFOLLOW | _O_BINARY, 0o644)
    return os.fdopen(fd, "ab")


def create_new(path: Path, data: bytes) -> None:
    """Write a file that must not exist yet (not even as a dangling symbolic link)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_BINARY, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


# ----------------------------------------------------------------------------- reading files


class UnsafeRunFileError(ValueError):
    """A run's file that is refused: a path leaving the run directory, a symbolic link, or not a
    regular file. The message names the file and the reason."""


def plain_name(name: Any) -> bool:
    """A plain file or directory name: no separators, not hidden, not special."""
    return (isinstance(name, str) and bool(name) and not name.startswith(".") and "/" not in name
            and "\\" not in name and "\0" not in name)


def describe(value: Any, limit: int = 60) -> str:
    """A short rendering of a value found in a file, for error messages."""
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "an array"
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def relative_inside(recorded: Any, what: str = "path") -> PurePosixPath:
    """``recorded`` as a path relative to a run directory that cannot leave it, or
    :class:`UnsafeRunFileError` (absolute paths, ``..``, drives, backslashes, NUL)."""
    if not isinstance(recorded, str) or not recorded or "\0" in recorded or "\\" in recorded:
        raise UnsafeRunFileError(f"{what} {describe(recorded)} is not a plain relative path")
    rel = PurePosixPath(recorded)
    if rel.is_absolute() or PureWindowsPath(recorded).anchor or ".." in rel.parts or not rel.parts:
        raise UnsafeRunFileError(f"{what} {describe(recorded)} is outside the run directory")
    return rel


def open_run_file(run_dir: Path, relative: str | PurePosixPath) -> BinaryIO:
    """Open ``run_dir/relative`` for reading bytes, refusing anything that is not a regular file
    inside ``run_dir`` reached without symbolic links.

    ``FileNotFoundError`` when it does not exist; :class:`UnsafeRunFileError` for a path that
    leaves the directory, a symbolic link (the run directory itself, an intermediate directory or
    the file), or a FIFO, device or directory. On POSIX the directories are walked with
    ``O_NOFOLLOW`` file descriptors, so a link swapped in meanwhile is refused as well.
    """
    rel = relative if isinstance(relative, PurePosixPath) else relative_inside(relative)
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
            return read_json_from(f, name, dict, max_bytes)
    except FileNotFoundError:
        raise
    except UnsafeRunFileError as err:
        raise JSONFileError(str(err) if str(err).startswith(name) else f"{name}: {err}") from None
    except OSError as err:
        raise JSONFileError(f"{name}: cannot read it ({err.strerror or err})") from None


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
        raise JSONFileError(f"{name}: {key!r} must be a number, found {describe(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise JSONFileError(f"{name}: {key!r} must be a finite number, found {value}")
    if isinstance(value, int) and abs(value) > MAX_INT:
        raise JSONFileError(f"{name}: {key!r} is out of range, found {describe(value)}")
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


def bad_param(params: Mapping) -> str | None:
    """Why ``params`` is not a dict of name -> str / number / bool (None when it is)."""
    for key, value in params.items():
        if not isinstance(key, str):
            return f"params key {describe(key)} must be a string"
        plain = isinstance(value, str | bool) or (isinstance(value, int | float) and math.isfinite(value))
        if not plain:
            return f"params[{key!r}] must be a string, number or boolean, found {describe(value)}"
    return None


def check_run(data: dict, name: str = RUN_FILE) -> dict:
    """``run.json``'s fields, type-checked: ``{**data, id, kind, label, page, config, params,
    threads, created}`` with defaults filled in, or :class:`JSONFileError` naming the field.

    ``kind`` is required; ``id``, ``label``, ``page`` are strings (default ""), ``config`` and
    ``params`` objects (``params`` values str / number / bool), ``threads`` a positive integer
    (default 1), ``created`` a number (default 0).
    """
    params = _field(data, "params", dict, name, default={})
    problem = bad_param(params)
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
        raise JSONFileError(f"{name}: 'status' must be one of {', '.join(STATUSES)}, found {describe(status)}")
    history = _field(data, "history", list, name, default=[])
    for i, point in enumerate(history):
        if not isinstance(point, dict):
            raise JSONFileError(f"{name}: 'history' item {i} must be an object, found {describe(point)}")
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


# ----------------------------------------------------------------------------- paths inside a run


def check_input_files(files: Mapping[str, bytes] | None) -> dict[str, bytes]:
    """:meth:`JobManager.submit`'s ``files``, checked: plain names that are not the run's own files,
    bytes values (``ValueError`` otherwise)."""
    if files is not None and not isinstance(files, Mapping):
        raise ValueError(f"files must be a dict of name -> bytes, got {type(files).__name__}")
    checked: dict[str, bytes] = {}
    for name, data in (files or {}).items():
        if not plain_name(name) or ":" in name:
            raise ValueError(f"file name {name!r} must be a plain name "
                             "(no '/', '\\\\' or ':', not starting with '.')")
        if name in RUN_OWN_FILES:
            own = ", ".join(sorted(RUN_OWN_FILES))
            raise ValueError(f"file name {name!r} is one of the run's own files ({own})")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ValueError(f"file {name!r} must be bytes, got {type(data).__name__}")
        checked[name] = bytes(data)
    return checked


def checkpoint_path(recorded: str) -> PurePosixPath:
    """A recorded checkpoint as a path inside the run directory, or :class:`UnsafeRunFileError`."""
    rel = relative_inside(recorded, "checkpoint")
    if rel.suffix != ".safetensors":
        raise UnsafeRunFileError(f"checkpoint {describe(recorded)} is not a .safetensors file")
    return rel


def checked_checkpoint(run_dir: Path, recorded: str | None) -> tuple[Path | None, str | None]:
    """``(path, None)`` for a usable checkpoint; ``(None, why)`` for a refused one; ``(None,
    None)`` for none or a missing one. The weights and the card (if present) must be regular
    files inside the run directory, reached without symbolic links."""
    if recorded is None:
        return None, None
    try:
        weights = checkpoint_path(recorded)
        for member in (weights, weights.with_suffix(".json")):
            try:
                open_run_file(run_dir, member).close()
            except FileNotFoundError:
                if member == weights:
                    return None, None
    except UnsafeRunFileError as err:
        return None, str(err)
    except OSError as err:
        return None, f"checkpoint {describe(recorded)} cannot be read ({err.strerror or err})"
    return run_dir / weights, None


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
    project = Path(__file__).resolve().parents[2]  # drnn_demo/jobs/layout.py -> the project
    return project / "runs" if (project / "pyproject.toml").exists() else Path.cwd() / "runs"
