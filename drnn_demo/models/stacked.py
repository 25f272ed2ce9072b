"""A stack of recurrent layers with per-layer sizes, optionally bidirectional: the baselines."""

from __future__ import annotations

import torch
from torch import nn

from .common import (
    check_cell,
    check_hidden_size,
    check_input_size,
    check_num_layers,
    make_torch_rnn,
    to_time_first,
)


class StackedRNN(nn.Module):
    r"""``k`` recurrent layers, each one fused torch layer, with hidden sizes ``h_1 .. h_k``.

    For ``cell="rnn"``, layer ``l`` computes

    .. math::
        h^l_t = f(A_l h^{l-1}_t + a_l + R_l h^l_{t-1} + r_l), \qquad h^0_t = x_t

    with ``A_l = layers[l-1].weight_ih_l0`` and ``R_l = layers[l-1].weight_hh_l0`` (GRU and LSTM
    layers follow torch's equations). With ``bidirectional=True`` every layer also runs right to
    left and the two directions are concatenated, so layer ``l`` feeds ``2 h_l`` features on.

    Args:
        input_size: features per step, ``D``.
        hidden_sizes: ``[h_1, ..., h_k]``, one positive size per layer.
        cell: ``"rnn"``, ``"gru"`` or ``"lstm"``.
        nonlinearity: ``"tanh"`` or ``"relu"`` (``cell="rnn"`` only).
        bias: learn the biases.
        bidirectional: the (stacked) bidirectional baseline.
        batch_first: inputs and outputs are ``(B, L, *)``.

    Shapes:
        - input: ``(L, B, D)`` (``(B, L, D)`` if ``batch_first``)
        - hx: None (zeros) or a list with one entry per layer, each shaped as ``nn.RNN`` expects
          for one layer: ``(n_dir, B, h_l)``, or the pair ``(h, c)`` for an LSTM
        - output: the top layer, ``(L, B, n_dir * h_k)``
        - h_n: a list with one final state per layer, shaped like ``hx``'s entries
    """

    def __init__(
        self,
        input_size: int,
        hidden_sizes: list[int],
        cell: str = "rnn",
        nonlinearity: str = "tanh",
        bias: bool = True,
        bidirectional: bool = False,
        batch_first: bool = False,
    ):
        super().__init__()
        check_input_size("input_size", input_size)
        if isinstance(hidden_sizes, int) or not list(hidden_sizes):
            raise ValueError(f"hidden_sizes must be a non-empty list of positive integers, got {hidden_sizes!r}")
        hidden_sizes = list(hidden_sizes)
        check_num_layers("number of layers (len(hidden_sizes))", len(hidden_sizes))
        for size in hidden_sizes:
            check_hidden_size("hidden_sizes[i]", size)
        check_cell(cell, nonlinearity)
        self.input_size = input_size
        self.hidden_sizes = hidden_sizes
        self.cell = cell
        self.nonlinearity = nonlinearity
        self.bias = bias
        self.bidirectional = bidirectional
        self.batch_first = batch_first
        directions = 2 if bidirectional else 1
        self.output_size = directions * hidden_sizes[-1]
        sizes_in = [input_size] + [directions * h for h in hidden_sizes[:-1]]
        self.layers = nn.ModuleList(
            make_torch_rnn(cell, d, h, nonlinearity, bias, bidirectional)
            for d, h in zip(sizes_in, hidden_sizes, strict=True)
        )

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def reset_parameters(self) -> None:
        for layer in self.layers:
            layer.reset_parameters()

    def extra_repr(self) -> str:
        return f"hidden_sizes={self.hidden_sizes}, cell={self.cell!r}, bidirectional={self.bidirectional}"

    def layer_outputs(self, x: torch.Tensor, hx=None) -> tuple[list[torch.Tensor], list]:
        """Every layer's output, time first ``[(L, B, n_dir * h_l)]``, and the final states."""
        x = to_time_first(x, self.batch_first, self.input_size)
        if hx is not None and len(hx) != self.num_layers:
            raise ValueError(f"hx must hold one state per layer ({self.num_layers}), got {len(hx)}")
        outputs, finals = [], []
        for i, layer in enumerate(self.layers):
            x, h_n = layer(x, None if hx is None else hx[i])
            outputs.append(x)
            finals.append(h_n)
        return outputs, finals

    def forward(self, x: torch.Tensor, hx=None):
        outputs, finals = self.layer_outputs(x, hx)
        output = outputs[-1]
        return (output.transpose(0, 1) if self.batch_first else output), finals
