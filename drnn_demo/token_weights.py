r"""LRN's gates read as attention weights over the tokens (Zhang & Sennrich 2019, section 5).

Unfolding the recurrence ``h_t = g(i_t * r_t + f_t * h_{t-1})`` with ``g`` the identity gives,
exactly, per hidden unit,

.. math::
    h_t = \sum_{k \le t} w[t, k] \odot r_k + \Big(\prod_{j \le t} f_j\Big) \odot h_0, \qquad
    w[t, k] = i_k \odot \prod_{j=k+1}^{t} f_j ,

so the input gate ``i_k`` says how much of token ``k`` enters, and the forget chain how fast it
fades. With ``g = tanh`` the same sum, built from the gates the network actually computed, is only
an approximation of ``h_t``: :class:`TokenWeights` reports how far off it is (``error``), it
never hides it.

Everything is computed in float64 and in log space, ``log w[t, k] = log i_k + S_t - S_k`` with
``S_t = sum_{j <= t} log f_j`` and the logs taken by ``logsigmoid`` of the pre-activations, so
the weights of sequences thousands of steps long neither underflow to 0/0 nor lose the tiny ones
(a log-scale heatmap can show them). All weights lie in ``[0, 1]``.

Main entry points:

- :func:`token_weights` ``(model, x)``: one sequence, everything a page draws (gate heatmaps,
  weight matrices per unit or averaged over units, decay curves, reconstruction error).
- :func:`final_token_attribution` ``(model, x)``: a batch, what every token contributes to the
  final state (gate weight, contribution size, share of each logit); the keyword task checks
  with it that the model's attention points at the deciding token.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from .models.lrn import LRN

DEFAULT_CHUNK_ELEMENTS = 1 << 22  # float64 elements per chunk of the T x T x H computations (32 MB)


@dataclass
class TokenWeights:
    """Unfolded LRN weights of one sequence, one layer and direction (float64, CPU, position order).

    Attributes:
        activation: the layer's ``g``, ``"tanh"`` or ``"identity"``.
        layer, direction: which layer (0-based) and direction (0 left to right, 1 right to left).
            For the right-to-left direction ``w[t, k]`` is nonzero for ``k >= t`` instead.
        input_gate: ``(T, H)``, ``i_k`` (the "key": how much of token ``k`` enters).
        forget_gate: ``(T, H)``, ``f_k``.
        value: ``(T, H)``, ``r_k``.
        hidden: ``(T, H)``, the states ``h_t`` the network computed.
        h0: ``(H,)``, the initial state.
        log_mean: ``(T, T)``, ``log mean_u w[t, k, u]`` (``-inf`` where ``k`` is not yet read).
        mean: ``(T, T)``, ``mean_u w[t, k, u]``: the unit-aggregated weight of token ``k`` in ``h_t``.
        contribution: ``(T, T)``, ``|| w[t, k] * r_k ||_2``: the size of what token ``k`` adds to ``h_t``.
        reconstruction: ``(T, H)``, ``sum_k w[t, k] * r_k + (prod_{j<=t} f_j) * h0``.
        error: ``(T,)``, ``max_u |h_t - reconstruction_t|``: ~1e-15 for the identity, the size of the
            tanh's deviation from the linear unfolding otherwise.
        tokens: optional labels of the positions (e.g. words), for the pages.
        readout_weight: ``(C, H)`` for the last layer of a :class:`~drnn_demo.models.SequenceModel`: the
            columns of its linear head that read this direction (else None); see
            :meth:`logit_contributions`.
    """

    activation: str
    layer: int
    direction: int
    input_gate: torch.Tensor
    forget_gate: torch.Tensor
    value: torch.Tensor
    hidden: torch.Tensor
    h0: torch.Tensor
    log_mean: torch.Tensor
    mean: torch.Tensor
    contribution: torch.Tensor
    reconstruction: torch.Tensor
    error: torch.Tensor
    log_input_gate: torch.Tensor  # (T, H), exact logs (logsigmoid of the pre-activation)
    log_forget_gate: torch.Tensor  # (T, H)
    tokens: list[str] | None = None
    readout_weight: torch.Tensor | None = None  # (C, H): the head's columns reading this layer/direction

    @property
    def length(self) -> int:
        return self.input_gate.shape[0]

    @property
    def hidden_size(self) -> int:
        return self.input_gate.shape[1]

    @property
    def exact(self) -> bool:
        """Whether the unfolding is exact in exact arithmetic (identity activation)."""
        return self.activation == "identity"

    @property
    def max_error(self) -> float:
        return float(self.error.max())

    @property
    def relative_error(self) -> float:
        """``max |h - reconstruction| / max |h|``: the error on the scale of the states."""
        scale = float(self.hidden.abs().max())
        return self.max_error / scale if scale > 0 else self.max_error

    # ---------------------------------------------------------------- in processing order
    def _order(self, a: torch.Tensor, dims: tuple[int, ...] = (0,)) -> torch.Tensor:
        """Position order <-> processing order (a flip for the right-to-left direction)."""
        return a.flip(dims) if self.direction == 1 else a

    def _position(self, t: int) -> int:
        """A query position (negative counts from the end) in processing order."""
        if not -self.length <= t < self.length:
            raise ValueError(f"position must be in [-{self.length}, {self.length}), got {t}")
        t %= self.length
        return self.length - 1 - t if self.direction == 1 else t

    def _log_chain_sums(self) -> torch.Tensor:
        """``S`` in processing order, ``(T, H)``: ``S_t = sum_{j<=t} log f_j``."""
        return torch.cumsum(self._order(self.log_forget_gate), 0)

    def _check_unit(self, unit: int | None) -> None:
        if unit is not None and not (isinstance(unit, int) and -self.hidden_size <= unit < self.hidden_size):
            raise ValueError(f"unit must be an integer in [-{self.hidden_size}, {self.hidden_size}), got {unit!r}")

    # ---------------------------------------------------------------- weights
    def log_weights(self, t: int | None = None, unit: int | None = None) -> torch.Tensor:
        """``log w[t, k, u]`` (``-inf`` for tokens not yet read at ``t``).

        - ``t=None, unit=None``: ``(T, T, H)`` (large for long sequences: ``T*T*H`` floats)
        - ``t`` given: ``(T, H)``, the weights of every token in ``h_t`` (``t=-1``: the final state)
        - ``unit`` given: ``(T, T)``, one unit's weight matrix
        - both: ``(T,)``
        """
        self._check_unit(unit)
        log_i, S = self._order(self.log_input_gate), self._log_chain_sums()
        if unit is not None:
            unit %= self.hidden_size
            log_i, S = log_i[:, unit : unit + 1], S[:, unit : unit + 1]
        if t is None:
            out = log_i.unsqueeze(0) + S.unsqueeze(1) - S.unsqueeze(0)  # [t, k, u]
            future = torch.ones(self.length, self.length, dtype=torch.bool).triu(1)
            out = out.masked_fill(future.unsqueeze(-1), -math.inf)
            out = self._order(out, (0, 1))
        else:
            tp = self._position(t)
            out = log_i + S[tp] - S
            out[tp + 1 :] = -math.inf
            out = self._order(out)
        return out.squeeze(-1) if unit is not None else out

    def weights(self, t: int | None = None, unit: int | None = None) -> torch.Tensor:
        """``w[t, k, u]`` in ``[0, 1]``; same shapes as :meth:`log_weights`."""
        return self.log_weights(t, unit).exp()

    def log_forget_chain(self, t: int = -1) -> torch.Tensor:
        """``(T, H)``: ``log prod_{j=k+1..t} f_j`` for each token ``k`` (0 at ``k = t``, ``-inf`` for
        tokens after ``t``): how much of what entered at ``k`` survives to ``h_t``."""
        tp = self._position(t)
        S = self._log_chain_sums()
        out = S[tp] - S
        out[tp + 1 :] = -math.inf
        return self._order(out)

    def decay(self, k: int, unit: int | None = None, log: bool = False) -> torch.Tensor:
        """The weight of token ``k`` in every later state, ``(T - k,)`` for ``t = k .. T-1`` (``(k + 1,)``
        for ``t = k .. 0`` right to left): averaged over units, or for one ``unit``."""
        kp = self._position(k)
        self._check_unit(unit)
        log_i, S = self._order(self.log_input_gate), self._log_chain_sums()
        curve = log_i[kp] + S[kp:] - S[kp]  # (T - kp, H), in processing order from t = k on
        if unit is not None:
            curve = curve[:, unit]
        else:
            curve = torch.logsumexp(curve, dim=-1) - math.log(self.hidden_size)
        return curve if log else curve.exp()

    def token_contributions(self, t: int = -1) -> torch.Tensor:
        """``(T, H)``: ``w[t, k] * r_k``, the vector each token adds to ``h_t`` (exact sum for identity)."""
        return self.weights(t) * self.value

    def logit_contributions(self, t: int = -1) -> torch.Tensor:
        """``(T, C)``: what each token adds to each logit of the head reading ``h_t``,
        ``readout_weight @ (w[t, k] * r_k)``. For the identity activation (and zero ``h0``) these
        sum, with the head's bias, to the logits exactly (the other direction's share aside)."""
        if self.readout_weight is None:
            raise ValueError("logit contributions need the last layer of a SequenceModel with a linear head")
        return self.token_contributions(t) @ self.readout_weight.T


def _lrn_core(model) -> tuple[LRN, torch.nn.Module | None]:
    core = getattr(model, "core", model)
    if not isinstance(core, LRN):
        raise ValueError(f"token weights need an LRN or a SequenceModel with an LRN core, got {type(core).__name__}")
    return core, getattr(model, "embedding", None)


def _float64_trace(model, x: torch.Tensor, hx: torch.Tensor | None, batch_first: bool):
    """Run a float64 eval-mode copy of the LRN core on ``x`` (ids or features); returns its traces."""
    core, embedding = _lrn_core(model)
    device = next(core.parameters()).device
    x = x.to(device)
    if embedding is not None:
        if x.dtype in (torch.float16, torch.float32, torch.float64):
            raise ValueError("this model embeds token ids: pass a long tensor of ids")
        x = F.embedding(x, embedding.weight.detach().double())
    else:
        x = x.double()
    core64 = copy.deepcopy(core).double().eval()
    core64.batch_first = batch_first
    with torch.no_grad():
        return core64.trace(x, None if hx is None else hx.to(device).double())


def _select(traces, core: LRN, layer: int, direction: int):
    if not -core.num_layers <= layer < core.num_layers:
        raise ValueError(f"layer must be in [-{core.num_layers}, {core.num_layers}), got {layer}")
    if direction not in range(core.num_directions):
        raise ValueError(f"direction must be in {list(range(core.num_directions))}, got {direction}")
    return traces[(layer % core.num_layers) * core.num_directions + direction]


def _readout_weight(model, core: LRN, layer: int, direction: int) -> torch.Tensor | None:
    head = getattr(model, "head", None)
    if not isinstance(head, torch.nn.Linear) or layer % core.num_layers != core.num_layers - 1:
        return None
    H = core.hidden_size
    return head.weight.detach().double().cpu()[:, direction * H : (direction + 1) * H]


def _log_gates(trace, reverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact ``log i`` and ``log f`` from the pre-activations, time first ``(L, B, H)``."""
    out, h0 = trace.output, trace.h0
    if reverse:
        h_prev = torch.cat([out[1:], h0.unsqueeze(0)])
    else:
        h_prev = torch.cat([h0.unsqueeze(0), out[:-1]])
    return F.logsigmoid(trace.p + h_prev), F.logsigmoid(trace.q - h_prev)


