"""The small checkpoints in ``pretrained/``: what they are, how to find the one nearest a choice,
and how to regenerate them (``python -m drnn_demo pretrain``).

Each entry is a name and a :class:`~drnn_demo.training.TrainConfig`; training it with its fixed
seed reproduces the checkpoint (up to floating-point nondeterminism of the device). The JSON card
beside each ``.safetensors`` file carries the config and the measured metrics.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checkpoints import PRETRAINED_DIR, save_checkpoint
from .recipes.keyword import pretrain_keyword
from .recipes.memory import pretrain_memory_models
from .recipes.sentiment import pretrain_sentiment
from .tasks.reversal import PAPER_ARGS as REVERSAL_ARGS
from .tasks.sine import PAPER_ARGS as SINE_ARGS
from .training import TrainConfig, Trainer, derived_seed, predict

# The ladders of the Delayed outputs page: one LSTM per delay, plus the baselines.
REVERSAL, SINE = REVERSAL_ARGS, SINE_ARGS  # the paper's settings (drnn_demo.tasks.reversal / .sine)
HIDDEN = 64
REVERSAL_DELAYS = (0, 3, 6, 9, 12, 15, 19)
SINE_DELAYS = (0, 1, 2, 3, 5, 8)
# Measured on 2 busy CPU cores: reversal at d=19 needs ~5000 steps at lr 1e-2 to pass 99 %.
BUDGET = {"reversal": dict(steps=5000, lr=1e-2), "sine": dict(steps=3000, lr=3e-3)}


@dataclass(frozen=True)
class Entry:
    """One pretrained checkpoint: ``pretrained/<name>.{safetensors,json}``."""

    name: str
    config: TrainConfig


def _entry(task: str, task_args: dict, core: str, core_args: dict, name: str, **overrides) -> Entry:
    budget = {**BUDGET[task], **overrides}
    config = TrainConfig(task=task, task_args=dict(task_args), model={"core": core, "core_args": core_args},
                         batch_size=64, eval_every=250, patience=6, seed=0, device="cpu", **budget)
    return Entry(name, config)


def delayed_outputs_entries() -> list[Entry]:
    """Reversal and sine-filtering ladders: delayed LSTMs over delays, bidirectional and stacked baselines."""
    entries = []
    for task, args, delays in (("reversal", REVERSAL, REVERSAL_DELAYS), ("sine", SINE, SINE_DELAYS)):
        for d in delays:
            # full-delay reversal memorises all 20 tokens: at a constant lr H=64 stalls near 98.6 %
            harder = dict(lr=2e-2, lr_schedule="cosine") if (task, d) == ("reversal", 19) else {}
            entries.append(_entry(task, args, "delayed", {"hidden_size": HIDDEN, "delay": d, "cell": "lstm"},
                                  f"{task}_delayed_lstm_h{HIDDEN}_d{d}", **harder))
        if task == "reversal":  # a wider model for the hidden-size slider: it passes 99 % at d=19
            for d in (0, 19):
                entries.append(_entry(task, args, "delayed", {"hidden_size": 128, "delay": d, "cell": "lstm"},
                                      f"{task}_delayed_lstm_h128_d{d}", steps=2000, lr=2e-2, lr_schedule="cosine"))
        entries.append(_entry(task, args, "bidirectional", {"hidden_sizes": [HIDDEN], "cell": "lstm"},
                              f"{task}_bidirectional_lstm_h{HIDDEN}"))
        entries.append(_entry(task, args, "stacked", {"hidden_sizes": [HIDDEN, HIDDEN], "cell": "lstm"},
                              f"{task}_stacked_lstm_2x{HIDDEN}"))
    return entries


# Trainer-made entries, by group (the LRN and memory models have trainers of their own: see PRETRAINERS).
GROUPS: dict[str, Callable[[], list[Entry]]] = {"delayed_outputs": delayed_outputs_entries}


def entries(groups: list[str] | None = None) -> list[Entry]:
    chosen = groups or list(GROUPS)
    for g in chosen:
        if g not in GROUPS:
            raise ValueError(f"group must be one of {sorted(GROUPS)}, got {g!r}")
    return [e for g in chosen for e in GROUPS[g]()]


def _pretrain_lrn(out: Path, force: bool, log: Callable[[str], None]) -> None:
    pretrain_sentiment(out, force=force, log=log)
    pretrain_sentiment(out, force=force, log=log, activation="tanh", epochs=60, patience=10)  # the LRN page's pair
    pretrain_keyword(out, force=force, log=log)
    pretrain_keyword(out, force=force, log=log, activation="tanh")


DIGITS_PRETRAIN_STEPS = 600


def _pretrain_memory(out: Path, force: bool, log: Callable[[str], None]) -> None:
    pretrain_memory_models(out, force=force, log=log)  # copy memory, L = 50
    for permuted in (False, True):  # sequential and permuted digits
        pretrain_memory_models(out, force=force, log=log, task="digits", task_args={"permuted": permuted},
                               steps=DIGITS_PRETRAIN_STEPS, val_size=180)


# Everything `python -m drnn_demo pretrain` regenerates, by page.
PRETRAINERS: dict[str, Callable[[Path, bool, Callable[[str], None]], object]] = {
    "delayed_outputs": lambda out, force, log: pretrain(["delayed_outputs"], out, force, log=log),
    "lrn": _pretrain_lrn,
    "memory": _pretrain_memory,
    "streaming": lambda out, force, log: _pretrain_streaming(out, force, log),
}


def _pretrain_streaming(out: Path, force: bool, log: Callable[[str], None]) -> None:
    from .streaming_pos import pretrain_pos_taggers

    pretrain_pos_taggers(out, force=force, log=log)  # the Streaming page's POS taggers, d = 0..4 and bidirectional


def pretrain_all(groups: list[str] | None = None, out: Path = PRETRAINED_DIR, force: bool = False,
                 log: Callable[[str], None] = print) -> None:
    """Regenerate the checkpoints of ``groups`` (default: all of :data:`PRETRAINERS`); existing
    ones are kept unless ``force``."""
    for group in groups or list(PRETRAINERS):
        if group not in PRETRAINERS:
            raise ValueError(f"group must be one of {sorted(PRETRAINERS)}, got {group!r}")
        log(f"== {group}")
        PRETRAINERS[group](Path(out), force, log)


def pretrain(groups: list[str] | None = None, out: Path = PRETRAINED_DIR, force: bool = False,
             only: str = "", log: Callable[[str], None] = print) -> list[Path]:
    """Train every entry (whose name contains ``only``) that has no checkpoint yet, or all of them
    with ``force``; return the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    todo = [e for e in entries(groups)
            if only in e.name and (force or not (out / f"{e.name}.safetensors").exists())]
    for i, entry in enumerate(todo, 1):
        log(f"[{i}/{len(todo)}] {entry.name}")
        result = Trainer(entry.config).run()
        path = save_checkpoint(out / f"{entry.name}.safetensors", result.model, result.card(name=entry.name))
        log(f"    {result.status}, test {result.test_metrics}, {result.elapsed:.0f}s")
        written.append(path)
    return written


