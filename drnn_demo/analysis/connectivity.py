r"""Connectivity maps: how strongly each output step depends on each input step.

.. math::
    C[t, s] = \left\lVert \frac{\partial y_t}{\partial x_s} \right\rVert_F
            = \Big( \sum_{o=1}^{O} \sum_{d=1}^{D} \Big(\frac{\partial y_{t,o}}{\partial x_{s,d}}\Big)^2 \Big)^{1/2}

``y`` is what the task scores: a :class:`~drnn_demo.models.SequenceModel`'s per-step output (logits or
regression values, after the head), a :class:`~drnn_demo.models.pos_tagger.POSTagger`'s tag logits, or a bare
recurrent core's output. ``x`` is the sequence of input vectors fed to the recurrent core: for a token model the
embedding's output (the ids themselves are not differentiable), for float inputs ``x`` itself.

What the map shows, exactly (not just approximately: structurally absent paths give exact zeros):

- a :class:`~drnn_demo.models.DelayedRNN` with delay ``d``: ``C[t, s] = 0`` for ``s > t + d``;
- a causal :class:`~drnn_demo.models.StackedRNN`: lower-triangular, ``C[t, s] = 0`` for ``s > t``;
- a bidirectional network: dense.

How it is computed: the full Jacobian by reverse mode, batched through the model's own batch axis. ``N`` copies
of ``x`` go through the model as one batch; copy ``n`` back-propagates the one output component
``y_{t_n, o_n}`` (a one-hot ``grad_outputs``), so one backward pass yields ``N`` rows of the Jacobian. Batch
elements never interact in these modules (the model runs in eval mode), so row ``n`` is exactly
``∂y_{t_n, o_n} / ∂x``. This is the batched Jacobian ``torch.func.vmap`` would give, but it runs through the fused
RNN kernels and through the custom autograd functions of SRU and LRN, for which ``vmap`` has no batching rule.
The rows are processed in passes of at most ``rows_per_pass`` copies, so memory stays bounded whatever ``T``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..models import SequenceModel
from ..models.pos_tagger import POSTagger

# Resource limits: steps of the one sequence, and Jacobian rows (output steps x output features).
# The map is T_out x T_in and the work grows as T^2: beyond these sizes the request is refused.
MAX_STEPS = 512
MAX_ROWS = 2**16
# Memory budget of one backward pass: copies x steps x features (the widest of input, state and output). A pass
# keeps some ten such tensors for backward (gates, states), ~40 MB in float64. Small passes are also the fastest
# measured on CPU (their working set stays in cache): ~60 copies for T = 70, hidden 128.
PASS_ELEMENTS = 2**19


def connectivity(model: nn.Module, x, *, rows_per_pass: int | None = None) -> torch.Tensor:
    r"""``C[t, s] = ||∂y_t / ∂x_s||_F`` for one sequence: a ``(T_out, T_in)`` tensor (see the module docstring).

    .. math:: C[t, s] = \Big( \sum_{o < O} \sum_{d < D} (\partial y_{t,o} / \partial x_{s,d})^2 \Big)^{1/2}

    Args:
        model: a :class:`~drnn_demo.models.SequenceModel`, a :class:`~drnn_demo.models.pos_tagger.POSTagger`,
            or a bare recurrent core (``DelayedRNN``, ``StackedRNN``, bidirectional ``StackedRNN``, ``ASRNN``,
            ``SRU``, ``LRN``, ``torch.nn.RNN`` ...) whose ``forward(x)`` returns ``(output, h_n)``; ``batch_first``
            is honoured. It is run in eval mode (and put back in training mode afterwards if it was).
        x: one sequence (a tensor or array):

            - token ids ``(T,)`` or ``(1, T)`` (long) for a model with an embedding: ``x_s`` is the embedding of
              token ``s``;
            - float vectors ``(T, D)`` or ``(1, T, D)``, ``D`` = the core's input size: ``x_s`` is row ``s``. For a
              token model these are taken as the embedding output itself; for a ``POSTagger`` they are its word
              vectors (:meth:`~drnn_demo.models.pos_tagger.POSTagger.word_vectors`);
            - for a ``POSTagger`` also the pair ``(word_ids, char_ids)``, shapes ``(T,)`` and ``(T, M)`` (or with a
              leading 1): ``x_s`` is word ``s``'s vector ``[E_w[w_s]; BiLSTM_c(chars of s)]``.
        rows_per_pass: Jacobian rows (batch copies) per backward pass; default from a memory budget. Any value
            gives the same result.

    Returns:
        ``(T_out, T_in)``, on the CPU, in the model's floating dtype, ``T_in = T``. ``T_out = T`` for per-step
        outputs, ``1`` for a ``SequenceModel`` with ``readout="last"`` (one prediction per sequence).

    Raises:
        ValueError: for an input of the wrong kind or shape, or beyond the limits: ``T > MAX_STEPS`` (512) or more
            than ``MAX_ROWS`` (65,536) Jacobian rows ``T_out * O``.
    """
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.get_default_dtype()
    device = param.device if param is not None else torch.device("cpu")
    embed, body, input_size = _parts(model)
    with _eval_mode(model), torch.enable_grad():
        vectors = _input_vectors(model, x, embed, input_size, dtype, device)
        return _jacobian_norms(body, vectors, rows_per_pass, _state_width(model))


# ---------------------------------------------------------------- the model as input vectors -> outputs


def _parts(model: nn.Module) -> tuple[Callable | None, Callable, int | None]:
    """``(embed, body, input_size)``: ``embed`` maps one sequence's ids to vectors (None: float inputs only),
    ``body`` maps a batch of vector sequences ``(N, T, D)`` to outputs ``(N, T_out, O)``."""
    if isinstance(model, SequenceModel):
        def body(e: torch.Tensor) -> torch.Tensor:
            h, _ = model.core(e)
            y = model.head(h[:, -1] if model.readout == "last" else h)
            return y.unsqueeze(1) if model.readout == "last" else y

        embed = None if model.embedding is None else (lambda ids: model.embedding(ids))
        return embed, body, model.config["input_size"]
    if isinstance(model, POSTagger):
        def tagger_body(e: torch.Tensor) -> torch.Tensor:
            h, _ = model.sentence(e)  # one full-length sentence: no packing needed, nothing is padding
            return model.head(h)

        def embed_words(ids):
            word_ids, char_ids = ids
            return model.word_vectors(word_ids[None], char_ids[None])[0]

        return embed_words, tagger_body, model.config["word_dim"] + 2 * model.config["char_hidden"]

    batch_first = getattr(model, "batch_first", True)

    def core_body(e: torch.Tensor) -> torch.Tensor:
        out = model(e if batch_first else e.transpose(0, 1))
        out = out[0] if isinstance(out, (tuple, list)) else out
        return out if batch_first else out.transpose(0, 1)

    return None, core_body, getattr(model, "input_size", None)


def _as_tensor(value, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach()
    try:
        return torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} must be a tensor or an array, got {type(value).__name__}") from err


def _check_steps(T: int) -> None:
    if T < 1:
        raise ValueError("x must have at least one step")
    if T > MAX_STEPS:
        raise ValueError(f"x has {T:,} steps; connectivity maps are limited to {MAX_STEPS} steps (the map and the "
                         "work grow as T²)")


def _drop_batch(t: torch.Tensor, dims: int, name: str, shape: str) -> torch.Tensor:
    """``t`` without a leading batch axis of size 1; ``dims``: the number of dimensions of one sequence."""
    if t.dim() == dims + 1 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != dims:
        raise ValueError(f"{name} must be one sequence, {shape} (or with a leading 1), got shape {tuple(t.shape)}")
    return t


def _input_vectors(model, x, embed, input_size, dtype, device) -> torch.Tensor:
    """The input vectors ``(T, D)`` of the one sequence ``x``, detached, in ``dtype`` on ``device``."""
    if isinstance(model, POSTagger) and isinstance(x, (tuple, list)):
        if len(x) != 2:
            raise ValueError("a POSTagger's x must be the pair (word_ids, char_ids) or word vectors (T, D)")
        word_ids = _drop_batch(_as_tensor(x[0], "word_ids"), 1, "word_ids", "(T,)")
        char_ids = _drop_batch(_as_tensor(x[1], "char_ids"), 2, "char_ids", "(T, M)")
        if word_ids.is_floating_point() or char_ids.is_floating_point() or len(char_ids) != len(word_ids):
            raise ValueError(f"word_ids (T,) and char_ids (T, M) must be integer ids of the same T, got shapes "
                             f"{tuple(word_ids.shape)} and {tuple(char_ids.shape)}")
        _check_steps(len(word_ids))
        with torch.no_grad():
            return embed((word_ids.long().to(device), char_ids.long().to(device))).to(dtype).detach()
    x = _as_tensor(x, "x")
    if x.dtype == torch.bool or x.is_complex():
        raise ValueError(f"x must hold token ids or real numbers, got {x.dtype}")
    if not x.is_floating_point():
        if embed is None or isinstance(model, POSTagger):
            raise ValueError(f"this model takes float vectors (T, D), got integer x of shape {tuple(x.shape)}"
                             + (" (a POSTagger takes the pair (word_ids, char_ids))" if embed is not None else ""))
        ids = _drop_batch(x, 1, "x", "token ids (T,)")
        _check_steps(len(ids))
        with torch.no_grad():
            return embed(ids.long().to(device)).to(dtype).detach()
    vectors = _drop_batch(x, 2, "x", "float vectors (T, D)")
    _check_steps(len(vectors))
    if input_size is not None and vectors.shape[1] != input_size:
        raise ValueError(f"x has {vectors.shape[1]} features per step; the model's core reads {input_size}")
    return vectors.to(device=device, dtype=dtype)


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    was_training = model.training
    if was_training:
        model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train()


# ---------------------------------------------------------------- the batched Jacobian


def _state_width(model: nn.Module) -> int:
    """Features per step inside the model (its recurrent output), for the memory budget of a pass."""
    for name in ("core", "sentence"):  # a SequenceModel's core, a POSTagger's sentence RNN
        if isinstance(getattr(model, name, None), nn.Module):
            model = getattr(model, name)
            break
    for name in ("output_size", "hidden_size"):
        width = getattr(model, name, None)
        if isinstance(width, int) and width > 0:
            return width
    return 64


def _jacobian_norms(body: Callable, vectors: torch.Tensor, rows_per_pass: int | None, width: int) -> torch.Tensor:
    T, D = vectors.shape
    with torch.no_grad():
        probe = body(vectors[None])  # (1, T_out, O): the output's shape (and a check that the model runs)
    if probe.dim() != 3 or probe.shape[0] != 1:
        raise ValueError(f"the model's output must be (batch, steps, features), got shape {tuple(probe.shape)}")
    T_out, O = probe.shape[1], probe.shape[2]
    rows = T_out * O
    if rows > MAX_ROWS:
        raise ValueError(f"{T_out} output steps x {O} output features = {rows:,} Jacobian rows; the limit is "
                         f"{MAX_ROWS:,}")
    if rows_per_pass is None:
        rows_per_pass = max(1, PASS_ELEMENTS // (T * max(D, O, width)))
    elif isinstance(rows_per_pass, bool) or not isinstance(rows_per_pass, int) or rows_per_pass < 1:
        raise ValueError(f"rows_per_pass must be a positive integer, got {rows_per_pass!r}")
    squares = vectors.new_zeros(T_out, T)  # squares[t, s] = sum_o sum_d (∂y_{t,o} / ∂x_{s,d})^2
    for start in range(0, rows, rows_per_pass):
        n = min(rows_per_pass, rows - start)
        copies = vectors.expand(n, T, D).clone().requires_grad_(True)
        y = body(copies).reshape(n, rows)
        if not y.requires_grad:  # the output does not depend on the input at all
            continue
        seed = torch.zeros_like(y)
        seed[torch.arange(n), torch.arange(start, start + n)] = 1.0  # copy i back-propagates output row start + i
        (grad,) = torch.autograd.grad(y, copies, seed, allow_unused=True)
        if grad is not None:  # row r = t * O + o adds to output step t
            squares.index_add_(0, torch.arange(start, start + n, device=squares.device) // O, grad.pow(2).sum(-1))
    return squares.sqrt().detach().cpu()
