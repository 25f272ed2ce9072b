"""The :class:`JobManager`: submits runs, starts their workers, watches, cancels and deletes them.

One manager per server process (the app shares it through ``st.cache_resource``); several
managers on one runs directory (several servers, or a restart) coordinate through a lock file
and read each other's runs from disk.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import subprocess
import threading
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path

from ..fileio import JSONFileError, write_json_atomic
from .kinds import check_kind_name
from .launchers import GRID_KIND, Launcher, RayJobLauncher, launcher_from_env, ray_liveness, recorded_launch
from .layout import (
    ACTIVE_STATUSES,
    CANCEL_FILE,
    FINAL_STATUSES,
    HEARTBEAT_FILE,
    LOG_FILE,
    MAX_INT,
    PROC_FILE,
    RUN_FILE,
    STATE_FILE,
    UnsafeRunFileError,
    bad_param,
    check_input_files,
    checkpoint_path,
    create_new,
    default_runs_dir,
    open_run_file,
)
from .process import STALE_AFTER, describe_exit, kill_recorded, read_pid_record, reap, recorded_liveness, worker_env
from .store import RunInfo, RunStore

KILL_AFTER = 2.0  # seconds between a cancel request and killing a worker that did not stop


class JobManager:
    """Submits, starts, watches, cancels and deletes runs kept under ``root``.

    Args:
        root: the runs directory (created if needed); default :func:`default_runs_dir`.
        max_concurrent: how many runs may train at once (the rest wait in a queue); default
            ``$DRNN_MAX_RUNS`` or 1.
        launcher: where workers run (:mod:`drnn_demo.jobs.launchers`); default a Ray job on the
            cluster at ``$DRNN_RAY_ADDRESS`` when it is set, else a local process.

    One manager per server process (its methods are thread-safe); several managers, or several
    servers, on one directory coordinate through a lock file. Creating a manager polls once, so
    runs left queued by a previous server start, and runs whose worker died are marked. No method
    raises because of a damaged run directory: such a run is listed as ``corrupt``.
    """

    def __init__(self, root: str | Path | None = None, max_concurrent: int | None = None,
                 launcher: Launcher | None = None):
        self.root = Path(root) if root is not None else default_runs_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        if max_concurrent is None:
            max_concurrent = int(os.environ.get("DRNN_MAX_RUNS", "1"))
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise ValueError(f"max_concurrent must be a positive integer, got {max_concurrent!r}")
        self.max_concurrent = max_concurrent
        self.launcher = launcher_from_env() if launcher is None else launcher
        self._procs: dict[str, object] = {}  # run id -> the launcher's handle (a Popen for a local worker)
        self._ray: dict[str, RayJobLauncher] = {}  # address -> launcher, for Ray runs this manager did not launch
        self._lock = threading.RLock()
        self._store = RunStore(self.root)
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
        check_kind_name(kind)
        if threads is None:
            threads = int(os.environ.get("DRNN_RUN_THREADS", "1"))
        if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_INT:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        if not isinstance(config, dict):
            raise ValueError(f"config must be a dict, got {type(config).__name__}")
        if not isinstance(label, str) or not isinstance(page, str):
            raise ValueError("label and page must be strings")
        params = dict(params or {})
        problem = bad_param(params)
        if problem:
            raise ValueError(problem)
        files = check_input_files(files)
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
                    create_new(run_dir / name, data)
                write_json_atomic(run_dir / STATE_FILE, {"status": "queued", "message": "waiting for a free slot"})
                write_json_atomic(run_dir / RUN_FILE, {  # last: from now on the directory is a run
                    "id": run_id, "kind": kind, "config": config, "label": label or kind, "page": page,
                    "params": params, "threads": threads, "created": created})
            except BaseException:
                shutil.rmtree(run_dir, ignore_errors=True)
                raise
        self.poll()
        return run_id

    def poll(self) -> None:
        """Mark runs whose worker is gone, enforce overdue cancels, start queued runs while under the cap.

        Corrupt runs are skipped: they are never counted, checked or launched."""
        with self._lock, self._dir_lock():
            running, queued = 0, []
            for run_id in self._store.ids():
                loaded = self._store.usable(run_id)  # cached while unchanged; decisions below re-read it
                if loaded is None:
                    continue
                status = loaded[1]["status"]
                try:
                    if status == "running":
                        if not self._check_running(run_id):
                            running += 1
                    elif status == "queued":
                        queued.append(run_id)
                    elif run_id in self._procs and not _running_popen(self._procs[run_id]):
                        del self._procs[run_id]  # reaped: the worker wrote its final state and exited
                except (FileNotFoundError, JSONFileError):  # deleted or damaged meanwhile: listed as such
                    continue
            for run_id in self._store.queue_order(queued):
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
            for run_id in self._store.ids():
                run, state, problem = self._store.load_both(run_id)
                if run is None and problem is None:
                    continue  # deleted meanwhile
                loaded.append((run_id, run, state, problem))
            queue = self._store.queue_order([r for r, _, s, p in loaded if p is None and s["status"] == "queued"])
            positions = {run_id: i + 1 for i, run_id in enumerate(queue)}
            infos = [self._store.info(run_id, run, state, positions.get(run_id)) if problem is None
                     else self._store.corrupt_info(run_id, run, problem)
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
            run_dir = self._store.run_dir(run_id)
            state = self._store.try_state(run_id, fresh=True)
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
                create_new(run_dir / CANCEL_FILE, repr(time.time()).encode())
        timer = threading.Timer(KILL_AFTER, self._kill_overdue, args=(run_id,))
        timer.daemon = True
        timer.start()

    def delete(self, run_id: str) -> None:
        """Remove a run and its directory (corrupt runs too); an active run is cancelled first, and
        killed if its worker has not exited a second later. A symbolic link is never followed."""
        run_dir = self._store.run_dir(run_id)  # KeyError if unknown
        self.cancel(run_id)
        deadline = time.monotonic() + 1.0  # the directory goes anyway: no need to wait for a slow worker
        while self._worker_alive(run_id):
            if time.monotonic() > deadline:
                self._kill(run_id)
                break
            time.sleep(0.05)
        with self._lock:
            proc = self._procs.pop(run_id, None)
            if isinstance(proc, subprocess.Popen):
                reap(proc)
            with contextlib.suppress(OSError):
                os.unlink(run_dir / RUN_FILE)  # no longer listed, even while the rest goes
            shutil.rmtree(run_dir, ignore_errors=True)  # refuses a symlinked directory; unlinks links inside
            self._store.forget(run_id)
        self.poll()

    def active(self) -> bool:
        """Is any run queued or running? (Pages poll only while this is true; corrupt runs are not.)"""
        with self._lock:
            return any((loaded := self._store.usable(r)) is not None and loaded[1]["status"] in ACTIVE_STATUSES
                       for r in self._store.ids())

    def checkpoint_zip(self, run_id: str) -> bytes:
        """The run's checkpoint (``.safetensors`` + ``.json`` card) as a zip archive, for download.

        ``FileNotFoundError`` when the run has no checkpoint; :class:`UnsafeRunFileError` when the
        recorded checkpoint is outside the run directory, not a ``.safetensors`` file, or either
        file is a symbolic link or not a regular file; :class:`~drnn_demo.fileio.JSONFileError`
        when the run is corrupt. Only regular files inside the run directory are read, each
        opened without following links, so no byte from outside the run ends up in the zip.
        """
        run_dir = self._store.run_dir(run_id)
        with self._lock:
            self._store.run(run_id, fresh=True)
            recorded = self._store.state(run_id, fresh=True)["checkpoint"]
        if recorded is None:
            raise FileNotFoundError(f"run {run_id!r} has no checkpoint")
        weights = checkpoint_path(recorded)
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
        run_dir = self._store.run_dir(run_id)
        try:
            with open_run_file(run_dir, LOG_FILE) as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - tail))
                return f.read(tail).decode("utf-8", errors="replace")
        except (OSError, UnsafeRunFileError):
            return ""

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
        run = self._store.run(run_id, fresh=True)
        state = self._store.state(run_id, fresh=True)
        now = time.time()
        write_json_atomic(run_dir / STATE_FILE, {**state, "status": "running", "message": "starting",
                                                 "started": now, "step": 0})
        try:
            cpus = 0 if run["kind"] == GRID_KIND else run["threads"]  # a grid's driver leaves the CPUs to its tasks
            handle = self.launcher.launch(run_dir, worker_env(run["threads"]), cpus=cpus)
        except OSError as e:
            write_json_atomic(run_dir / STATE_FILE, {**state, "status": "failed", "started": now, "ended": now,
                                                     "message": f"could not start the worker: {e}"})
            return False
        self._procs[run_id] = handle
        write_json_atomic(run_dir / PROC_FILE, self.launcher.record(handle))  # a local worker: {pid, pid_start}
        return True

    def _liveness(self, run_id: str) -> tuple[str, str]:
        """``(verdict, reason)`` about the run's worker: ``"alive"``; ``"starting"`` (launched by a
        manager that has not recorded a pid yet, recently); ``"gone"`` (exited, or never recorded
        and long ago); ``"other"`` (the recorded pid is not this run's worker: reason says why)."""
        proc = self._procs.get(run_id)
        if isinstance(proc, subprocess.Popen):
            return ("alive", "") if proc.poll() is None else ("gone", "")
        run_dir = self.root / run_id
        if proc is not None:
            return ray_liveness(run_dir, self.launcher, proc)
        if not os.path.lexists(run_dir / PROC_FILE) and not os.path.lexists(run_dir / HEARTBEAT_FILE):
            state = self._store.try_state(run_id, fresh=True) or {}
            if time.time() - (state.get("started") or 0.0) < STALE_AFTER:
                return "starting", ""
            return "gone", "no worker was ever recorded"
        record = recorded_launch(run_dir)
        if record is not None:
            return ray_liveness(run_dir, self._ray_launcher(record["address"]), record["handle"])
        return recorded_liveness(run_dir)

    def _ray_launcher(self, address: str) -> RayJobLauncher:
        if isinstance(self.launcher, RayJobLauncher) and self.launcher.address == address:
            return self.launcher
        return self._ray.setdefault(address, RayJobLauncher(address))

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
        code = proc.poll() if isinstance(proc, subprocess.Popen) else None
        self._mark_gone(run_id, code, reason if verdict == "other" else None)
        return True

    def _mark_gone(self, run_id: str, returncode: int | None, not_ours: str | None = None) -> None:
        """The worker has exited (or ``not_ours`` says why the recorded pid is not it): keep its
        final state, or write failed / interrupted / cancelled."""
        run_dir = self.root / run_id
        state = self._store.try_state(run_id, fresh=True)
        if state is None or state["status"] in FINAL_STATUSES:
            return  # a damaged state is shown as corrupt: nothing to write over it
        if os.path.lexists(run_dir / CANCEL_FILE):
            status, message = "cancelled", "cancelled (the worker was stopped by force)"
        elif returncode is not None:
            status, message = "failed", f"the worker {describe_exit(returncode)} before reporting a result; see its log"
        elif not_ours is not None:
            status, message = "failed", f"the worker is gone without a result: {not_ours}"
        else:
            status, message = "interrupted", "the worker process is gone (server restart or killed); see its log"
        _, _, beat, _ = read_pid_record(run_dir)  # after a restart, the last sign of life is the best end time
        now = time.time()
        ended = now if returncode is not None or not beat else min(beat, now)
        write_json_atomic(run_dir / STATE_FILE, {**state, "status": status, "message": message, "ended": ended})

    def _kill(self, run_id: str) -> None:
        """SIGKILL the run's worker, if it is still the same process (verified as for liveness);
        a Ray job is stopped through Ray."""
        with self._lock:
            proc = self._procs.get(run_id)
            if proc is not None:
                self.launcher.stop(proc)
            elif (record := recorded_launch(self.root / run_id)) is not None:
                self._ray_launcher(record["address"]).stop(record["handle"])
            else:
                kill_recorded(self.root / run_id)

    def _kill_overdue(self, run_id: str) -> None:
        """Timer callback :data:`KILL_AFTER` seconds after a cancel."""
        with contextlib.suppress(Exception):
            if (self.root / run_id).exists() and self._worker_alive(run_id):
                self._kill(run_id)
            self.poll()


def _running_popen(handle: object) -> bool:
    """Is ``handle`` a local worker's ``Popen`` that has not exited yet (and so is not reaped)?"""
    return isinstance(handle, subprocess.Popen) and handle.poll() is None
