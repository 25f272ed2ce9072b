"""Training: a config dataclass, the one builder of task + model, and a Trainer with callbacks.

::

    config = TrainConfig(task="reversal", model={"core": "delayed",
                         "core_args": {"hidden_size": 64, "delay": 19, "cell": "lstm"}}, steps=2000)
    result = Trainer(config, on_progress=print).run()
    result.status, result.test_metrics["accuracy"]          # "finished", 0.99...
    save_checkpoint("runs/reversal", result.model, result.card())

Data are infinite: every step draws a fresh batch from ``task.sample(batch_size, seed_k)`` with
``seed_k`` derived from ``(config.seed, "train", step)``; the validation and test sets are fixed,
``task.eval_set("val" | "test", size, seed)`` with seeds derived from ``(config.seed, "val")`` and
``(config.seed, "test")``, so the three never share a seed (tasks on a fixed data set return their
held-out splits there) and a run is reproducible from its config alone (on a given device).

The device a run takes and the memory limits it is checked against before anything is allocated
are :mod:`drnn_demo.resources`'s; re-measuring a saved checkpoint on its run's test set is
:mod:`drnn_demo.retest`'s.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .loop import Progress, fit
from .models import SequenceModel
from .models.asrnn import orthogonal_param_groups
from .models.common import check_parameter_count
from .resources import MAX_EVAL_SIZE, check_eval_footprint, check_step_footprint, pick_device
from .tasks import Task, build_task

LR_SCHEDULES = ("constant", "cosine")
_PURPOSES = {"train": 0, "val": 1, "test": 2}


def derived_seed(seed: int, purpose: str, index: int = 0) -> int:
    """A 31-bit seed for ``purpose`` ("train" | "val" | "test") and ``index`` (the step), from ``seed``.

    Distinct purposes and indices give statistically independent streams (numpy's SeedSequence).
    """
    state = np.random.SeedSequence([int(seed), _PURPOSES[purpose], int(index)]).generate_state(1)
    return int(state[0] >> 1)


@dataclass
class TrainConfig:
    """Everything a run needs; JSON round-trips through :meth:`to_dict` / :meth:`from_dict`.

    Attributes:
        task: a name in :data:`drnn_demo.tasks.TASKS`.
        task_args: that task's constructor arguments (defaults for those left out).
        model: :class:`~drnn_demo.models.SequenceModel` keywords except ``input_size``,
            ``output_size`` and ``vocab_size``, which come from the task (for token inputs,
            ``input_size`` may be given: it is the embedding size).
        steps: training steps (one fresh batch each).
        batch_size: sequences per step.
        lr: Adam's learning rate. The skew parameter of an orthogonal ``W_hh`` (asRNN, expRNN)
            gets ``lr / 10``, as their papers do (:func:`drnn_demo.models.asrnn.orthogonal_param_groups`).
        clip: gradient norm clipping threshold (0 = no clipping).
        eval_every: steps between validation evaluations (and progress reports with metrics).
        patience: evaluations without validation improvement before early stopping (0 = off).
        val_size, test_size: sizes of the fixed validation and test sets.
        seed: seeds the model initialisation and all data.
        device: "auto" (CUDA when available), "cpu", "cuda", "cuda:N".
        log_every: steps between the cheap progress reports that carry only the training loss.
        lr_schedule: "constant", or "cosine": ``lr`` decays to 0 along a half cosine over ``steps``
            (small models reach a clean optimum much sooner with it).
    """

    task: str = "reversal"
    task_args: dict = field(default_factory=dict)
    model: dict = field(
        default_factory=lambda: {"core": "delayed", "core_args": {"hidden_size": 64, "delay": 0, "cell": "lstm"}}
    )
    steps: int = 2000
    batch_size: int = 64
    lr: float = 3e-3
    clip: float = 1.0
    eval_every: int = 100
    patience: int = 10
    val_size: int = 1000
    test_size: int = 2000
    seed: int = 0
    device: str = "auto"
    log_every: int = 10
    lr_schedule: str = "constant"

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "val_size", "test_size", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("val_size", "test_size"):
            if getattr(self, name) > MAX_EVAL_SIZE:
                raise ValueError(f"{name} must be at most {MAX_EVAL_SIZE:,} sequences (a memory limit), "
                                 f"got {getattr(self, name):,}")
        for name in ("patience", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        for name, positive in (("lr", True), ("clip", False)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                    or value < 0 or (positive and value == 0):
                raise ValueError(f"{name} must be a {'positive' if positive else 'non-negative'} number, "
                                 f"got {value!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {list(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if not isinstance(self.task_args, dict):
            raise ValueError(f"task_args must be a dict, got {self.task_args!r}")
        if not isinstance(self.model, dict) or "core" not in self.model:
            raise ValueError(f"model must be a dict with at least 'core' (and 'core_args'), got {self.model!r}")

    def to_dict(self) -> dict:
        """A JSON-able deep copy."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Inverse of :meth:`to_dict`; missing keys take their defaults, unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig key(s) {unknown}; allowed: {sorted(names)}")
        return cls(**copy.deepcopy(dict(data)))


