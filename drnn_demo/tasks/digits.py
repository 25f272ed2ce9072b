"""Sequential and permuted digits: the offline stand-in for sequential / permuted MNIST.

Real handwritten digits, the 1797 8 x 8 images that scikit-learn ships with its source
(``sklearn.datasets.load_digits``: no download), read one pixel per step: 64 steps of one
feature in ``[0, 1]``, then one class out of 10 from the final step. ``permuted=True`` reads the
pixels in a fixed random order (the same for every image, from ``permutation_seed``), which
breaks the local structure and stretches dependencies over the whole sequence, as pMNIST does.

The images are split once, by a fixed seed, into train (1257), validation (180) and test (360);
:meth:`Digits.sample` draws from the split it is asked for, so a test image is never trained on.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ..models.common import check_choice, check_non_negative_int
from .base import Task

SPLITS = ("train", "val", "test")
SPLIT_SEED = 2024  # fixes which images are train / val / test; not a user setting
PIXELS, CLASSES = 64, 10
VAL_SIZE, TEST_SIZE = 180, 360


@functools.lru_cache(maxsize=1)
def load_digit_images() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1797 images as ``(1797, 64)`` float32 in ``[0, 1]`` (row-major pixels) and labels ``(1797,)``."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return torch.from_numpy(data.data / 16.0).float(), torch.from_numpy(data.target).long()


@functools.lru_cache(maxsize=1)
def split_indices() -> dict[str, torch.Tensor]:
    """The fixed train / val / test partition of the image indices (1257 / 180 / 360)."""
    n = load_digit_images()[1].shape[0]
    order = torch.from_numpy(np.random.default_rng(SPLIT_SEED).permutation(n))
    n_test, n_val = TEST_SIZE, VAL_SIZE
    return {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}


def pixel_permutation(seed: int) -> torch.Tensor:
    """The fixed reading order of the 64 pixels for ``permuted=True``."""
    return torch.from_numpy(np.random.default_rng(seed).permutation(PIXELS))


class Digits(Task):
    """Classify an 8 x 8 handwritten digit read one pixel per step (sMNIST / pMNIST in miniature).

    Args:
        permuted: read the pixels in a fixed random order instead of row by row.
        permutation_seed: seeds that order (only used with ``permuted``).

    Shapes:
        - x: ``(n, 64, 1)`` float, pixel intensities in ``[0, 1]``
        - y: ``(n,)`` long, the digit 0..9 (``readout="last"``: one prediction per sequence)

    Metrics: ``accuracy`` (main) and ``cross_entropy``.
    """

    name = "digits"
    kind = "classification"
    metric = "accuracy"
    higher_is_better = True
    readout = "last"

    def __init__(self, permuted: bool = False, permutation_seed: int = 5544):
        super().__init__()
        if not isinstance(permuted, bool):
            raise ValueError(f"permuted must be True or False, got {permuted!r}")
        check_non_negative_int("permutation_seed", permutation_seed)
        self.args = {"permuted": permuted, "permutation_seed": permutation_seed}
        self.permuted = permuted
        self.permutation_seed = permutation_seed
        self.order = pixel_permutation(permutation_seed) if permuted else torch.arange(PIXELS)
        self.length = PIXELS
        self.input_size = 1
        self.output_size = CLASSES

    @property
    def baseline_loss(self) -> float:
        """Cross-entropy of a uniform guess over the 10 digits, ``ln 10``: what a model that learnt nothing reaches."""
        return math.log(CLASSES)

    def split_size(self, split: str) -> int:
        """How many images ``split`` holds."""
        check_choice("split", split, SPLITS)
        return int(split_indices()[split].numel())

    def sample(self, n: int, seed: int, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """Images of ``split`` as sequences.

        ``"train"``: ``n`` images drawn uniformly with replacement (an endless stream of batches).
        ``"val"`` / ``"test"``: ``min(n, split_size)`` distinct images in a seeded order, so
        asking for at least the split size gives the whole (fixed) evaluation set.
        """
        g = self._generator(n, seed)
        check_choice("split", split, SPLITS)
        images, labels = load_digit_images()
        pool = split_indices()[split]
        if split == "train":
            chosen = pool[torch.randint(pool.numel(), (n,), generator=g)]
        else:
            chosen = pool[torch.randperm(pool.numel(), generator=g)[:n]]
        x = images[chosen][:, self.order].unsqueeze(-1)
        return x, labels[chosen]
