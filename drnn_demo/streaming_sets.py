"""The model sets the Streaming page streams (:mod:`drnn_demo.streaming`): delayed models and a bidirectional one.

- :func:`pos_model_set`: the shipped POS taggers of ``pretrained/`` (:mod:`drnn_demo.streaming_pos`: one shared
  word encoder, one sentence RNN per delay 0..4, a bidirectional one);
- :func:`task_model_set`: the reversal and sine-filtering ladders of the Delayed outputs page (delayed LSTMs of
  hidden size 64 at the delays of :data:`TASK_DELAYS`, and the bidirectional LSTM);
- :func:`drnn_demo.streaming_user.user_model_set`: a tagger trained on your data (one model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoints import PRETRAINED_DIR, load_checkpoint
from .models import SequenceModel
from .streaming_pos import DELAYS, load_pos_taggers
from .tasks import build_task
from .training import TrainConfig, derived_seed

TASKS = ("pos", "reversal", "sine")
# The shipped ladders the page streams (see drnn_demo.pretrained): delayed LSTMs, hidden 64, and the baseline.
TASK_DELAYS = {"reversal": (0, 3, 6, 9, 12, 15, 19), "sine": (0, 1, 2, 3, 5, 8)}


@dataclass
class ModelSet:
    """The models of one task: ``delayed[d]`` (``delayed[0]`` is the causal one) and ``bidirectional``;
    ``labels`` names the classes (None: regression), ``names`` the checkpoint of each, ``test`` their test scores.
    A run of yours (task ``"user"``) has one model: ``delayed == {}`` or ``bidirectional is None``."""

    task: str
    delayed: dict[int, SequenceModel]
    bidirectional: SequenceModel | None
    labels: tuple[str, ...] | None
    names: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    taggers: object = None  # what reads the words: the POS taggers ("pos"), a run's vocabulary ("user")

    @property
    def kind(self) -> str:
        return "regression" if self.labels is None else "classification"


def pos_model_set(directory: Path = PRETRAINED_DIR) -> ModelSet:
    taggers = load_pos_taggers(directory)
    delayed = {d: taggers.models[f"pos_delayed_d{d}"] for d in DELAYS}
    test = {name: card["metrics"]["test"]["accuracy"] for name, card in taggers.cards.items()}
    names = {**{d: f"pos_delayed_d{d}" for d in DELAYS}, "bidirectional": "pos_bidirectional"}
    return ModelSet("pos", delayed, taggers.models["pos_bidirectional"], tuple(taggers.vocab.tags), names, test,
                    taggers)


def task_model_set(task: str, directory: Path = PRETRAINED_DIR) -> ModelSet:
    """The reversal or sine ladder of ``pretrained/`` (delayed LSTMs with hidden 64 and the bidirectional one)."""
    if task not in TASK_DELAYS:
        raise ValueError(f"task must be one of {sorted(TASK_DELAYS)}, got {task!r}")
    names = {d: f"{task}_delayed_lstm_h64_d{d}" for d in TASK_DELAYS[task]}
    names["bidirectional"] = f"{task}_bidirectional_lstm_h64"
    loaded = {key: load_checkpoint(Path(directory) / f"{name}.safetensors") for key, name in names.items()}
    metric = "accuracy" if task == "reversal" else "mse"
    test = {names[k]: card["metrics"]["test"][metric] for k, (_, card) in loaded.items()}
    bi = loaded.pop("bidirectional")[0]
    labels = tuple(str(i) for i in range(bi.head.out_features)) if task == "reversal" else None
    return ModelSet(task, {d: m for d, (m, _) in loaded.items()}, bi, labels, names, test)


def task_test_sequences(task: str, n: int, directory: Path = PRETRAINED_DIR) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` test sequences ``(x, y)`` the shipped ``task`` models were scored on (same seed)."""
    card = load_checkpoint(Path(directory) / f"{task}_bidirectional_lstm_h64.safetensors")[1]
    config = TrainConfig.from_dict(card["train"])
    return build_task(config.task, **config.task_args).sample(n, derived_seed(config.seed, "test"))


def model_set(task: str, directory: Path = PRETRAINED_DIR) -> ModelSet:
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
    return pos_model_set(directory) if task == "pos" else task_model_set(task, directory)
