"""Run an experiment's (cell, seed) pairs as Ray tasks: the path past one machine.

``python -m drnn_demo reproduce sine --budget full --backend ray [--address HEAD:6379]`` runs the pairs
that :func:`drnn_demo.reproduce.pending_pairs` selects (the same ones the local loop would run: same
``--seeds``, ``--only``, ``--force`` and ``--shard``) as one Ray task each, ``num_cpus`` /
``num_gpus`` per task, and stores every result in the driver, as it arrives, through
:func:`drnn_demo.reproduce.record`, the same resumable writer, so an interrupted run resumes
from where it stopped with either backend.

Without an address a local Ray is started on this machine (all its CPUs, no dashboard, a small
object store: the tasks only return result rows); with one the driver joins that cluster, whose
nodes must have ``drnn_demo`` installed (``pip install -e .`` from a checkout), like this one.

Ray is optional: it is imported only here, inside the functions, and :func:`import_ray` turns its
absence into :class:`RayUnavailable` with the command that installs it.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .experiments import experiment
from .reproduce import format_value, load_results, pending_pairs, record

RAY_MISSING = "the ray backend needs Ray: pip install -e '.[ray]' (or pip install -r requirements-ray.txt)"
# The local Ray's shared-memory object store. The tasks return a result row of a few hundred bytes
# each, so Ray's default (30 % of the RAM) would only take memory from the training itself.
LOCAL_OBJECT_STORE_BYTES = 100 * 2**20
# How often the driver wakes from ray.wait, so that Ctrl-C is seen at once.
POLL_SECONDS = 0.5
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


class RayUnavailable(RuntimeError):
    """Ray is not installed (the message says how to install it)."""


def import_ray():
    """The ``ray`` module, or :class:`RayUnavailable` naming the install command."""
    try:
        import ray
    except ImportError as err:
        raise RayUnavailable(RAY_MISSING) from err
    return ray


@dataclass
class RayRun:
    """What a Ray run did: the stored rows afterwards, the pairs it trained and those that failed
    (``"<cell> seed <s>: <error>"``), and how long joining or starting Ray took (None: not needed)."""

    rows: list[dict]
    ran: int = 0
    failed: list[str] = field(default_factory=list)
    startup_seconds: float | None = None


def run_pair(name: str, cell: dict, seed: int, threads: int, gpus: float) -> dict:
    """One (cell, seed) pair, in a Ray worker: ``run_cell`` on ``threads`` torch threads (the task's CPUs).

    A task given no GPU does not see one either (Ray leaves ``CUDA_VISIBLE_DEVICES`` alone then, so
    the cell's ``device="auto"`` would take a GPU that the scheduler gave to another task).
    """
    import torch

    if not gpus and not torch.cuda.is_initialized():
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    torch.set_num_threads(threads)
    return experiment(name).run_cell(cell, seed, lambda fraction, text: None, lambda: False)


def _largest_node(ray) -> dict[str, float]:
    """The most CPUs and GPUs any one alive node of the cluster has (a task runs on one node)."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    return {r: max((n.get(r, 0.0) for n in nodes), default=0.0) for r in ("CPU", "GPU")}


def _count(value: float, unit: str) -> str:
    text = f"{value:g}"
    return f"{text} {unit}" if value == 1 else f"{text} {unit}s"


def prepare_environment(address: str | None = None) -> None:
    """Set what Ray reads from the environment when it is imported, before it is (Ray is not imported here).

    - Authentication: Ray turns token authentication on for a new local cluster, with a warning; asking
      for it spares the warning. A cluster started with ``ray start --head`` where a token exists
      (``~/.ray/auth_token``) requires it, but a driver joining by address sends it only in token mode,
      which it does not turn on by itself: turned on here when a token is found (``RAY_AUTH_MODE``
      already set, say to ``disabled``, is left alone).
    - A local start: its workers inherit this environment, and the checkout goes on ``PYTHONPATH`` so
      they import this ``drnn_demo`` even where it is not installed.
    """
    if "RAY_AUTH_MODE" not in os.environ and (not address or _token_available()):
        os.environ["RAY_AUTH_MODE"] = "token"
    if not address:
        path = os.environ.get("PYTHONPATH", "")
        if str(PACKAGE_ROOT) not in path.split(os.pathsep):
            os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), path) if p)


def start_ray(address: str | None = None, object_store_memory: int = LOCAL_OBJECT_STORE_BYTES,
              log_to_driver: bool = True):
    """Join the cluster at ``address``, or start a local Ray with all of this machine's CPUs (never attaching
    to a cluster that happens to run here: ``address="local"``). Returns the ``ray`` module.

    Call :func:`prepare_environment` before Ray is first imported.
    """
    ray = import_ray()
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=log_to_driver,
                 logging_level=logging.WARNING)
    else:
        ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,
                 object_store_memory=object_store_memory, log_to_driver=log_to_driver,
                 logging_level=logging.WARNING)
    return ray


