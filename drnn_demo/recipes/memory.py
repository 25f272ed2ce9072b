"""Memory & stability's training: :func:`train_memory_model` (hooks for :func:`drnn_demo.loop.fit`),
the page's pretrained models and the ``"memory"`` run kind.

What is measured (saturation, orthogonality, gradient reach, the baseline) lives in
:mod:`drnn_demo.memory_analysis`; this module trains the cells and records it as they learn.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from ..checkpoints import PRETRAINED_DIR, save_checkpoint
from ..loop import Progress, fit
from ..memory_analysis import (
    MEMORY_MODELS,
    MEMORY_SPECS,
    MemorySpec,
    baseline_loss,
    build_memory_model,
    make_memory_optimizer,
    memory_task,
    orthogonality_error,
    saturation_levels,
    state_gradient_norms,
)
from ..models import SequenceModel
from ..models.common import check_choice, check_positive_int
from ..tasks import Task
from ..training import derived_seed


@dataclass
class MemoryRun:
    """One cell trained on a memory task.

    Attributes:
        name: the cell (a key of :data:`MEMORY_SPECS`).
        model: the trained :class:`SequenceModel` (final weights).
        task: the task's registry name (a key of :data:`MEMORY_TASKS`).
        spec, task_args, hidden_size, seed, batch_size: how it was built and trained.
        baseline: the task's baseline cross-entropy.
        history: ``{"step": [...], "loss": [...]}``, the training cross-entropy of every step.
        snapshots: every ``snapshot_every`` steps (and at step 0 and the end): ``{"step",
            "val_loss", "val_accuracy", "saturation" (list or None), "orthogonality_error" (float
            or None)}``. Copy memory's accuracy counts every step, blanks included.
        gradient_norms: ``{"initial": [...], "final": [...]}``, :func:`state_gradient_norms`
            on a fixed batch before and after training.
        status: "finished" | "cancelled" | "diverged"; elapsed: seconds.
    """

    name: str
    model: SequenceModel
    task: str
    spec: MemorySpec
    task_args: dict
    hidden_size: int
    seed: int
    batch_size: int
    baseline: float
    history: dict = field(default_factory=lambda: {"step": [], "loss": []})
    snapshots: list[dict] = field(default_factory=list)
    gradient_norms: dict = field(default_factory=dict)
    status: str = "finished"
    elapsed: float = 0.0

    @property
    def final_loss(self) -> float:
        """The validation cross-entropy at the last snapshot."""
        return self.snapshots[-1]["val_loss"]

    @property
    def final_accuracy(self) -> float:
        """The validation accuracy at the last snapshot."""
        return self.snapshots[-1]["val_accuracy"]

    @property
    def loss_ratio(self) -> float:
        """``final_loss / baseline``: below 1 beats "blank, then guess"; near 0 solves the task."""
        return self.final_loss / self.baseline

    def card(self) -> dict:
        """JSON-able summary for :func:`drnn_demo.checkpoints.save_checkpoint`."""
        return {
            "task": self.task, "task_args": dict(self.task_args), "seed": self.seed,
            "memory": {
                "cell": self.name, "spec": asdict(self.spec), "hidden_size": self.hidden_size,
                "batch_size": self.batch_size, "baseline": self.baseline, "final_loss": self.final_loss,
                "final_accuracy": self.final_accuracy,
                "loss_ratio": self.loss_ratio, "history": self.history, "snapshots": self.snapshots,
                "gradient_norms": self.gradient_norms, "status": self.status, "elapsed": self.elapsed,
            },
            "metrics": {"val": {"cross_entropy": self.final_loss, "accuracy": self.final_accuracy,
                                "loss_ratio": self.loss_ratio}},
        }


def _validate(model, task, x_val, y_val) -> dict:
    """Validation cross-entropy and accuracy (eval mode, then back)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        metrics = task.metrics(model(x_val), y_val)
    model.train(was_training)
    return {"val_loss": metrics["cross_entropy"], "val_accuracy": metrics["accuracy"]}


