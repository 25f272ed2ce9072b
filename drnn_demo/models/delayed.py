"""The delayed RNN (Turek et al., ICML 2020): one recurrent layer whose output lags its input.

A single layer reads ``x[0..t+delay]`` before it emits ``output[t]``, so it sees ``delay`` steps
of the future, as a bidirectional RNN does, at the cost of one forward pass.
"""

from __future__ import annotations

import torch
from torch import nn

from .common import (
    check_cell,
    check_hidden_size,
    check_input_size,
    check_non_negative_int,
    check_positive_int,
    make_torch_rnn,
    to_time_first,
)


class DelayedRNN(nn.Module):
    r"""A single-layer RNN, GRU or LSTM whose output is delayed by ``delay`` steps.

    The input is padded with ``delay`` zero steps at the end and run through one fused torch
    layer; the first ``delay`` states are dropped, so output and input have the same length:

    .. math::
        s_t = \mathrm{cell}(x_t, s_{t-1}), \quad x_t = 0 \text{ for } t \ge L, \qquad
        \mathrm{output}[t] = s_{t + d}

    For ``cell="rnn"`` that is :math:`s_t = f(V x_t + c_V + W s_{t-1} + c_W)` with ``V =
    weight_ih``, ``W = weight_hh``. ``output[t]`` depends on ``x[s]`` exactly when ``s <= t + d``.

    Args:
        input_size: features per step, ``D``.
        hidden_size: state size, ``H``.
        delay: ``d >= 0``, the number of future steps each output has read.
        cell: ``"rnn"``, ``"gru"`` or ``"lstm"``.
        nonlinearity: ``"tanh"`` or ``"relu"`` (``cell="rnn"`` only).
        bias: learn the biases ``bias_ih`` and ``bias_hh``.
        batch_first: inputs and outputs are ``(B, L, *)`` instead of ``(L, B, *)``.
        block_sizes: optional sizes ``[h_1, ..., h_k]`` summing to ``H``. Block ``j`` (0-based) of
            the state is then held at its initial value for the first ``j`` steps: the staggered
            start that makes a network built by :func:`drnn_demo.equivalence.stacked_to_delayed`
            equal to its stacked original (those steps run one at a time, the rest fused).

    Shapes:
        - input: ``(L, B, D)`` (``(B, L, D)`` if ``batch_first``)
        - hx: ``(1, B, H)``, or the pair ``(h_0, c_0)`` of that shape for an LSTM; zeros if None
        - output: ``(L, B, H)`` (``(B, L, H)`` if ``batch_first``)
        - h_n: the state after all ``L + d`` steps, shaped like ``hx``
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        delay: int = 0,
        cell: str = "rnn",
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        block_sizes: list[int] | None = None,
    ):
        super().__init__()
        check_input_size("input_size", input_size)
        check_hidden_size("hidden_size", hidden_size)
        check_non_negative_int("delay", delay)
        check_cell(cell, nonlinearity)
        if block_sizes is not None:
            block_sizes = list(block_sizes)
            for size in block_sizes:
                check_positive_int("block_sizes[i]", size)
            if sum(block_sizes) != hidden_size:
                raise ValueError(f"block_sizes must sum to hidden_size={hidden_size}, got {block_sizes}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = hidden_size
        self.delay = delay
        self.cell = cell
        self.nonlinearity = nonlinearity
        self.bias = bias
        self.batch_first = batch_first
        self.block_sizes = block_sizes
        self.rnn = make_torch_rnn(cell, input_size, hidden_size, nonlinearity, bias)
        if block_sizes is not None:
            block_of_unit = torch.repeat_interleave(torch.arange(len(block_sizes)), torch.tensor(block_sizes))
            self.register_buffer("block_of_unit", block_of_unit, persistent=False)

    def reset_parameters(self) -> None:
        self.rnn.reset_parameters()

    @property
    def weight_ih(self) -> nn.Parameter:
        """``V``: (G*H, D), gate chunks stacked as in torch (i, f, g, o for an LSTM)."""
        return self.rnn.weight_ih_l0

    @property
    def weight_hh(self) -> nn.Parameter:
        """``W``: (G*H, H)."""
        return self.rnn.weight_hh_l0

    @property
    def bias_ih(self) -> nn.Parameter | None:
        return self.rnn.bias_ih_l0 if self.bias else None

    @property
    def bias_hh(self) -> nn.Parameter | None:
        return self.rnn.bias_hh_l0 if self.bias else None

    def extra_repr(self) -> str:
        blocks = f", block_sizes={self.block_sizes}" if self.block_sizes else ""
        return f"delay={self.delay}, cell={self.cell!r}{blocks}"

    def states(self, x: torch.Tensor, hx=None):
        """All ``L + d`` states ``s_0 .. s_{L+d-1}``, time first: ``(L + d, B, H)``, and ``h_n``.

        ``forward`` returns ``states[d:]``; the analysis code uses the full sequence.
        """
        x = to_time_first(x, self.batch_first, self.input_size)
        if self.delay:
            x = torch.cat([x, x.new_zeros(self.delay, x.shape[1], x.shape[2])])
        n_held = 0 if self.block_sizes is None else len(self.block_sizes) - 1
        if n_held == 0:
            return self.rnn(x, hx)
        return self._staggered_states(x, hx, n_held)

    def _staggered_states(self, x: torch.Tensor, hx, n_held: int):
        if hx is None:
            zeros = x.new_zeros(1, x.shape[1], self.hidden_size)
            hx = (zeros, zeros) if self.cell == "lstm" else zeros
        initial, state, outputs = hx, hx, []
        for t in range(min(n_held, x.shape[0])):
            _, state = self.rnn(x[t : t + 1], state)
            held = self.block_of_unit > t  # blocks j > t have not started yet
            if self.cell == "lstm":
                state = tuple(torch.where(held, s0, s) for s0, s in zip(initial, state, strict=True))
            else:
                state = torch.where(held, initial, state)
            outputs.append(state[0] if self.cell == "lstm" else state)
        if x.shape[0] > n_held:
            rest, state = self.rnn(x[n_held:], state)
            outputs.append(rest)
        return torch.cat(outputs), state

    def forward(self, x: torch.Tensor, hx=None):
        states, h_n = self.states(x, hx)
        output = states[self.delay :]
        return (output.transpose(0, 1) if self.batch_first else output), h_n
