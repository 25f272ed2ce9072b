"""``python -m drnn_demo train``: one model on one task, a checkpoint, the test metric.

:func:`add_parser` makes the sub-command's flags: the task's, the model's, one per
:class:`~drnn_demo.training.TrainConfig` setting (:data:`CONFIG_FLAGS`, typed, defaulted and documented
from the dataclass itself) and the output's. :func:`cmd_train` refuses what :mod:`.checks` refuses
before a directory is made or a step is taken, builds the config (:func:`config_from_args`), trains
with a progress bar on stderr (Ctrl-C once: stop after this step and keep the best model) and saves.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import signal
import sys
import time
from pathlib import Path

from ..models.common import CELLS, NONLINEARITIES
from ..training import LR_SCHEDULES, TrainConfig, config_field_docs
from .checks import EXIT_CANCELLED, EXIT_DIVERGED, check_out, check_train_args, fail, preflight, remove_empty

MODEL_CHOICES = ("delayed", "stacked", "bidirectional", "lrn", "sru", "asrnn")


def _task_names() -> list[str]:
    from ..tasks import TASKS

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


def add_parser(subparsers) -> None:
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


def config_from_args(args: argparse.Namespace):
    """The :class:`~drnn_demo.training.TrainConfig` for parsed ``train`` arguments (ValueError if inconsistent)."""
    from ..tasks import task_arguments

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


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from ..checkpoints import save_checkpoint
    from ..tasks import TASKS
    from ..training import Trainer

    # Everything that can be refused is refused here, before a directory is made or a step is taken:
    # the ranges, the combinations, the task, the memory, then the output path.
    problem = check_train_args(args)
    if problem:
        return fail(problem)
    if args.data is not None:
        problem = _store_data(args)
        if problem:
            return fail(problem)
    try:
        config = config_from_args(args)
    except ValueError as err:
        return fail(err)
    problem = preflight(config)
    if problem:
        return fail(problem)
    default_name = f"{config.task}-{args.model}" + (f"-d{args.delay or 0}" if args.model == "delayed" else "") \
        + f"-s{config.seed}"
    out = Path(args.out) if args.out else Path("runs") / default_name
    created: list[Path] = []
    problem = check_out(out, created)
    if problem:
        remove_empty(created)
        return fail(problem)
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
        remove_empty(created)
        return fail(err)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    bar.close()
    try:
        path = save_checkpoint(out, result.model, result.card())
    except OSError as err:  # the directory was checked before training; it can still fill up or vanish
        fail(f"--out: cannot write the checkpoint {out} ({err.strerror or err})")
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
    from ..tasks.user_data import UserDataError, store_dataset

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


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
