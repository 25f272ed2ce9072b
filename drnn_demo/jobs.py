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
    ``.safetensors`` file whose ``.json`` card sits beside it, or None). An exception is a
    ``failed`` run whose traceback is in ``log.txt``.

Files of a run, ``<root>/<run_id>/``
    ============== ==================================================================================
    run.json       what to run: id, kind, config, label, page, params, threads, created (written once)
    state.json     status, step, metrics, downsampled history, times (always replaced atomically)
    progress.jsonl every progress point, one JSON object per line (append-only; a torn last line is
                   skipped by readers)
    heartbeat.json ``{pid, pid_start, time}``, rewritten by the worker every second
    proc.json      ``{pid, pid_start}``, written by the manager right after the launch
    cancel         present when a cancel was requested (contains the request time)
    log.txt        the worker's stdout and stderr: tracebacks land here
    model.*        the checkpoint, if the kind saved one
    ============== ==================================================================================

Who writes ``state.json``: the manager before the launch (queued, then running) and after the
worker is gone (failed, interrupted, cancelled); the worker in between. A run counts as alive
while its process exists *and* is the same process (pid plus its start time from ``/proc``; where
there is no ``/proc``, a heartbeat younger than :data:`STALE_AFTER`). A running run whose process
is gone without a final state becomes ``failed`` when this manager saw it exit (exit code or
signal in the message) and ``interrupted`` otherwise (e.g. after a server restart): never
``finished``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATUSES = ("queued", "running", "finished", "early_stopped", "diverged", "cancelled", "failed", "interrupted")
ACTIVE_STATUSES = ("queued", "running")
FINAL_STATUSES = tuple(s for s in STATUSES if s not in ACTIVE_STATUSES)
KIND_STATUSES = ("finished", "early_stopped", "diverged", "cancelled")  # what a kind may return

HISTORY_POINTS = 500  # at most this many progress points in state.json (for plotting)
KILL_AFTER = 2.0  # seconds between a cancel request and killing a worker that did not stop
STALE_AFTER = 15.0  # a heartbeat older than this, with no verifiable process, means the worker is gone
HEARTBEAT_EVERY = 1.0
WRITE_EVERY = 0.2  # the worker rewrites state.json at most this often (and at the end)

RUN_FILE, STATE_FILE, PROGRESS_FILE = "run.json", "state.json", "progress.jsonl"
HEARTBEAT_FILE, PROC_FILE, CANCEL_FILE, LOG_FILE = "heartbeat.json", "proc.json", "cancel", "log.txt"

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


# ----------------------------------------------------------------------------- files


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
    (``os.replace`` is atomic on POSIX and Windows).
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


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _read_json_or_none(path: Path) -> Any:
    try:
        return _read_json(path)
    except (OSError, ValueError):
        return None