def _snapshot(model, step: int, metrics: dict) -> dict:
    """One entry of :attr:`MemoryRun.snapshots`: the step, its validation metrics, saturation, orthogonality."""
    levels = saturation_levels(model)
    return {"step": step, **metrics, "saturation": None if levels is None else levels.tolist(),
            "orthogonality_error": orthogonality_error(model)}


def train_memory_model(
    name: str, steps: int = 1000, task: str = "copy_memory", task_args: dict | None = None,
    hidden_size: int = 128, batch_size: int = 128,
    seed: int = 0, snapshot_every: int = 50, val_size: int = 500, spec: MemorySpec | None = None,
    on_progress: Callable[[Progress], None] | None = None, should_stop: Callable[[], bool] | None = None,
    device: str | torch.device = "cpu", **spec_overrides,
) -> MemoryRun:
    """Train cell ``name`` on ``task`` (a key of :data:`MEMORY_TASKS`, with ``task_args``) for
    ``steps`` fresh batches; record what the page plots.

    ``spec_overrides`` replace fields of the cell's :class:`MemorySpec` (``lr=3e-3``, ...).
    The loop is :func:`drnn_demo.loop.fit` with a fresh seeded batch per step, the cell's
    optimiser, no model selection (the final weights are kept) and a snapshot every
    ``snapshot_every`` steps as its evaluation. ``on_progress`` receives a
    :class:`~drnn_demo.loop.Progress` after every step; ``should_stop()`` is polled before every
    step (True ends the run as "cancelled"). A non-finite loss or gradient ends it as "diverged". Data come from
    seeds derived from ``seed`` (:func:`drnn_demo.training.derived_seed`), so a run is
    reproducible from its arguments.
    """
    check_choice("name", name, MEMORY_MODELS)
    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size)
    check_positive_int("snapshot_every", snapshot_every)
    start = time.perf_counter()
    task_name, task = task, memory_task(task, **(task_args or {}))
    spec = replace(spec or MEMORY_SPECS[name], **spec_overrides)
    torch.manual_seed(seed)
    model = build_memory_model(name, task, hidden_size, spec).to(device)
    optimizer = make_memory_optimizer(model, spec)
    x_val, y_val = (t.to(device) for t in task.eval_set("val", val_size, derived_seed(seed, "val")))
    x_probe, y_probe = x_val[:64], y_val[:64]
    run = MemoryRun(name, model, task_name, spec, dict(task.args), hidden_size, seed, batch_size, baseline_loss(task))
    run.gradient_norms["initial"] = state_gradient_norms(model, task, x_probe, y_probe).tolist()
    run.snapshots.append(_snapshot(model, 0, _validate(model, task, x_val, y_val)))

    def fresh_batches():
        for step in range(steps):
            yield tuple(t.to(device) for t in task.sample(batch_size, derived_seed(seed, "train", step)))

    def record(progress: Progress) -> None:
        run.history["step"].append(progress.step)
        run.history["loss"].append(progress.loss)
        if on_progress is not None:  # the snapshots' metrics are the card's, not the run's progress
            on_progress(replace(progress, metrics={}))

    done = fit(model, optimizer, fresh_batches(), lambda m, batch: task.loss(m(batch[0]), batch[1]), steps,
               evaluate=lambda m: _validate(m, task, x_val, y_val), eval_every=snapshot_every, clip=spec.clip,
               log_every=1, on_eval=lambda step, metrics, _: run.snapshots.append(_snapshot(model, step, metrics)),
               on_progress=record, should_stop=should_stop, start=start)
    run.status = done.status
    if run.snapshots[-1]["step"] != done.steps:  # cancelled or diverged between snapshots
        run.snapshots.append(_snapshot(model, done.steps, _validate(model, task, x_val, y_val)))
    run.gradient_norms["final"] = state_gradient_norms(model, task, x_probe, y_probe).tolist()
    run.elapsed = time.perf_counter() - start
    return run


# --------------------------------------------------------------------------- pretrained models

PRETRAIN_CELLS = ("asrnn", "lstm", "exprnn", "sru", "lrn")
PRETRAIN_STEPS = 800


