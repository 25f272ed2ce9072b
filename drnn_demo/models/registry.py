"""The registry: every recurrent core by name, and the one function that builds them.

The CLI, the jobs, the checkpoints and the pages build a core only through :func:`build_model`,
so a name in a card or a config means the same module everywhere.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .asrnn import ASRNN, exprnn
from .delayed import DelayedRNN
from .lrn import LRN
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
