"""The task interface every data set implements, with the losses and metrics most tasks share.

A task is a small, seeded, infinite data source plus the way to score a model on it. Subclasses
set the class attributes, fill ``self.args`` with their constructor arguments and implement
:meth:`Task.sample`; classification and regression tasks get ``loss``, ``metrics`` and
``per_position`` from here.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
import torch.nn.functional as F

from ..models.common import check_non_negative_int, check_positive_int

KINDS = ("classification", "regression")
IGNORE_INDEX = -100  # classification targets equal to this are not scored (padding, unmasked MLM positions)


class Task:
    """Base class: a seeded generator of ``(x, y)`` batches and its scoring.

    Class attributes (subclasses set them):
        name: the key in :data:`drnn_demo.tasks.TASKS`.
        kind: ``"classification"`` (targets are class ids, predictions logits) or ``"regression"``.
        metric: the main metric, a key of :meth:`metrics` (``"accuracy"``, ``"mse"``, ...).
        higher_is_better: whether a larger ``metric`` is better (early stopping, model selection).
        readout: ``"steps"`` (one prediction per step) or ``"last"`` (one per sequence); passed to
            :class:`drnn_demo.models.SequenceModel` by :func:`drnn_demo.training.build_for_config`.

    Instance attributes (set in ``__init__``):
        args: the constructor arguments, JSON-able; ``type(task)(**task.args)`` rebuilds the task.
        input_size: features per input step (one-hot size or vector size; for token inputs, the
            suggested embedding size).
        output_size: classes (classification) or targets per step (regression).
        vocab_size: number of token ids when inputs are ids ``(n, T)`` long, else None.

    Shapes (``readout="steps"``):
        - x: ``(n, T, input_size)`` float, or ``(n, T)`` long when ``vocab_size`` is set
        - y: ``(n, T)`` long (classification) or ``(n, T, output_size)`` float (regression)
        - pred: what :class:`~drnn_demo.models.SequenceModel` returns, ``(n, T, output_size)``

    With ``readout="last"`` the time axis of ``y`` and ``pred`` is absent.
    """

    name: str = ""
    kind: str = "classification"
    metric: str = "accuracy"
    higher_is_better: bool = True
    readout: str = "steps"

    def __init__(self) -> None:
        self.args: dict = {}
        self.input_size: int = 1
        self.output_size: int = 1
        self.vocab_size: int | None = None

    # ------------------------------------------------------------------ data

    def sample(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` fresh examples drawn from a generator seeded with ``seed`` (same seed, same batch).

        Always generated on the CPU so the data do not depend on the device; move them yourself.
        """
        raise NotImplementedError

    def eval_set(self, split: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed validation (``split="val"``) or test (``"test"``) set the trainer scores on.

        Synthetic tasks draw ``n`` examples from ``seed`` (the trainer derives distinct seeds for
        training, validation and test). A task built on a fixed data set declares a ``split``
        keyword in :meth:`sample` (``"train"`` by default); it is then called with
        ``split="val"`` / ``"test"`` so held-out examples are never trained on.
        """
        if split not in ("val", "test"):
            raise ValueError(f"split must be one of ['val', 'test'], got {split!r}")
        if "split" in inspect.signature(self.sample).parameters:
            return self.sample(n, seed, split=split)
        return self.sample(n, seed)

    @staticmethod
    def _generator(n: int, seed: int) -> torch.Generator:
        """Check ``n`` and ``seed`` and return a CPU generator seeded with ``seed``."""
        check_positive_int("n", n)
        check_non_negative_int("seed", seed)
        return torch.Generator().manual_seed(seed)

    # ------------------------------------------------------------------ scoring

    def loss(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss, a scalar: mean cross-entropy over scored targets, or mean squared error."""
        if self.kind == "classification":
            return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), y.reshape(-1), ignore_index=IGNORE_INDEX)
        return F.mse_loss(pred, y)

    @torch.no_grad()
    def metrics(self, pred: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """All metrics as floats; includes :attr:`metric`.

        Classification: ``accuracy`` (argmax decoding) and ``cross_entropy`` (nats per scored
        target). Regression: ``mse``. Targets equal to ``IGNORE_INDEX`` are not scored.
        """
        if self.kind == "regression":
            return {"mse": float(F.mse_loss(pred.float(), y.float()))}
        logits, targets = pred.reshape(-1, pred.shape[-1]).float(), y.reshape(-1)
        scored = targets != IGNORE_INDEX
        if not bool(scored.any()):
            return {"accuracy": float("nan"), "cross_entropy": float("nan")}
        correct = (logits.argmax(-1) == targets) & scored
        return {
            "accuracy": float(correct.sum() / scored.sum()),
            "cross_entropy": float(F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX)),
        }

    @torch.no_grad()
    def per_position(self, pred: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        """Accuracy (classification) or MSE (regression) per output position, shape ``(T,)``.

        Averaged over the batch (and, for regression, the output features); a position with no
        scored target is NaN. With ``readout="last"`` the result has one entry.
        """
        if self.readout == "last":
            pred, y = pred.unsqueeze(1), y.unsqueeze(1)
        if self.kind == "regression":
            err = (pred.float() - y.float()) ** 2
            return err.reshape(err.shape[0], err.shape[1], -1).mean(dim=(0, 2)).cpu().double().numpy()
        scored = (y != IGNORE_INDEX).double()
        correct = (pred.argmax(-1) == y).double() * scored
        with np.errstate(invalid="ignore", divide="ignore"):
            return (correct.sum(0) / scored.sum(0)).cpu().numpy()

    def best_possible(self, delay: int) -> float | None:
        """The best :attr:`metric` any model that has read ``x[0..t+delay]`` at output ``t`` can reach.

        None when unknown. The pages plot it beside the measurement.
        """
        return None

    # ------------------------------------------------------------------ misc

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"{type(self).__name__}({args})"