def token_weights(
    model,
    x: torch.Tensor,
    *,
    layer: int = -1,
    direction: int = 0,
    hx: torch.Tensor | None = None,
    tokens: list[str] | None = None,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> TokenWeights:
    """The unfolded weights of one sequence through an LRN layer.

    Args:
        model: an :class:`~drnn_demo.models.LRN`, or a :class:`~drnn_demo.models.SequenceModel` whose
            core is one (its embedding, if any, is applied first).
        x: one sequence: ``(L,)`` token ids for a model with an embedding, else ``(L, D)`` features.
        layer: which layer (default the last, the one a readout sees). For layers above the first,
            "token k" is position ``k`` of the layer's input, itself a mix of earlier tokens.
        direction: 0 (left to right) or 1 (right to left, bidirectional models).
        hx: optional initial state ``(num_layers * num_directions, H)`` (zeros if None).
        tokens: optional labels of the positions, kept on the result for display.
        chunk_elements: memory budget of the ``T x T x H`` passes, in float64 elements.

    The T x T views (``mean``, ``log_mean``, ``contribution``) cost ``O(T^2 H)`` time, computed
    in chunks of rows, so sequences of a few thousand steps work (in seconds).
    """
    core, embedding = _lrn_core(model)
    expected = 1 if embedding is not None else 2
    if not isinstance(x, torch.Tensor) or x.dim() != expected or x.shape[0] == 0:
        what = "(L,) token ids" if embedding is not None else "(L, D) features"
        raise ValueError(f"x must be one non-empty sequence of {what}, got {getattr(x, 'shape', type(x))}")
    if tokens is not None and len(tokens) != x.shape[0]:
        raise ValueError(f"tokens must label every position: {len(tokens)} labels for {x.shape[0]} steps")
    if hx is not None:
        hx = hx.unsqueeze(1)  # (layers * dirs, 1, H)
    traces = _float64_trace(model, x.unsqueeze(0), hx, batch_first=True)
    trace = _select(traces, core, layer, direction)
    log_i, log_f = (a[:, 0].cpu() for a in _log_gates(trace, direction == 1))
    i, f = trace.input_gate[:, 0].cpu(), trace.forget_gate[:, 0].cpu()
    r, h, h0 = trace.r[:, 0].cpu(), trace.output[:, 0].cpu(), trace.h0[0].cpu()

    # processing order (flip the right-to-left direction), then the chunked T x T x H passes
    flip = (lambda a: a.flip(0)) if direction == 1 else (lambda a: a)
    li, S, rr = flip(log_i), torch.cumsum(flip(log_f), 0), flip(r)
    length, hidden = li.shape
    log_mean = torch.empty(length, length, dtype=torch.float64)
    contribution = torch.empty(length, length, dtype=torch.float64)
    recon = torch.empty(length, hidden, dtype=torch.float64)
    rows = max(1, chunk_elements // max(1, length * hidden))
    k = torch.arange(length)
    for t0 in range(0, length, rows):
        t1 = min(length, t0 + rows)
        lw = li.unsqueeze(0) + S[t0:t1].unsqueeze(1) - S.unsqueeze(0)  # (c, T, H) = log w[t, k, u]
        lw.masked_fill_((k.unsqueeze(0) > torch.arange(t0, t1).unsqueeze(1)).unsqueeze(-1), -math.inf)
        log_mean[t0:t1] = torch.logsumexp(lw, dim=-1) - math.log(hidden)
        w = lw.exp_()
        wr = w.mul_(rr.unsqueeze(0))  # w[t, k] * r_k
        recon[t0:t1] = wr.sum(1)
        contribution[t0:t1] = torch.linalg.vector_norm(wr, dim=-1)
    recon += S.exp() * h0  # the initial state's share, prod_{j<=t} f_j * h0
    flip2 = (lambda a: a.flip(0, 1)) if direction == 1 else (lambda a: a)
    log_mean, contribution, recon = flip2(log_mean), flip2(contribution), flip(recon)
    return TokenWeights(
        readout_weight=_readout_weight(model, core, layer, direction),
        activation=core.activation, layer=layer % core.num_layers, direction=direction,
        input_gate=i, forget_gate=f, value=r, hidden=h, h0=h0,
        log_mean=log_mean, mean=log_mean.exp(), contribution=contribution,
        reconstruction=recon, error=(h - recon).abs().amax(-1),
        log_input_gate=log_i, log_forget_gate=log_f, tokens=list(tokens) if tokens is not None else None,
    )


def _final_log_weights(model, x: torch.Tensor, layer: int):
    """``log w[L-1, k]`` for every token of a batch, ``(L, B, H)``, with the LRN core and its float64 trace."""
    core, _ = _lrn_core(model)
    trace = _select(_float64_trace(model, x, None, batch_first=True), core, layer, 0)
    log_i, log_f = _log_gates(trace, reverse=False)  # (L, B, H)
    S = torch.cumsum(log_f, 0)
    return core, trace, log_i + S[-1:] - S


@dataclass
class FinalAttribution:
    """What each token contributes to the final left-to-right state of each sequence of a batch.

    Attributes (float64, CPU):
        weight: ``(B, L)``, ``mean_u w[L-1, k, u]``, the unit-averaged gate weight (can be
            dominated by units the readout ignores).
        contribution: ``(B, L)``, ``|| w[L-1, k] * r_k ||_2``, the size of what token ``k`` adds.
        logit: ``(B, L, C)``, ``W_head (w[L-1, k] * r_k)`` for a SequenceModel reading the last layer
            with a linear head, else None: the token's share of each logit (exact for identity).
    """

    weight: torch.Tensor
    contribution: torch.Tensor
    logit: torch.Tensor | None


def final_token_attribution(model, x: torch.Tensor, *, layer: int = -1) -> FinalAttribution:
    """For a batch, every token's weight and contribution in the final left-to-right state.

    ``x`` is batch first: ``(B, L)`` ids for a model with an embedding, else ``(B, L, D)``.
    Computed in log space like :func:`token_weights`, in ``O(B L H)``.
    """
    core, trace, lw = _final_log_weights(model, x, layer)
    weight = (torch.logsumexp(lw, dim=-1) - math.log(core.hidden_size)).exp().T.cpu()
    wr = (lw.exp() * trace.r).transpose(0, 1).cpu()  # (B, L, H)
    readout = _readout_weight(model, core, layer, 0)
    return FinalAttribution(
        weight=weight, contribution=torch.linalg.vector_norm(wr, dim=-1),
        logit=None if readout is None else wr @ readout.T,
    )


def final_token_weights(model, x: torch.Tensor, *, layer: int = -1, log: bool = False) -> torch.Tensor:
    """For a batch, the unit-averaged weight of every token in the final left-to-right state:
    ``mean_u w[L-1, k, u]``, shape ``(B, L)`` (log values with ``log=True``, which never underflow).

    ``x`` is batch first: ``(B, L)`` ids for a model with an embedding, else ``(B, L, D)``.
    """
    core, _, lw = _final_log_weights(model, x, layer)
    out = (torch.logsumexp(lw, dim=-1) - math.log(core.hidden_size)).T.cpu()
    return out if log else out.exp()
