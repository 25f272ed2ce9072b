r"""Stacked <-> delayed: any k-layer stacked RNN is one delayed layer with block-structured weights.

Stacked, layer ``l``: :math:`h^l_t = f(A_l h^{l-1}_t + R_l h^l_{t-1} + b_l)`, :math:`h^0 = x`.
Delayed state :math:`s_t = [s^1_t; \dots; s^k_t]` with :math:`s^l_t = h^l_{t-l+1}` and update
:math:`s_t = f(V x_t + W s_{t-1} + c)`, delay ``k - 1``, where

- ``W`` is block lower-bidiagonal: block ``(l, l) = R_l``, block ``(l, l-1) = A_l``, others zero;
- ``V = [A_1; 0; ...; 0]`` and ``c = [b_1; ...; b_k]``;
- an LSTM (or GRU) uses the same layout inside each gate chunk;
- block ``l`` is held at its initial state for its first ``l - 1`` steps (the staggered start,
  ``DelayedRNN(block_sizes=...)``), or its bias leaks in before its input arrives.

This is exact for ``rnn`` and ``lstm``. PyTorch's GRU multiplies the whole recurrent candidate
term ``W_hn h + b_hn`` by the reset gate, and in the delayed layer that term also carries the
layer input ``A_l h^{l-1}``, so the GRU construction is only approximate; it is refused unless
``allow_inexact=True``, and :func:`equivalence_report` measures its error.

Relaxing the zero blocks (:func:`relax_zero_blocks`) gives the partial acausality of the paper:
blocks below the sub-diagonal of ``W`` and the lower rows of ``V`` let block ``l`` read inputs
up to ``l - 1`` steps ahead of the stacked layer it stands for.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from .models.common import GATES_PER_CELL, check_positive_int
from .models.delayed import DelayedRNN
from .models.stacked import StackedRNN


def _offsets(sizes: list[int]) -> list[int]:
    return [0, *np.cumsum(sizes).tolist()]


def _block(total: int, gate: int, offsets: list[int], l: int) -> slice:
    """Rows of block ``l`` inside gate chunk ``gate`` of a (G*total, .) weight."""
    return slice(gate * total + offsets[l], gate * total + offsets[l + 1])


def stacked_to_delayed(stacked: StackedRNN, allow_inexact: bool = False) -> DelayedRNN:
    """The single delayed layer (hidden ``sum(h_l)``, delay ``k-1``) equal to ``stacked``.

    ``output[t]`` of the result equals the stacked output at ``t``; block ``l`` of the full state
    sequence (:meth:`DelayedRNN.states`) at step ``t + l - 1`` equals layer ``l`` at ``t``.
    The result's ``exact`` attribute says whether the construction is exact (not for GRU).
    """
    if not isinstance(stacked, StackedRNN):
        raise ValueError(f"stacked must be a StackedRNN, got {type(stacked).__name__}")
    if stacked.bidirectional:
        raise ValueError("stacked_to_delayed needs a unidirectional StackedRNN (bidirectional=False)")
    if stacked.cell == "gru" and not allow_inexact:
        raise ValueError(
            "the GRU construction is not exact: PyTorch's reset gate also scales the layer-input block; "
            "pass allow_inexact=True to build the approximation and measure its error"
        )
    sizes, k, total = stacked.hidden_sizes, stacked.num_layers, sum(stacked.hidden_sizes)
    first = stacked.layers[0].weight_ih_l0
    delayed = DelayedRNN(
        stacked.input_size, total, delay=k - 1, cell=stacked.cell, nonlinearity=stacked.nonlinearity,
        bias=stacked.bias, batch_first=stacked.batch_first, block_sizes=sizes,
    ).to(dtype=first.dtype, device=first.device)
    off = _offsets(sizes)
    with torch.no_grad():
        for p in delayed.parameters():
            p.zero_()
        for l, layer in enumerate(stacked.layers):
            h = sizes[l]
            for g in range(GATES_PER_CELL[stacked.cell]):
                rows, chunk = _block(total, g, off, l), slice(g * h, (g + 1) * h)
                delayed.weight_hh[rows, off[l] : off[l + 1]] = layer.weight_hh_l0[chunk]
                if l == 0:
                    delayed.weight_ih[rows] = layer.weight_ih_l0[chunk]
                else:
                    delayed.weight_hh[rows, off[l - 1] : off[l]] = layer.weight_ih_l0[chunk]
                if stacked.bias:
                    delayed.bias_ih[rows] = layer.bias_ih_l0[chunk]
                    delayed.bias_hh[rows] = layer.bias_hh_l0[chunk]
    delayed.exact = stacked.cell != "gru"
    return delayed


def _zero_block_mask(delayed: DelayedRNN, sizes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean masks over ``weight_ih`` and ``weight_hh``: True where the block form has zeros."""
    total, off = sum(sizes), _offsets(sizes)
    ih = torch.ones_like(delayed.weight_ih, dtype=torch.bool)
    hh = torch.ones_like(delayed.weight_hh, dtype=torch.bool)
    for g in range(GATES_PER_CELL[delayed.cell]):
        for l in range(len(sizes)):
            rows = _block(total, g, off, l)
            hh[rows, off[l] : off[l + 1]] = False
            if l == 0:
                ih[rows] = False
            else:
                hh[rows, off[l - 1] : off[l]] = False
    return ih, hh


