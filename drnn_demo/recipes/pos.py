"""The POS tagger's training: :func:`train_pos` (hooks for :func:`drnn_demo.loop.fit`) on UD English EWT.

Hooks: each epoch's training sentences in a seeded random order, batched into word ids, character
ids and lengths (:meth:`~drnn_demo.tasks.pos.Vocabulary.batch`); token cross-entropy over the
words (padding ignored); token accuracy on the validation split after every epoch, the best one
kept. Adam, gradient clipping at 5.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..loop import Progress, fit
from ..models.common import check_positive_int
from ..models.pos_tagger import POSTagger
from ..tasks.pos import Vocabulary, evaluate, sentences

PROGRESS_EVERY = 10  # batches between progress reports


@dataclass
class POSResult:
    """The best-validation tagger, its vocabularies, its validation and test scores and how it ran."""

    model: POSTagger
    vocab: Vocabulary
    val: dict
    test: dict
    epochs: int
    status: str
    seconds: float
    train_sentences: int


def train_pos(
    sentence_rnn: str = "delayed", delay: int = 0, hidden: int = 128, epochs: int = 10, batch_size: int = 32,
    lr: float = 2e-3, patience: int = 3, min_count: int = 2, seed: int = 0, limit: int | None = None,
    on_progress: Callable[[Progress], None] | None = None, should_stop: Callable[[], bool] | None = None,
    source: str = "dev",
) -> POSResult:
    """Train a :class:`POSTagger` with Adam on the training sentences of ``source`` (``limit``: only the
    first ones), keep the weights of the best validation accuracy (early stop after ``patience``
    epochs without improvement), and measure it on the whole test split. ``on_progress`` receives a
    :class:`~drnn_demo.loop.Progress` (``step`` counts batches) every ``PROGRESS_EVERY`` batches and
    after every epoch."""
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    start = time.perf_counter()
    torch.manual_seed(seed)
    vocab = Vocabulary.from_training(min_count, source)
    train, val, test = sentences("train", source)[:limit], sentences("val", source), sentences("test")
    model = POSTagger(len(vocab.words), len(vocab.chars), len(vocab.tags), sentence_rnn, delay, hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    per_epoch = math.ceil(len(train) / batch_size)

    def shuffled_batches():
        for _ in range(epochs):
            order = torch.randperm(len(train), generator=generator).tolist()
            for b in range(per_epoch):
                yield vocab.batch([train[i] for i in order[b * batch_size:][:batch_size]])

    def token_loss(m, batch) -> torch.Tensor:
        word_ids, char_ids, lengths, tags = batch
        logits = m(word_ids, char_ids, lengths)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tags.reshape(-1))

    done = fit(model, optimizer, shuffled_batches(), token_loss, epochs * per_epoch,
               evaluate=lambda m: {"val_accuracy": evaluate(m, vocab, val)["accuracy"]}, eval_every=per_epoch,
               score=lambda metrics: metrics["val_accuracy"], patience=patience, clip=5.0,
               log_every=PROGRESS_EVERY, on_progress=on_progress, should_stop=should_stop)
    epochs_run = math.ceil(done.steps / per_epoch) if per_epoch else 0
    status = "finished" if done.status == "early_stopped" else done.status
    return POSResult(model, vocab, evaluate(model, vocab, val), evaluate(model, vocab, test), epochs_run, status,
                     time.perf_counter() - start, len(train))