def pretrained_name(cell: str, task: Task | None = None) -> str:
    """The checkpoint stem of a pretrained memory model: ``copy_L50_asrnn`` (copy memory, gap 50),
    ``digits_asrnn`` (sequential digits), ``pdigits_asrnn`` (permuted digits). Default task: copy, L = 50."""
    task = task or memory_task()
    if task.name == "copy_memory":
        return f"copy_L{task.gap}_{cell}"
    return f"{'p' if task.permuted else ''}digits_{cell}"


def pretrain_memory_models(
    out: str | Path | None = None, cells: tuple[str, ...] = PRETRAIN_CELLS, steps: int = PRETRAIN_STEPS,
    force: bool = False, log: Callable[[str], None] = print, task: str = "copy_memory", task_args: dict | None = None,
    **train_kwargs,
) -> list[Path]:
    """Train the page's models on ``task`` (default copy memory, L = 50) and save them to ``out``
    (default ``pretrained/``).

    Skips cells whose checkpoint exists unless ``force``. Each checkpoint is
    ``<out>/<pretrained_name>.{safetensors,json}`` (< 1 MB); the card's ``memory`` entry holds the
    curve, the snapshots, the gradient norms and ``loss_ratio`` (final loss / baseline). Returns
    the paths written. ``python -m drnn_demo pretrain`` calls this.
    """
    out = Path(out) if out is not None else PRETRAINED_DIR
    built = memory_task(task, **(task_args or {}))
    written = []
    for cell in cells:
        name = pretrained_name(cell, built)
        path = out / f"{name}.safetensors"
        if path.exists() and not force:
            log(f"{path.name}: exists, skipped")
            continue
        log(f"{path.name}: training {cell} on {built!r} for {steps} steps")
        run = train_memory_model(cell, steps=steps, task=task, task_args=task_args, **train_kwargs)
        written.append(save_checkpoint(path, run.model, run.card() | {"name": name}))
        log(f"    loss {run.final_loss:.4f} = {run.loss_ratio:.3f} x baseline, accuracy {run.final_accuracy:.3f}, "
            f"{run.elapsed:.0f} s")
    return written


# --------------------------------------------------------------------------- background runs


def run_memory_job(config: dict, on_progress: Callable, should_stop: Callable[[], bool], run_dir: Path) -> dict:
    """The ``"memory"`` run kind of :mod:`drnn_demo.jobs`: :func:`train_memory_model` in a worker.

    ``config``: ``cell`` (a key of :data:`MEMORY_SPECS`), ``task`` (a key of :data:`MEMORY_TASKS`,
    default copy memory) and ``task_args``, ``steps``, ``hidden_size``, ``batch_size``, ``seed``,
    ``snapshot_every``, ``device`` ("auto" = CUDA when present), optional ``core_args``. The model and its
    card (:meth:`MemoryRun.card` plus ``run_id``) are saved to ``run_dir/model.safetensors`` whatever
    the status, so the page can plot a cancelled run too.
    """
    config = dict(config)
    cell = config.pop("cell")
    steps = int(config.pop("steps", PRETRAIN_STEPS))
    task_name = config.pop("task", "copy_memory")
    task_args = dict(config.pop("task_args", {}))
    device = config.pop("device", "auto")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    run = train_memory_model(
        cell, steps=steps, task=task_name, task_args=task_args, device=device,
        on_progress=on_progress,
        should_stop=should_stop, **config)
    name = pretrained_name(cell, memory_task(task_name, **task_args))
    card = run.card() | {"name": f"{name}_{run_dir.name}", "run_id": run_dir.name}
    checkpoint = save_checkpoint(Path(run_dir) / "model.safetensors", run.model, card)
    message = (f"{cell}: validation cross-entropy {run.final_loss:.4f} = {run.loss_ratio:.3f} × baseline, "
               f"accuracy {run.final_accuracy:.3f}, after {run.history['step'][-1] if run.history['step'] else 0} "
               "steps")
    return {"status": run.status, "message": message, "checkpoint": checkpoint,
            "metrics": {"val_cross_entropy": run.final_loss, "val_accuracy": run.final_accuracy,
                        "loss_ratio": run.loss_ratio}}
