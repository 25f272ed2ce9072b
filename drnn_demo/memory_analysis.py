"""Memory & stability: the cells, their memory tasks, and what the page measures on them.

The tasks (:data:`MEMORY_TASKS`): copy memory (``K`` symbols, a gap of ``L`` blanks, recall) and
sequential / permuted digits (an 8 x 8 handwritten digit read one pixel per step, classified at
the end: sMNIST / pMNIST in miniature).

Everything the "Memory & stability" page shows comes from here, as plain numbers:

- the task's baseline cross-entropy (:func:`baseline_loss`): ``K ln 8 / (L + 2K)`` of "blank,
  then guess" for copy memory, ``ln 10`` of a uniform guess for digits;
- the gradient norm ``||dL/ds_t||`` of the recurrent state over time (:func:`state_gradient_norms`),
  which shows whether the loss at the recall (or read-out) steps reaches the first input steps;
- asRNN's saturation levels ``|s| + eps`` (:func:`saturation_levels`);
- the orthogonality error ``||W_hh^T W_hh - I||_F`` (:func:`orthogonality_error`).

Each cell trains with the optimiser its paper uses (:data:`MEMORY_SPECS`): RMSprop with a
separate, smaller learning rate on the orthogonal parameters for asRNN and expRNN (as the asRNN
reference code), RMSprop for LSTM, SRU and LRN. The training itself (the curves, the snapshots of
these measures as the cells learn, the pretrained models and the "memory" run kind) is
:mod:`drnn_demo.recipes.memory`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .models import ASRNN, SequenceModel
from .models.asrnn import orthogonal_param_groups
from .models.common import check_choice, check_positive_int
from .tasks import Task, build_task

COPY_TASK = {"copy_length": 10, "gap": 50}
# The tasks of the page and their default arguments: {registry name: task_args}.
MEMORY_TASKS: dict[str, dict] = {"copy_memory": COPY_TASK, "digits": {"permuted": False}}


@dataclass(frozen=True)
class MemorySpec:
    """How to build and train one cell on copy memory.

    ``core`` / ``core_args``: the registry entry (``hidden_size`` is added by the builder).
    ``optimizer``: "rmsprop" (smoothing ``alpha``) or "adam"; ``lr``; ``orthogonal_lr`` for the
    skew parameter of an orthogonal ``W_hh`` (None: ``lr / 10``); ``clip``: gradient-norm
    clipping (0 = off); ``forget_bias``: initial LSTM forget-gate bias (split over its two biases).
    """

    core: str
    core_args: dict = field(default_factory=dict)
    optimizer: str = "rmsprop"
    lr: float = 1e-3
    orthogonal_lr: float | None = None
    alpha: float = 0.9
    clip: float = 1.0
    forget_bias: float | None = None


# The cells of the page. The asRNN/expRNN settings follow the reference code's copy task
# (Henaff initialisation, RMSprop alpha=0.9, orthogonal lr = lr / 10, clip 10 for asRNN), with one
# change: the reference starts s at exactly 0 (a = b = 0, eps = 1e-5), where d|s|/ds = 0, so s never
# moves and asRNN stays the linear orthogonal RNN. Here s ~ U(0, 0.1), eps = 1e-3: still nearly
# linear at the start, but the saturation levels can (and do) move, which the page shows.
# LSTM has forget bias 1 and clip 1. The learning rates are larger than the reference's because
# the budget here is minutes of CPU.
MEMORY_SPECS: dict[str, MemorySpec] = {
    "lstm": MemorySpec("stacked", {"cell": "lstm"}, lr=1e-3, clip=1.0, forget_bias=1.0),
    "exprnn": MemorySpec("exprnn", {"init": "henaff"}, lr=1e-3, orthogonal_lr=1e-4, clip=0.0),
    "asrnn": MemorySpec("asrnn", {"init": "henaff", "a": 0.0, "b": 0.1, "eps": 1e-3}, lr=1e-3,
                        orthogonal_lr=1e-4, clip=10.0),
    "sru": MemorySpec("sru", {"num_layers": 2}, lr=1e-3, clip=1.0),
    "lrn": MemorySpec("lrn", {}, lr=1e-3, clip=1.0),
}
MEMORY_MODELS = tuple(MEMORY_SPECS)


def memory_task(task: str = "copy_memory", **task_args) -> Task:
    """A task of the page: ``memory_task(gap=100)`` (copy memory, ``K`` symbols, gap ``L``) or
    ``memory_task("digits", permuted=True)``; arguments left out take :data:`MEMORY_TASKS`' defaults."""
    check_choice("task", task, tuple(MEMORY_TASKS))
    return build_task(task, **{**MEMORY_TASKS[task], **task_args})