def _token_available() -> bool:
    """Whether a Ray authentication token is set up here (the places Ray itself reads it from)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    return Path(path).is_file()


def run_experiment_ray(
    name: str, budget: str = "small", seeds: list[int] | None = None, only: list[str] | None = None,
    force: bool = False, directory: Path | None = None, shard: tuple[int, int] | None = None,
    address: str | None = None, cpus_per_cell: int = 1, gpus_per_cell: float = 0.0,
    log: Callable[[str], None] = print, object_store_memory: int = LOCAL_OBJECT_STORE_BYTES,
) -> RayRun:
    """Run the pending (cell, seed) pairs of ``name`` as Ray tasks of ``cpus_per_cell`` CPUs (and as many
    torch threads) and ``gpus_per_cell`` GPUs, recording each result as it arrives.

    The arguments before ``address`` are :func:`~drnn_demo.reproduce.run_experiment`'s. A pair whose
    task fails is reported (``log`` and :attr:`RayRun.failed`) while the others go on. Ctrl-C cancels
    the tasks still pending, shuts Ray down and re-raises ``KeyboardInterrupt``; results already
    recorded stay. ``ValueError``: a bad argument, or a cell larger than every node of the cluster.
    """
    if isinstance(cpus_per_cell, bool) or not isinstance(cpus_per_cell, int) or cpus_per_cell < 1:
        raise ValueError(f"cpus_per_cell must be a positive integer, got {cpus_per_cell!r}")
    if not (isinstance(gpus_per_cell, int | float) and math.isfinite(gpus_per_cell) and gpus_per_cell >= 0):
        raise ValueError(f"gpus_per_cell must be a non-negative number, got {gpus_per_cell!r}")
    module = experiment(name)
    prepare_environment(address)
    ray = import_ray()  # before anything else: without Ray there is nothing to do
    pending = pending_pairs(name, budget, seeds, only, force, directory, shard)
    if not pending:
        rows = load_results(name, budget, directory)
        log(f"{name} ({budget}): everything is done, no (cell, seed) pair left to run "
            f"({len(rows)} stored; --force or --only reruns)")
        return RayRun(rows)

    run = RayRun([])
    refs: dict = {}
    interrupted = False
    start = time.perf_counter()
    try:
        start_ray(address, object_store_memory)
        run.startup_seconds = time.perf_counter() - start
        largest = _largest_node(ray)
        for flag, want, resource, unit in (("--cpus-per-cell", cpus_per_cell, "CPU", "CPU"),
                                           ("--gpus-per-cell", gpus_per_cell, "GPU", "GPU")):
            if want > largest[resource]:
                raise ValueError(f"{flag} {want:g}: no node of the Ray cluster has {_count(want, unit)} "
                                 f"(the most on one node: {largest[resource]:g})")
        total = ray.cluster_resources()
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        log(f"{name} ({budget}): {len(pending)} (cell, seed) pairs to run on {where} "
            f"({_count(total.get('CPU', 0), 'CPU')}, {_count(total.get('GPU', 0), 'GPU')}; "
            f"ready in {run.startup_seconds:.1f} s), {_count(cpus_per_cell, 'CPU')} and "
            f"{_count(gpus_per_cell, 'GPU')} per cell")
        task = ray.remote(run_pair).options(num_cpus=cpus_per_cell, num_gpus=gpus_per_cell,
                                            name=f"drnn_demo {name} {budget}")
        for cell, seed in pending:
            refs[task.remote(name, cell, seed, cpus_per_cell, gpus_per_cell)] = (cell, seed)
        finished = 0
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=POLL_SECONDS)
            for ref in ready:
                cell, seed = refs.pop(ref)
                finished += 1
                what = f"[{finished}/{len(pending)} done] {cell['id']} seed {seed}"
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as err:  # the cell raised, or its worker died
                    reason = " ".join(str(getattr(err, "cause", None) or err).split())[:300]
                    run.failed.append(f"{cell['id']} seed {seed}: {reason}")
                    log(f"{what}: failed: {reason}")
                    continue
                record(name, budget, cell, seed, result, directory)
                run.ran += 1
                log(f"{what}: {module.METRIC} = {format_value(result.get(module.METRIC))} "
                    f"({result.get('status')}, {float(result.get('seconds', math.nan)):.0f} s)")
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        # Cancel what is left (an interrupt, or an error recording a result) and let go of Ray; a second
        # Ctrl-C must not cut this short and leave a local Ray behind.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main_thread() else None
        try:
            if ray.is_initialized():
                for ref in refs:
                    ray.cancel(ref, force=True)
                ray.shutdown()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        if interrupted:
            log(f"interrupted: cancelled {len(refs)} pending (cell, seed) pairs and shut Ray down; "
                f"the {run.ran} results recorded stay")
    run.rows = load_results(name, budget, directory)
    return run


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
