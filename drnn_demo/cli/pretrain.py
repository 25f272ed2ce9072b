"""``python -m drnn_demo pretrain``: regenerate the pretrained/ checkpoints from their fixed seeds
(:func:`drnn_demo.pretrained.pretrain_all`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .checks import fail, threads_problem


def add_parser(subparsers) -> None:
    from ..pretrained import PRETRAINED_DIR, PRETRAINERS

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

    from ..pretrained import pretrain_all

    problem = threads_problem(args.threads)
    if problem:
        return fail(problem)
    torch.set_num_threads(args.threads)
    pretrain_all(args.group, Path(args.out), args.force, log=lambda line: print(line, flush=True))
    return 0
