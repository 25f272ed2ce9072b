"""The one training loop: :func:`fit` a model on a stream of batches, with hooks for what differs.

Every trainer of the project is :func:`fit` plus a few hook definitions (:mod:`drnn_demo.recipes`):

===============  ======================================  =====================================
hook             generated tasks (:class:`Trainer`)      fixed data sets (sentiment, POS)
===============  ======================================  =====================================
``batches``      a fresh seeded batch per step           each epoch's shuffled batches, chained
``loss``         ``task.loss(model(x), y)``              cross-entropy over labels / tokens
``evaluate``     validation metrics every ``eval_every``  validation metrics once per epoch
``score``        the task's metric (sign for "lower")    accuracy (then -cross-entropy)
===============  ======================================  =====================================

The memory tasks pass ``score=None`` (keep the final weights) and record their snapshots in
``evaluate``. One step is::

    loss = loss_fn(model, batch)            # non-finite -> "diverged" (before backward)
    loss.backward(); g = clip_grad_norm_(params, clip or inf)   # non-finite g -> "diverged"
    optimizer.step(); scheduler.step()

Every ``log_every`` steps and at every evaluation, ``on_progress`` receives a :class:`Progress`
(the one progress type every run reports); ``should_stop()`` is polled before every step
("cancelled"). With ``score``, the weights of the best validation score are restored at the end
and ``patience`` evaluations without improvement stop the run ("early_stopped").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

STATUSES = ("finished", "early_stopped", "diverged", "cancelled")
_END = object()  # the end of the batches


@dataclass
class Progress:
    """One progress report. ``metrics`` holds the validation metrics at an evaluation, else is empty.

    ``loss`` is the mean training loss since the previous report; ``elapsed`` is in seconds.
    """

    step: int
    total_steps: int
    loss: float
    metrics: dict[str, float]
    elapsed: float


@dataclass
class Fit:
    """What :func:`fit` returns (the model itself is trained in place).

    Attributes:
        status: one of :data:`STATUSES`; message: why the run ended, for a person ("" if it finished).
        steps: optimizer steps taken.
        history: ``{"step", "loss", "elapsed"}`` every ``log_every`` steps, plus ``"metrics"`` at every
            evaluation (the format :func:`drnn_demo.viz.training_curves` plots).
        best_step: the step whose weights were restored (None: no evaluation, or ``score=None``).
        best_score: their score.
    """

    status: str
    message: str
    steps: int
    history: list[dict] = field(default_factory=list)
    best_step: int | None = None
    best_score: Any = None


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    total_steps: int,
    *,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    eval_every: int | None = None,
    score: Callable[[dict[str, float]], Any] | None = None,
    patience: int = 0,
    clip: float = 0.0,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    log_every: int = 10,
    on_eval: Callable[[int, dict, float], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    start: float | None = None,
) -> Fit:
    """Train ``model`` for up to ``total_steps`` batches of ``batches``; see the module docstring.

    Args:
        batches: any iterable; each item goes to ``loss_fn(model, item)`` (it ends the run early if
            it runs out).
        evaluate: validation metrics of the model (called in train mode; it switches to eval and
            back itself), after every ``eval_every`` steps and after the last one.
        score: turns those metrics into a value to maximise (any comparable: a float, a tuple);
            it may be NaN or contain one, which ends the run as "diverged". None: no selection.
        on_eval: ``on_eval(step, metrics, train_loss)`` after each evaluation, ``train_loss`` being
            the mean training loss since the previous evaluation.
        clip: gradient-norm clipping threshold (0 = none; the norm is still checked for finiteness).
        start: the ``time.perf_counter()`` that ``elapsed`` counts from (default: now; a recipe passes
            its own start so that setting up the data counts too).

    If ``batches`` runs out before ``total_steps``, the run ends there, evaluated as after a last step.
    """
    for name, value in (("total_steps", total_steps), ("log_every", log_every), ("eval_every", eval_every or 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    start = time.perf_counter() if start is None else start
    eval_every = eval_every or total_steps
    out = Fit(status="finished", message="", steps=0)
    best_state = None
    state = {"since_best": 0, "running": 0.0, "running_n": 0, "since_eval": 0.0, "since_eval_n": 0}
    params = [p for p in model.parameters() if p.requires_grad]

    def report(step: int, is_eval: bool) -> bool:
        """Log (and evaluate, select, early-stop); True when the run must stop."""
        nonlocal best_state
        entry = {"step": step, "loss": state["running"] / max(state["running_n"], 1),
                 "elapsed": time.perf_counter() - start}
        state.update(running=0.0, running_n=0)
        if is_eval:
            entry["metrics"] = evaluate(model)
        out.history.append(entry)
        if on_progress is not None:
            on_progress(Progress(step, total_steps, entry["loss"], dict(entry.get("metrics", {})), entry["elapsed"]))
        if not is_eval:
            return False
        if on_eval is not None:
            on_eval(step, entry["metrics"], state["since_eval"] / max(state["since_eval_n"], 1))
        state.update(since_eval=0.0, since_eval_n=0)
        if score is None:
            return False
        value = score(entry["metrics"])
        if not all(math.isfinite(v) for v in (value if isinstance(value, tuple) else (value,))):
            out.status = "diverged"
            out.message = f"diverged at step {step}: a validation metric is not finite ({entry['metrics']})"
            return True
        if out.best_score is None or value > out.best_score:
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            out.best_score, out.best_step, state["since_best"] = value, step, 0
            return False
        state["since_best"] += 1
        if patience and state["since_best"] >= patience:
            out.status = "early_stopped"
            out.message = f"early stop at step {step}: no validation improvement in {patience} evaluations"
            return True
        return False

    step = 0
    model.train()
    iterator = iter(batches)
    while step < total_steps:
        if should_stop is not None and should_stop():
            out.status, out.message = "cancelled", f"cancelled at step {step}"
            break
        batch = next(iterator, _END)
        if batch is _END:  # the data ran out early: end as after a last step
            if evaluate is not None and state["since_eval_n"]:
                report(step, True)
            elif state["running_n"]:
                report(step, False)
            break
        loss = loss_fn(model, batch)
        value = float(loss.detach())
        if not math.isfinite(value):
            out.status, out.message = "diverged", f"diverged at step {step + 1}: the training loss is {value}"
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None],
                                                         clip if clip > 0 else math.inf))
        if not math.isfinite(grad_norm):
            out.status, out.message = "diverged", f"diverged at step {step + 1}: the gradient norm is {grad_norm}"
            break
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        step += 1
        state["running"] += value
        state["running_n"] += 1
        state["since_eval"] += value
        state["since_eval_n"] += 1
        is_eval = evaluate is not None and (step % eval_every == 0 or step == total_steps)
        if (step % log_every == 0 or is_eval) and report(step, is_eval):
            break
    out.steps = step
    if best_state is not None:
        model.load_state_dict(best_state)
    return out
