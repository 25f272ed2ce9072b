"""Sequence reversal (the paper's first acausal task): accuracy against the delay, with its bound.

Tokens uniform over V = 4 classes, length T = 20, target the reversed sequence. A model whose
output ``t`` has read ``x[0 .. t + d]`` reaches at best ``[n + (T - n) / V] / T`` with
``n = T - ceil((T - 1 - d) / 2)`` (:meth:`drnn_demo.tasks.Reversal.best_possible`); ``d >= T - 1``
solves it. Bidirectional models read everything; a stacked causal one is bound like ``d = 0``.
"""

from __future__ import annotations

from ..tasks import build_task
from ..tasks.reversal import PAPER_ARGS
from . import check_budget
from .families import ladder, train_cell

TITLE = "Sequence reversal"
METRIC = "test_accuracy"
METRIC_LABEL = "test accuracy"
HIGHER_IS_BETTER = True

TASK_ARGS = PAPER_ARGS
SETTINGS = {
    "tiny": dict(delays=(0, 19), hidden=8, train=dict(steps=20, batch_size=16, lr=1e-2, eval_every=10, patience=0,
                                                       val_size=50, test_size=50)),
    # the small grid: H = 64 LSTMs, 5000 steps with a cosine schedule (about 40 s each on one CPU thread)
    "small": dict(delays=(0, 3, 6, 9, 12, 15, 19), hidden=64,
                  train=dict(steps=5000, batch_size=64, lr=1e-2, lr_schedule="cosine", eval_every=250, patience=0,
                             val_size=1000, test_size=2000)),
    # H = 128 and 6000 steps: time for the long delays to be learnt (a few minutes each on one CPU thread)
    "medium": dict(delays=(0, 3, 6, 9, 12, 15, 19), hidden=128,
                   train=dict(steps=6000, batch_size=64, lr=5e-3, lr_schedule="cosine", eval_every=500, patience=0,
                              val_size=1000, test_size=2000)),
    # the paper's sizes (meant for a GPU): every delay 0..19, wider models, longer training
    "full": dict(delays=tuple(range(20)), hidden=256,
                 train=dict(steps=20000, batch_size=128, lr=1e-3, eval_every=500, patience=10, val_size=5000,
                            test_size=10000)),
}


def cells(budget: str) -> list[dict]:
    s = SETTINGS[check_budget(budget)]
    return ladder(s["delays"], s["hidden"], baselines=("bidirectional", "stacked"), task="reversal",
                  task_args=TASK_ARGS, train=s["train"])


def bound(cell: dict) -> float | None:
    """The best accuracy any model with this cell's look-ahead can reach (1 for bidirectional)."""
    if cell["family"] in ("bidirectional", "stacked_bidirectional"):
        return 1.0
    return build_task("reversal", **cell["task_args"]).best_possible(cell["delay"])


run_cell = train_cell