def baseline_loss(task: Task) -> float:
    """The cross-entropy a model that has learnt nothing useful reaches: "blank, then a uniform
    guess", ``K ln 8 / (L + 2K)``, for copy memory; a uniform guess, ``ln 10``, for digits."""
    return float(task.baseline_loss)


def task_phases(task: Task) -> list[dict]:
    """The stretches of time steps the gradient plot shades: ``[{"start", "stop", "label", "role"}]``.

    ``role`` is "input" (what must be remembered), "wait" (nothing to do) or "loss" (where the loss
    sits). Copy memory: symbols, gap, recall. Digits: the 64 pixels, then the read-out at the last step.
    """
    if task.name == "copy_memory":
        K, T = task.copy_length, task.length
        return [{"start": 0, "stop": K, "label": "symbols", "role": "input"},
                {"start": K, "stop": T - K, "label": f"gap of {task.gap} blanks", "role": "wait"},
                {"start": T - K, "stop": T, "label": "recall", "role": "loss"}]
    order = "in a fixed random order" if task.permuted else "row by row"
    return [{"start": 0, "stop": task.length - 1, "label": f"pixels, {order}", "role": "input"},
            {"start": task.length - 1, "stop": task.length, "label": "class", "role": "loss"}]


def gradient_reach(norms: list[float] | None, task: Task) -> float | None:
    """``||dL/ds_0|| / ||dL/ds_m||``: how much of the gradient at the step ``m`` before the loss
    (copy memory: the marker; digits: the last pixel, which is read out) survives back to step 0.
    None when the norms are missing or zero there."""
    m = task.length - task.copy_length - 1 if task.name == "copy_memory" else task.length - 1
    if not norms or len(norms) <= m or not norms[m]:
        return None
    return norms[0] / norms[m]


def build_memory_model(name: str, task: Task, hidden_size: int = 128, spec: MemorySpec | None = None) -> SequenceModel:
    """The :class:`SequenceModel` of cell ``name`` (a key of :data:`MEMORY_SPECS`) for ``task``.

    Parameters come from torch's current RNG state: seed it first.
    """
    check_choice("name", name, MEMORY_MODELS)
    check_positive_int("hidden_size", hidden_size)
    spec = spec or MEMORY_SPECS[name]
    core_args = dict(spec.core_args)
    if spec.core == "stacked":
        core_args["hidden_sizes"] = [hidden_size]
    else:
        core_args["hidden_size"] = hidden_size
    model = SequenceModel(spec.core, core_args, input_size=task.input_size, output_size=task.output_size,
                          vocab_size=task.vocab_size, readout=task.readout)
    if spec.forget_bias is not None:
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, nn.LSTM):
                    for name_, p in module.named_parameters():
                        if name_.startswith("bias"):
                            p[module.hidden_size : 2 * module.hidden_size] = spec.forget_bias / 2
    return model


def make_memory_optimizer(model: nn.Module, spec: MemorySpec) -> torch.optim.Optimizer:
    """The spec's optimiser; orthogonal ``W_hh`` parameters get ``spec.orthogonal_lr`` (see
    :func:`drnn_demo.models.asrnn.orthogonal_param_groups`)."""
    check_choice("optimizer", spec.optimizer, ("rmsprop", "adam"))
    groups = orthogonal_param_groups(model, spec.lr, spec.orthogonal_lr)
    if spec.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=spec.lr, alpha=spec.alpha)
    return torch.optim.Adam(groups, lr=spec.lr)


