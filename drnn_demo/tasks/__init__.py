"""Tasks: seeded, infinite data sources and their scoring, in a registry keyed by name.

``build_task("reversal", length=20, classes=4)`` is the one way the trainer, the CLI, the
checkpoints and the pages build a task. Every task follows :class:`~drnn_demo.tasks.base.Task`:
``sample(n, seed) -> (x, y)``, ``loss``, ``metrics``, ``per_position``, ``best_possible(delay)``.

To add a task, subclass :class:`Task` in a module of this package and add one line to
:data:`TASKS`.
"""

from __future__ import annotations

import inspect

from .base import IGNORE_INDEX, Task
from .copy_memory import CopyMemory
from .digits import Digits
from .keyword import LastKeyword
from .mlm import MaskedCharLM
from .reversal import Reversal, reversal_best_accuracy
from .sentiment import Sentiment
from .sine import SineFiltering, sine_filter, sine_irreducible_mse
from .user_data import UserData

TASKS: dict[str, type[Task]] = {
    "reversal": Reversal,
    "sine": SineFiltering,
    "copy_memory": CopyMemory,
    "keyword": LastKeyword,
    "sentiment": Sentiment,
    "digits": Digits,
    "mlm": MaskedCharLM,
    "user_data": UserData,  # a stored upload: drnn_demo.tasks.user_data
}


def task_arguments(name: str) -> dict[str, object]:
    """The constructor arguments of task ``name`` and their defaults."""
    if name not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {name!r}")
    arguments: dict[str, object] = {}
    for cls in TASKS[name].__mro__:  # an __init__(self, extra, **kwargs) also takes its parent's arguments
        if "__init__" not in vars(cls):
            continue
        params = inspect.signature(cls.__init__).parameters.values()
        for p in params:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                arguments.setdefault(p.name, p.default)
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return arguments


def build_task(name: str, **args) -> Task:
    """Build the task registered as ``name`` with its constructor arguments.

    Raises ``ValueError`` naming the allowed tasks for an unknown name, the allowed arguments for
    an unknown argument, and the argument for a bad value.
    """
    allowed = task_arguments(name)
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        raise ValueError(f"task {name!r} has no argument(s) {unknown}; its arguments are {sorted(allowed)}")
    return TASKS[name](**args)


__all__ = [
    "IGNORE_INDEX", "TASKS", "CopyMemory", "Digits", "LastKeyword", "MaskedCharLM", "Reversal", "Sentiment",
    "SineFiltering", "Task", "UserData", "build_task",
    "reversal_best_accuracy", "sine_filter", "sine_irreducible_mse", "task_arguments",
]
