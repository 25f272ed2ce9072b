"""What the command line refuses, checked before anything is built or trained, and how it says so.

Every check returns the first problem as one message naming the flag and its limit (None when all is
fine); the command prints it with :func:`fail` (one line on stderr, exit code 2) and stops:

- :func:`check_train_args`, :func:`check_reproduce_args`: each integer flag within ``[low, high]``
  (the limits below, next to the library's: ``MAX_HIDDEN``, ``MAX_LAYERS``, ``MAX_LENGTH`` ... in
  :mod:`drnn_demo.models.common`, ``MAX_EVAL_SIZE`` and ``MAX_STEP_FLOATS`` in :mod:`drnn_demo.resources`);
- :func:`preflight`: what a run would refuse only after setting up (the device, the task's arguments,
  ``batch x (length + delay) x units x 8 <= MAX_STEP_FLOATS`` floats per step, the evaluation sets);
- :func:`check_out`: the checkpoint's directory exists or can be made, and is writable
  (:func:`remove_empty` undoes the directories it made for a run refused after all).
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import sys
import tempfile
from pathlib import Path

from ..models.common import MAX_HIDDEN, MAX_INPUT_SIZE, MAX_LAYERS, MAX_LENGTH, MAX_OUTPUTS
from ..resources import MAX_EVAL_SIZE, MAX_STEP_FLOATS, check_eval_footprint, pick_device

# Exit codes besides 0 (finished) and 2 (refused, by fail): a run that diverged, one interrupted.
EXIT_DIVERGED, EXIT_CANCELLED = 3, 130

# The command line's own limits, checked before anything is built or trained, next to the library's
# (MAX_HIDDEN, MAX_LAYERS, MAX_LENGTH ... in models/common.py; MAX_EVAL_SIZE for --val-size and
# --test-size, and the memory of one step and of the evaluation sets, in resources.py).
# Training steps / steps between evaluations: far beyond what a run of this demo finishes in a day.
MAX_STEPS = 10_000_000
# Sequences per step, before the memory check of one step (resources.MAX_STEP_FLOATS) narrows it.
MAX_BATCH_SIZE = 1_000_000
# Output delay: the delayed model pads its input with this many steps, so at most a sequence's length.
MAX_DELAY = MAX_LENGTH
# Symbols of --classes: reversal's inputs are one-hot over them and its outputs score each of them.
MAX_CLASSES = min(MAX_INPUT_SIZE, MAX_OUTPUTS)
# torch CPU threads: more than 4 per core only adds contention.
MAX_THREADS = 4 * (os.cpu_count() or 64)
# torch.manual_seed takes an unsigned 64-bit seed.
MAX_SEED = 2**64 - 1
# Ray backend: CPUs of one cell (one task runs on one node; the largest machines have a few hundred cores;
# a local Ray has this machine's), and GPUs of one cell (the largest nodes have 8 to 16).
MAX_CPUS_PER_CELL = 1024
MAX_GPUS_PER_CELL = 16


def one_line(text: object) -> str:
    return " ".join(str(text).splitlines())


def fail(message: object) -> int:
    """Report a refused command as one line on stderr; the exit code for bad arguments."""
    print(f"error: {one_line(message)}", file=sys.stderr, flush=True)
    return 2


def int_problem(flag: str, value, low: int, high: int, why: str) -> str | None:
    """A message naming ``flag`` and its range when ``value`` (an int, or None = not given) is outside it."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{flag} must be an integer from {low:,} to {high:,}, got {value!r}"
    if value < low:
        return f"{flag} must be an integer from {low:,} to {high:,}, got {value:,}"
    if value > high:
        return f"{flag} must be at most {high:,} ({why}), got {value:,}"
    return None


def threads_problem(value) -> str | None:
    return int_problem("--threads", value, 1, MAX_THREADS, f"4 per CPU core; this machine has {os.cpu_count()}")


def check_train_args(args: argparse.Namespace) -> str | None:
    """The first ``train`` argument outside its allowed range, as a message naming it (None if all are fine).

    Only ranges: the combinations are :func:`~drnn_demo.cli.train.config_from_args`'s, the memory of a
    step and of the evaluation sets :func:`preflight`'s.
    """
    limits = (
        ("--steps", args.steps, 1, MAX_STEPS, "MAX_STEPS"),
        ("--batch-size", args.batch_size, 1, MAX_BATCH_SIZE, "MAX_BATCH_SIZE"),
        ("--eval-every", args.eval_every, 1, MAX_STEPS, "MAX_STEPS"),
        ("--patience", args.patience, 0, MAX_STEPS, "MAX_STEPS"),
        ("--val-size", args.val_size, 1, MAX_EVAL_SIZE, "MAX_EVAL_SIZE sequences"),
        ("--test-size", args.test_size, 1, MAX_EVAL_SIZE, "MAX_EVAL_SIZE sequences"),
        ("--seed", args.seed, 0, MAX_SEED, "torch takes a 64-bit seed"),
        ("--length", args.length, 1, MAX_LENGTH, "MAX_LENGTH steps"),
        ("--classes", args.classes, 1, MAX_CLASSES, "MAX_CLASSES symbols"),
        ("--delay", args.delay, 0, MAX_DELAY, "MAX_DELAY steps, the longest sequence"),
        ("--hidden-size", args.hidden_size, 1, MAX_HIDDEN, "MAX_HIDDEN units per layer"),
        ("--layers", args.layers, 1, MAX_LAYERS, "MAX_LAYERS"),
    )
    for flag, value, low, high, why in limits:
        problem = int_problem(flag, value, low, high, why)
        if problem:
            return problem
    if args.hidden_sizes is not None:
        if len(args.hidden_sizes) > MAX_LAYERS:
            return f"--hidden-sizes must list at most {MAX_LAYERS} layers (MAX_LAYERS), got {len(args.hidden_sizes):,}"
        for size in args.hidden_sizes:
            problem = int_problem("--hidden-sizes", size, 1, MAX_HIDDEN, "MAX_HIDDEN units per layer")
            if problem:
                return problem
    return threads_problem(args.threads)


