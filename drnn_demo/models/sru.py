"""The Simple Recurrent Unit, SRU v2 (Lei et al., EMNLP 2018), as the ``sru`` package 2.6 computes it.

All matrix products are done for every step at once; only an element-wise recurrence on the
cell state is sequential, which is what makes SRU fast. Parameter names, shapes and layouts
follow ``sru.SRU`` 2.6, so a ``state_dict`` saved from that package loads here unchanged and gives
the same outputs.

The element-wise part runs in :class:`SRURecurrence`, an autograd Function with a forward loop
of three in-place ops per step and a backward loop of two (the backward recurrence is linear
once the gates are known); everything else is computed for many steps at once. That is the fast
training path without a compiler: no graph node per step and per operation, as a plain loop
records. On the CPU (float32/float64) both loops run in a compiled C++ kernel instead
(:mod:`drnn_demo.models.kernels`: parallel over batch and hidden units, the loop over time in
C++); the torch-op loops are its fallback and the path for CUDA and every other device.
``python -m drnn_demo.bench --only sru`` compares both with ``nn.LSTM`` and the ``sru`` package.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import kernels
from .common import check_hidden_size, check_input_size, check_num_layers, to_time_first


class SRURecurrence(torch.autograd.Function):
    r"""The element-wise part of an SRU layer, with hand-written forward and backward loops.

    Given ``U`` for all steps, ``(L, B, k, N)``, it computes (``σ`` = sigmoid)

    .. math::
        f_t &= \sigma(U_{1,t} + v_f \odot c_{t-1} + b_f), \qquad
        c_t = f_t \odot c_{t-1} + (1 - f_t) \odot U_{0,t} \\
        r_t &= \sigma(U_{2,t} + v_r \odot c_{t-1} + b_r), \qquad
        h_t = r_t \odot (m \odot c_t) + (1 - r_t) \odot x'_t

    with ``c_{-1} = c0``; ``x'`` is ``U_3`` when ``k = 4``, else ``skip_scale * skip`` (0 if
    ``skip`` is None), and ``m`` the dropout mask (1 if None).

    Only ``f_t`` and ``c_t`` are sequential: the forward loop does three in-place ops per step on
    one ``(B, N)`` slice; ``r`` and ``h`` are then computed for all steps at once. Backward, with
    ``S_t = f_t (1 - f_t) (c_{t-1} - U_{0,t})`` (= dc_t/dU_{1,t}), the total gradient ``G_t`` of
    ``c_t`` obeys the linear recurrence

    .. math:: G_t = D_t + A_{t+1} G_{t+1} + E_{t+1}, \qquad A_t = f_t + S_t v_f, \quad
              E_t = v_r \odot \partial L / \partial (\text{r's pre-activation})_t

    where ``D_t = m r_t ∂L/∂h_t`` is the direct part. ``D``, ``A`` and ``E`` are computed for a
    block of steps at once (vectorised, cache-sized blocks), the recurrence takes two ops per
    step. Outputs are written into preallocated buffers; no full-size temporaries.

    Inputs: ``u`` ``(L, B, k, N)``, ``skip`` ``(L, B, N)`` or None, ``weight_c = [v_f; v_r]`` and
    ``bias = [b_f; b_r]`` ``(2N,)``, ``c0`` ``(B, N)``, ``mask`` ``(B, N)`` or None,
    ``skip_scale`` a float. Outputs: ``h`` ``(L, B, N)`` and ``c_n = c_{L-1}`` ``(B, N)``.

    CPU tensors run both passes in the compiled kernel (:func:`kernels.sru_forward` and
    :func:`kernels.sru_backward`: everything above fused into one loop over time per column) when
    it is available; the torch-op loops below are the fallback.
    """

    @staticmethod
    def forward(ctx, u, skip, weight_c, bias, c0, mask, skip_scale=1.0):
        ctx.kernel, ctx.skip_scale = kernels.backend(u) == "cpp", skip_scale
        if ctx.kernel:
            h, c_n, saved = kernels.sru_forward(u, skip, weight_c, bias, c0, mask, skip_scale)
            ctx.save_for_backward(*saved)
            return h, c_n
        length, batch, k, n = u.shape
        v_f, v_r, b_f, b_r = weight_c[:n], weight_c[n:], bias[:n], bias[n:]
        forget = torch.add(u[:, :, 1], b_f)  # pre-activations, made gates step by step
        states = u.new_empty(length, batch, n)
        f_steps, c_steps, u0_steps = forget.unbind(0), states.unbind(0), u[:, :, 0].unbind(0)
        c = c0
        for t in range(length):
            f = f_steps[t].addcmul_(v_f, c).sigmoid_()
            c = torch.lerp(u0_steps[t], c, f, out=c_steps[t])  # U0 + f (c - U0)
        reset = torch.add(u[:, :, 2], b_r)
        reset[0].addcmul_(v_r, c0)
        reset[1:].addcmul_(v_r, states[:-1])
        reset.sigmoid_()
        shown = states if mask is None else states * mask
        if k == 4:
            h = torch.lerp(u[:, :, 3], shown, reset)
        elif skip is not None:
            h = torch.mul(skip, skip_scale).lerp_(shown, reset)
        else:
            h = shown * reset
        ctx.save_for_backward(u, skip, weight_c, c0, mask, forget, reset, states)
        return h, c.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h, grad_c_n):
        if ctx.kernel:
            grads = kernels.sru_backward(ctx.saved_tensors, ctx.skip_scale, grad_h, grad_c_n)
            return *(g if need else None for g, need in zip(grads, ctx.needs_input_grad, strict=False)), None, None
        u, skip, weight_c, c0, mask, forget, reset, states = ctx.saved_tensors
        length, batch, k, n = u.shape
        skip_scale = ctx.skip_scale
        v_f, v_r = weight_c[:n], weight_c[n:]
        grad_u = u.new_empty(length, batch, k, n)
        grad_skip = u.new_empty(length, batch, n) if skip is not None and ctx.needs_input_grad[1] else None
        carry = grad_c_n.clone(memory_format=torch.contiguous_format)  # dL/dc_t from the steps after t
        acc_v_f, acc_v_r = c0.new_zeros(n), c0.new_zeros(n)
        block = max(1, min(length, _BLOCK_ELEMENTS // max(1, batch * n)))
        prev, gap, total, f_slope, slope, factor, extra, scratch = (
            u.new_empty(block, batch, n) for _ in range(8))
        for t1 in range(length, 0, -block):
            t0 = max(0, t1 - block)
            m = t1 - t0
            g_h, f, r, c = grad_h[t0:t1], forget[t0:t1], reset[t0:t1], states[t0:t1]
            gu = grad_u[t0:t1]
            c_prev = prev[:m]
            if t0:
                c_prev.copy_(states[t0 - 1 : t1 - 1])
            else:
                c_prev[0].copy_(c0)
                c_prev[1:].copy_(states[: t1 - 1])
            # through h_t = x' + r_t (m c_t - x'): the skip, then r's pre-activation
            if k == 4:
                torch.addcmul(g_h, g_h, r, value=-1, out=gu[:, :, 3])  # g (1 - r)
            elif grad_skip is not None:
                gx = torch.addcmul(g_h, g_h, r, value=-1, out=grad_skip[t0:t1])
                if skip_scale != 1.0:
                    gx.mul_(skip_scale)
            c_shown = c if mask is None else torch.mul(c, mask, out=scratch[:m])
            if k == 4:
                diff = torch.sub(c_shown, u[t0:t1, :, 3], out=gap[:m])
            elif skip is not None:
                diff = torch.sub(c_shown, skip[t0:t1], alpha=skip_scale, out=gap[:m])
            else:
                diff = c_shown
            grad_r = torch.mul(g_h, diff, out=gu[:, :, 2])
            grad_r.mul_(torch.addcmul(r, r, r, value=-1, out=scratch[:m]))  # r (1 - r)
            torch.mul(grad_r, v_r, out=extra[:m])  # E_t
            torch.mul(g_h, r, out=total[:m])  # D_t
            if mask is not None:
                total[:m].mul_(mask)
            torch.addcmul(f, f, f, value=-1, out=f_slope[:m])  # f (1 - f)
            torch.sub(c_prev, u[t0:t1, :, 0], out=slope[:m]).mul_(f_slope[:m])  # S_t
            torch.addcmul(f, slope[:m], v_f, out=factor[:m])  # A_t
            total_steps, factor_steps, extra_steps = total[:m].unbind(0), factor[:m].unbind(0), extra[:m].unbind(0)
            for i in range(m - 1, -1, -1):
                g = total_steps[i].add_(carry)  # G_t
                torch.addcmul(extra_steps[i], g, factor_steps[i], out=carry)  # dL/dc_{t-1}
            grad_f = torch.mul(total[:m], slope[:m], out=gu[:, :, 1])
            torch.addcmul(total[:m], total[:m], f, value=-1, out=gu[:, :, 0])  # G (1 - f)
            acc_v_f += torch.mul(grad_f, c_prev, out=scratch[:m]).sum((0, 1))
            acc_v_r += torch.mul(grad_r, c_prev, out=scratch[:m]).sum((0, 1))
        grad_weight_c = torch.cat([acc_v_f, acc_v_r]) if ctx.needs_input_grad[2] else None
        grad_bias = None
        if ctx.needs_input_grad[3]:
            grad_bias = grad_u.view(-1, k, n).sum(0)[1:3].reshape(-1)
        return grad_u, grad_skip, grad_weight_c, grad_bias, carry, None, None


_BLOCK_ELEMENTS = 1 << 16  # elements per block in the backward pass: cache-sized, and above torch's grain size


def sru_recurrence(u, skip, weight_c, bias, c0, mask=None, skip_scale: float = 1.0):
    """``(h, c_n)`` from :class:`SRURecurrence` (see there for the equations and shapes)."""
    return SRURecurrence.apply(u, skip, weight_c, bias, c0, mask, skip_scale)


def _flip_second_half(t: torch.Tensor, half: int) -> torch.Tensor:
    """Reverse the time axis (0) of the last ``half`` features: the backward direction's columns.

    An involution: applied twice it gives ``t`` back.
    """
    return torch.cat([t[..., :half], t[..., half:].flip(0)], dim=-1)


class SRUCell(nn.Module):
    r"""One SRU layer (one or two directions); the ``sru.SRUCell`` of the ``sru`` package 2.6.

    With ``U = x W`` split into ``k`` matrices (``k = 4`` when a projected skip is needed):

    .. math::
        f_t &= \sigma(U_{1,t} + v_f \odot c_{t-1} + b_f) \\
        r_t &= \sigma(U_{2,t} + v_r \odot c_{t-1} + b_r) \\
        c_t &= f_t \odot c_{t-1} + (1 - f_t) \odot U_{0,t} \\
        h_t &= r_t \odot (m \odot c_t) + (1 - r_t) \odot x'_t

    where the skip ``x'_t`` is ``α x_t`` (``k = 3``; ``α = scale_x = sqrt(1 + 2 e^{highway_bias})``
    if ``rescale`` else 1), ``U_{3,t}`` (``k = 4``: input and output sizes differ) or 0
    (``has_skip_term=False``), and ``m`` is a dropout mask on ``c`` drawn once per sequence
    (``dropout > 0`` in training only). The backward direction runs the same recurrence from
    the last step to the first with its own columns.

    Parameters (names and layout of ``sru`` 2.6):
        - ``weight``: ``(D', n_dir * H * k)``, column ``(dir * H + j) * k + m`` holds unit ``j``
          of matrix ``U_m`` (``D' = projection_size`` if set, else ``input_size``)
        - ``weight_proj``: ``(input_size, projection_size)`` when ``projection_size`` is used
        - ``weight_c``: ``(2 * n_dir * H,)`` = ``[v_f; v_r]``; ``bias``: same shape, ``[b_f; b_r]``
        - ``layer_norm``: ``nn.LayerNorm`` over the input (pre-norm) or, with
          ``normalize_after``, over the output
        - buffer ``scale_x``: ``(1,)``, the constant ``α``

    Shapes:
        - input: ``(L, B, input_size)``; c0: ``(B, n_dir * H)`` (zeros if None)
        - output: ``h`` ``(L, B, n_dir * H)`` and the last state ``c_n`` ``(B, n_dir * H)``
          (for the backward direction, its state after reaching step 0)
    """

    def __init__(
        self, input_size: int, hidden_size: int, dropout: float = 0.0, bidirectional: bool = False,
        n_proj: int = 0, highway_bias: float = 0.0, has_skip_term: bool = True, layer_norm: bool = False,
        rescale: bool = True, normalize_after: bool = False, weight_c_init: float | None = None,
    ):
        super().__init__()
        check_input_size("input_size", input_size)
        check_hidden_size("hidden_size", hidden_size)
        _check_dropout(dropout)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = hidden_size * (2 if bidirectional else 1)
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.has_skip_term = has_skip_term
        self.highway_bias = float(highway_bias)
        self.rescale = rescale
        self.normalize_after = normalize_after
        self.weight_c_init = weight_c_init
        self.projection_size = n_proj if 0 < n_proj < min(input_size, self.output_size) else 0
        self.num_matrices = 4 if has_skip_term and input_size != self.output_size else 3
        if self.projection_size:
            self.weight_proj = nn.Parameter(torch.empty(input_size, self.projection_size))
        else:
            self.register_parameter("weight_proj", None)
        rows = self.projection_size or input_size
        self.weight = nn.Parameter(torch.empty(rows, self.output_size * self.num_matrices))
        self.weight_c = nn.Parameter(torch.empty(2 * self.output_size))
        self.bias = nn.Parameter(torch.empty(2 * self.output_size))
        self.register_buffer("scale_x", torch.ones(1))
        self.layer_norm = None
        if layer_norm:
            self.layer_norm = nn.LayerNorm(self.output_size if normalize_after else input_size)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The ``sru`` 2.6 initialisation: ``Var[W] = 1/D'``, ``Var[v] = 1/2``, gates scaled by ``sqrt(1/2)``."""
        n = self.output_size
        self.bias.zero_()
        self.bias[n:] = self.highway_bias
        scale = math.sqrt(1 + 2 * math.exp(self.highway_bias))
        self.scale_x.fill_(scale if self.rescale and self.has_skip_term else 1.0)
        bound = math.sqrt(3.0 / self.weight.shape[0])
        self.weight.uniform_(-bound, bound)
        if self.weight_proj is not None:
            bound = math.sqrt(3.0 / self.input_size)
            self.weight_proj.uniform_(-bound, bound)
        w = self.weight.view(self.weight.shape[0], n, self.num_matrices)
        if self.dropout > 0:
            w[..., 0] *= math.sqrt(1 - self.dropout)
        if self.layer_norm is not None:
            w *= 0.1
            self.layer_norm.reset_parameters()
        if self.rescale and self.has_skip_term and self.num_matrices == 4:
            w[..., 3] *= scale
        if self.weight_c_init is None:
            self.weight_c.uniform_(-math.sqrt(3.0), math.sqrt(3.0)).mul_(math.sqrt(0.5))
        else:
            self.weight_c.uniform_(-self.weight_c_init, self.weight_c_init)
        w[..., 1] *= math.sqrt(0.5)
        w[..., 2] *= math.sqrt(0.5)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.projection_size:
            s += f", projection_size={self.projection_size}"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.highway_bias:
            s += f", highway_bias={self.highway_bias}"
        s += f", rescale={self.rescale}"
        if not self.has_skip_term:
            s += ", has_skip_term=False"
        return s

    def matrices(self, x: torch.Tensor) -> torch.Tensor:
        """``U`` for every step at once, ``(L, B, k, n_dir * H)`` (``U[:, :, m]`` is ``U_m``)."""
        n, k = self.output_size, self.num_matrices
        if self.weight_proj is not None:
            x = x @ self.weight_proj
        # (D', N*k) in the package's interleaved layout -> (D', k*N), one block per matrix
        weight = self.weight.view(-1, n, k).transpose(1, 2).reshape(-1, k * n)
        return (x @ weight).view(x.shape[0], x.shape[1], k, n)

    def forward(self, x: torch.Tensor, c0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        n, half = self.output_size, self.hidden_size
        if c0 is None:
            c0 = x.new_zeros(x.shape[1], n)
        residual = x
        if self.layer_norm is not None and not self.normalize_after:
            x = self.layer_norm(x)
        u = self.matrices(x)
        skip = None  # with k = 4 the skip is U_3, taken inside the recurrence
        if self.has_skip_term and self.num_matrices == 3:
            skip = residual
        scale = float(self.scale_x) if self.rescale and skip is not None else 1.0
        if self.bidirectional:  # run both directions as one forward recurrence over time-aligned columns
            u = _flip_second_half(u, half)
            skip = None if skip is None else _flip_second_half(skip, half)
        mask = None
        if self.training and self.dropout > 0:
            mask = x.new_empty(x.shape[1], n).bernoulli_(1 - self.dropout).div_(1 - self.dropout)
        h, c_n = sru_recurrence(u, skip, self.weight_c, self.bias, c0, mask, scale)
        if self.bidirectional:
            h = _flip_second_half(h, half)
        if self.layer_norm is not None and self.normalize_after:
            h = self.layer_norm(h)
        return h, c_n


def _check_dropout(dropout) -> None:
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")


class SRU(nn.Module):
    r"""A stack of SRU layers; ``sru.SRU`` of the ``sru`` package 2.6 with ``batch_first`` added.

    Each layer is an :class:`SRUCell` (equations there); layer ``l > 0`` reads layer ``l-1``'s
    output. A ``state_dict`` saved from ``sru.SRU(..)`` with the same arguments loads into this
    module and gives the same outputs (``rnn_lst.{l}.weight``, ``.weight_c``, ``.bias``,
    ``.scale_x``, ``.weight_proj``, ``.layer_norm.*``).

    Args:
        input_size: features per step, ``D``.
        hidden_size: ``H``, state size per direction.
        num_layers: stacked layers (default 2, as in ``sru``).
        dropout: variational dropout on ``c`` inside ``h_t`` of every layer but the last (training only).
        bidirectional: run every layer in both directions, concatenating them (``2 H`` outputs).
        projection_size: if ``0 < P < min(D, n_dir H)``, factor each ``weight`` as ``(D, P) (P, .)``.
        layer_norm: layer-normalise each layer's input (or, with ``normalize_after``, its output).
        highway_bias: initial value of the reset (highway) gate bias ``b_r``.
        has_skip_term: add the highway/skip term ``(1 - r_t) x'_t``.
        rescale: scale the skip by ``α = sqrt(1 + 2 e^{highway_bias})`` (default False, as in ``sru.SRU``).
        normalize_after: post-norm instead of pre-norm (with ``layer_norm``).
        weight_c_init: if set, ``v`` is initialised uniformly in ``[-weight_c_init, weight_c_init]``.
        batch_first: inputs and outputs are ``(B, L, *)``.

    Shapes:
        - input: ``(L, B, D)`` (``(B, L, D)`` if ``batch_first``)
        - c0: ``(num_layers, B, n_dir * H)`` or None (zeros)
        - output: ``(L, B, n_dir * H)`` (``(B, L, n_dir * H)`` if ``batch_first``)
        - c_n: ``(num_layers, B, n_dir * H)``, each layer's last cell state
    """

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 2, dropout: float = 0.0,
        bidirectional: bool = False, projection_size: int = 0, layer_norm: bool = False, highway_bias: float = 0.0,
        has_skip_term: bool = True, rescale: bool = False, normalize_after: bool = False,
        weight_c_init: float | None = None, batch_first: bool = False,
    ):
        super().__init__()
        check_input_size("input_size", input_size)
        check_hidden_size("hidden_size", hidden_size)
        check_num_layers("num_layers", num_layers)
        _check_dropout(dropout)
        if isinstance(projection_size, bool) or not isinstance(projection_size, int) or projection_size < 0:
            raise ValueError(f"projection_size must be a non-negative integer, got {projection_size!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.projection_size = projection_size
        self.use_layer_norm = layer_norm
        self.has_skip_term = has_skip_term
        self.rescale = rescale
        self.highway_bias = highway_bias
        self.batch_first = batch_first
        self.num_directions = 2 if bidirectional else 1
        self.output_size = self.num_directions * hidden_size
        self.rnn_lst = nn.ModuleList(
            SRUCell(
                input_size if i == 0 else self.output_size, hidden_size,
                dropout=dropout if i + 1 < num_layers else 0.0, bidirectional=bidirectional,
                n_proj=projection_size, highway_bias=highway_bias, has_skip_term=has_skip_term,
                layer_norm=layer_norm, rescale=rescale, normalize_after=normalize_after,
                weight_c_init=weight_c_init,
            )
            for i in range(num_layers)
        )

    def reset_parameters(self) -> None:
        for layer in self.rnn_lst:
            layer.reset_parameters()

    def extra_repr(self) -> str:
        return f"batch_first={self.batch_first}" if self.batch_first else ""

    def forward(self, x: torch.Tensor, c0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_time_first(x, self.batch_first, self.input_size)
        if c0 is not None and tuple(c0.shape) != (self.num_layers, x.shape[1], self.output_size):
            raise ValueError(f"c0 must have shape (num_layers, B, n_dir * hidden_size) = "
                             f"{(self.num_layers, x.shape[1], self.output_size)}, got {tuple(c0.shape)}")
        finals = []
        for i, layer in enumerate(self.rnn_lst):
            x, c_n = layer(x, None if c0 is None else c0[i])
            finals.append(c_n)
        output = x.transpose(0, 1) if self.batch_first else x
        return output, torch.stack(finals)
