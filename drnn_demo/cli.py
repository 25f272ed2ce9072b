"""Command line: ``python -m drnn_demo <command> [options]``.

Commands:
    train   train one model on one task, save a checkpoint, print the test metric
    bench   the benchmark suite (same as ``python -m drnn_demo.bench``)

Every command is a subparser with its own ``--help``; new commands (``pretrain``,
``reproduce``) add a ``_add_<name>`` function and a line in :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import math
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from .models.common import (
    CELLS,
    MAX_HIDDEN,
    MAX_INPUT_SIZE,
    MAX_LAYERS,
    MAX_LENGTH,
    MAX_OUTPUTS,
    NONLINEARITIES,
)
from .training import LR_SCHEDULES, MAX_EVAL_SIZE, MAX_STEP_FLOATS, TrainConfig, config_field_docs

MODEL_CHOICES = ("delayed", "stacked", "bidirectional", "lrn", "sru", "asrnn")
EXIT_DIVERGED, EXIT_CANCELLED = 3, 130

# The command line's own limits, checked before anything is built or trained, next to the library's
# (MAX_HIDDEN, MAX_LAYERS, MAX_LENGTH ... in models/common.py; MAX_EVAL_SIZE for --val-size and
# --test-size, and the memory of one step and of the evaluation sets, in training.py).
# Training steps / steps between evaluations: far beyond what a run of this demo finishes in a day.
MAX_STEPS = 10_000_000
# Sequences per step, before the memory check of one step (training.MAX_STEP_FLOATS) narrows it.
MAX_BATCH_SIZE = 1_000_000
# Output delay: the delayed model pads its input with this many steps, so at most a sequence's length.
MAX_DELAY = MAX_LENGTH
# Symbols of --classes: reversal's inputs are one-hot over them and its outputs score each of them.
MAX_CLASSES = min(MAX_INPUT_SIZE, MAX_OUTPUTS)
# torch CPU threads: more than 4 per core only adds contention.
MAX_THREADS = 4 * (os.cpu_count() or 64)
# torch.manual_seed takes an unsigned 64-bit seed.
MAX_SEED = 2**64 - 1


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (its usage block would bury the message) and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _one_line(text: object) -> str:
    return " ".join(str(text).splitlines())


def _fail(message: object) -> int:
    """Report a refused command as one line on stderr; the exit code for bad arguments."""
    print(f"error: {_one_line(message)}", file=sys.stderr, flush=True)
    return 2


def _int_problem(flag: str, value, low: int, high: int, why: str) -> str | None:
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


def _threads_problem(value) -> str | None:
    return _int_problem("--threads", value, 1, MAX_THREADS, f"4 per CPU core; this machine has {os.cpu_count()}")


def check_train_args(args: argparse.Namespace) -> str | None:
    """The first ``train`` argument outside its allowed range, as a message naming it (None if all are fine).

    Only ranges: the combinations are :func:`config_from_args`'s, the memory of a step and of the
    evaluation sets :func:`_preflight`'s.
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
        problem = _int_problem(flag, value, low, high, why)
        if problem:
            return problem
    if args.hidden_sizes is not None:
        if len(args.hidden_sizes) > MAX_LAYERS:
            return f"--hidden-sizes must list at most {MAX_LAYERS} layers (MAX_LAYERS), got {len(args.hidden_sizes):,}"
        for size in args.hidden_sizes:
            problem = _int_problem("--hidden-sizes", size, 1, MAX_HIDDEN, "MAX_HIDDEN units per layer")
            if problem:
                return problem
    return _threads_problem(args.threads)


def check_out(out: Path, created: list[Path] | None = None) -> str | None:
    """Create the checkpoint's directory if needed and prove it writable (a temporary file in it).

    Returns ``"--out: cannot write to DIR (reason)"`` when it is not, else None. Run before training
    so an unwritable path costs nothing. The directories it made are appended to ``created``
    (deepest first), for the caller to remove should the run be refused after all.
    """
    from .checkpoints import checkpoint_paths

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


def _task_names() -> list[str]:
    from .tasks import TASKS

    return sorted(TASKS)


