"""The delayed-RNN paper's experiments (Turek et al., ICML 2020), one module each.

Every module exposes the same small interface, which :mod:`drnn_demo.reproduce` runs:

- ``TITLE``, ``METRIC`` (a key of ``run_cell``'s result), ``METRIC_LABEL``, ``HIGHER_IS_BETTER``;
- ``cells(budget) -> list[dict]``: the grid of one budget ("tiny": seconds, for the tests;
  "small": minutes on a 2-core CPU, one seed; "medium": about an hour per experiment on a 2-core
  CPU with two cells at a time, sizes where a delayed network has time to learn its delay, three
  seeds; "full": the paper's sizes, for a GPU or a Ray cluster).
  A cell is JSON: ``{"id", "family", "delay", ...every setting}``, so a changed setting is a new cell;
- ``run_cell(cell, seed, on_progress, should_stop) -> dict``: trains and scores one cell; the
  result holds ``METRIC``, ``"params"``, ``"seconds"`` and ``"status"``;
- optionally ``bound(cell) -> float | None``: the best value any model with that cell's delay can
  reach (the theory line of the plot).
"""

from __future__ import annotations

import importlib
from types import ModuleType

EXPERIMENTS = ("reversal", "sine", "mlm", "pos", "runtime")
BUDGETS = ("tiny", "small", "medium", "full")
# The seeds every cell of a budget is trained with: a mean and an interval need several.
SEEDS = {"tiny": (0,), "small": (0,), "medium": (0, 1, 2), "full": (0, 1, 2)}


def experiment(name: str) -> ModuleType:
    """The module of experiment ``name`` (imported on first use)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment must be one of {list(EXPERIMENTS)}, got {name!r}")
    return importlib.import_module(f"{__name__}.{name}")


def check_budget(budget: str) -> str:
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {list(BUDGETS)}, got {budget!r}")
    return budget