def check_reproduce_args(args: argparse.Namespace) -> str | None:
    """The first ``reproduce`` argument out of range or not for the chosen backend, as a message (None if fine)."""
    if args.backend == "local":
        for flag, value in (("--address", args.address), ("--cpus-per-cell", args.cpus_per_cell),
                            ("--gpus-per-cell", args.gpus_per_cell)):
            if value is not None:
                return f"{flag} applies to --backend ray only"
        return threads_problem(args.threads)
    if args.threads is not None:
        return "--threads applies to --backend local; a Ray task runs --cpus-per-cell torch threads"
    if args.address is not None and not args.address.strip():
        return "--address must be a Ray cluster's HOST:PORT (e.g. 10.0.0.1:6379), got ''"
    if args.address:
        high, why = MAX_CPUS_PER_CELL, "MAX_CPUS_PER_CELL; a cell runs on one node"
    else:
        high, why = os.cpu_count() or 1, f"the local Ray has this machine's {os.cpu_count()} CPUs"
    problem = int_problem("--cpus-per-cell", args.cpus_per_cell, 1, high, why)
    if problem:
        return problem
    gpus = args.gpus_per_cell
    if gpus is not None and not (math.isfinite(gpus) and 0 <= gpus <= MAX_GPUS_PER_CELL):
        return f"--gpus-per-cell must be a number from 0 to {MAX_GPUS_PER_CELL} (MAX_GPUS_PER_CELL), got {gpus:g}"
    if gpus is not None and 0 < gpus < 1e-4:
        return f"--gpus-per-cell must be 0 or at least 0.0001 (Ray's resource precision), got {gpus:g}"
    return None


def preflight(config) -> str | None:
    """What Trainer.run would refuse only after setting up, checked first and named by flag: the device,
    the task's own arguments, and the memory of one training step and of the evaluation sets."""
    from ..tasks import build_task

    try:
        pick_device(config.device)
    except ValueError as err:
        return f"--device: {err}"
    try:
        task = build_task(config.task, **config.task_args)
        length = int(task.sample(1, 0)[0].shape[1])
    except (ValueError, TypeError) as err:
        return f"--task {config.task} (--task-arg / --length / --classes): {err}"
    core_args = config.model["core_args"]
    widths = core_args.get("hidden_sizes") or [core_args.get("hidden_size", 1)]
    units = max(widths) * (2 if config.model["core"] == "bidirectional" else 1)
    steps = length + (core_args.get("delay") or 0)  # the delayed model runs over delay extra steps
    floats = config.batch_size * steps * units * 8
    if floats > MAX_STEP_FLOATS:
        largest = max(1, MAX_STEP_FLOATS // (steps * units * 8))
        return (f"--batch-size x (length + --delay) x hidden units x 8 = {config.batch_size:,} x {steps:,} x "
                f"{units:,} x 8 = {floats:,} floats per training step exceeds the memory limit of "
                f"{MAX_STEP_FLOATS:,} (resources.MAX_STEP_FLOATS): --batch-size may be at most {largest:,} here")
    try:
        check_eval_footprint("--val-size", config.val_size, length, task)
        check_eval_footprint("--test-size", config.test_size, length, task)
    except ValueError as err:
        return str(err)
    return None


def check_out(out: Path, created: list[Path] | None = None) -> str | None:
    """Create the checkpoint's directory if needed and prove it writable (a temporary file in it).

    Returns ``"--out: cannot write to DIR (reason)"`` when it is not, else None. Run before training
    so an unwritable path costs nothing. The directories it made are appended to ``created``
    (deepest first), for the caller to remove should the run be refused after all.
    """
    from ..checkpoints import checkpoint_paths

    try:
        targets = checkpoint_paths(out)
    except ValueError as err:  # "", "/", "." have no file name
        return f"--out: cannot write to {str(out)!r} ({err})"
    directory = targets[0].parent
    try:
        for ancestor in (directory, *directory.parents):
            if ancestor.exists():  # the nearest existing ancestor must be a directory to create the rest
                if not ancestor.is_dir():
                    raise NotADirectoryError(errno.ENOTDIR, f"{ancestor} is not a directory")
                break
            if created is not None:
                created.append(ancestor)
        directory.mkdir(parents=True, exist_ok=True)
        for target in targets:
            if target.is_dir():
                raise IsADirectoryError(errno.EISDIR, f"{target} is a directory")
            if target.exists() and not os.access(target, os.W_OK):
                raise PermissionError(errno.EACCES, f"{target} is read-only")
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".drnn-write-test-"):
            pass
    except (OSError, ValueError) as err:  # ValueError: a NUL byte in the path
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        return f"--out: cannot write to {directory} ({reason})"
    return None


def remove_empty(directories: list[Path]) -> None:
    """Undo :func:`check_out`'s ``mkdir`` for a refused run (only directories still empty)."""
    for directory in directories:
        try:
            directory.rmdir()
        except OSError:
            break