def _parse_value(text: str):
    """``key=value`` values: JSON when it parses (numbers, true/false, null, lists), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _task_arg(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key.strip(), _parse_value(value.strip())


# TrainConfig's fields that are plain settings: each is a `train` flag with the field's default and docs.
CONFIG_FLAGS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("task", "task_args", "model"))


def _add_config_flags(group) -> None:
    """One flag per :data:`CONFIG_FLAGS` field (``--batch-size`` for ``batch_size``), typed, defaulted
    and documented from :class:`~drnn_demo.training.TrainConfig` itself."""
    docs = config_field_docs()
    for f in dataclasses.fields(TrainConfig):
        if f.name in CONFIG_FLAGS:
            choices = LR_SCHEDULES if f.name == "lr_schedule" else None
            group.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default,
                               choices=choices, help=docs[f.name].replace("%", "%%"))


def _add_train(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a model on a task and save a checkpoint",
        description="Train one model on one task with Adam, evaluate it on a fixed test set and save a "
                    "checkpoint (<out>.safetensors + <out>.json). Progress goes to stderr; the test metric "
                    "and the checkpoint path go to stdout.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="example: python -m drnn_demo train --task reversal --model delayed --delay 19 --cell lstm "
               "--hidden-size 64 --steps 3000 --seed 0 --out runs/reversal-d19",
    )
    task = p.add_argument_group("task")
    task.add_argument("--task", default=None, choices=_task_names(), help="the task to train on (default: reversal)")
    task.add_argument("--data", default=None, metavar="FILE",
                      help="train on your own data: a CSV/TSV of text,label (classification), CoNLL-U or a "
                           "token/tag file (tagging); checked, stored in the runs directory's datasets/ and "
                           "trained as task user_data (see drnn_demo.tasks.user_data)")
    task.add_argument("--data-format", default="auto", choices=("auto", "csv", "tsv", "conllu", "tokens"),
                      help="the format of --data (auto: from the file name, then its first line)")
    task.add_argument("--task-arg", action="append", type=_task_arg, default=[], metavar="KEY=VALUE",
                      help="a task constructor argument, repeatable (e.g. --task-arg acausal=3); "
                           "values are parsed as JSON when possible")
    task.add_argument("-T", "--length", type=int, default=None,
                      help="sequence length T (task argument 'length'; reversal and sine)")
    task.add_argument("-V", "--classes", type=int, default=None,
                      help="number of symbols V (task argument 'classes'; reversal)")

    model = p.add_argument_group("model")
    model.add_argument("--model", default="delayed", choices=MODEL_CHOICES,
                       help="delayed: one layer with output delay; stacked / bidirectional: the baselines; "
                            "lrn / sru / asrnn: those cells, one layer of --hidden-size units")
    model.add_argument("--cell", default="lstm", choices=CELLS, help="recurrent cell")
    model.add_argument("--nonlinearity", default="tanh", choices=NONLINEARITIES, help="for --cell rnn only")
    model.add_argument("--delay", type=int, default=None, help="output delay d (delayed model only; default 0)")
    model.add_argument("--hidden-size", type=int, default=64,
                       help="hidden units (per layer for stacked/bidirectional when used with --layers)")
    model.add_argument("--layers", type=int, default=None,
                       help="stacked/bidirectional: number of layers, each of --hidden-size units (default 2)")
    model.add_argument("--hidden-sizes", type=int, nargs="+", default=None, metavar="H",
                       help="stacked/bidirectional: explicit per-layer sizes, e.g. --hidden-sizes 64 32")

    train = p.add_argument_group("training")
    _add_config_flags(train)
    train.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")

    out = p.add_argument_group("output")
    out.add_argument("--out", default=None,
                     help="checkpoint path without suffix (default runs/<task>-<model>[-d<delay>]-s<seed>)")
    out.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    out.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_train)


def _add_bench(subparsers) -> None:
    subparsers.add_parser(
        "bench", add_help=False, help="speed benchmarks as side-by-side ratios (see: bench --help)",
        description="Delegates to python -m drnn_demo.bench; all its options apply.",
    )


def _add_pretrain(subparsers) -> None:
    from .pretrained import PRETRAINED_DIR, PRETRAINERS

    p = subparsers.add_parser(
        "pretrain", help="regenerate the pretrained/ checkpoints from their fixed seeds",
        description="Train the small models the pages load at once, from fixed seeds, into pretrained/. "
                    "Checkpoints that already exist are kept unless --force.",
    )
    p.add_argument("--group", action="append", choices=sorted(PRETRAINERS),
                   help="only this group (repeatable; default: all)")
    p.add_argument("--out", default=str(PRETRAINED_DIR), help="output directory (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="retrain even where a checkpoint exists")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    p.set_defaults(func=cmd_pretrain)


def cmd_pretrain(args: argparse.Namespace) -> int:
    import torch

    from .pretrained import pretrain_all

    problem = _threads_problem(args.threads)
    if problem:
        return _fail(problem)
    torch.set_num_threads(args.threads)
    pretrain_all(args.group, Path(args.out), args.force, log=lambda line: print(line, flush=True))
    return 0


# Ray backend: CPUs of one cell (one task runs on one node; the largest machines have a few hundred cores;
# a local Ray has this machine's), and GPUs of one cell (the largest nodes have 8 to 16).
MAX_CPUS_PER_CELL = 1024
MAX_GPUS_PER_CELL = 16


def _add_reproduce(subparsers) -> None:
    from .experiments import BUDGETS, EXPERIMENTS

    p = subparsers.add_parser(
        "reproduce", help="run one of the paper's experiments into results/",
        description="Train and score every cell of an experiment's grid that has no result yet, writing "
                    "results/<experiment>_<budget>.json and .csv after each cell (an interrupted run resumes), "
                    "then print the table. small: minutes on a CPU, one seed; medium: about an hour per experiment "
                    "on a 2-core CPU, three seeds; full: the paper's sizes (for a GPU or a Ray cluster: "
                    "--backend ray runs the same (cell, seed) pairs as Ray tasks).",
    )
    p.add_argument("experiment", choices=EXPERIMENTS)
    p.add_argument("--budget", choices=BUDGETS, default="small", help="grid size (default: %(default)s)")
    p.add_argument("--only", nargs="+", metavar="CELL", help="run only these cell ids (rerun if done)")
    p.add_argument("--force", action="store_true", help="rerun cells that are already done")
    p.add_argument("--seeds", type=int, nargs="+", default=None, metavar="SEED",
                   help="seeds of the models and data (default: the budget's, three for medium and full)")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="run only every N-th (cell, seed) pair starting at I, so N processes share a grid")
    p.add_argument("--out", default=None, help="results directory (default: results/)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads, --backend local (default: 1; with ray: --cpus-per-cell)")
    ray = p.add_argument_group("scaling out (pip install -e '.[ray]')")
    ray.add_argument("--backend", choices=("local", "ray"), default="local",
                     help="local: one pair after another in this process; ray: every pair a Ray task, "
                          "results recorded here as they finish (default: %(default)s)")
    ray.add_argument("--address", default=None, metavar="HOST:PORT",
                     help="join the Ray cluster there (started with `ray start --head`); default: start a "
                          "local Ray on this machine's CPUs")
    ray.add_argument("--cpus-per-cell", type=int, default=None, metavar="N",
                     help="CPUs (and torch threads) of each cell's Ray task (default: 1)")
    ray.add_argument("--gpus-per-cell", type=float, nargs="?", const=1.0, default=None, metavar="G",
                     help="GPUs of each cell's Ray task, fractions allowed (default: 0; the flag alone: 1)")
    p.set_defaults(func=cmd_reproduce)


def check_reproduce_args(args: argparse.Namespace) -> str | None:
    """The first ``reproduce`` argument out of range or not for the chosen backend, as a message (None if fine)."""
    if args.backend == "local":
        for flag, value in (("--address", args.address), ("--cpus-per-cell", args.cpus_per_cell),
                            ("--gpus-per-cell", args.gpus_per_cell)):
            if value is not None:
                return f"{flag} applies to --backend ray only"
        return _threads_problem(args.threads)
    if args.threads is not None:
        return "--threads applies to --backend local; a Ray task runs --cpus-per-cell torch threads"
    if args.address is not None and not args.address.strip():
        return "--address must be a Ray cluster's HOST:PORT (e.g. 10.0.0.1:6379), got ''"
    if args.address:
        high, why = MAX_CPUS_PER_CELL, "MAX_CPUS_PER_CELL; a cell runs on one node"
    else:
        high, why = os.cpu_count() or 1, f"the local Ray has this machine's {os.cpu_count()} CPUs"
    problem = _int_problem("--cpus-per-cell", args.cpus_per_cell, 1, high, why)
    if problem:
        return problem
    gpus = args.gpus_per_cell
    if gpus is not None and not (math.isfinite(gpus) and 0 <= gpus <= MAX_GPUS_PER_CELL):
        return f"--gpus-per-cell must be a number from 0 to {MAX_GPUS_PER_CELL} (MAX_GPUS_PER_CELL), got {gpus:g}"
    if gpus is not None and 0 < gpus < 1e-4:
        return f"--gpus-per-cell must be 0 or at least 0.0001 (Ray's resource precision), got {gpus:g}"
    return None


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce import parse_shard, run_experiment, table

    problem = check_reproduce_args(args)
    if problem:
        return _fail(problem)
    try:
        shard = parse_shard(args.shard) if args.shard else None
    except ValueError as e:
        return _fail(e)
    directory = Path(args.out) if args.out else None
    if args.backend == "ray":
        return _reproduce_on_ray(args, shard, directory)

    import torch

    torch.set_num_threads(args.threads or 1)
    show = sys.stderr.isatty()

    def progress(fraction: float, text: str) -> None:
        if show:
            print(f"\r  {fraction:6.1%}  {text[:70]:<70}", end="", file=sys.stderr, flush=True)

    def log(line: str) -> None:
        if show:
            print("\r" + " " * 80 + "\r", end="", file=sys.stderr)
        print(line, flush=True)

    try:
        rows = run_experiment(args.experiment, args.budget, seeds=args.seeds, only=args.only, force=args.force,
                              directory=directory, log=log, on_progress=progress, shard=shard)
    except ValueError as e:
        return _fail(e)
    print(table(args.experiment, rows))
    return 0


def _reproduce_on_ray(args: argparse.Namespace, shard: tuple[int, int] | None, directory: Path | None) -> int:
    """``reproduce --backend ray``: the pending pairs as Ray tasks (:mod:`drnn_demo.ray_backend`)."""
    from .ray_backend import RayUnavailable, run_experiment_ray
    from .reproduce import table

    try:
        run = run_experiment_ray(args.experiment, args.budget, seeds=args.seeds, only=args.only, force=args.force,
                                 directory=directory, shard=shard, address=args.address,
                                 cpus_per_cell=args.cpus_per_cell or 1, gpus_per_cell=args.gpus_per_cell or 0.0,
                                 log=lambda line: print(line, flush=True))
    except (RayUnavailable, ValueError) as e:
        return _fail(e)
    except ConnectionError as e:  # --address: nothing answers there, or not a Ray cluster
        return _fail(f"--address {args.address}: cannot join a Ray cluster there ({e})")
    except KeyboardInterrupt:  # the backend cancelled the pending pairs, shut Ray down and said so
        return EXIT_CANCELLED
    print(table(args.experiment, run.rows))
    if run.failed:
        print(f"error: {len(run.failed)} (cell, seed) pairs failed: " + "; ".join(run.failed), file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m drnn_demo",
        description="drnn_demo: delayed, stacked and bidirectional recurrent networks, trained and compared.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(subparsers)
    _add_pretrain(subparsers)
    _add_reproduce(subparsers)
    _add_bench(subparsers)
    return parser


def config_from_args(args: argparse.Namespace):
    """The :class:`~drnn_demo.training.TrainConfig` for parsed ``train`` arguments (ValueError if inconsistent)."""
    from .tasks import task_arguments

    task = args.task or "reversal"
    task_args = dict(args.task_arg)
    allowed = task_arguments(task)
    for flag, key in (("--length", "length"), ("--classes", "classes")):
        value = getattr(args, key)
        if value is None:
            continue
        if key not in allowed:
            raise ValueError(f"{flag} does not apply to task {task!r} (its arguments: {sorted(allowed)}); "
                             f"use --task-arg")
        if key in task_args and task_args[key] != value:
            raise ValueError(f"{flag} {value} contradicts --task-arg {key}={task_args[key]}")
        task_args[key] = value

    core_args: dict = {"cell": args.cell}
    if args.cell == "rnn":
        core_args["nonlinearity"] = args.nonlinearity
    if args.model == "delayed":
        if args.layers is not None or args.hidden_sizes is not None:
            raise ValueError("--layers/--hidden-sizes apply to --model stacked or bidirectional; "
                             "a delayed model has one layer of --hidden-size units")
        core_args.update(hidden_size=args.hidden_size, delay=args.delay or 0)
    elif args.model in ("lrn", "sru", "asrnn"):
        if args.delay or args.layers is not None or args.hidden_sizes is not None:
            raise ValueError(f"--delay/--layers/--hidden-sizes do not apply to --model {args.model}: one layer of "
                             "--hidden-size units")
        core_args = {"hidden_size": args.hidden_size, **({"num_layers": 1} if args.model == "sru" else {})}
    else:
        if args.delay:
            raise ValueError(f"--delay applies to --model delayed only, not {args.model!r}")
        if args.hidden_sizes is not None:
            if args.layers is not None and args.layers != len(args.hidden_sizes):
                raise ValueError(f"--layers {args.layers} contradicts --hidden-sizes {args.hidden_sizes}")
            sizes = list(args.hidden_sizes)
        else:
            layers = 2 if args.layers is None else args.layers
            if layers <= 0:
                raise ValueError(f"--layers must be a positive integer, got {layers}")
            sizes = [args.hidden_size] * layers
        core_args["hidden_sizes"] = sizes
    return TrainConfig(task=task, task_args=task_args, model={"core": args.model, "core_args": core_args},
                       **{name: getattr(args, name) for name in CONFIG_FLAGS})


class _ProgressBar:
    """tqdm when it is installed, else a plain text bar on stderr (one line per evaluation when not a tty)."""

    def __init__(self, total: int, metric: str, enabled: bool = True):
        self.total, self.metric, self.enabled = total, metric, enabled
        self.tty = sys.stderr.isatty()
        self.bar = None
        self.tqdm = None
        self.last = 0
        self.status = ""
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            self.tqdm = tqdm

    def __call__(self, p) -> None:
        if not self.enabled:
            return
        if self.tqdm is not None and self.bar is None:  # drawn at the first report: none for a refused run
            self.bar = self.tqdm(total=self.total, unit="step", file=sys.stderr, dynamic_ncols=True)
        if p.metrics:
            self.status = f"val {self.metric} {p.metrics.get(self.metric, math.nan):.4g}"
        if self.bar is not None:
            self.bar.update(p.step - self.last)
            self.bar.set_postfix_str(f"loss {p.loss:.4g} {self.status}".strip(), refresh=False)
        else:
            width = 30
            filled = int(width * p.step / max(p.total_steps, 1))
            line = (f"[{'#' * filled}{'.' * (width - filled)}] {p.step}/{p.total_steps} "
                    f"loss {p.loss:.4g} {self.status} {p.elapsed:.0f}s")
            if self.tty:
                print("\r" + line, end="", file=sys.stderr, flush=True)
            elif p.metrics:
                print(line, file=sys.stderr, flush=True)
        self.last = p.step

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.tty and self.last:  # end the text bar drawn in place, if any
            print(file=sys.stderr)


def _preflight(config) -> str | None:
    """What Trainer.run would refuse only after setting up, checked first and named by flag: the device,
    the task's own arguments, and the memory of one training step and of the evaluation sets."""
    from .tasks import build_task
    from .training import check_eval_footprint, pick_device

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
                f"{MAX_STEP_FLOATS:,} (training.MAX_STEP_FLOATS): --batch-size may be at most {largest:,} here")
    try:
        check_eval_footprint("--val-size", config.val_size, length, task)
        check_eval_footprint("--test-size", config.test_size, length, task)
    except ValueError as err:
        return str(err)
    return None


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .checkpoints import save_checkpoint
    from .tasks import TASKS
    from .training import Trainer

    # Everything that can be refused is refused here, before a directory is made or a step is taken:
    # the ranges, the combinations, the task, the memory, then the output path.
    problem = check_train_args(args)
    if problem:
        return _fail(problem)
    if args.data is not None:
        problem = _store_data(args)
        if problem:
            return _fail(problem)
    try:
        config = config_from_args(args)
    except ValueError as err:
        return _fail(err)
    problem = _preflight(config)
    if problem:
        return _fail(problem)
    default_name = f"{config.task}-{args.model}" + (f"-d{args.delay or 0}" if args.model == "delayed" else "") \
        + f"-s{config.seed}"
    out = Path(args.out) if args.out else Path("runs") / default_name
    created: list[Path] = []
    problem = check_out(out, created)
    if problem:
        _remove_empty(created)
        return _fail(problem)
    if args.threads:
        torch.set_num_threads(args.threads)

    stop = {"requested": False}

    def on_sigint(signum, frame):
        if stop["requested"]:
            raise KeyboardInterrupt
        stop["requested"] = True
        print("\ninterrupt: stopping after this step and saving the best model (again to abort)",
              file=sys.stderr, flush=True)

    bar = _ProgressBar(config.steps, TASKS[config.task].metric, enabled=not args.quiet)
    previous = signal.signal(signal.SIGINT, on_sigint) if _main_thread() else None
    start = time.perf_counter()
    try:
        result = Trainer(config, on_progress=bar, should_stop=lambda: stop["requested"]).run()
    except ValueError as err:  # bad model arguments (the parameter limit, say): before the first step
        bar.close()
        _remove_empty(created)
        return _fail(err)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    bar.close()
    try:
        path = save_checkpoint(out, result.model, result.card())
    except OSError as err:  # the directory was checked before training; it can still fill up or vanish
        _fail(f"--out: cannot write the checkpoint {out} ({err.strerror or err})")
        return 1
    metric = result.task.metric
    if args.json:
        print(json.dumps({"status": result.status, "message": result.message, "checkpoint": str(path),
                          "val_metrics": result.val_metrics, "test_metrics": result.test_metrics,
                          "steps": result.steps, "seconds": time.perf_counter() - start}))
    else:
        print(f"{result.status}: {result.message}")
        print(f"test {metric}: {result.test_metrics[metric]:.6g}")
        for name, value in result.test_metrics.items():
            if name != metric:
                print(f"test {name}: {value:.6g}")
        print(f"checkpoint: {path}")
    return {"diverged": EXIT_DIVERGED, "cancelled": EXIT_CANCELLED}.get(result.status, 0)


