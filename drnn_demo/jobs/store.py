"""A runs directory as the manager reads it: which runs there are, their checked files (re-read only
when they change), and the :class:`RunInfo` snapshot a page sees of each."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..fileio import JSONFileError
from .layout import (
    ACTIVE_STATUSES,
    MAX_RUN_JSON_BYTES,
    MAX_STATE_BYTES,
    RUN_FILE,
    STATE_FILE,
    check_run,
    check_state,
    checked_checkpoint,
    plain_name,
    read_run_json,
)
from .process import recorded_pid


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


class RunStore:
    """The runs under ``root``, read through a cache of checked files.

    A file is re-read only when it changed (``os.replace`` gives a new inode), or when a caller
    asks for a ``fresh`` read before deciding something. Not locked on its own: the
    :class:`~drnn_demo.jobs.manager.JobManager` calls it under its lock.
    """

    def __init__(self, root: Path):
        self.root = root
        self._cache: dict[Path, tuple[tuple, Any]] = {}

    def ids(self) -> list[str]:
        """Names of the run directories: plain names, real directories (not symbolic links) that
        hold a ``run.json`` (whatever it contains)."""
        try:
            with os.scandir(self.root) as entries:
                return [e.name for e in entries if plain_name(e.name) and e.is_dir(follow_symlinks=False)
                        and os.path.lexists(os.path.join(e.path, RUN_FILE))]
        except FileNotFoundError:
            return []

    def run_dir(self, run_id: str) -> Path:
        """The run's directory, or ``KeyError``: a plain name, not a symbolic link, with a ``run.json``."""
        if not plain_name(run_id):
            raise KeyError(f"no run {run_id!r} in {self.root}")
        run_dir = self.root / run_id
        if run_dir.is_symlink() or not run_dir.is_dir() or not os.path.lexists(run_dir / RUN_FILE):
            raise KeyError(f"no run {run_id!r} in {self.root}")
        return run_dir

    def load(self, run_id: str, name: str, check: Callable[[dict, str], dict], max_bytes: int,
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

    def run(self, run_id: str, fresh: bool = False) -> dict:
        """The checked ``run.json`` (:func:`~drnn_demo.jobs.layout.check_run`)."""
        return self.load(run_id, RUN_FILE, check_run, MAX_RUN_JSON_BYTES, fresh)

    def state(self, run_id: str, fresh: bool = False) -> dict:
        """The checked ``state.json`` (:func:`~drnn_demo.jobs.layout.check_state`)."""
        return self.load(run_id, STATE_FILE, check_state, MAX_STATE_BYTES, fresh)

    def try_state(self, run_id: str, fresh: bool = False) -> dict | None:
        """The checked state, or None when it is missing or damaged."""
        try:
            return self.state(run_id, fresh)
        except (FileNotFoundError, JSONFileError):
            return None

    def load_both(self, run_id: str) -> tuple[dict | None, dict | None, str | None]:
        """``(run, state, problem)``: both checked and problem None; or problem says why the run is
        corrupt (``run`` is kept when only the state is bad); or all None when the run is gone."""
        try:
            run = self.run(run_id)
        except FileNotFoundError:
            return None, None, None
        except JSONFileError as err:
            return None, None, str(err)
        try:
            return run, self.state(run_id), None
        except FileNotFoundError:
            return run, None, f"{STATE_FILE}: missing"
        except JSONFileError as err:
            return run, None, str(err)

    def usable(self, run_id: str) -> tuple[dict, dict] | None:
        """``(run, state)`` of a sound run; None for a corrupt or vanished one."""
        run, state, problem = self.load_both(run_id)
        return None if run is None or state is None or problem else (run, state)

    def queue_order(self, run_ids: list[str]) -> list[str]:
        """``run_ids`` in the order they start: oldest first (by ``created``, then id)."""
        def created(run_id: str) -> float:
            try:
                return self.run(run_id)["created"]
            except (FileNotFoundError, JSONFileError):
                return 0.0
        return sorted(run_ids, key=lambda r: (created(r), r))

    def info(self, run_id: str, run: dict, state: dict, queue_position: int | None) -> RunInfo:
        """A sound run, as listed: progress, elapsed time and eta computed from its checked files."""
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
        checkpoint, refused = checked_checkpoint(run_dir, state["checkpoint"])
        if refused:
            message = f"{message} (checkpoint refused: {refused})" if message else f"checkpoint refused: {refused}"
        return RunInfo(
            id=run_id, kind=run["kind"], label=run["label"], page=run["page"], params=dict(run["params"]),
            status=status, message=message, step=step, total_steps=total, fraction=fraction, elapsed=elapsed,
            eta=eta, created=run["created"], started=started, ended=ended,
            queue_position=queue_position if status == "queued" else None, metrics=dict(state["metrics"]),
            history=list(state["history"]), checkpoint=checkpoint, config=dict(run["config"]), path=run_dir,
            pid=state["pid"] or recorded_pid(run_dir))

    def corrupt_info(self, run_id: str, run: dict | None, problem: str) -> RunInfo:
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

    def forget(self, run_id: str) -> None:
        """Drop the cached files of a deleted run."""
        for path in [p for p in self._cache if p.parent.name == run_id]:
            del self._cache[path]