# --------------------------------------------------------------------------- measurements


def recurrent_core(model: nn.Module) -> nn.Module:
    """The recurrent module inside ``model`` (its ``core`` for a :class:`SequenceModel`)."""
    return getattr(model, "core", model)


def saturation_levels(model: nn.Module) -> np.ndarray | None:
    """asRNN's saturation levels ``|s| + eps``, shape ``(H,)``; None for other cells.

    Small levels: the unit is linear (an orthogonal RNN); large: it saturates like tanh.
    """
    core = recurrent_core(model)
    if not isinstance(core, ASRNN) or core.nonlinearity != "asrnn":
        return None
    return core.saturation.detach().cpu().double().numpy()


def orthogonality_error(model: nn.Module) -> float | None:
    """``||W_hh^T W_hh - I||_F`` (in float64) of an asRNN / expRNN; None for other cells."""
    core = recurrent_core(model)
    if not isinstance(core, ASRNN):
        return None
    w = core.weight_hh.detach().double()
    return float(torch.linalg.matrix_norm(w.T @ w - torch.eye(w.shape[0], dtype=w.dtype, device=w.device)))


def _flatten(state) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    return [t for item in state for t in _flatten(item)]


def _rebuild(state, leaves: list[torch.Tensor]):
    """``state`` with its tensors replaced, in :func:`_flatten` order, by ``leaves`` (consumed)."""
    if isinstance(state, torch.Tensor):
        return leaves.pop(0)
    items = [_rebuild(item, leaves) for item in state]
    return tuple(items) if isinstance(state, tuple) else items


def state_gradient_norms(model: SequenceModel, task: Task, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    r"""``||dL/ds_t||`` for ``t = 0 .. T-1``: how strongly the loss depends on the recurrent state.

    ``s_t`` is the state the cell carries from step ``t`` to ``t + 1``: ``h_t`` for asRNN,
    expRNN, LRN and a vanilla RNN, ``h_t`` (not ``c_t``) for an LSTM, the cell state ``c_t`` for
    SRU (whose ``h_t`` is not recurrent); for several layers, the first layer's. The derivative is
    the total one: through every later step and, when the output at ``t`` is that state, through
    the readout at ``t`` too. ``L`` is ``task.loss`` (the batch mean), the norm is taken over the
    batch and the units. Computed by running the core one step at a time with a zero probe added
    to the state, so it works for any registered core that takes and returns its state like
    ``torch.nn.RNN`` (delayed cores only with delay 0).

    Shapes: ``x`` ``(B, T, ...)`` and ``y`` as ``task.sample`` returns them; result ``(T,)``.
    """
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters())
        x, y = x.to(param.device), y.to(param.device)
        if x.is_floating_point():
            x = x.to(param.dtype)
        inputs = model.embedding(x) if model.embedding is not None else x
        core = recurrent_core(model)
        state, outputs, probes = None, [], []
        frozen = core.frozen_weights() if isinstance(core, ASRNN) else contextlib.nullcontext()
        with torch.enable_grad(), frozen:
            for t in range(inputs.shape[1]):
                out, state = core(inputs[:, t : t + 1], state)
                leaves = _flatten(state)
                probe = torch.zeros_like(leaves[0], requires_grad=True)
                tied = leaves[0].shape[0] == 1 and leaves[0].shape[1:] == out[:, -1].shape \
                    and torch.equal(leaves[0][0], out[:, -1])
                if tied:  # the output is the state: make them one tensor, so the readout counts too
                    leaves[0] = out.transpose(0, 1) + probe
                    out = leaves[0].transpose(0, 1)
                else:
                    leaves[0] = leaves[0] + probe
                state = _rebuild(state, leaves)
                outputs.append(out)
                probes.append(probe)
            hidden = torch.cat(outputs, dim=1)
            pred = model.head(hidden[:, -1] if model.readout == "last" else hidden)
            grads = torch.autograd.grad(task.loss(pred, y), probes, allow_unused=True)
        return np.array([0.0 if g is None else float(g.norm()) for g in grads])
    finally:
        model.train(was_training)
