"""Masked character language model (the paper's text8 experiment, here on Tiny Shakespeare).

20 % of the characters of each window are masked; the model predicts them from the characters
it has read. A causal model (``d = 0``) only has the left context; a delayed one reads ``d``
characters past each masked one; a bidirectional one reads the whole window (and the look-ahead).
Metric: bits per masked character on the test split (:class:`drnn_demo.tasks.MaskedCharLM`).
"""

from __future__ import annotations

from . import check_budget
from .families import ladder, train_cell

TITLE = "Masked character LM (Tiny Shakespeare)"
METRIC = "test_bpc"
METRIC_LABEL = "test bits per masked character"
HIGHER_IS_BETTER = False

SETTINGS = {
    "tiny": dict(delays=(0, 2), hidden=8, task_args={"length": 16, "lookahead": 2, "mask_rate": 0.2},
                 train=dict(steps=10, batch_size=8, lr=3e-3, eval_every=5, patience=0, val_size=20, test_size=20)),
    # about half a minute per cell on one CPU thread
    "small": dict(delays=(0, 1, 2, 4, 8), hidden=128, task_args={"length": 64, "lookahead": 8, "mask_rate": 0.2},
                  train=dict(steps=1500, batch_size=32, lr=3e-3, lr_schedule="cosine", eval_every=250, patience=0,
                             val_size=500, test_size=1000)),
    # the small grid trained 3.3x longer, so that the longer delays have time to pay off
    "medium": dict(delays=(0, 1, 2, 4, 8), hidden=128, task_args={"length": 64, "lookahead": 8, "mask_rate": 0.2},
                   train=dict(steps=5000, batch_size=32, lr=3e-3, lr_schedule="cosine", eval_every=500, patience=0,
                              val_size=500, test_size=1000)),
    "full": dict(delays=(0, 1, 2, 3, 4, 6, 8, 12, 16), hidden=1024,
                 task_args={"length": 180, "lookahead": 16, "mask_rate": 0.2},
                 train=dict(steps=50000, batch_size=128, lr=1e-3, eval_every=1000, patience=10, val_size=5000,
                            test_size=10000)),
}


def cells(budget: str) -> list[dict]:
    s = SETTINGS[check_budget(budget)]
    return ladder(s["delays"], s["hidden"], baselines=("bidirectional", "stacked"), task="mlm",
                  task_args=s["task_args"], train=s["train"])


run_cell = train_cell
