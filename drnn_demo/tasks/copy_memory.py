"""Copy memory (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016): recall ``K`` symbols after a long gap.

Input: ``K`` symbols from ``1..8``, ``L-1`` blanks (0), the marker 9, then ``K`` blanks; length
``L + 2K``. Target: blank for the first ``L + K`` steps, then the ``K`` symbols. A model that
always says "blank" and then guesses uniformly scores the baseline cross-entropy ``K ln 8 / (L+2K)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..models.common import MAX_LENGTH, check_positive_int
from .base import Task

BLANK, MARKER, SYMBOLS = 0, 9, 8


class CopyMemory(Task):
    """Remember ``copy_length`` symbols over a gap of ``gap`` steps, reproduce them after the marker.

    Args:
        copy_length: ``K``, the number of symbols to copy (default 10).
        gap: ``L``, steps from the last symbol to the end of the marker step (default 50).

    Shapes:
        - x: ``(n, L + 2K, 10)`` float one-hot over blank, symbols 1..8 and the marker 9
        - y: ``(n, L + 2K)`` long; 0 except the last ``K`` steps, which repeat the first ``K`` inputs

    Metrics: ``cross_entropy`` (the main one, lower is better, compare with :attr:`baseline_loss`),
    ``accuracy`` over all steps and ``recall_accuracy`` over the last ``K`` steps only.
    """

    name = "copy_memory"
    kind = "classification"
    metric = "cross_entropy"
    higher_is_better = False

    def __init__(self, copy_length: int = 10, gap: int = 50):
        super().__init__()
        check_positive_int("copy_length", copy_length, MAX_LENGTH)
        check_positive_int("gap", gap, MAX_LENGTH)
        self.args = {"copy_length": copy_length, "gap": gap}
        self.copy_length, self.gap = copy_length, gap
        self.length = gap + 2 * copy_length
        self.input_size = SYMBOLS + 2
        self.output_size = SYMBOLS + 2

    @property
    def baseline_loss(self) -> float:
        """Cross-entropy per step of "blank, then a uniform guess": ``K ln 8 / (L + 2K)``."""
        return self.copy_length * math.log(SYMBOLS) / self.length

    def sample(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = self._generator(n, seed)
        K, L = self.copy_length, self.gap
        symbols = torch.randint(1, SYMBOLS + 1, (n, K), generator=g)
        tokens = torch.full((n, self.length), BLANK, dtype=torch.long)
        tokens[:, :K] = symbols
        tokens[:, K + L - 1] = MARKER
        y = torch.full((n, self.length), BLANK, dtype=torch.long)
        y[:, L + K:] = symbols
        return F.one_hot(tokens, SYMBOLS + 2).float(), y

    @torch.no_grad()
    def metrics(self, pred: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        result = super().metrics(pred, y)
        tail = pred[:, -self.copy_length:].argmax(-1) == y[:, -self.copy_length:]
        result["recall_accuracy"] = float(tail.double().mean())
        return result
