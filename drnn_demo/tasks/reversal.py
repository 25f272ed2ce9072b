"""Sequence reversal: read ``T`` random tokens, emit them in reverse order, one per step.

A causal network must emit ``x[T-1-t]`` at step ``t``; it has read that token only when
``T-1-t <= t + d``, so the task needs delay ``d >= T-1`` to be solved exactly, and is the
cleanest picture of what a delay buys.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..models.common import MAX_LENGTH, check_non_negative_int, check_positive_int
from .base import Task


def reversal_best_accuracy(T: int, V: int, delay: int) -> float:
    r"""The best expected accuracy of argmax decoding at delay ``delay`` on reversal.

    Output ``t`` must emit ``x[T-1-t]``, which the model has read iff ``T-1-t <= t + d``. Those
    ``n`` positions can be right every time; at the others the token is uniform and independent of
    everything read, so no decoder beats ``1/V``:

    .. math:: \mathrm{acc}(d) = \frac{n + (T - n)/V}{T}, \qquad
              n = T - \lceil (T-1-d)/2 \rceil, \quad \mathrm{acc}(d) = 1 \text{ for } d \ge T-1.

    For ``T=20, V=4``: 62.5 % at ``d=0``.
    """
    check_positive_int("T", T)
    check_positive_int("V", V)
    check_non_negative_int("delay", delay)
    if delay >= T - 1:
        return 1.0
    n = T - math.ceil((T - 1 - delay) / 2)
    return (n + (T - n) / V) / T


# The paper's setting (Turek et al. 2020, Table 1): the experiment and the Delayed outputs page both use it.
PAPER_ARGS = {"length": 20, "classes": 4}


class Reversal(Task):
    """Tokens uniform over ``classes`` symbols, one-hot inputs; the target is the sequence reversed.

    Args:
        length: ``T``, the sequence length (default 20).
        classes: ``V``, the number of symbols (default 4).

    Shapes:
        - x: ``(n, T, V)`` float one-hot
        - y: ``(n, T)`` long, ``y[:, t] = tokens[:, T-1-t]``
    """

    name = "reversal"
    kind = "classification"
    metric = "accuracy"
    higher_is_better = True

    def __init__(self, length: int = 20, classes: int = 4):
        super().__init__()
        check_positive_int("length", length, MAX_LENGTH)
        check_positive_int("classes", classes)
        self.args = {"length": length, "classes": classes}
        self.length, self.classes = length, classes
        self.input_size = classes
        self.output_size = classes

    def sample(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = self._generator(n, seed)
        tokens = torch.randint(self.classes, (n, self.length), generator=g)
        return F.one_hot(tokens, self.classes).float(), tokens.flip(1)

    def best_possible(self, delay: int) -> float:
        """:func:`reversal_best_accuracy` for this task's ``T`` and ``V``."""
        return reversal_best_accuracy(self.length, self.classes, delay)
