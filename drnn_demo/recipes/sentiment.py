"""The sentiment LRN: :func:`train_sentiment` (hooks for :func:`drnn_demo.loop.fit`), the pretrained
model of the LRN gates page, and the ``"lrn_sentiment"`` run kind.

Hooks: each epoch's batches of equal-length training sentences (:func:`~drnn_demo.tasks.sentiment.length_batches`,
shuffled by a seeded generator), cross-entropy of the final state's logits, validation accuracy on
every validation sentence after each epoch, selection by ``(accuracy, -cross_entropy)``. AdamW
with gradient clipping at 1; dropout on the embedded words during training only.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..checkpoints import PRETRAINED_DIR, load_checkpoint, save_checkpoint
from ..loop import Progress, fit
from ..models import SequenceModel
from ..models.common import check_positive_int
from ..tasks.sentiment import LABELS, SPLITS, Sentiment, bag_of_words_baseline, evaluate_sentences, length_batches
from . import pretrained_target

PROGRESS_EVERY = 10  # batches between progress reports of train_sentiment
PRETRAINED_NAME = "lrn_sentiment"


@dataclass
class SentimentResult:
    """What :func:`train_sentiment` returns: the best-validation model and everything for its card."""

    model: torch.nn.Module
    vocab: list[str]
    config: dict
    metrics: dict  # {"train": ..., "val": ..., "test": ...}, each accuracy / cross_entropy / n
    baseline: dict | None
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    elapsed: float = 0.0
    status: str = "finished"  # or "early_stopped", "diverged", "cancelled" (drnn_demo.loop.STATUSES)
    message: str = ""

    def card(self, **extra) -> dict:
        """A JSON model card for :func:`drnn_demo.checkpoints.save_checkpoint`: the training config
        (shaped like a TrainConfig dict, plus this trainer's own settings), vocabulary, metrics,
        baseline, history and data provenance."""
        cfg = self.config
        train = {"task": "sentiment", "task_args": {"min_count": cfg["min_count"]},
                 "model": {"core": "lrn", "core_args": dict(cfg["core_args"]), "input_size": cfg["embedding_size"]},
                 "seed": cfg["seed"], "trainer": "drnn_demo.recipes.sentiment.train_sentiment",
                 **{k: v for k, v in cfg.items() if k not in ("core_args", "seed", "min_count")}}
        card = {
            "task": "sentiment",
            "task_args": {"min_count": cfg["min_count"]},
            # not the generic Trainer: its test set is the fixed split, measured unpadded (see train_sentiment);
            # TrainConfig.from_dict(card["train"]) refuses the extra keys on purpose
            "trainer": train["trainer"],
            "train": train,
            "seed": cfg["seed"],
            "metrics": self.metrics,
            "baseline": self.baseline,
            "best_epoch": self.best_epoch,
            "elapsed": self.elapsed,
            "history": self.history,
            "vocab": self.vocab,
            "labels": list(LABELS),
            "data": "Sentiment Labelled Sentences (Kotzias et al., KDD 2015; UCI; CC BY 4.0); fixed split by MD5 "
                    "of the text mod 10: 0 test, 1 val, 2-9 train; metrics on every sentence of a split, unpadded",
        }
        card.update(extra)
        return card


def train_sentiment(
    hidden_size: int = 32, embedding_size: int = 32, activation: str = "identity", epochs: int = 30,
    batch_size: int = 32, lr: float = 3e-3, weight_decay: float = 1e-4, dropout: float = 0.5, patience: int = 6,
    min_count: int = 2, seed: int = 0, baseline: bool = True, threads: int | None = 1,
    log: Callable[[str], None] | None = None, should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> SentimentResult:
    """Train a word-level unidirectional LRN sentiment classifier on the fixed split.

    The model is ``SequenceModel("lrn", {"hidden_size", "activation"}, input_size=embedding_size,
    output_size=2, vocab_size=len(vocab), readout="last")``: embedding -> LRN -> final state ->
    linear. ``dropout`` is applied to the embedded words during training only (a forward hook that
    is removed afterwards, so the returned model is a plain SequenceModel). The weights of the best
    validation accuracy are kept (early stop after ``patience`` epochs without improvement).
    Metrics are measured on every sentence unpadded. With ``baseline`` the bag-of-words logistic
    regression is measured too.

    ``on_progress`` receives a :class:`~drnn_demo.loop.Progress` every ``PROGRESS_EVERY`` batches
    and after every epoch (``step`` counts batches; the epoch's validation accuracy comes in
    ``metrics``); ``should_stop()`` is polled before every batch.

    ``threads``: torch's intra-op threads during the call, restored afterwards (None: leave them).
    This model is so small that extra threads only add synchronisation: on two busy cores one
    thread trained 9x faster than two.
    """
    check_positive_int("epochs", epochs)
    previous = torch.get_num_threads()
    if threads is not None:
        check_positive_int("threads", threads)
        torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        torch.manual_seed(seed)
        task = Sentiment(min_count=min_count)
        data = {split: task.encoded(split) for split in SPLITS}
        core_args = {"hidden_size": hidden_size, "activation": activation}
        model = SequenceModel("lrn", core_args, input_size=embedding_size, output_size=2,
                              vocab_size=task.vocab_size, readout="last")
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        hook = None
        if dropout:
            hook = model.embedding.register_forward_hook(lambda m, _, out: F.dropout(out, dropout, m.training))
        generator = torch.Generator().manual_seed(seed)
        per_epoch = sum(1 for _ in length_batches(data["train"], batch_size, None))
        initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
        history: list[dict] = []
        epoch_loss = [0.0, 0]  # this epoch's sum of loss x sentences, and its sentences

        def sentence_loss(m, batch) -> torch.Tensor:
            loss = F.cross_entropy(m(batch[0]), batch[1])
            epoch_loss[0] += float(loss.detach()) * len(batch[1])
            epoch_loss[1] += len(batch[1])
            return loss

        def validate(m) -> dict:
            val = evaluate_sentences(m, data["val"])
            history.append({"epoch": len(history) + 1, "val": val})
            return {"val_accuracy": val["accuracy"], "val_cross_entropy": val["cross_entropy"]}

        def epoch_done(step: int, metrics: dict, _: float) -> None:
            train_loss = epoch_loss[0] / epoch_loss[1]  # the mean over the epoch's sentences
            epoch_loss[:] = [0.0, 0]
            history[-1].update(loss=train_loss, elapsed=time.perf_counter() - start)
            if log is not None:
                log(f"epoch {history[-1]['epoch']}: train loss {train_loss:.4f}, "
                    f"val accuracy {metrics['val_accuracy']:.4f}")

        epochs_of_batches = itertools.chain.from_iterable(
            length_batches(data["train"], batch_size, generator) for _ in range(epochs))
        done = fit(model, optimizer, epochs_of_batches, sentence_loss, epochs * per_epoch, evaluate=validate,
                   eval_every=per_epoch, score=lambda metrics: (metrics["val_accuracy"], -metrics["val_cross_entropy"]),
                   patience=patience, clip=1.0, log_every=PROGRESS_EVERY, on_eval=epoch_done,
                   on_progress=on_progress, should_stop=should_stop, start=start)
        if hook is not None:
            hook.remove()
        if done.best_step is None:  # stopped before the first epoch's validation: back to the initial weights
            model.load_state_dict(initial)
        model.eval()
        metrics = {split: evaluate_sentences(model, data[split]) for split in SPLITS}
        config = {"hidden_size": hidden_size, "embedding_size": embedding_size, "activation": activation,
                  "core_args": core_args, "epochs": epochs, "batch_size": batch_size, "lr": lr,
                  "weight_decay": weight_decay, "dropout": dropout, "patience": patience, "min_count": min_count,
                  "seed": seed}
        return SentimentResult(
            model=model, vocab=task.vocab, config=config, metrics=metrics,
            baseline=bag_of_words_baseline(min_count) if baseline else None,
            history=history,
            best_epoch=(done.best_step or 0) // per_epoch, elapsed=time.perf_counter() - start,
            status=done.status, message=done.message,
        )
    finally:
        torch.set_num_threads(previous)


def pretrain_sentiment(out: str | Path | None = None, force: bool = False,
                       log: Callable[[str], None] | None = print, **kwargs) -> Path:
    """Train the pretrained sentiment LRN (if missing, or with ``force``) and save it as
    ``<out>/lrn_sentiment.{safetensors,json}`` (``out`` defaults to ``pretrained/``; with
    ``activation="tanh"`` in ``kwargs``: ``lrn_sentiment_tanh.*``); returns the weights path.
    ``kwargs`` go to :func:`train_sentiment`. About half a minute on one CPU core."""
    activation = kwargs.get("activation", "identity")
    name = PRETRAINED_NAME if activation == "identity" else f"{PRETRAINED_NAME}_{activation}"
    weights, skip = pretrained_target(out, name, force, log)
    if skip:
        return weights
    result = train_sentiment(log=log, **kwargs)
    path = save_checkpoint(weights, result.model, result.card(name=name))
    if log is not None:
        m, b = result.metrics, result.baseline or {}
        log(f"{name}: test accuracy {m['test']['accuracy']:.4f} (val {m['val']['accuracy']:.4f}); "
            f"bag-of-words baseline test {b.get('test_accuracy', float('nan')):.4f}; {result.elapsed:.0f} s")
    return path


def run_sentiment_job(config: dict, on_progress: Callable, should_stop: Callable[[], bool], run_dir: Path) -> dict:
    """The ``"lrn_sentiment"`` run kind of :mod:`drnn_demo.jobs`: :func:`train_sentiment` in a worker.

    ``config``: keyword arguments of :func:`train_sentiment` (``hidden_size``, ``activation``,
    ``epochs``, ``seed``, ...; ``baseline`` defaults to False here, ``log``/``threads`` are the
    worker's). The best-validation model and its card (plus ``run_id``) are saved to
    ``run_dir/model.safetensors`` whatever the status, so a cancelled run keeps what it learned.
    """
    kwargs = {"baseline": False, **{k: v for k, v in config.items() if k not in ("log", "threads", "device")}}
    result = train_sentiment(**kwargs, threads=None, log=print, should_stop=should_stop, on_progress=on_progress)
    card = result.card(name=f"{PRETRAINED_NAME}_{run_dir.name}", run_id=run_dir.name)
    checkpoint = save_checkpoint(Path(run_dir) / "model.safetensors", result.model, card)
    epochs = len(result.history)
    test, val = result.metrics["test"], result.metrics["val"]
    message = (f"LRN ({result.config['activation']}, H={result.config['hidden_size']}): test accuracy "
               f"{test['accuracy']:.3f} (validation {val['accuracy']:.3f}, best epoch {result.best_epoch} of {epochs})")
    if result.message:
        message += f"; {result.message}"
    return {"status": result.status, "message": message, "checkpoint": checkpoint,
            "metrics": {"val_accuracy": val["accuracy"], "test_accuracy": test["accuracy"],
                        "test_cross_entropy": test["cross_entropy"]}}


def load_pretrained_sentiment(path: str | Path | None = None):
    """``(model, vocab, card)`` of the pretrained sentiment model (default ``pretrained/lrn_sentiment``)."""
    model, card = load_checkpoint(path or Path(PRETRAINED_DIR) / PRETRAINED_NAME)
    return model, card["vocab"], card