def catalog(task: str | None = None, directory: Path = PRETRAINED_DIR) -> list[dict]:
    """The model cards in ``directory`` (of ``task``, if given), each with its ``path`` added (JSON only: cheap)."""
    cards = []
    for path in sorted(Path(directory).glob("*.json")):
        card = json.loads(path.read_text())
        if task is None or card.get("task") == task:
            card["path"] = str(path.with_suffix(".safetensors"))
            cards.append(card)
    return cards


def describe(card: dict) -> dict:
    """The facts a page filters on: task, core, cell, delay (None for baselines), hidden size, test metrics."""
    model = card["train"]["model"]
    core, args = model["core"], model.get("core_args", {})
    return {
        "task": card["task"], "core": core, "cell": args.get("cell", "rnn"), "delay": args.get("delay"),
        "hidden": args.get("hidden_size", (args.get("hidden_sizes") or [None])[0]),
        "layers": len(args.get("hidden_sizes", [0])), "test": card["metrics"]["test"], "name": card.get("name", ""),
        "path": card.get("path"),
    }


def nearest(cards: list[dict], task: str, cell: str, delay: int, hidden: int) -> tuple[dict | None, str]:
    """The delayed model closest to the request (same task first, then delay, cell, size) and a note
    saying how it differs from what was asked."""
    candidates = [describe(c) for c in cards]
    candidates = [c for c in candidates if c["task"] == task and c["core"] == "delayed"]
    if not candidates:
        return None, f"no pretrained delayed model for {task}"
    best = min(candidates,
               key=lambda c: (abs(c["delay"] - delay), c["cell"] != cell, abs(np.log2(c["hidden"] / hidden))))
    differences = [f"{k} {best[k]} instead of {v}" for k, v in (("delay", delay), ("cell", cell), ("hidden", hidden))
                   if best[k] != v]
    note = "exact match" if not differences else "nearest pretrained model: " + ", ".join(differences)
    return best, note


@dataclass
class TestSetView:
    """A loaded model on its own test set: what the Delayed outputs page draws.

    ``inputs`` ``(n, T)`` tokens (classification) or values (regression) of the first ``n`` test
    sequences, ``targets`` and ``predictions`` likewise (argmax classes or values), ``per_position``
    ``(T,)`` over the whole test set, ``metrics`` the task's metrics on it.
    """

    inputs: np.ndarray
    targets: np.ndarray
    predictions: np.ndarray
    per_position: np.ndarray
    metrics: dict
    kind: str


def evaluate_on_test_set(model, card: dict, examples: int = 8, test_size: int | None = None) -> TestSetView:
    """Run a loaded checkpoint (``load_checkpoint``) on the test set its training run used (same seed)."""
    from .tasks import build_task

    config = TrainConfig.from_dict(card["train"])
    task = build_task(config.task, **config.task_args)
    x, y = task.sample(test_size or config.test_size, derived_seed(config.seed, "test"))
    pred = predict(model, x)
    if task.kind == "classification":
        inputs, predictions, targets = x.argmax(-1), pred.argmax(-1), y
    else:  # one feature per step
        inputs, predictions, targets = x[..., 0], pred[..., 0], y[..., 0]
    return TestSetView(inputs=inputs[:examples].numpy(), targets=targets[:examples].numpy(),
                    predictions=predictions[:examples].numpy(), per_position=task.per_position(pred, y),
                    metrics=task.metrics(pred, y), kind=task.kind)
