"""A tagger trained on your data, streamed: one run's checkpoint as a :class:`~drnn_demo.streaming_sets.ModelSet`.

A tagging run of the Your data page (task ``"user_data"``, ``readout="steps"``,
:func:`drnn_demo.tasks.user_data.opens_on_streaming`) is **one** model, so the Streaming page shows one row of it:

- a delayed core with delay ``d`` (any ``d``, ``d = 0`` being a plain causal LSTM): ``ModelSet.delayed == {d: model}``,
  stepped once per arriving token; output ``t`` appears at step ``t + d`` and never changes
  (:func:`drnn_demo.streaming.stream_delayed`, equal to ``model(x)`` on the whole sentence);
- a bidirectional core: ``ModelSet.bidirectional``, re-run on every prefix ``x[0..now]`` in restart mode
  (:func:`drnn_demo.streaming.restart_outputs`), so its labels for earlier tokens may change.

The rows a single run cannot give (the other model, a causal reference) are not there.

Words are read as the run read them (:class:`RunWords`): lower-cased tokens, each looked up in the vocabulary of the
run's model card; any other word is id 1, ``<unk>``. A sentence is either one of the test split of the stored data
set the run was trained on (:func:`held_out_sentences`: the trainer scored exactly these), or typed
(:func:`typed_tokens`: tokens separated by white space, as a token/tag file has them). At most
:data:`MAX_STREAMED_TOKENS` tokens are streamed: restart mode runs ``T`` prefixes, ``T (T + 1)`` cell steps.

Python::

    ms = user_model_set("runs/<run id>/model.safetensors")   # CheckpointError / NotStreamable
    words, tags = held_out_sentences(ms)[0]
    view = stream_view(ms, ms.taggers.ids(words), next(iter(ms.delayed), None))
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoints import CheckpointError, load_checkpoint
from .models import DelayedRNN, SequenceModel, StackedRNN
from .streaming_sets import ModelSet
from .tasks.user_data import MAX_TOKEN_CHARS, UNK, UserDataError, load_dataset, opens_on_streaming

MAX_STREAMED_TOKENS = 100  # tokens of one streamed sentence (restart mode: T (T + 1) cell steps, a T x T table)
MAX_TYPED_TOKENS = 60  # tokens of a typed sentence
FINISHED = ("finished", "early_stopped")


class NotStreamable(ValueError):
    """A sound checkpoint that is not a tagger of your data with a delayed or bidirectional core."""


@dataclass(frozen=True)
class RunWords:
    """How a run reads words: ``vocab`` (id ``i`` is ``vocab[i]``; 0 ``<pad>``, 1 ``<unk>``) from its model card,
    and the stored data set (``dataset`` id, ``root`` directory or None) its ``task_args`` name."""

    vocab: tuple[str, ...]
    dataset: str
    root: str | None = None
    index: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {w: i for i, w in enumerate(self.vocab)})

    def ids(self, words) -> torch.Tensor:
        """``(T,)`` long token ids of ``words`` (lower-cased; unknown words are ``<unk>``)."""
        unk = self.index[UNK]
        return torch.tensor([self.index.get(str(w).lower(), unk) for w in words], dtype=torch.long)

    def unknown(self, words) -> list[str]:
        """The words of ``words`` the run's vocabulary does not have (they read as ``<unk>``), in order."""
        return [w for w in words if str(w).lower() not in self.index]


def typed_tokens(text: str) -> list[str]:
    """The tokens of a typed sentence: split at white space and lower-cased, as a token/tag file is read. At most
    :data:`MAX_TYPED_TOKENS` tokens of at most ``MAX_TOKEN_CHARS`` characters (``ValueError`` otherwise)."""
    tokens = str(text).lower().split()
    if len(tokens) > MAX_TYPED_TOKENS:
        raise ValueError(f"the sentence has {len(tokens)} tokens; at most {MAX_TYPED_TOKENS} are streamed")
    long = next((t for t in tokens if len(t) > MAX_TOKEN_CHARS), None)
    if long is not None:
        raise ValueError(f"a token of {len(long):,} characters ({long[:20]}…); the limit is {MAX_TOKEN_CHARS}")
    return tokens


# ---------------------------------------------------------------- which runs stream


def _what(config: dict) -> str:
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    if config.get("task") != "user_data":
        return f"a {config.get('task') or 'non-training'} run"
    if model.get("readout") != "steps":
        return "a classifier of your data"
    return f"a tagger with a {model.get('core')} core"