def config_field_docs() -> dict[str, str]:
    """Each :class:`TrainConfig` field's description, read from its docstring (the CLI's ``train --help``).

    ``"val_size, test_size: sizes of ..."`` gives both fields that text; reST markup is dropped.
    """
    docs: dict[str, str] = {}
    names: list[str] = []
    body = TrainConfig.__doc__.split("Attributes:", 1)[1]
    for line in body.splitlines():
        head, sep, text = line.strip().partition(": ")
        if sep and line.startswith(" " * 8) and not line.startswith(" " * 12) and \
                all(n.strip().isidentifier() for n in head.split(",")):
            names = [n.strip() for n in head.split(",")]
            for n in names:
                docs[n] = text
        elif line.strip() and names:
            for n in names:
                docs[n] += " " + line.strip()
    clean = re.compile(r":\w+:`~?([^`]+)`|``([^`]+)``")
    return {n: clean.sub(lambda m: (m.group(1) or "").rsplit(".", 1)[-1] or m.group(2), d) for n, d in docs.items()}


@dataclass
class TrainResult:
    """What :meth:`Trainer.run` returns.

    Attributes:
        status: "finished" | "early_stopped" | "diverged" | "cancelled".
        model: the model with the best validation weights seen (on the training device), or the
            current weights if no evaluation happened yet.
        history: ``{"step", "loss", "elapsed"}`` every ``log_every`` steps, plus ``"metrics"``
            (validation) at every evaluation; the format :func:`drnn_demo.viz.training_curves` plots.
        val_metrics, test_metrics: metrics of ``model`` on the fixed validation and test sets.
        steps: training steps actually taken.
        message: one human sentence on how the run ended.
        best_step: the step of the kept weights (0 = the initial weights, None if never evaluated).
        elapsed: seconds.
        config: the run's config.
        task: the task object (its ``per_position``, ``best_possible`` ... for the pages).
    """

    status: str
    model: SequenceModel
    history: list[dict]
    val_metrics: dict
    test_metrics: dict
    steps: int
    message: str
    best_step: int | None = None
    elapsed: float = 0.0
    config: TrainConfig | None = None
    task: Task | None = None

    def card(self, **extra) -> dict:
        """The model card for :func:`drnn_demo.checkpoints.save_checkpoint` (``extra`` is merged in)."""
        config = self.config.to_dict() if self.config is not None else None
        card = {
            "task": config["task"] if config else None,
            "task_args": dict(self.task.args) if self.task is not None else (config or {}).get("task_args"),
            "train": config,
            "metrics": {"val": dict(self.val_metrics), "test": dict(self.test_metrics)},
            "seed": config["seed"] if config else None,
            "status": self.status,
            "steps": self.steps,
            "best_step": self.best_step,
            "elapsed": self.elapsed,
            "message": self.message,
            "history": self.history,
        }
        if hasattr(self.task, "card_entries"):  # a task on a stored data set: its vocabulary and labels
            card.update(self.task.card_entries())
        card.update(extra)
        return card


def build_for_config(config: TrainConfig | dict) -> tuple[Task, SequenceModel]:
    """The one place that builds a task and its model from a config (a :class:`TrainConfig` or its dict).

    ``output_size`` and ``vocab_size`` always come from the task, ``readout`` defaults to the
    task's, and ``input_size`` is the task's for float inputs (for token inputs ``model`` may set
    it: the embedding size). Parameters are initialised from ``torch``'s current RNG state; the
    :class:`Trainer` seeds it first.
    """
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    task = build_task(config.task, **config.task_args)
    kwargs = dict(config.model)
    for key, value in (("output_size", task.output_size), ("vocab_size", task.vocab_size)):
        if key in kwargs and kwargs[key] != value:
            raise ValueError(f"model {key}={kwargs[key]!r} contradicts task {task.name!r}, which needs {value!r}")
        kwargs[key] = value
    if task.vocab_size is None and kwargs.get("input_size", task.input_size) != task.input_size:
        raise ValueError(f"model input_size={kwargs['input_size']!r} contradicts task {task.name!r}, "
                         f"whose inputs have {task.input_size} features")
    kwargs.setdefault("input_size", task.input_size)
    kwargs.setdefault("readout", task.readout)
    kwargs.setdefault("core_args", {})
    try:
        with torch.device("meta"):  # sizes first, at no cost in memory
            check_parameter_count(SequenceModel(**kwargs))
        model = SequenceModel(**kwargs)
    except TypeError as err:
        raise ValueError(f"bad model config {config.model!r}: {err}") from err
    length = task.sample(1, 0)[0].shape[1]
    check_step_footprint(config.batch_size, length, model)
    for name in ("val_size", "test_size"):
        check_eval_footprint(name, getattr(config, name), length, task)
    return task, model


