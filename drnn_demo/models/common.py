"""Argument checks and small helpers shared by the recurrent modules.

Every check raises ``ValueError`` with a message that names the argument and what is allowed,
so a bad slider value or a typo in a config fails loudly and early.
"""

from __future__ import annotations

import torch
from torch import nn

CELLS = ("rnn", "gru", "lstm")
NONLINEARITIES = ("tanh", "relu")
GATES_PER_CELL = {"rnn": 1, "gru": 3, "lstm": 4}
# Resource limit: units per recurrent layer. An LSTM layer of 16384 units already holds ~2 GiB of
# float32 weights; larger sizes are refused before anything is allocated.
MAX_HIDDEN = 16384
# Resource limit: steps of a generated sequence (a task's length, gap, ...).
MAX_LENGTH = 100_000
# Resource limits on the other sizes a config (or a checkpoint's card) can ask for.
MAX_INPUT_SIZE = 65_536  # features per input step (or embedding size)
MAX_LAYERS = 64  # recurrent layers in one core
MAX_VOCAB = 1_000_000  # token ids of an embedding
MAX_OUTPUTS = 100_000  # classes or regression targets per prediction
# Resource limit: parameters of one model (1 GiB of float32). Checked on the meta device, before
# any weight is allocated (see :func:`drnn_demo.checkpoints.load_checkpoint`).
MAX_PARAMETERS = 2**28


def check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")


def check_positive_int(name: str, value, limit: int | None = None) -> None:
    """``value`` is an int >= 1 (and <= ``limit``, a resource limit named in the message, if given)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if limit is not None and value > limit:
        raise ValueError(f"{name} must be at most {limit:,} (a memory limit), got {value:,}")


def check_hidden_size(name: str, value) -> None:
    """A layer's unit count: a positive int no larger than :data:`MAX_HIDDEN`."""
    check_positive_int(name, value, MAX_HIDDEN)


def check_input_size(name: str, value) -> None:
    """Features per input step: a positive int no larger than :data:`MAX_INPUT_SIZE`."""
    check_positive_int(name, value, MAX_INPUT_SIZE)


def check_num_layers(name: str, value) -> None:
    """A layer count: a positive int no larger than :data:`MAX_LAYERS`."""
    check_positive_int(name, value, MAX_LAYERS)


def check_parameter_count(model: nn.Module) -> None:
    """Refuse a model of more than :data:`MAX_PARAMETERS` parameters (build it on the ``meta``
    device first, and this costs no memory)."""
    count = sum(t.numel() for t in model.state_dict().values())
    if count > MAX_PARAMETERS:
        raise ValueError(f"the model has {count:,} parameters; the limit is {MAX_PARAMETERS:,} (a memory limit)")


def check_non_negative_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def check_cell(cell: str, nonlinearity: str) -> None:
    check_choice("cell", cell, CELLS)
    check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
    if cell != "rnn" and nonlinearity != "tanh":
        raise ValueError(f"nonlinearity={nonlinearity!r} applies only to cell='rnn'; {cell} cells use 'tanh'")


def make_torch_rnn(
    cell: str, input_size: int, hidden_size: int, nonlinearity: str = "tanh", bias: bool = True,
    bidirectional: bool = False,
) -> nn.RNNBase:
    """One time-first layer of torch's fused ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM``."""
    if cell == "rnn":
        return nn.RNN(input_size, hidden_size, nonlinearity=nonlinearity, bias=bias, bidirectional=bidirectional)
    kind = nn.GRU if cell == "gru" else nn.LSTM
    return kind(input_size, hidden_size, bias=bias, bidirectional=bidirectional)


def to_time_first(x: torch.Tensor, batch_first: bool, input_size: int) -> torch.Tensor:
    """Check a batched sequence and return it as (L, B, input_size)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        layout = "(B, L, input_size)" if batch_first else "(L, B, input_size)"
        raise ValueError(f"input must be a 3-D tensor {layout}, got shape {shape}")
    if x.shape[-1] != input_size:
        raise ValueError(f"input feature size must equal input_size={input_size}, got {x.shape[-1]}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"input must have at least one step and one sequence, got shape {tuple(x.shape)}")
    return x.transpose(0, 1) if batch_first else x
