r"""The Lightweight Recurrent Network (Zhang & Sennrich, ACL 2019).

All matrix products of LRN live outside the recurrence: one projection gives three streams
``p, q, r``, and the loop over time is purely element-wise, with the previous state acting as
the only "recurrent weight" (twin gates, one adds it, the other subtracts it):

.. math::
    [p_t; q_t; r_t] = W x_t + b, \qquad
    i_t = \sigma(p_t + h_{t-1}), \qquad
    f_t = \sigma(q_t - h_{t-1}), \qquad
    h_t = g(i_t \odot r_t + f_t \odot h_{t-1})

with ``g`` = tanh or the identity. Unfolded (exactly, for the identity),
``h_t = sum_{k<=t} i_k * prod_{j=k+1..t} f_j * r_k``: input gates act as attention keys and the
forget chain as a decay; :mod:`drnn_demo.token_weights` computes these weights.

The element-wise loop runs in :class:`LRNRecurrence`, a custom autograd Function with its own
forward and backward time loops over preallocated buffers (a handful of fused torch kernels per
step instead of a graph of small autograd nodes). Its backward is a *linear* recurrence for the
state gradient, ``dh_{t-1} = G_{t-1} + E_t * dh_t``, with every coefficient ``E_t`` computed in
bulk from the saved gates, so the backward loop is a single kernel per step.

On the CPU (float32/float64) both loops run in a compiled C++ kernel instead
(:mod:`drnn_demo.models.kernels`: the loop over time in C++, parallel over batch and hidden units,
one pass over memory per step); the torch-op loops above are the fallback, and the path for
CUDA and any other device. ``kernels.backend(tensor)`` says which one a tensor takes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from . import kernels
from .common import (
    check_choice,
    check_hidden_size,
    check_input_size,
    check_num_layers,
    to_time_first,
)

ACTIVATIONS = ("tanh", "identity")
RMS_NORM_EPS = 1e-8


class LRNRecurrence(torch.autograd.Function):
    r"""The element-wise LRN recurrence over a precomputed projection, one direction.

    ``LRNRecurrence.apply(proj, h0, tanh, reverse) -> (output, input_gate, forget_gate)``

    Args:
        proj: ``(L, B, 3H)``, the chunks ``p, q, r`` of ``W x_t + b`` in that order.
        h0: ``(B, H)``, the state before the first step.
        tanh: ``g = tanh`` if True, the identity otherwise.
        reverse: run right to left (``h_{t+1}`` is the previous state of step ``t``).

    Returns ``output (L, B, H)`` (``h_t`` at position ``t``) and the gates ``i, f`` ``(L, B, H)``;
    the gates are returned for analysis and are not differentiable. Double backward is not
    supported (the backward is hand-written).

    Inside the loop ``tanh(a)`` is evaluated as ``2 sigmoid(2a) - 1``: torch's tanh kernel
    splits even small tensors across threads, which costs more than the arithmetic here.
    CPU tensors run both loops in the compiled kernel (:func:`kernels.lrn_forward` and
    :func:`kernels.lrn_backward`, same buffers) when it is available; the loops below are the fallback.
    """

    @staticmethod
    def forward(ctx, proj: torch.Tensor, h0: torch.Tensor, tanh: bool, reverse: bool):
        proj = proj.contiguous()
        length, batch, three_h = proj.shape
        hidden = three_h // 3
        # states[0] (forward) or states[L] (reverse) holds h0; the others are the outputs.
        states = proj.new_empty(length + 1, batch, hidden)
        gates = proj.new_empty(length, 2, batch, hidden)  # per step one contiguous (2, B, H) block
        ctx.kernel = kernels.backend(proj) == "cpp"
        if ctx.kernel:
            kernels.lrn_forward(proj, h0, states, gates, tanh, reverse)
        else:
            LRNRecurrence._forward_loop(proj, h0, states, gates, tanh, reverse)
        ctx.save_for_backward(proj, states, gates)
        ctx.tanh, ctx.reverse = tanh, reverse
        output = states[:length] if reverse else states[1:]
        input_gate, forget_gate = gates[:, 0], gates[:, 1]
        ctx.mark_non_differentiable(input_gate, forget_gate)
        return output, input_gate, forget_gate

    @staticmethod
    def _forward_loop(proj, h0, states, gates, tanh: bool, reverse: bool) -> None:
        """The torch-op forward: fills ``states`` and ``gates`` in place, one step at a time."""
        length, batch, three_h = proj.shape
        hidden = three_h // 3
        states[length if reverse else 0].copy_(h0)
        pq = proj[..., : 2 * hidden].unflatten(-1, (2, hidden)).transpose(1, 2)  # (L, 2, B, H)
        sign = proj.new_tensor([1.0, -1.0]).view(2, 1, 1)
        r_steps, pq_steps = proj[..., 2 * hidden :].unbind(0), pq.unbind(0)
        gate_steps, i_steps, f_steps = gates.unbind(0), gates[:, 0].unbind(0), gates[:, 1].unbind(0)
        state_steps = states.unbind(0)
        if reverse:
            steps = [(t, state_steps[t + 1], state_steps[t]) for t in range(length - 1, -1, -1)]
        else:
            steps = [(t, state_steps[t], state_steps[t + 1]) for t in range(length)]
        if tanh:
            scratch = proj.new_empty(batch, hidden)
            zero, minus_one = proj.new_zeros(()), proj.new_full((), -1.0)
            for t, h_prev, h in steps:
                torch.addcmul(pq_steps[t], sign, h_prev, out=gate_steps[t])  # [p + h, q - h]
                gate_steps[t].sigmoid_()
                torch.addcmul(zero, i_steps[t], r_steps[t], value=2.0, out=scratch)  # 2a = 2 i r + 2 f h
                scratch.addcmul_(f_steps[t], h_prev, value=2.0)
                scratch.sigmoid_()
                torch.add(minus_one, scratch, alpha=2.0, out=h)  # tanh(a) = 2 sigmoid(2a) - 1
        else:
            for t, h_prev, h in steps:
                torch.addcmul(pq_steps[t], sign, h_prev, out=gate_steps[t])
                gate_steps[t].sigmoid_()
                torch.mul(i_steps[t], r_steps[t], out=h)
                h.addcmul_(f_steps[t], h_prev)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output, _grad_input_gate, _grad_forget_gate):
        proj, states, gates = ctx.saved_tensors
        length, batch, three_h = proj.shape
        hidden = three_h // 3
        if ctx.kernel:
            grad_proj, grad_h0 = kernels.lrn_backward(grad_output, proj, states, gates, ctx.tanh, ctx.reverse)
            return (grad_proj if ctx.needs_input_grad[0] else None,
                    grad_h0 if ctx.needs_input_grad[1] else None, None, None)
        if ctx.reverse:
            h_prev, h = states[1:], states[:length]
        else:
            h_prev, h = states[:length], states[1:]
        i, f, r = gates[:, 0], gates[:, 1], proj[..., 2 * hidden :]
        d_i = torch.addcmul(i, i, i, value=-1.0)  # sigma' = i (1 - i)
        d_f = torch.addcmul(f, f, f, value=-1.0)
        # dh_t/dh_{t-1} = g'(a_t) * (f_t + r_t i_t (1 - i_t) - h_{t-1} f_t (1 - f_t)), all known in bulk
        coef = torch.addcmul(f, r, d_i)
        coef.addcmul_(h_prev, d_f, value=-1.0)
        if ctx.tanh:
            g_prime = torch.addcmul(torch.ones_like(h), h, h, value=-1.0)
            coef.mul_(g_prime)
        grad_output = grad_output.contiguous()
        grad_h = torch.empty_like(grad_output)  # total gradient reaching each state
        go_steps, gh_steps, coef_steps = grad_output.unbind(0), grad_h.unbind(0), coef.unbind(0)
        if ctx.reverse:  # processing order L-1, ..., 0: state t feeds step t - 1
            gh_steps[0].copy_(go_steps[0])
            for t in range(1, length):
                torch.addcmul(go_steps[t], coef_steps[t - 1], gh_steps[t - 1], out=gh_steps[t])
            first = length - 1
        else:
            gh_steps[length - 1].copy_(go_steps[length - 1])
            for t in range(length - 2, -1, -1):
                torch.addcmul(go_steps[t], coef_steps[t + 1], gh_steps[t + 1], out=gh_steps[t])
            first = 0
        grad_h0 = coef[first] * grad_h[first] if ctx.needs_input_grad[1] else None
        grad_proj = None
        if ctx.needs_input_grad[0]:
            grad_a = grad_h.mul_(g_prime) if ctx.tanh else grad_h
            grad_proj = proj.new_empty(length, batch, three_h)
            gp, gq, gr = grad_proj.split(hidden, dim=-1)
            torch.mul(grad_a, r, out=gp)
            gp.mul_(d_i)
            torch.mul(grad_a, h_prev, out=gq)
            gq.mul_(d_f)
            torch.mul(grad_a, i, out=gr)
        return grad_proj, grad_h0, None, None


def lrn_recurrence(proj: torch.Tensor, h0: torch.Tensor, activation: str = "tanh", reverse: bool = False):
    """Run :class:`LRNRecurrence`; returns ``(output, input_gate, forget_gate)``, each ``(L, B, H)``."""
    check_choice("activation", activation, ACTIVATIONS)
    return LRNRecurrence.apply(proj, h0, activation == "tanh", reverse)


class LRNGates(NamedTuple):
    """Input and forget gates of every layer and direction, shaped like the output per layer:
    ``(num_layers * num_directions, L, B, H)`` (``(..., B, L, H)`` if ``batch_first``)."""

    input: torch.Tensor
    forget: torch.Tensor


class LRNTrace(NamedTuple):
    """Everything one layer and direction computed, time first (see :meth:`LRN.trace`)."""

    layer: int
    direction: int  # 0: left to right, 1: right to left
    p: torch.Tensor  # (L, B, H) input-gate pre-activation from x
    q: torch.Tensor  # (L, B, H) forget-gate pre-activation from x
    r: torch.Tensor  # (L, B, H) the value stream
    input_gate: torch.Tensor  # (L, B, H)
    forget_gate: torch.Tensor  # (L, B, H)
    h0: torch.Tensor  # (B, H) the state before the first step
    output: torch.Tensor  # (L, B, H) h_t at position t


class LRN(nn.Module):
    r"""A multi-layer Lightweight Recurrent Network with torch.nn conventions.

    Layer ``k`` (0-based) and direction computes, for each position ``t``,

    .. math::
        [p_t; q_t; r_t] &= W_k x_t + b_k \quad(\text{or } \gamma_k \odot \mathrm{rms}(W_k x_t) + b_k
        \text{ with layer\_norm})\\
        i_t &= \sigma(p_t + h_{t-1}), \qquad f_t = \sigma(q_t - h_{t-1}), \\
        h_t &= g(i_t \odot r_t + f_t \odot h_{t-1}),

    where ``g`` is tanh or the identity and ``x`` is the input (layer 0) or the previous layer's
    output (both directions concatenated). The right-to-left direction reads ``h_{t+1}`` instead.
    The layer norm is the RMS normalisation of the reference code, over the whole ``3H``
    pre-activation, applied outside the loop.

    Args:
        input_size: features per step, ``D``.
        hidden_size: state size per direction, ``H``.
        num_layers: stacked layers.
        activation: ``"tanh"`` or ``"identity"`` (the "linear LRN" of the paper's analysis).
        layer_norm: normalise each layer's ``3H`` pre-activation (with a learned gain).
        bidirectional: add a right-to-left direction in every layer.
        dropout: dropout on the outputs of every layer except the last (training only).
        batch_first: inputs and outputs are ``(B, L, *)`` instead of ``(L, B, *)``.

    Parameters (``_reverse`` suffix for the right-to-left direction):
        - ``weight_ih_l{k}``: ``(3H, D_k)``, rows ``p, q, r`` in that order; ``D_0 = D``,
          ``D_k = num_directions * H``. Xavier-uniform initialisation, as the reference code.
        - ``bias_ih_l{k}``: ``(3H)``, zeros at initialisation.
        - ``ln_weight_l{k}``: ``(3H)``, ones at initialisation (only with ``layer_norm``).

    Shapes:
        - input: ``(L, B, D)`` (``(B, L, D)`` if ``batch_first``)
        - hx: ``(num_layers * num_directions, B, H)``; zeros if None
        - output: ``(L, B, num_directions * H)`` (``(B, L, ...)`` if ``batch_first``), the last layer
        - h_n: ``(num_layers * num_directions, B, H)``, the final state of each layer and direction
          (position ``L - 1`` left to right, position ``0`` right to left)
        - with ``return_gates=True`` also :class:`LRNGates`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        activation: str = "tanh",
        layer_norm: bool = False,
        bidirectional: bool = False,
        dropout: float = 0.0,
        batch_first: bool = False,
    ):
        super().__init__()
        check_input_size("input_size", input_size)
        check_hidden_size("hidden_size", hidden_size)
        check_num_layers("num_layers", num_layers)
        check_choice("activation", activation, ACTIVATIONS)
        if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.activation = activation
        self.layer_norm = bool(layer_norm)
        self.bidirectional = bool(bidirectional)
        self.dropout = float(dropout)
        self.batch_first = batch_first
        self.num_directions = 2 if bidirectional else 1
        self.output_size = self.num_directions * hidden_size
        for layer in range(num_layers):
            size_in = input_size if layer == 0 else self.output_size
            for suffix in self._suffixes(layer):
                self.register_parameter("weight_ih" + suffix, nn.Parameter(torch.empty(3 * hidden_size, size_in)))
                self.register_parameter("bias_ih" + suffix, nn.Parameter(torch.empty(3 * hidden_size)))
                if self.layer_norm:
                    self.register_parameter("ln_weight" + suffix, nn.Parameter(torch.empty(3 * hidden_size)))
        self.reset_parameters()

    def _suffixes(self, layer: int) -> list[str]:
        return [f"_l{layer}", f"_l{layer}_reverse"][: self.num_directions]

    def reset_parameters(self) -> None:
        for name, param in self.named_parameters():
            if name.startswith("weight_ih"):
                nn.init.xavier_uniform_(param)
            elif name.startswith("bias_ih"):
                nn.init.zeros_(param)
            else:
                nn.init.ones_(param)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, activation={self.activation!r}"
        if self.layer_norm:
            s += ", layer_norm=True"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.batch_first:
            s += ", batch_first=True"
        return s

    def projection(self, x: torch.Tensor, layer: int = 0, direction: int = 0) -> torch.Tensor:
        """``[p; q; r] = W x + b`` (with the RMS norm if ``layer_norm``) for time-first ``x``: ``(L, B, 3H)``."""
        suffix = self._suffixes(layer)[direction]
        weight, bias = getattr(self, "weight_ih" + suffix), getattr(self, "bias_ih" + suffix)
        if not self.layer_norm:
            return torch.addmm(bias, x.reshape(-1, x.shape[-1]), weight.t()).view(*x.shape[:-1], -1)
        pre = F.rms_norm(x @ weight.t(), (3 * self.hidden_size,), getattr(self, "ln_weight" + suffix), RMS_NORM_EPS)
        return pre + bias

    def _check_hx(self, hx: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        shape = (self.num_layers * self.num_directions, x.shape[1], self.hidden_size)
        if hx is None:
            return x.new_zeros(shape)
        if not isinstance(hx, torch.Tensor) or tuple(hx.shape) != shape:
            got = tuple(hx.shape) if isinstance(hx, torch.Tensor) else type(hx).__name__
            raise ValueError(f"hx must have shape (num_layers * num_directions, B, H) = {shape}, got {got}")
        return hx

    def _run(self, x: torch.Tensor, hx: torch.Tensor | None, keep: bool):
        x = to_time_first(x, self.batch_first, self.input_size)
        hx = self._check_hx(hx, x)
        tanh = self.activation == "tanh"
        finals, gates, traces = [], [], []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                proj = self.projection(x, layer, direction)
                out, i, f = LRNRecurrence.apply(proj, hx[index], tanh, direction == 1)
                outputs.append(out)
                finals.append(out[0] if direction == 1 else out[-1])
                gates.append((i, f))
                if keep:
                    p, q, r = proj.split(self.hidden_size, dim=-1)
                    traces.append(LRNTrace(layer, direction, p, q, r, i, f, hx[index], out))
            x = outputs[0] if self.num_directions == 1 else torch.cat(outputs, dim=-1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        return x, torch.stack(finals), gates, traces

    def forward(self, x: torch.Tensor, hx: torch.Tensor | None = None, return_gates: bool = False):
        output, h_n, gates, _ = self._run(x, hx, keep=False)
        if self.batch_first:
            output = output.transpose(0, 1)
        if not return_gates:
            return output, h_n
        i, f = (torch.stack([g[k] for g in gates]) for k in (0, 1))
        if self.batch_first:
            i, f = i.transpose(1, 2), f.transpose(1, 2)
        return output, h_n, LRNGates(i, f)

    def trace(self, x: torch.Tensor, hx: torch.Tensor | None = None) -> list[LRNTrace]:
        """Every layer's and direction's projections, gates and states, time first, in the order
        ``[(layer 0, forward), (layer 0, reverse), (layer 1, forward), ...]``. The analysis in
        :mod:`drnn_demo.token_weights` is built on this."""
        return self._run(x, hx, keep=True)[3]