@torch.no_grad()
def predict(model: SequenceModel, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """``model(x)`` in eval mode, in chunks of ``batch_size``, on the model's device; returns it there."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        return torch.cat([model(x[i : i + batch_size].to(device)) for i in range(0, x.shape[0], batch_size)])
    finally:
        model.train(was_training)


def evaluate(model: SequenceModel, task: Task, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> dict:
    """``task.metrics`` of ``model`` on ``(x, y)``, predicted in chunks."""
    pred = predict(model, x, batch_size)
    return task.metrics(pred, y.to(pred.device))


def _finite_state(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


class Trainer:
    """Adam + gradient clipping on fresh seeded batches, early stopping on validation.

    Args:
        config: the run.
        on_progress: called with a :class:`Progress` every ``log_every`` steps (training loss only)
            and at every evaluation (with validation metrics). Keep it cheap; exceptions propagate.
        should_stop: polled before every step; returning True ends the run as "cancelled" (the
            best model so far is kept and scored).

    :meth:`run` never raises on a diverging run: a non-finite training loss, gradient or
    validation metric ends it as "diverged" and keeps the best weights seen.
    """

    def __init__(
        self, config: TrainConfig, on_progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        if isinstance(config, dict):
            config = TrainConfig.from_dict(config)
        self.config = config
        self.on_progress = on_progress
        self.should_stop = should_stop

    def run(self) -> TrainResult:
        cfg = self.config
        start = time.perf_counter()
        device = pick_device(cfg.device)
        torch.manual_seed(cfg.seed)
        task, model = build_for_config(cfg)
        model.to(device)
        x_val, y_val = task.eval_set("val", cfg.val_size, derived_seed(cfg.seed, "val"))
        x_test, y_test = task.eval_set("test", cfg.test_size, derived_seed(cfg.seed, "test"))
        optimizer = torch.optim.Adam(orthogonal_param_groups(model, cfg.lr), lr=cfg.lr)
        scheduler = None
        if cfg.lr_schedule == "cosine":
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, cfg.steps) / cfg.steps)))
        sign = 1.0 if task.higher_is_better else -1.0

        def fresh_batches():
            for step in range(cfg.steps):
                x, y = task.sample(cfg.batch_size, derived_seed(cfg.seed, "train", step))
                yield x.to(device), y.to(device)

        done = fit(model, optimizer, fresh_batches(), lambda m, batch: task.loss(m(batch[0]), batch[1]), cfg.steps,
                   evaluate=lambda m: evaluate(m, task, x_val, y_val), eval_every=cfg.eval_every,
                   score=lambda metrics: sign * metrics[task.metric], patience=cfg.patience, clip=cfg.clip,
                   scheduler=scheduler, log_every=cfg.log_every, on_progress=self.on_progress,
                   should_stop=self.should_stop, start=start)
        status, message, best_step = done.status, done.message, done.best_step
        if best_step is None and not _finite_state(model):  # diverged before the first evaluation: back to the start
            torch.manual_seed(cfg.seed)
            model = build_for_config(cfg)[1].to(device)
            best_step = 0
        val_metrics = evaluate(model, task, x_val, y_val)
        test_metrics = evaluate(model, task, x_test, y_test)
        elapsed = time.perf_counter() - start
        kept = f"best validation {task.metric} {val_metrics[task.metric]:.4g} (step {best_step})" \
            if best_step is not None else f"validation {task.metric} {val_metrics[task.metric]:.4g} (not yet evaluated)"
        if status == "finished":
            message = f"finished {done.steps} steps"
        if status == "diverged":
            message += "; kept the best model so far"
        message = f"{message}; {kept}; test {task.metric} {test_metrics[task.metric]:.4g}; {elapsed:.1f} s"
        return TrainResult(status=status, model=model, history=done.history, val_metrics=val_metrics,
                           test_metrics=test_metrics, steps=done.steps, message=message, best_step=best_step,
                           elapsed=elapsed, config=cfg, task=task)
