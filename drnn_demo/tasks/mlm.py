"""Masked character language model on Tiny Shakespeare: the paper's text8 experiment, offline.

A window of ``length`` characters is scored; a fixed share ``mask_rate`` (20 %) of its positions
is replaced by a mask symbol, and the model predicts the hidden characters from both sides.
Behind the scored window come ``lookahead`` more characters of the *real* following text, fed as
inputs and never scored, so a delayed model's last scored outputs see real text rather than
padding, as in the paper.

Bits per character are counted over the **masked characters only**: cross-entropy in nats
averaged over the scored positions, divided by ln 2. (The seed code's denominator also counted
the unscored look-ahead positions, which understates the loss; not here.)

The text is split once, contiguously: the first 90 % of the characters train, the next 5 %
validate, the last 5 % test; a window never crosses a split boundary.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import torch

from ..models.common import check_choice, check_non_negative_int, check_positive_int
from .base import IGNORE_INDEX, Task

TEXT_PATH = Path(__file__).resolve().parents[1] / "data" / "tinyshakespeare" / "input.txt"
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.9, 0.05, 0.05)


@functools.lru_cache(maxsize=1)
def load_text() -> tuple[torch.Tensor, list[str]]:
    """The whole text as character ids ``(N,)`` (int64) and the sorted character list (id -> character)."""
    text = TEXT_PATH.read_text(encoding="utf-8")
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    return torch.from_numpy(np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))), chars


def split_bounds(split: str) -> tuple[int, int]:
    """``[start, stop)`` character offsets of a split (90 / 5 / 5 %, contiguous, in this order)."""
    check_choice("split", split, SPLITS)
    n = load_text()[0].numel()
    edges = np.cumsum([0, *SPLIT_FRACTIONS])
    i = SPLITS.index(split)
    return int(round(edges[i] * n)), int(round(edges[i + 1] * n))


class MaskedCharLM(Task):
    """Predict masked characters of Shakespeare from both sides.

    Args:
        length: scored characters per window.
        lookahead: real characters after the scored window, inputs only (>= the largest delay used).
        mask_rate: share of the scored characters that are masked (rounded to a whole number per window).

    Shapes:
        - x: ``(n, length + lookahead)`` long character ids; masked positions hold :attr:`mask_id`
        - y: ``(n, length + lookahead)`` long: the hidden character at masked positions, else
          ``IGNORE_INDEX`` (unmasked and look-ahead positions are not scored)

    Metrics: ``bpc`` (main, bits per masked character, lower is better), ``cross_entropy`` (nats),
    ``accuracy`` (of the masked characters).
    """

    name = "mlm"
    kind = "classification"
    metric = "bpc"
    higher_is_better = False

    def __init__(self, length: int = 64, lookahead: int = 8, mask_rate: float = 0.2):
        super().__init__()
        check_positive_int("length", length)
        check_non_negative_int("lookahead", lookahead)
        if isinstance(mask_rate, bool) or not isinstance(mask_rate, int | float) or not 0 < mask_rate <= 1:
            raise ValueError(f"mask_rate must be a number in (0, 1], got {mask_rate!r}")
        if length + lookahead > 10_000:
            raise ValueError(f"length + lookahead must be at most 10,000 characters (a memory limit), "
                             f"got {length + lookahead:,}")
        self.args = {"length": length, "lookahead": lookahead, "mask_rate": mask_rate}
        self.length, self.lookahead, self.mask_rate = length, lookahead, float(mask_rate)
        self.masked = max(1, round(mask_rate * length))
        chars = load_text()[1]
        self.chars = chars
        self.mask_id = len(chars)
        self.vocab_size = len(chars) + 1
        self.input_size = 32  # the embedding size
        self.output_size = len(chars)

    def sample(self, n: int, seed: int, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` windows from ``split``, each with its own random start and masked positions."""
        g = self._generator(n, seed)
        ids, _ = load_text()
        lo, hi = split_bounds(split)
        width = self.length + self.lookahead
        starts = torch.randint(lo, hi - width + 1, (n,), generator=g)
        windows = ids[starts.unsqueeze(1) + torch.arange(width)]
        positions = torch.rand(n, self.length, generator=g).argsort(dim=1)[:, : self.masked]
        x, y = windows.clone(), torch.full_like(windows, IGNORE_INDEX)
        rows = torch.arange(n).unsqueeze(1)
        y[rows, positions] = windows[rows, positions]
        x[rows, positions] = self.mask_id
        return x, y

    @torch.no_grad()
    def metrics(self, pred: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        out = super().metrics(pred, y)
        out["bpc"] = out["cross_entropy"] / math.log(2)
        return out

    def decode(self, ids: torch.Tensor) -> str:
        """Character ids back to text, the mask shown as ``_``."""
        return "".join("_" if int(i) == self.mask_id else self.chars[int(i)] for i in ids)
