"""Recurrent modules with torch.nn conventions, and the registry that builds them by name.

The registry is the one way the CLI, the jobs, the checkpoints and the pages build a model:
``build_model("delayed", input_size=4, hidden_size=64, delay=3)``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .asrnn import ASRNN, exprnn
from .delayed import DelayedRNN
from .lrn import LRN
from .sequence import SequenceModel
from .sru import SRU
from .stacked import StackedRNN


def bidirectional_rnn(**kwargs) -> StackedRNN:
    """The (stacked) bidirectional baseline: a :class:`StackedRNN` with ``bidirectional=True``."""
    return StackedRNN(bidirectional=True, **kwargs)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "delayed": DelayedRNN,
    "stacked": StackedRNN,
    "bidirectional": bidirectional_rnn,
    "sru": SRU,
    "lrn": LRN,
    "asrnn": ASRNN,
    "exprnn": exprnn,
}


def build_model(name: str, **kwargs) -> nn.Module:
    """Build the recurrent module registered as ``name`` with its constructor keywords."""
    if name not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {name!r}")
    return MODELS[name](**kwargs)


__all__ = [
    "ASRNN", "LRN", "MODELS", "SRU", "DelayedRNN", "SequenceModel", "StackedRNN", "bidirectional_rnn", "build_model",
    "exprnn",
]
