"""The worker: one run in this process, its progress published in the run's files.

The manager starts ``python -m drnn_demo.jobs RUN_DIR``; ``drnn_demo/jobs/__main__.py`` calls
:func:`main`, which calls :func:`run_worker`. The worker reads ``run.json`` (exit code 2 if it
cannot), caps its threads, resolves the run's kind (:func:`drnn_demo.jobs.kinds.resolve_kind`)
and calls it with a :class:`Publisher`'s ``on_progress`` and ``should_stop``.

The publisher appends every progress point to ``progress.jsonl`` and rewrites ``state.json`` on
progress at most every :data:`WRITE_EVERY` seconds (a pending change is written by the heartbeat
thread within a second, and the final state at the end); ``heartbeat.json`` is rewritten every
:data:`HEARTBEAT_EVERY` seconds. ``should_stop()`` turns true when the ``cancel`` file appears or
the loss became non-finite (the run then ends ``diverged``). A kind's exception is a ``failed``
run with its traceback in ``log.txt``, SIGTERM or Ctrl-C an ``interrupted`` one: the worker
reports every ending in ``state.json`` rather than raising.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..fileio import JSONFileError, jsonable, write_json_atomic
from .kinds import resolve_kind
from .layout import (
    CANCEL_FILE,
    HEARTBEAT_FILE,
    KIND_STATUSES,
    MAX_STATE_BYTES,
    PROGRESS_FILE,
    RUN_FILE,
    STATE_FILE,
    check_run,
    downsample,
    open_append,
    read_run_json,
)
from .process import process_start_time

HEARTBEAT_EVERY = 1.0
WRITE_EVERY = 0.2  # the worker rewrites state.json at most this often (and at the end)


class _Terminated(BaseException):
    """Raised in the worker on SIGTERM."""


class Publisher:
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
        self._progress_log = io.TextIOWrapper(open_append(run_dir / PROGRESS_FILE), encoding="utf-8")
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
        metrics = jsonable(dict(get("metrics") or {}))
        elapsed = get("elapsed")
        point = {**metrics, "step": step, "loss": loss, "elapsed": now - self.t0 if elapsed is None else float(elapsed)}
        point = jsonable(point)
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
            self.metrics.update(jsonable(dict(metrics or {})))
            if checkpoint is not None:
                checkpoint = Path(checkpoint)
                with contextlib.suppress(ValueError):
                    checkpoint = checkpoint.resolve().relative_to(self.run_dir.resolve())
            self.state.update(status=status, message=message, ended=time.time(),
                              checkpoint=None if checkpoint is None else str(checkpoint))
            print(f"[drnn_demo.jobs] {status}: {message}", flush=True)  # the log is complete before the state
            self._write_state()
            self._progress_log.close()


WORKER_NICENESS = 10  # how far below the server a worker runs ($DRNN_RUN_NICE overrides it; 0: at its priority)


def lower_priority() -> None:
    """Run this worker below the server, so a training run does not slow the UI: a nice increment
    (:data:`WORKER_NICENESS`) and, where the OS has it (Linux), the ``SCHED_IDLE`` policy, under which the worker
    gets a core only when no normal process wants it (nice alone still let it delay the server and the browser on
    a 2-core machine). ``$DRNN_RUN_NICE=0`` keeps the worker at the server's priority."""
    try:
        increment = int(os.environ.get("DRNN_RUN_NICE", WORKER_NICENESS))
    except ValueError:
        increment = WORKER_NICENESS
    if increment <= 0:
        return
    if hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(increment)
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def run_worker(run_dir: Path) -> int:
    """Run one run in this process (``python -m drnn_demo.jobs RUN_DIR``); returns the exit code."""
    try:
        run = check_run(read_run_json(run_dir, RUN_FILE), RUN_FILE)
    except (OSError, JSONFileError) as e:
        print(f"[drnn_demo.jobs] cannot start: {e}", file=sys.stderr, flush=True)
        return 2
    threads = str(run["threads"])
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = threads
    lower_priority()

    def on_sigterm(signum, frame):
        raise _Terminated()

    signal.signal(signal.SIGTERM, on_sigterm)
    print(f"[drnn_demo.jobs] run {run['id'] or run_dir.name} kind {run['kind']} pid {os.getpid()} threads {threads}",
          flush=True)
    pub = Publisher(run_dir)
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


def main(argv: list[str]) -> None:
    """``python -m drnn_demo.jobs RUN_DIR``: run it, then leave at once with the exit code."""
    if len(argv) != 2:
        print("usage: python -m drnn_demo.jobs RUN_DIR", file=sys.stderr)
        sys.exit(2)
    code = run_worker(Path(argv[1]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the final state is written: do not wait for threads a kind may have left behind
