"""What a run may use: the device it trains on, and the memory limits it is checked against first.

- :func:`pick_device`: ``"auto"`` | ``"cpu"`` | ``"cuda"`` | ``"cuda:N"`` | ``"mps"`` -> a ``torch.device``
  this machine has (``ValueError`` otherwise).
- :data:`MAX_EVAL_SIZE`: sequences in a fixed validation or test set (checked by
  :class:`~drnn_demo.training.TrainConfig`).
- :func:`check_step_footprint`: ``batch_size x length x units x 8 <= MAX_STEP_FLOATS`` (the activations
  one training step keeps for the backward pass).
- :func:`check_eval_footprint`: ``size x length x (inputs + 2 x outputs) <= MAX_EVAL_FLOATS`` (an
  evaluation set with its targets and predictions).

:func:`drnn_demo.training.build_for_config` runs both checks before a model trains; the command line
(:mod:`drnn_demo.cli.checks`) and a re-test (:mod:`drnn_demo.retest`) run them before anything is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .models import SequenceModel
    from .tasks import Task

# Resource limit: sequences in a fixed validation or test set (see also check_eval_footprint).
MAX_EVAL_SIZE = 100_000
# Resource limit: floats the backward pass keeps per training step (about 4 GiB of float32).
MAX_STEP_FLOATS = 2**30
# Resource limit: floats of a fixed evaluation set with its targets and predictions (1 GiB of float32).
MAX_EVAL_FLOATS = 2**28


def pick_device(choice: str = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU. ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` when present.

    Raises ``ValueError`` for an unknown name or a device this machine does not have.
    """
    if not isinstance(choice, str):
        raise ValueError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {choice!r}")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(choice)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {choice!r}") from err
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {choice!r} requested but CUDA is not available here; use 'auto' or 'cpu'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {choice!r}: only {torch.cuda.device_count()} CUDA device(s) here")
        return device
    if device.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(f"device {choice!r} requested but MPS is not available here; use 'auto' or 'cpu'")
        return device
    raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {choice!r}")


def check_eval_footprint(name: str, size: int, length: int, task: Task) -> None:
    """Refuse, before generating it, a validation or test set that would exhaust memory.

    Estimate: ``size x length x (input features + 2 x outputs)`` floats (the inputs, the targets
    and the predictions kept for scoring; token ids count as one feature). Raises ``ValueError``
    naming ``name`` (``"val_size"`` / ``"test_size"``), the numbers and :data:`MAX_EVAL_FLOATS`.
    """
    features = (1 if task.vocab_size is not None else task.input_size) + 2 * task.output_size
    floats = size * length * features
    if floats > MAX_EVAL_FLOATS:
        largest = max(1, MAX_EVAL_FLOATS // (length * features))
        raise ValueError(
            f"{name} x length x (inputs + 2 x outputs) = {size:,} x {length:,} x {features:,} = {floats:,} floats "
            f"exceeds the memory limit of {MAX_EVAL_FLOATS:,} (1 GiB): at this length {name} may be at most "
            f"{largest:,}")


def check_step_footprint(batch_size: int, length: int, model: SequenceModel) -> None:
    """Refuse, before training, a step whose stored activations would exhaust memory.

    Estimate: ``batch_size x length x units x 8`` floats, ``units`` the core's output features
    (8 covers an LSTM's four gates, its cell state and the output kept for the backward pass).
    Raises ``ValueError`` naming the numbers and :data:`MAX_STEP_FLOATS`.
    """
    floats = batch_size * length * model.core.output_size * 8
    if floats > MAX_STEP_FLOATS:
        raise ValueError(
            f"batch_size x length x hidden units x 8 = {batch_size:,} x {length:,} x {model.core.output_size:,} x 8 "
            f"= {floats:,} floats per training step exceeds the memory limit of {MAX_STEP_FLOATS:,} (4 GiB): use a "
            "smaller batch, a shorter sequence or a smaller model")