def delayed_to_stacked(delayed: DelayedRNN, hidden_sizes: list[int]) -> StackedRNN:
    """The stacked network whose conversion is ``delayed``; needs the block form exactly."""
    sizes = list(hidden_sizes)
    if not isinstance(delayed, DelayedRNN):
        raise ValueError(f"delayed must be a DelayedRNN, got {type(delayed).__name__}")
    if sum(sizes) != delayed.hidden_size:
        raise ValueError(f"hidden_sizes must sum to the delayed hidden_size={delayed.hidden_size}, got {sizes}")
    if delayed.delay != len(sizes) - 1:
        raise ValueError(f"a {len(sizes)}-layer stack needs delay={len(sizes) - 1}, the model has {delayed.delay}")
    ih_zero, hh_zero = _zero_block_mask(delayed, sizes)
    leaks = delayed.weight_ih[ih_zero].abs().sum() + delayed.weight_hh[hh_zero].abs().sum()
    if leaks != 0:
        raise ValueError(
            "delayed weights are not in the stacked block form: blocks outside the diagonal and "
            f"sub-diagonal of weight_hh (or rows below the first block of weight_ih) sum to |{leaks.item():.3g}|"
        )
    stacked = StackedRNN(
        delayed.input_size, sizes, cell=delayed.cell, nonlinearity=delayed.nonlinearity,
        bias=delayed.bias, batch_first=delayed.batch_first,
    ).to(dtype=delayed.weight_ih.dtype, device=delayed.weight_ih.device)
    total, off = sum(sizes), _offsets(sizes)
    with torch.no_grad():
        for l, layer in enumerate(stacked.layers):
            h = sizes[l]
            for g in range(GATES_PER_CELL[delayed.cell]):
                rows, chunk = _block(total, g, off, l), slice(g * h, (g + 1) * h)
                layer.weight_hh_l0[chunk] = delayed.weight_hh[rows, off[l] : off[l + 1]]
                source = delayed.weight_ih[rows] if l == 0 else delayed.weight_hh[rows, off[l - 1] : off[l]]
                layer.weight_ih_l0[chunk] = source
                if delayed.bias:
                    layer.bias_ih_l0[chunk] = delayed.bias_ih[rows]
                    layer.bias_hh_l0[chunk] = delayed.bias_hh[rows]
    return stacked


def relax_zero_blocks(delayed: DelayedRNN, hidden_sizes: list[int], eps: float, seed: int = 0) -> DelayedRNN:
    """A copy of ``delayed`` with every zero block filled with ``eps * N(0, 1/H)`` noise.

    At ``eps = 0`` the copy is identical; as ``eps`` grows the blocks couple freely and block
    ``l`` starts to read inputs ahead of the stacked layer it stands for.
    """
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    relaxed = copy.deepcopy(delayed)
    ih_zero, hh_zero = _zero_block_mask(relaxed, list(hidden_sizes))
    gen = torch.Generator().manual_seed(seed)
    scale = eps / np.sqrt(relaxed.hidden_size)
    with torch.no_grad():
        for weight, mask in ((relaxed.weight_ih, ih_zero), (relaxed.weight_hh, hh_zero)):
            noise = torch.randn(weight.shape, generator=gen).to(weight) * scale
            weight += noise * mask
    return relaxed


def future_influence(delayed: DelayedRNN, hidden_sizes: list[int], at: int = 8, seed: int = 0) -> np.ndarray:
    r"""Which future inputs reach which block: ``(k, k)``, rows blocks, columns look-ahead ``o``.

    Entry ``[l, o]`` is :math:`\| \partial s^l_{\tau + l} / \partial x_{\tau + o} \|_F`: how much
    the input ``o`` steps after time ``tau`` moves block ``l``'s stand-in for stacked layer ``l``
    at ``tau`` (0-based ``l``). In the exact block form every column ``o >= 1`` is zero.

    One forward and one backward pass: the sequence ``x`` (``at + k`` steps) is repeated over a batch of
    ``H = sum h_l`` copies, and copy ``i`` back-propagates only unit ``i`` of its block at its step, so the
    gradient of copy ``i`` is row ``i`` of the Jacobian (the copies do not interact).
    """
    k = len(hidden_sizes)
    off = _offsets(list(hidden_sizes))
    gen = torch.Generator().manual_seed(seed)
    length, units = at + k, off[-1]
    x = torch.randn(length, 1, delayed.input_size, generator=gen).to(delayed.weight_ih)
    copies = x.expand(length, units, delayed.input_size).clone().requires_grad_()
    states, _ = delayed.states(copies.transpose(0, 1) if delayed.batch_first else copies)  # (T + d, H copies, H)
    picked = torch.cat([states[at + l, off[l] : off[l + 1], off[l] : off[l + 1]].diagonal() for l in range(k)])
    (grad,) = torch.autograd.grad(picked.sum(), copies)  # (T, H copies, D): copy i holds d picked_i / dx
    return np.array([[grad[at + o, off[l] : off[l + 1]].norm().item() for o in range(k)] for l in range(k)])


