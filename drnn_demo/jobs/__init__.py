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

The modules, in the order they build on each other
    ``layout``   the files of a run directory (the table of them is there), writing and reading them
                 safely (no symbolic links, bounded sizes), the type checks of their fields
    ``kinds``    the run kinds: ``fn(config, on_progress, should_stop, run_dir) -> result``, by name
                 in :data:`RUN_KINDS` or as ``"package.module:function"``
    ``process``  launching a worker, telling whether a pid is still a run's worker (liveness),
                 killing and reaping it
    ``store``    the runs directory as the manager reads it (checked files, cached) and
                 :class:`RunInfo`, the snapshot a page sees
    ``launchers`` where a worker runs: :class:`LocalLauncher` (a process here, the default) or
                 :class:`RayJobLauncher` (a Ray job on the cluster at ``$DRNN_RAY_ADDRESS``, through
                 Ray's job submission API); the grid run kind :data:`GRID_KIND` of the Paper page
    ``manager``  :class:`JobManager`: submit, poll, runs, get, cancel, delete, checkpoint_zip, log
    ``worker``   the worker process (``python -m drnn_demo.jobs RUN_DIR``, see ``__main__``): runs
                 one kind and publishes its progress

Who writes ``state.json``: the manager before the launch (queued, then running) and after the
worker is gone (failed, interrupted, cancelled); the worker in between. Whether a worker is gone
is decided as :mod:`drnn_demo.jobs.process` describes (its ``Popen`` for the manager that
launched it; psutil, the command line and the recorded start time for any other). A running run
whose process is gone without a final state (for a Ray job: whose job has ended, as Ray tells)
becomes ``failed`` when this manager saw it exit (exit code or signal in the message) or when its
pid now belongs to some other process (a reused pid, pid 1, a missing start time: the message says
which), and ``interrupted`` when the process is simply gone (e.g. after a server restart): never
``finished``. A run whose files are damaged is listed as ``corrupt`` with the reason (see
:mod:`drnn_demo.jobs.layout`).
"""

from ..fileio import write_json_atomic
from .kinds import RUN_KINDS, ProgressCallback, RunKind, resolve_kind, run_train
from .launchers import GRID_KIND, RAY_ADDRESS_ENV, Launcher, LocalLauncher, RayJobLauncher, launcher_from_env
from .layout import (
    ACTIVE_STATUSES,
    CANCEL_FILE,
    FINAL_STATUSES,
    HEARTBEAT_FILE,
    HISTORY_POINTS,
    KIND_STATUSES,
    LOG_FILE,
    PROC_FILE,
    PROGRESS_FILE,
    RUN_FILE,
    RUN_OWN_FILES,
    STATE_FILE,
    STATUSES,
    UnsafeRunFileError,
    check_pid_record,
    check_run,
    check_state,
    default_runs_dir,
    downsample,
    open_run_file,
    read_run_json,
)
from .manager import KILL_AFTER, JobManager
from .process import EXEC_GRACE, PID_START_TOLERANCE, STALE_AFTER, WORKER_MODULE, identify_worker, process_start_time
from .store import RunInfo
from .worker import HEARTBEAT_EVERY, WRITE_EVERY

__all__ = [
    "ACTIVE_STATUSES", "CANCEL_FILE", "EXEC_GRACE", "FINAL_STATUSES", "GRID_KIND", "HEARTBEAT_EVERY",
    "HEARTBEAT_FILE", "HISTORY_POINTS", "KILL_AFTER", "KIND_STATUSES", "LOG_FILE", "PID_START_TOLERANCE", "PROC_FILE",
    "PROGRESS_FILE", "RAY_ADDRESS_ENV", "RUN_FILE", "RUN_KINDS", "RUN_OWN_FILES", "STALE_AFTER", "STATE_FILE",
    "STATUSES", "WORKER_MODULE", "WRITE_EVERY", "JobManager", "Launcher", "LocalLauncher", "ProgressCallback",
    "RayJobLauncher", "RunInfo", "RunKind", "UnsafeRunFileError", "check_pid_record", "check_run", "check_state",
    "default_runs_dir", "downsample", "identify_worker", "launcher_from_env", "open_run_file", "process_start_time",
    "read_run_json", "resolve_kind", "run_train", "write_json_atomic",
]
