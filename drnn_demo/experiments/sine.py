"""Sine filtering (the paper's second synthetic task): MSE against the delay, with its floor.

``x ~ U(0, 1)^T``, a fixed filter with 15 causal and 5 future taps, ``y_k = sin(0.1 Σ_j h_j x_{k+j})``.
Output ``t`` of a model that has read ``x[0 .. t + d]`` cannot do better than the irreducible MSE
of the taps it has not seen (:meth:`drnn_demo.tasks.SineFiltering.best_possible`); ``d >= 5``
solves it exactly.
"""

from __future__ import annotations

from ..tasks import build_task
from ..tasks.sine import PAPER_ARGS
from . import check_budget
from .families import ladder, train_cell

TITLE = "Sine filtering"
METRIC = "test_mse"
METRIC_LABEL = "test MSE"
HIGHER_IS_BETTER = False

TASK_ARGS = PAPER_ARGS
SETTINGS = {
    "tiny": dict(delays=(0, 5), hidden=8, train=dict(steps=20, batch_size=16, lr=3e-3, eval_every=10, patience=0,
                                                      val_size=50, test_size=50)),
    "small": dict(delays=(0, 1, 2, 3, 5, 8), hidden=64,
                  train=dict(steps=2000, batch_size=64, lr=3e-3, lr_schedule="cosine", eval_every=250, patience=0,
                             val_size=1000, test_size=2000)),
    "medium": dict(delays=(0, 1, 2, 3, 5, 8), hidden=128,
                   train=dict(steps=5000, batch_size=64, lr=3e-3, lr_schedule="cosine", eval_every=250, patience=0,
                              val_size=1000, test_size=2000)),
    "full": dict(delays=tuple(range(11)), hidden=256,
                 train=dict(steps=20000, batch_size=128, lr=1e-3, eval_every=500, patience=10, val_size=5000,
                            test_size=10000)),
}


def cells(budget: str) -> list[dict]:
    s = SETTINGS[check_budget(budget)]
    return ladder(s["delays"], s["hidden"], baselines=("bidirectional", "stacked"), task="sine",
                  task_args=TASK_ARGS, train=s["train"])


def bound(cell: dict) -> float | None:
    """The lowest MSE reachable with this cell's look-ahead (0 when it reads the whole sequence)."""
    if cell["family"] in ("bidirectional", "stacked_bidirectional"):
        return 0.0
    return build_task("sine", **cell["task_args"]).best_possible(cell["delay"])


run_cell = train_cell
