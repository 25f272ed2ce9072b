"""Command line: ``python -m drnn_demo <command> [options]``.

Commands:
    train      train one model on one task, save a checkpoint, print the test metric (:mod:`.train`)
    pretrain   regenerate the pretrained/ checkpoints (:mod:`.pretrain`)
    reproduce  run one of the paper's experiments into results/ (:mod:`.reproduce`)
    bench      the benchmark suite (same as ``python -m drnn_demo.bench``)

Every command is a subparser with its own ``--help``: a module here with an ``add_parser(subparsers)``
and a line in :func:`build_parser`. The limits and checks every command applies before anything is
allocated, and the one-line error it prints, are :mod:`.checks`'s.
"""

from __future__ import annotations

import argparse
import sys

from . import pretrain, reproduce, train
from .checks import (
    EXIT_CANCELLED,
    EXIT_DIVERGED,
    MAX_BATCH_SIZE,
    MAX_CLASSES,
    MAX_CPUS_PER_CELL,
    MAX_DELAY,
    MAX_GPUS_PER_CELL,
    MAX_SEED,
    MAX_STEPS,
    MAX_THREADS,
    check_out,
    check_reproduce_args,
    check_train_args,
    one_line,
)
from .pretrain import cmd_pretrain
from .reproduce import cmd_reproduce
from .train import CONFIG_FLAGS, MODEL_CHOICES, cmd_train, config_from_args

__all__ = ["CONFIG_FLAGS", "EXIT_CANCELLED", "EXIT_DIVERGED", "MAX_BATCH_SIZE", "MAX_CLASSES", "MAX_CPUS_PER_CELL",
           "MAX_DELAY", "MAX_GPUS_PER_CELL", "MAX_SEED", "MAX_STEPS", "MAX_THREADS", "MODEL_CHOICES", "build_parser",
           "check_out", "check_reproduce_args", "check_train_args", "cmd_pretrain", "cmd_reproduce", "cmd_train",
           "config_from_args", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (its usage block would bury the message) and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def _add_bench(subparsers) -> None:
    subparsers.add_parser(
        "bench", add_help=False, help="speed benchmarks as side-by-side ratios (see: bench --help)",
        description="Delegates to python -m drnn_demo.bench; all its options apply.",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m drnn_demo",
        description="drnn_demo: delayed, stacked and bidirectional recurrent networks, trained and compared.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    train.add_parser(subparsers)
    pretrain.add_parser(subparsers)
    reproduce.add_parser(subparsers)
    _add_bench(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from ..bench import main as bench_main

        return bench_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return args.func(args)