def _store_data(args: argparse.Namespace) -> str | None:
    """``--data``: check and store the file, then train task ``user_data`` on it (a message if refused)."""
    from .tasks.user_data import UserDataError, store_dataset

    if args.task not in (None, "user_data"):
        return f"--data trains on your file (task user_data); it does not go with --task {args.task}"
    try:
        info = store_dataset(args.data, fmt=args.data_format)
    except UserDataError as err:
        return f"--data {args.data}: {err}"
    counts = ", ".join(f"{label} {n:,}" for label, n in list(info.counts.items())[:8])
    print(f"data set {info.id}: {info.examples:,} {'rows' if info.problem == 'classification' else 'sentences'} "
          f"({info.problem}; {counts}{', ...' if len(info.counts) > 8 else ''}), split "
          + "/".join(f"{info.split_sizes[s]:,}" for s in ("train", "val", "test"))
          + f" train/val/test, stored in {info.path}", file=sys.stderr, flush=True)
    args.task = "user_data"
    args.task_arg = [(k, v) for k, v in args.task_arg if k != "dataset"] + [("dataset", info.id)]
    return None


def _remove_empty(directories: list[Path]) -> None:
    """Undo :func:`check_out`'s ``mkdir`` for a refused run (only directories still empty)."""
    for directory in directories:
        try:
            directory.rmdir()
        except OSError:
            break


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from .bench import main as bench_main

        return bench_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return args.func(args)
