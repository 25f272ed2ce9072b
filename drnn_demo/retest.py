"""Re-testing a checkpoint on the test set its run used, and the ``"retest"`` run kind that does it in a worker.

- :func:`retest_plan` (cheap, run by the server before it queues anything): the card's ``train`` entry
  as a :class:`~drnn_demo.training.TrainConfig` and its task, checked as a run's
  (:func:`drnn_demo.resources.check_eval_footprint`).
- :func:`retest`: the model's ``task.metrics`` on ``task.eval_set("test", test_size,
  derived_seed(seed, "test"))``, the very set the run scored, predicted in chunks.
- :func:`run_retest_job`: the ``"retest"`` run kind of :mod:`drnn_demo.jobs`.

The Training runs page checks an uploaded zip (:func:`drnn_demo.checkpoints.load_checkpoint_zip`)
and its test plan (:func:`retest_plan`), then submits this kind with the two
files written into the new run's directory (``model.safetensors`` + ``model.json``)::

    jobs.submit("retest", {}, label="re-test upload.zip", files={"model.safetensors": weights,
                                                                "model.json": card_bytes})

The worker loads the checkpoint again with every check, re-tests it on the test set its run
used, and reports ``test_<metric>`` (measured now) beside ``recorded_test_<metric>`` (the card's).
The run's checkpoint is the uploaded model, so it can be downloaded and opened like any run's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from .checkpoints import load_checkpoint
from .models import SequenceModel
from .resources import check_eval_footprint
from .tasks import Task, build_task
from .training import TrainConfig, derived_seed, predict

WEIGHTS_FILE, CARD_FILE = "model.safetensors", "model.json"


def retest_plan(card: dict) -> tuple[TrainConfig, Task]:
    """The training config and task behind a :class:`~drnn_demo.training.Trainer` checkpoint's card, checked
    as a run's.

    Cheap (no model, no data set beyond one example): the card's ``train`` entry must be a valid
    :class:`~drnn_demo.training.TrainConfig`, its task must build within the task's limits, the card's model must
    fit the task's inputs and outputs, and the test set must fit :func:`check_eval_footprint`.
    Raises ``ValueError`` saying which; the server calls this before it queues a re-test.
    """
    train = card.get("train")
    try:
        if not isinstance(train, dict) or "task" not in train:
            raise ValueError("its card has no training config")
        config = TrainConfig.from_dict(train)
    except (TypeError, ValueError) as err:
        raise ValueError(f"this checkpoint was not made by the generic trainer, so its test set is unknown ({err})") \
            from err
    try:
        task = build_task(config.task, **config.task_args)
    except TypeError as err:
        raise ValueError(f"the card's task arguments are not valid: {err}") from err
    model = card.get("model") or {}
    for key, needed in (("output_size", task.output_size), ("vocab_size", task.vocab_size)):
        if model.get(key) != needed:
            raise ValueError(f"the card's model has {key}={model.get(key)!r}, but task {task.name!r} needs {needed!r}")
    if task.vocab_size is None and model.get("input_size") != task.input_size:
        raise ValueError(f"the card's model has input_size={model.get('input_size')!r}, but task {task.name!r} "
                         f"has {task.input_size} input features")
    check_eval_footprint("test_size", config.test_size, task.sample(1, 0)[0].shape[1], task)
    return config, task


def retest(model: SequenceModel, card: dict, on_progress: Callable[[dict], None] | None = None,
           should_stop: Callable[[], bool] | None = None, batch_size: int = 500) -> dict | None:
    """Re-measure a loaded :class:`~drnn_demo.training.Trainer` checkpoint on the test set its run used (same
    seed, same size).

    ``card``: the model card (its ``train`` entry is the run's :class:`~drnn_demo.training.TrainConfig`), checked by
    :func:`retest_plan` first (``ValueError``). ``on_progress`` gets ``{"step", "total_steps"}``
    in sequences after every chunk of ``batch_size``; ``should_stop()`` returning True ends the
    re-test early and it returns None.
    """
    config, task = retest_plan(card)
    x, y = task.eval_set("test", config.test_size, derived_seed(config.seed, "test"))
    parts = []
    for i in range(0, x.shape[0], batch_size):
        if should_stop is not None and should_stop():
            return None
        parts.append(predict(model, x[i : i + batch_size], batch_size))
        if on_progress is not None:
            on_progress({"step": min(i + batch_size, x.shape[0]), "total_steps": x.shape[0], "loss": None})
    pred = torch.cat(parts)
    return task.metrics(pred, y.to(pred.device))


def run_retest_job(config: dict, on_progress: Callable, should_stop: Callable[[], bool], run_dir: Path) -> dict:
    """Load ``run_dir/model.*`` and re-test it; ``config`` is unused (the card says everything)."""
    model, card = load_checkpoint(run_dir / WEIGHTS_FILE)
    measured = retest(model, card, on_progress, should_stop)
    if measured is None:
        return {"status": "cancelled", "message": "re-test cancelled", "checkpoint": run_dir / WEIGHTS_FILE}
    recorded = (card.get("metrics") or {}).get("test") or {}
    metrics = {f"test_{k}": v for k, v in measured.items()}
    metrics.update({f"recorded_test_{k}": v for k, v in recorded.items() if isinstance(v, int | float)})
    summary = ", ".join(f"{k} {v:.4g} (card: {recorded[k]:.4g})" if isinstance(recorded.get(k), int | float)
                        else f"{k} {v:.4g}" for k, v in measured.items())
    return {"status": "finished", "message": f"re-tested on {card['train']['test_size']:,} test sequences: {summary}",
            "metrics": metrics, "checkpoint": run_dir / WEIGHTS_FILE}