def run_problem(info) -> str | None:
    """Why a run (a :class:`~drnn_demo.jobs.RunInfo`) cannot be streamed, or None when it can: it must be sound, a
    ``train`` run of a tagger :func:`~drnn_demo.tasks.user_data.opens_on_streaming` accepts, finished (or stopped
    early), with a checkpoint. Whether the checkpoint itself loads is :func:`user_model_set`'s business."""
    name = f"run {info.label} ({info.id})" if info.label and info.label != info.id else f"run {info.id}"
    if info.status == "corrupt":
        return f"The {name} is damaged: {info.message}"
    config = info.config if isinstance(info.config, dict) else {}
    if info.kind != "train" or not opens_on_streaming(config):
        return (f"The {name} is {_what(config) if info.kind == 'train' else f'a {info.kind} run'}, not a tagger of "
                "your data with a delayed or bidirectional LSTM: those are what this page streams")
    if info.status in ("queued", "running"):
        return f"The {name} is still {info.status}: it opens here once it has finished"
    if info.status not in FINISHED:
        said = f" ({info.message})" if info.message else ""
        return f"The {name} ended {info.status.replace('_', ' ')}{said}; only finished runs open here"
    if info.checkpoint is None:
        return f"The {name} has no usable checkpoint{f' ({info.message})' if info.message else ''}"
    return None


# ---------------------------------------------------------------- a run's checkpoint as a model set


def _strings(value, name: str, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(set(value)) != len(value):
        raise CheckpointError(f"{name}: the model card's {what!r} must be a list of distinct strings")
    return tuple(value)


def user_model_set(checkpoint: str | os.PathLike) -> ModelSet:
    """The tagger of a Your data run (its ``model.safetensors``) as a one-model :class:`ModelSet` (task ``"user"``).

    ``delayed == {d: model}`` for a delayed core, ``bidirectional = model`` for a bidirectional one; ``labels`` the
    tags (the card's, in the order of the model's outputs), ``taggers`` a :class:`RunWords`, ``test`` the test
    accuracy its run measured, ``names`` its run id. Raises :class:`~drnn_demo.checkpoints.CheckpointError` for a
    damaged checkpoint (everything :func:`~drnn_demo.checkpoints.load_checkpoint` checks, and a vocabulary or tag
    list that does not fit the model), :class:`NotStreamable` for a sound one that is not such a tagger.
    """
    path = Path(checkpoint)
    model, card = load_checkpoint(path)
    name = path.with_suffix(".json").name
    if card.get("task") != "user_data" or card.get("problem") != "tagging" or model.readout != "steps":
        raise NotStreamable(f"{path.name} is not a tagger of your data (task {card.get('task')!r}, "
                            f"readout {model.readout!r})")
    core = model.core
    delayed = isinstance(core, DelayedRNN) and core.block_sizes is None
    if not delayed and not (isinstance(core, StackedRNN) and core.bidirectional):
        raise NotStreamable(f"{path.name}: its {model.config['core']} core cannot be streamed here: only a delayed "
                            "RNN (stepped once per token) or a bidirectional one (re-run on every prefix)")
    if model.embedding is None:
        raise CheckpointError(f"{name}: a tagger of your data reads token ids, but this model has no embedding")
    vocab = _strings(card.get("vocab"), name, "vocab")
    if len(vocab) != model.embedding.num_embeddings or vocab[1:2] != (UNK,):
        raise CheckpointError(f"{name}: the card's vocabulary ({len(vocab):,} words) does not fit the model's "
                              f"embedding ({model.embedding.num_embeddings:,} rows, <unk> at 1)")
    labels = _strings(card.get("labels"), name, "labels")
    if len(labels) != model.head.out_features:
        raise CheckpointError(f"{name}: the card names {len(labels)} tags, the model has {model.head.out_features} "
                              "outputs")
    args = card.get("task_args") if isinstance(card.get("task_args"), dict) else {}
    root = args.get("root") if isinstance(args.get("root"), str) else None
    words = RunWords(vocab, str(args.get("dataset", "")), root)
    run = str(card.get("run_id") or path.parent.name)
    metrics = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
    test = (metrics.get("test") if isinstance(metrics.get("test"), dict) else {}).get("accuracy")
    test = float(test) if isinstance(test, int | float) and not isinstance(test, bool) else None
    key = core.delay if delayed else "bidirectional"
    return ModelSet("user", {core.delay: model} if delayed else {}, None if delayed else model, labels,
                    names={key: run}, test={run: test}, taggers=words)


def held_out_sentences(models: ModelSet) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """``[(words, gold tags)]`` of the test split of the data set the run was trained on, in the file's order (the
    sentences its run was scored on). :class:`~drnn_demo.tasks.user_data.UserDataError` when that set is no longer
    stored (or no longer valid), or its tags are not the run's."""
    words: RunWords = models.taggers
    data, info = load_dataset(words.dataset, words.root)
    if data.problem != "tagging" or tuple(data.labels) != tuple(models.labels):
        raise UserDataError(f"the stored data set {info.id} does not have the tags this run was trained on")
    return [(tokens, tuple(data.labels[t] for t in tags))
            for tokens, tags, split in zip(data.tokens, data.targets, data.splits, strict=True) if split == "test"]


def model_in_view(models: ModelSet) -> tuple[SequenceModel, int | None]:
    """The run's one model and its delay (None: the bidirectional one)."""
    if models.delayed:
        (delay, model), = models.delayed.items()
        return model, delay
    return models.bidirectional, None