@dataclass
class EquivalenceReport:
    """What the Stacked = Delayed page plots; arrays are numpy, time first, example 0 where noted.

    - ``exact``: whether the construction is exact in theory (False for GRU)
    - ``max_error``: max |stacked - delayed| over every layer, step, unit and example
    - ``layer_error``: ``(k, L)`` max error per layer and step (layer ``l`` vs block ``l`` shifted)
    - ``stacked_layers`` / ``delayed_layers``: per layer ``(L, h_l)``, example 0, aligned in time
    - ``weight_hh``: ``(G*H, H)`` the delayed recurrent matrix; ``block_edges``: ``[0, h1, h1+h2, ...]``
    - ``eps_grid`` / ``eps_errors``: max output error after :func:`relax_zero_blocks` at each eps
    - ``eps`` / ``influence``: the chosen eps and :func:`future_influence` at it, ``(k, k)``
    """

    cell: str
    hidden_sizes: list[int]
    exact: bool
    max_error: float
    layer_error: np.ndarray
    stacked_layers: list[np.ndarray]
    delayed_layers: list[np.ndarray]
    weight_hh: np.ndarray
    block_edges: list[int]
    eps_grid: np.ndarray
    eps_errors: np.ndarray
    eps: float
    influence: np.ndarray


def _aligned_blocks(delayed: DelayedRNN, x: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    """Block ``l`` of states ``l .. l + L - 1``: the delayed stand-ins for layer ``l`` at ``0..L-1``."""
    states, _ = delayed.states(x)
    length, off = states.shape[0] - delayed.delay, _offsets(sizes)
    return [states[l : l + length, :, off[l] : off[l + 1]] for l in range(len(sizes))]


@torch.no_grad()
def _top_output_error(stacked: StackedRNN, delayed: DelayedRNN, x: torch.Tensor) -> float:
    """Max |stacked output - top block of the delayed output|."""
    top = delayed(x)[0][..., -stacked.hidden_sizes[-1] :]
    return (stacked(x)[0] - top).abs().max().item()


def equivalence_report(
    stacked: StackedRNN, x: torch.Tensor, eps: float = 0.0,
    eps_grid=(0.0, 0.01, 0.03, 0.1, 0.3, 1.0), seed: int = 0,
) -> EquivalenceReport:
    """Build the delayed twin of ``stacked``, compare them on ``x`` and relax the zero blocks."""
    sizes = stacked.hidden_sizes
    delayed = stacked_to_delayed(stacked, allow_inexact=True)
    with torch.no_grad():
        layers, _ = stacked.layer_outputs(x)
        blocks = _aligned_blocks(delayed, x, sizes)
        errors = torch.stack([(a - b).abs().amax(dim=(1, 2)) for a, b in zip(layers, blocks, strict=True)])
    eps_grid = np.unique(np.append(np.asarray(eps_grid, dtype=float), eps))
    eps_errors = np.array(
        [_top_output_error(stacked, relax_zero_blocks(delayed, sizes, e, seed), x) for e in eps_grid]
    )
    return EquivalenceReport(
        cell=stacked.cell,
        hidden_sizes=list(sizes),
        exact=delayed.exact,
        max_error=errors.max().item(),
        layer_error=errors.cpu().numpy(),
        stacked_layers=[a[:, 0].cpu().numpy() for a in layers],
        delayed_layers=[b[:, 0].cpu().numpy() for b in blocks],
        weight_hh=delayed.weight_hh.detach().cpu().numpy(),
        block_edges=_offsets(sizes),
        eps_grid=eps_grid,
        eps_errors=eps_errors,
        eps=float(eps),
        influence=future_influence(relax_zero_blocks(delayed, sizes, eps, seed), sizes, seed=seed),
    )


def demo_report(
    cell: str = "lstm", hidden_sizes=(8, 8, 8), length: int = 50, seed: int = 0, eps: float = 0.0,
    input_size: int = 3, nonlinearity: str = "tanh",
) -> EquivalenceReport:
    """The report for a freshly initialised stack with biases drawn from U(-1, 1) (so a leaking
    bias would show) on a random N(0, 1) sequence of ``length`` steps, batch of 2."""
    check_positive_int("length", length)
    torch.manual_seed(seed)
    stacked = StackedRNN(input_size, list(hidden_sizes), cell=cell, nonlinearity=nonlinearity)
    with torch.no_grad():
        for name, p in stacked.named_parameters():
            if "bias" in name:
                p.uniform_(-1, 1)
    x = torch.randn(length, 2, input_size)
    return equivalence_report(stacked, x, eps=eps, seed=seed)
