"""``python -m drnn_demo reproduce EXPERIMENT``: one of the paper's experiments into results/.

``--backend local`` runs the pending (cell, seed) pairs one after another in this process
(:func:`drnn_demo.reproduce.run_experiment`); ``--backend ray`` runs them as Ray tasks
(:func:`drnn_demo.ray_backend.run_experiment_ray`). Either way the table of the stored rows is printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .checks import EXIT_CANCELLED, check_reproduce_args, fail


def add_parser(subparsers) -> None:
    from ..experiments import BUDGETS, EXPERIMENTS

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


def cmd_reproduce(args: argparse.Namespace) -> int:
    from ..reproduce import parse_shard, run_experiment, table

    problem = check_reproduce_args(args)
    if problem:
        return fail(problem)
    try:
        shard = parse_shard(args.shard) if args.shard else None
    except ValueError as e:
        return fail(e)
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
        return fail(e)
    print(table(args.experiment, rows))
    return 0


def _reproduce_on_ray(args: argparse.Namespace, shard: tuple[int, int] | None, directory: Path | None) -> int:
    """``reproduce --backend ray``: the pending pairs as Ray tasks (:mod:`drnn_demo.ray_backend`)."""
    from ..ray_backend import RayUnavailable, run_experiment_ray
    from ..reproduce import table

    try:
        run = run_experiment_ray(args.experiment, args.budget, seeds=args.seeds, only=args.only, force=args.force,
                                 directory=directory, shard=shard, address=args.address,
                                 cpus_per_cell=args.cpus_per_cell or 1, gpus_per_cell=args.gpus_per_cell or 0.0,
                                 log=lambda line: print(line, flush=True))
    except (RayUnavailable, ValueError) as e:
        return fail(e)
    except ConnectionError as e:  # --address: nothing answers there, or not a Ray cluster
        return fail(f"--address {args.address}: cannot join a Ray cluster there ({e})")
    except KeyboardInterrupt:  # the backend cancelled the pending pairs, shut Ray down and said so
        return EXIT_CANCELLED
    print(table(args.experiment, run.rows))
    if run.failed:
        print(f"error: {len(run.failed)} (cell, seed) pairs failed: " + "; ".join(run.failed), file=sys.stderr)
        return 1
    return 0