def _process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux ``/proc``), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rpartition(")")[2].split()
        return int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def _process_matches(pid: int, pid_start: int | None) -> bool | None:
    """Is ``pid`` still the process that started at ``pid_start``? None when this cannot be told."""
    if os.path.isdir("/proc/self"):
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            return False
        if fields[0] in ("Z", "X"):  # a zombie has finished
            return False
        return pid_start is None or int(fields[19]) == pid_start
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass
    return None


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
    ``.json`` card beside it.
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
    runs left queued by a previous server start, and runs whose worker died are marked.
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
               *, threads: int | None = None) -> str:
        """Queue a run of ``kind`` on ``config`` and start it if a slot is free; return its id.

        ``threads`` caps torch's threads in the worker (default ``$DRNN_RUN_THREADS`` or 1), so a
        run cannot starve the UI. ``config`` must be JSON-serialisable.
        """
        _check_kind_name(kind)
        if threads is None:
            threads = int(os.environ.get("DRNN_RUN_THREADS", "1"))
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        try:
            json.dumps(config, allow_nan=False)
            json.dumps(params or {}, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(f"config and params must be plain JSON: {e}") from None
        with self._lock:
            created = time.time()
            run_id = f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(created))}-{secrets.token_hex(3)}"
            run_dir = self.root / run_id
            run_dir.mkdir()
            write_json_atomic(run_dir / RUN_FILE, {
                "id": run_id, "kind": kind, "config": config, "label": label or kind, "page": page,
                "params": dict(params or {}), "threads": threads, "created": created})
            write_json_atomic(run_dir / STATE_FILE, {"status": "queued", "message": "waiting for a free slot"})
        self.poll()
        return run_id

    def poll(self) -> None:
        """Mark runs whose worker is gone, enforce overdue cancels, start queued runs while under the cap."""
        with self._lock, self._dir_lock():
            running, queued = 0, []
            for run_id in self._ids():
                state = self._state(run_id)  # cached while unchanged; decisions below re-read it
                if state is None:
                    continue
                if state.get("status") == "running":
                    if not self._check_running(run_id):
                        running += 1
                elif state.get("status") == "queued":
                    queued.append(run_id)
                elif run_id in self._procs and self._procs[run_id].poll() is not None:
                    del self._procs[run_id]  # reaped: the worker wrote its final state and exited
            for run_id in self._queue_order(queued):
                if running >= self.max_concurrent:
                    break
                self._launch(run_id)
                running += 1

    def runs(self) -> list[RunInfo]:
        """All runs, newest first."""
        with self._lock:
            loaded = [(run_id, self._run(run_id), self._state(run_id)) for run_id in self._ids()]
            loaded = [x for x in loaded if x[1] is not None and x[2] is not None]
            queue = self._queue_order([r for r, _, s in loaded if s.get("status") == "queued"])
            positions = {run_id: i + 1 for i, run_id in enumerate(queue)}
            infos = [self._info(run_id, run, state, positions.get(run_id)) for run_id, run, state in loaded]
        return sorted(infos, key=lambda i: (i.created, i.id), reverse=True)

    def get(self, run_id: str) -> RunInfo:
        """One run (``KeyError`` if there is no such run)."""
        for info in self.runs():
            if info.id == run_id:
                return info
        raise KeyError(f"no run {run_id!r} in {self.root}")

    def cancel(self, run_id: str) -> None:
        """Cancel a run: a queued one at once; a running one asks its worker to stop and kills it
        if it has not exited :data:`KILL_AFTER` seconds later. Finished runs are left alone."""
        with self._lock, self._dir_lock():  # not while another manager launches it
            run_dir = self._dir(run_id)
            state = self._state(run_id, fresh=True) or {}
            if state.get("status") == "queued":
                now = time.time()
                write_json_atomic(run_dir / STATE_FILE, {**state, "status": "cancelled", "ended": now,
                                                         "message": "cancelled before it started"})
                return
            if state.get("status") != "running":
                return
            if not (run_dir / CANCEL_FILE).exists():
                (run_dir / CANCEL_FILE).write_text(repr(time.time()))
        timer = threading.Timer(KILL_AFTER, self._kill_overdue, args=(run_id,))
        timer.daemon = True
        timer.start()

    def delete(self, run_id: str) -> None:
        """Remove a run and its directory; an active run is cancelled first, and killed if its worker
        has not exited a second later."""
        self._dir(run_id)  # KeyError if unknown
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
            shutil.rmtree(self.root / run_id, ignore_errors=True)
            for path in [p for p in self._cache if p.parent.name == run_id]:
                del self._cache[path]
        self.poll()

    def active(self) -> bool:
        """Is any run queued or running? (Pages poll only while this is true.)"""
        with self._lock:
            return any((self._state(r) or {}).get("status") in ACTIVE_STATUSES for r in self._ids())

    def checkpoint_zip(self, run_id: str) -> bytes:
        """The run's checkpoint (``.safetensors`` + ``.json`` card) as a zip archive, for download."""
        info = self.get(run_id)
        if info.checkpoint is None:
            raise FileNotFoundError(f"run {run_id!r} has no checkpoint")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path in (info.checkpoint, info.checkpoint.with_suffix(".json")):
                if path.exists():
                    zf.write(path, arcname=path.name)
        return buf.getvalue()

    def log(self, run_id: str, tail: int = 20_000) -> str:
        """The last ``tail`` characters of the run's worker log (stdout + stderr)."""
        path = self._dir(run_id) / LOG_FILE
        try:
            with open(path, "rb") as f:
                f.seek(max(0, path.stat().st_size - tail))
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    # --- reading

    def _ids(self) -> list[str]:
        try:
            return [p.name for p in self.root.iterdir() if p.is_dir() and (p / RUN_FILE).exists()]
        except FileNotFoundError:
            return []

    def _dir(self, run_id: str) -> Path:
        run_dir = self.root / run_id
        if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith(".") or not (run_dir / RUN_FILE).exists():
            raise KeyError(f"no run {run_id!r} in {self.root}")
        return run_dir

    def _cached(self, path: Path, fresh: bool = False) -> Any:
        """JSON at ``path``, re-read only when the file changed (os.replace gives a new inode)."""
        try:
            st = os.stat(path)
        except OSError:
            self._cache.pop(path, None)
            return None
        key = (st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns)
        hit = self._cache.get(path)
        if hit is not None and hit[0] == key and not fresh:
            return hit[1]
        data = _read_json_or_none(path)
        if data is not None:
            self._cache[path] = (key, data)
        return data

    def _run(self, run_id: str) -> dict | None:
        return self._cached(self.root / run_id / RUN_FILE)

    def _state(self, run_id: str, fresh: bool = False) -> dict | None:
        return self._cached(self.root / run_id / STATE_FILE, fresh)

    def _queue_order(self, run_ids: list[str]) -> list[str]:
        return sorted(run_ids, key=lambda r: ((self._run(r) or {}).get("created", 0.0), r))

    def _info(self, run_id: str, run: dict, state: dict, queue_position: int | None) -> RunInfo:
        now = time.time()
        status = state.get("status", "queued")
        step = int(state.get("step") or 0)
        total = state.get("total_steps")
        started, ended = state.get("started"), state.get("ended")
        if status == "finished":
            fraction = 1.0
        elif total:
            fraction = min(1.0, max(0.0, step / total))
        else:
            fraction = 0.0
        elapsed = 0.0 if started is None else max(0.0, (ended or now) - started)
        eta = None
        rate, progress_time = state.get("rate"), state.get("progress_time")
        if status == "running" and total and rate and progress_time:
            eta = max(0.0, (total - step) / rate - (now - progress_time))
        checkpoint = None
        if state.get("checkpoint"):
            checkpoint = self.root / run_id / state["checkpoint"]
            if not checkpoint.exists():
                checkpoint = None
        proc = _read_json_or_none(self.root / run_id / PROC_FILE) or {}
        return RunInfo(
            id=run_id, kind=run.get("kind", ""), label=run.get("label", ""), page=run.get("page", ""),
            params=dict(run.get("params") or {}), status=status, message=state.get("message", ""), step=step,
            total_steps=total, fraction=fraction, elapsed=elapsed, eta=eta, created=run.get("created", 0.0),
            started=started, ended=ended, queue_position=queue_position if status == "queued" else None,
            metrics=dict(state.get("metrics") or {}), history=list(state.get("history") or []),
            checkpoint=checkpoint, config=dict(run.get("config") or {}), path=self.root / run_id,
            pid=state.get("pid") or proc.get("pid"))

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

    def _launch(self, run_id: str) -> None:
        run_dir = self.root / run_id
        run = self._run(run_id) or {}
        state = self._state(run_id, fresh=True) or {}
        now = time.time()
        write_json_atomic(run_dir / STATE_FILE, {**state, "status": "running", "message": "starting",
                                                 "started": now, "step": 0})
        threads = str(run.get("threads", 1))
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        try:
            with open(run_dir / LOG_FILE, "ab") as log:
                proc = subprocess.Popen([sys.executable, "-m", "drnn_demo.jobs", str(run_dir)], env=env,
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        except OSError as e:
            write_json_atomic(run_dir / STATE_FILE, {**state, "status": "failed", "started": now, "ended": now,
                                                     "message": f"could not start the worker: {e}"})
            return
        self._procs[run_id] = proc
        write_json_atomic(run_dir / PROC_FILE, {"pid": proc.pid, "pid_start": _process_start(proc.pid)})

    def _pid(self, run_id: str) -> tuple[int | None, int | None, float | None]:
        """(pid, pid start, last heartbeat time) as published by the manager and the worker."""
        run_dir = self.root / run_id
        beat = _read_json_or_none(run_dir / HEARTBEAT_FILE) or {}
        proc = _read_json_or_none(run_dir / PROC_FILE) or {}
        pid = proc.get("pid") or beat.get("pid")
        start = proc.get("pid_start") if proc.get("pid") else beat.get("pid_start")
        return pid, start, beat.get("time")

    def _worker_alive(self, run_id: str) -> bool:
        with self._lock:
            proc = self._procs.get(run_id)
            if proc is not None:
                return proc.poll() is None
            pid, start, beat = self._pid(run_id)
            alive = _process_matches(pid, start) if pid else False
            if alive is None:  # no /proc: trust a fresh heartbeat
                state = self._state(run_id, fresh=True) or {}
                last = beat or state.get("started") or 0.0
                alive = time.time() - last < STALE_AFTER
            return bool(alive)

    def _check_running(self, run_id: str) -> bool:
        """For a run whose state says running: enforce an overdue cancel, and if its worker is gone
        write its final state. Returns True when the run is over."""
        run_dir = self.root / run_id
        proc = self._procs.get(run_id)
        if proc is None and not (run_dir / PROC_FILE).exists() and not (run_dir / HEARTBEAT_FILE).exists():
            # launched by a manager that died before it could record the pid: wait for a heartbeat
            state = self._state(run_id, fresh=True) or {}
            if time.time() - (state.get("started") or 0.0) < STALE_AFTER:
                return False
        elif self._worker_alive(run_id):
            cancel = run_dir / CANCEL_FILE
            with contextlib.suppress(OSError, ValueError):
                if time.time() - float(cancel.read_text()) > KILL_AFTER:
                    self._kill(run_id)
            if self._worker_alive(run_id):
                return False
        returncode = None
        if proc is not None:
            returncode = proc.poll()
            del self._procs[run_id]
        self._mark_gone(run_id, returncode)
        return True

    def _mark_gone(self, run_id: str, returncode: int | None) -> None:
        """The worker has exited: keep its final state, or write failed / interrupted / cancelled."""
        run_dir = self.root / run_id
        state = self._state(run_id, fresh=True) or {}
        if state.get("status") in FINAL_STATUSES:
            return
        how = f"exited with code {returncode}"
        if returncode is not None and returncode < 0:
            with contextlib.suppress(ValueError):
                how = f"was killed by {signal.Signals(-returncode).name}"
        if (run_dir / CANCEL_FILE).exists():
            status, message = "cancelled", "cancelled (the worker was stopped by force)"
        elif returncode is not None:
            status, message = "failed", f"the worker {how} before reporting a result; see its log"
        else:
            status, message = "interrupted", "the worker process is gone (server restart or killed); see its log"
        _, _, beat = self._pid(run_id)  # after a restart, the last sign of life is the best end time
        ended = time.time() if returncode is not None or not beat else beat
        write_json_atomic(run_dir / STATE_FILE, {**state, "status": status, "message": message, "ended": ended})

    def _kill(self, run_id: str) -> None:
        """SIGKILL the run's worker, if it is still the same process."""
        with self._lock:
            proc = self._procs.get(run_id)
            if proc is not None:
                if proc.poll() is None:
                    proc.kill()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=5)
                return
            pid, start, _ = self._pid(run_id)
            if pid and start is not None and _process_matches(pid, start):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 5
                while _process_matches(pid, start) and time.monotonic() < deadline:
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
        self.state = _read_json_or_none(run_dir / STATE_FILE) or {}
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
        self._pid_start = _process_start(os.getpid())
        self._progress_log = open(run_dir / PROGRESS_FILE, "a", encoding="utf-8")
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
            self.cancelled = (self.run_dir / CANCEL_FILE).exists()
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
    run = _read_json(run_dir / RUN_FILE)
    threads = str(run.get("threads", 1))
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = threads

    def on_sigterm(signum, frame):
        raise _Terminated()

    signal.signal(signal.SIGTERM, on_sigterm)
    print(f"[drnn_demo.jobs] run {run['id']} kind {run['kind']} pid {os.getpid()} threads {threads}", flush=True)
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
