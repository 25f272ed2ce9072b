"""The last-keyword LRNs of the LRN gates page: a :class:`~drnn_demo.training.TrainConfig` for the
generic :class:`~drnn_demo.training.Trainer` (fresh seeded batches), saved with the pointing
accuracies on the test set (:func:`drnn_demo.tasks.keyword.pointing_accuracy`).
"""

from __future__ import annotations

from ..checkpoints import save_checkpoint
from ..tasks.keyword import pointing_accuracy
from ..training import Trainer, derived_seed
from . import pretrained_target

PRETRAINED_NAME = "lrn_keyword"


def keyword_config(steps: int = 1000, seed: int = 0, activation: str = "identity") -> dict:
    """The TrainConfig (as a dict) of a pretrained keyword model: a unidirectional LRN, 16 units,
    on the default task; it reaches accuracy 1.0 in a few hundred steps."""
    return {"task": "keyword", "task_args": {}, "seed": seed, "steps": steps, "lr": 1e-2, "lr_schedule": "cosine",
            "batch_size": 64, "eval_every": 100, "patience": 0, "val_size": 500, "test_size": 1000, "device": "cpu",
            "model": {"core": "lrn", "core_args": {"hidden_size": 16, "activation": activation}, "input_size": 16}}


def pretrain_keyword(out=None, force: bool = False, log=print, activation: str = "identity", **kwargs):
    """Train a pretrained keyword model (if missing, or with ``force``) with the generic
    :class:`~drnn_demo.training.Trainer` and save ``<out>/lrn_keyword.{safetensors,json}`` (identity)
    or ``<out>/lrn_keyword_tanh.*``; the card carries the pointing accuracies on the test set.
    ``kwargs`` go to :func:`keyword_config`. About 10 s each on one core."""
    name = PRETRAINED_NAME if activation == "identity" else f"{PRETRAINED_NAME}_{activation}"
    weights, skip = pretrained_target(out, name, force, log)
    if skip:
        return weights
    config = keyword_config(activation=activation, **kwargs)
    result = Trainer(config).run()
    task = result.task
    x, y = task.sample(config["test_size"], derived_seed(config["seed"], "test"))
    pointing = pointing_accuracy(result.model.cpu(), task, x, y)
    path = save_checkpoint(weights, result.model, result.card(name=name, pointing=pointing))
    if log is not None:
        log(f"{name}: {result.message}; pointing accuracy {pointing}")
    return path
