"""Recurrent modules with torch.nn conventions, and the registry that builds them by name.

The registry is the one way the CLI, the jobs, the checkpoints and the pages build a model:
``build_model("delayed", input_size=4, hidden_size=64, delay=3)``.
"""

from __future__ import annotations

from .asrnn import ASRNN, exprnn
from .delayed import DelayedRNN
from .lrn import LRN
from .registry import MODELS, bidirectional_rnn, build_model
from .sequence import SequenceModel
from .sru import SRU
from .stacked import StackedRNN

__all__ = [
    "ASRNN", "LRN", "MODELS", "SRU", "DelayedRNN", "SequenceModel", "StackedRNN", "bidirectional_rnn", "build_model",
    "exprnn",
]
