"""Sentence sentiment (LRN's AmaPolar analogue): word-level reviews, final state -> classifier.

The data are the 2,997 "Sentiment Labelled Sentences" (Kotzias et al., KDD 2015; UCI; CC BY 4.0)
shipped in ``drnn_demo/data/sentiment/`` with their license note. The split is fixed by a hash of
each sentence's text (about 80/10/10 train/val/test, see the data README), so every run, every
seed and every library version sees the same test set.

- :class:`Sentiment` is the task object (the registry's interface). Its ``sample(n, seed)`` draws
  from one split (train by default) with replacement, left-padded to the longest drawn sentence;
  :meth:`Sentiment.eval_sets` gives the fixed validation and test sets.
- :func:`train_sentiment` is the dedicated trainer used for the pretrained model: epochs over the
  train split in batches of sentences of *equal length* (no padding, so the final state is exactly
  what the model computes on the bare sentence, as the analysis page shows it), early stopping on
  validation accuracy, and the bag-of-words logistic-regression baseline measured on the same split.
- :func:`explain` splits a sentence's logits into per-word shares through the unfolded LRN weights.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import math
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from ..models.common import check_choice, check_positive_int
from .base import Task

DATA_PATH = Path(__file__).resolve().parents[1] / "data" / "sentiment" / "sentences.tsv"
SPLITS = ("train", "val", "test")
PAD, UNK = "<pad>", "<unk>"
LABELS = ("negative", "positive")
PROGRESS_EVERY = 10  # batches between progress reports of train_sentiment
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[!?]")


def tokenize(text: str) -> list[str]:
    """Lower-cased words (with an apostrophe suffix such as ``don't``), numbers, and ``!``/``?``."""
    return _TOKEN.findall(text.lower())


def split_of(text: str) -> str:
    """The fixed split of a sentence: MD5 of its text, first 8 hex digits mod 10; 0 test, 1 val, else train."""
    bucket = int(hashlib.md5(text.encode("utf-8")).hexdigest()[:8], 16) % 10
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"


@dataclass(frozen=True)
class Sentence:
    source: str  # "amazon" | "imdb" | "yelp"
    label: int  # 0 negative, 1 positive
    text: str
    split: str


@lru_cache(maxsize=1)
def load_sentences(path: str | None = None) -> tuple[Sentence, ...]:
    """All sentences of the shipped TSV (or ``path``), in file order, with their split."""
    with open(path or DATA_PATH, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return tuple(Sentence(r["source"], int(r["label"]), r["text"], split_of(r["text"])) for r in rows)


def build_vocab(min_count: int = 1) -> list[str]:
    """Words seen at least ``min_count`` times in the train split, most frequent first (ties
    alphabetical), after ``<pad>`` (id 0) and ``<unk>`` (id 1)."""
    check_positive_int("min_count", min_count)
    counts = Counter(w for s in load_sentences() if s.split == "train" for w in tokenize(s.text))
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return [PAD, UNK, *words]


def encode(text: str, vocab: list[str] | dict[str, int]) -> torch.Tensor:
    """Token ids ``(L,)`` of a sentence; unknown words map to ``<unk>``; an empty sentence is ``[<unk>]``."""
    index = vocab if isinstance(vocab, dict) else {w: i for i, w in enumerate(vocab)}
    ids = [index.get(w, 1) for w in tokenize(text)] or [1]
    return torch.tensor(ids, dtype=torch.long)


class Sentiment(Task):
    """Binary sentiment of one-sentence reviews, word level, one prediction per sentence.

    Args:
        min_count: words rarer than this in the train split become ``<unk>`` (default 2).
        split: the split :meth:`sample` draws from (default ``"train"``).

    Shapes:
        - x: ``(n, L)`` long token ids, left-padded with ``<pad>`` (0) to the longest of the ``n``
        - y: ``(n,)`` long, 0 negative / 1 positive

    The generic :class:`~drnn_demo.training.Trainer` draws its validation and test sets through
    ``sample`` too, i.e. from ``split``; for honest numbers use :meth:`eval_sets` (or
    :func:`train_sentiment`, which does).
    """

    name = "sentiment"
    kind = "classification"
    metric = "accuracy"
    higher_is_better = True
    readout = "last"

    def __init__(self, min_count: int = 2, split: str = "train"):
        super().__init__()
        check_positive_int("min_count", min_count)
        check_choice("split", split, SPLITS)
        self.args = {"min_count": min_count, "split": split}
        self.vocab = build_vocab(min_count)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.vocab_size = len(self.vocab)
        self.input_size = 32  # suggested embedding size
        self.output_size = 2
        self.split = split

    def encoded(self, split: str) -> list[tuple[torch.Tensor, int]]:
        """Every sentence of ``split`` as ``(ids (L,), label)``, in file order."""
        check_choice("split", split, SPLITS)
        return [(encode(s.text, self.index), s.label) for s in load_sentences() if s.split == split]

    @staticmethod
    def pad(sequences: list[torch.Tensor]) -> torch.Tensor:
        """Left-pad id sequences with ``<pad>`` to a ``(n, max L)`` batch (the last column is every last word)."""
        length = max(len(s) for s in sequences)
        out = torch.zeros(len(sequences), length, dtype=torch.long)
        for row, s in enumerate(sequences):
            out[row, length - len(s):] = s
        return out

    def sample(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = self._generator(n, seed)
        data = self.encoded(self.split)
        picks = torch.randint(len(data), (n,), generator=g).tolist()
        return self.pad([data[i][0] for i in picks]), torch.tensor([data[i][1] for i in picks])

    def eval_set(self, split: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole held-out ``split`` ("val" or "test"), never training sentences: the split is fixed,
        so ``n`` and ``seed`` do not change it (the :class:`~drnn_demo.training.Trainer` passes them)."""
        check_choice("split", split, ("val", "test"))
        return self.eval_sets()[split]

    def eval_sets(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The fixed ``{"val": (x, y), "test": (x, y)}`` sets, whole splits, left-padded."""
        out = {}
        for split in ("val", "test"):
            data = self.encoded(split)
            out[split] = self.pad([ids for ids, _ in data]), torch.tensor([label for _, label in data])
        return out


# ---------------------------------------------------------------------------------- training


def _length_batches(data: list[tuple[torch.Tensor, int]], batch_size: int, generator: torch.Generator | None):
    """Batches of equal-length sentences (no padding); shuffled within lengths and across batches
    when a generator is given."""
    by_length: dict[int, list[int]] = {}
    for i, (ids, _) in enumerate(data):
        by_length.setdefault(len(ids), []).append(i)
    batches = []
    for length in sorted(by_length):
        idx = by_length[length]
        if generator is not None:
            idx = [idx[j] for j in torch.randperm(len(idx), generator=generator).tolist()]
        batches += [idx[k:k + batch_size] for k in range(0, len(idx), batch_size)]
    if generator is not None:
        batches = [batches[j] for j in torch.randperm(len(batches), generator=generator).tolist()]
    for batch in batches:
        yield torch.stack([data[i][0] for i in batch]), torch.tensor([data[i][1] for i in batch])


@torch.no_grad()
def evaluate_sentences(model, data: list[tuple[torch.Tensor, int]], batch_size: int = 256) -> dict[str, float]:
    """Accuracy and cross-entropy of ``model`` on ``(ids, label)`` pairs, each sentence unpadded."""
    was_training = model.training
    model.eval()
    correct, loss, n = 0, 0.0, 0
    for x, y in _length_batches(data, batch_size, None):
        logits = model(x)
        correct += int((logits.argmax(-1) == y).sum())
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
        n += len(y)
    model.train(was_training)
    return {"accuracy": correct / n, "cross_entropy": loss / n, "n": n}


def bag_of_words_baseline(min_count: int = 2, grid: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0)) -> dict:
    """Logistic regression on binary bag-of-words features (same tokenizer, same vocabulary, same
    split), its ``C`` chosen on validation accuracy; returns val and test accuracy and ``C``."""
    import numpy as np
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    task = Sentiment(min_count=min_count)

    def features(split):  # sparse binary word presence, <pad> and <unk> left out
        data = task.encoded(split)
        rows, cols = [], []
        for row, (ids, _) in enumerate(data):
            words = sorted({int(i) for i in ids if i >= 2})
            rows += [row] * len(words)
            cols += words
        X = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(data), task.vocab_size))
        return X, np.array([label for _, label in data])

    (Xtr, ytr), (Xva, yva), (Xte, yte) = (features(s) for s in SPLITS)
    best = None
    for C in grid:
        clf = LogisticRegression(C=C, max_iter=2000).fit(Xtr, ytr)
        val = float((clf.predict(Xva) == yva).mean())
        if best is None or val > best[0]:
            best = (val, C, clf)
    val, C, clf = best
    return {"val_accuracy": val, "test_accuracy": float((clf.predict(Xte) == yte).mean()), "C": C,
            "model": "binary bag of words + logistic regression (scikit-learn), C tuned on val"}


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

    def card(self, **extra) -> dict:
        """A JSON model card for :func:`drnn_demo.checkpoints.save_checkpoint`: the training config
        (shaped like a TrainConfig dict, plus this trainer's own settings), vocabulary, metrics,
        baseline, history and data provenance."""
        cfg = self.config
        train = {"task": "sentiment", "task_args": {"min_count": cfg["min_count"]},
                 "model": {"core": "lrn", "core_args": dict(cfg["core_args"]), "input_size": cfg["embedding_size"]},
                 "seed": cfg["seed"], "trainer": "drnn_demo.tasks.sentiment.train_sentiment",
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
    on_progress: Callable[[dict], None] | None = None,
) -> SentimentResult:
    """Train a word-level unidirectional LRN sentiment classifier on the fixed split.

    The model is ``SequenceModel("lrn", {"hidden_size", "activation"}, input_size=embedding_size,
    output_size=2, vocab_size=len(vocab), readout="last")``: embedding -> LRN -> final state ->
    linear. ``dropout`` is applied to the embedded words during training only (a forward hook that
    is removed afterwards, so the returned model is a plain SequenceModel). AdamW with gradient
    clipping at 1, the weights of the best validation accuracy kept
    (early stop after ``patience`` epochs without improvement). Metrics are measured on every
    sentence unpadded. With ``baseline`` the bag-of-words logistic regression is measured too.

    ``on_progress`` (optional) receives ``{"step", "total_steps", "loss", "metrics", "elapsed"}`` after
    every ``PROGRESS_EVERY`` batches and after every epoch (``step`` counts batches; the epoch's
    validation accuracy comes in ``metrics``); ``should_stop()`` is checked at the same points.

    ``threads``: torch's intra-op threads during the call, restored afterwards (None: leave them).
    This model is so small that extra threads only add synchronisation: on two busy cores one
    thread trained 9x faster than two.
    """
    previous = torch.get_num_threads()
    if threads is not None:
        check_positive_int("threads", threads)
        torch.set_num_threads(threads)
    try:
        return _train_sentiment(hidden_size, embedding_size, activation, epochs, batch_size, lr, weight_decay,
                                dropout, patience, min_count, seed, baseline, log, should_stop, on_progress)
    finally:
        torch.set_num_threads(previous)


def _train_sentiment(hidden_size, embedding_size, activation, epochs, batch_size, lr, weight_decay, dropout,
                     patience, min_count, seed, baseline, log, should_stop, on_progress=None) -> SentimentResult:
    from ..models import SequenceModel

    check_positive_int("epochs", epochs)
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
    config = {"hidden_size": hidden_size, "embedding_size": embedding_size, "activation": activation,
              "core_args": core_args, "epochs": epochs, "batch_size": batch_size, "lr": lr,
              "weight_decay": weight_decay, "dropout": dropout, "patience": patience, "min_count": min_count,
              "seed": seed}
    history, best, best_epoch, since = [], (-math.inf, math.inf), 0, 0
    best_state = copy.deepcopy(model.state_dict())
    per_epoch = sum(1 for _ in _length_batches(data["train"], batch_size, None))
    step, stopped = 0, False

    def report(loss: float, metrics: dict | None = None) -> None:
        if on_progress is not None:
            on_progress({"step": step, "total_steps": epochs * per_epoch, "loss": loss, "metrics": metrics or {},
                         "elapsed": time.perf_counter() - start})

    for epoch in range(1, epochs + 1):
        if stopped or (should_stop is not None and should_stop()):
            break
        model.train()
        total, n = 0.0, 0
        for x, y in _length_batches(data["train"], batch_size, generator):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            total, n, step = total + float(loss.detach()) * len(y), n + len(y), step + 1
            if step % PROGRESS_EVERY == 0:
                report(total / n)
                if should_stop is not None and should_stop():
                    stopped = True
                    break
        if stopped:
            break
        val = evaluate_sentences(model, data["val"])
        history.append({"epoch": epoch, "loss": total / n, "val": val, "elapsed": time.perf_counter() - start})
        report(total / n, {"val_accuracy": val["accuracy"], "val_cross_entropy": val["cross_entropy"]})
        if log is not None:
            log(f"epoch {epoch}: train loss {total / n:.4f}, val accuracy {val['accuracy']:.4f}")
        score = (val["accuracy"], -val["cross_entropy"])
        if score > best:
            best, best_epoch, since = score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since += 1
            if patience and since >= patience:
                break
    if hook is not None:
        hook.remove()
    model.load_state_dict(best_state)
    model.eval()
    metrics = {split: evaluate_sentences(model, data[split]) for split in SPLITS}
    return SentimentResult(
        model=model, vocab=task.vocab, config=config, metrics=metrics,
        baseline=bag_of_words_baseline(min_count) if baseline else None,
        history=history, best_epoch=best_epoch, elapsed=time.perf_counter() - start,
    )


PRETRAINED_NAME = "lrn_sentiment"


def pretrain_sentiment(out: str | Path | None = None, force: bool = False,
                       log: Callable[[str], None] | None = print, **kwargs) -> Path:
    """Train the pretrained sentiment LRN (if missing, or with ``force``) and save it as
    ``<out>/lrn_sentiment.{safetensors,json}`` (``out`` defaults to ``pretrained/``; with
    ``activation="tanh"`` in ``kwargs``: ``lrn_sentiment_tanh.*``); returns the weights path.
    ``kwargs`` go to :func:`train_sentiment`. About half a minute on one CPU core."""
    from ..checkpoints import checkpoint_paths, save_checkpoint
    from ..pretrained import PRETRAINED_DIR

    activation = kwargs.get("activation", "identity")
    name = PRETRAINED_NAME if activation == "identity" else f"{PRETRAINED_NAME}_{activation}"
    weights, _ = checkpoint_paths(Path(out or PRETRAINED_DIR) / name)
    if weights.exists() and not force:
        if log is not None:
            log(f"{weights} exists (use force=True to retrain)")
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
    from ..checkpoints import save_checkpoint

    kwargs = {"baseline": False, **{k: v for k, v in config.items() if k not in ("log", "threads", "device")}}
    result = train_sentiment(**kwargs, threads=None, log=print, should_stop=should_stop, on_progress=on_progress)
    card = result.card(name=f"{PRETRAINED_NAME}_{run_dir.name}", run_id=run_dir.name)
    checkpoint = save_checkpoint(Path(run_dir) / "model.safetensors", result.model, card)
    cancelled = should_stop()
    epochs = len(result.history)
    test, val = result.metrics["test"], result.metrics["val"]
    message = (f"LRN ({result.config['activation']}, H={result.config['hidden_size']}): test accuracy "
               f"{test['accuracy']:.3f} (validation {val['accuracy']:.3f}, best epoch {result.best_epoch} of {epochs})")
    status = "cancelled" if cancelled else "early_stopped" if epochs < result.config["epochs"] else "finished"
    return {"status": status, "message": message, "checkpoint": checkpoint,
            "metrics": {"val_accuracy": val["accuracy"], "test_accuracy": test["accuracy"],
                        "test_cross_entropy": test["cross_entropy"]}}


def load_pretrained_sentiment(path: str | Path | None = None):
    """``(model, vocab, card)`` of the pretrained sentiment model (default ``pretrained/lrn_sentiment``)."""
    from ..checkpoints import load_checkpoint
    from ..pretrained import PRETRAINED_DIR

    model, card = load_checkpoint(path or Path(PRETRAINED_DIR) / PRETRAINED_NAME)
    return model, card["vocab"], card


# ---------------------------------------------------------------------------------- analysis


@dataclass
class Explanation:
    """One sentence through a sentiment model: words, probabilities, and each word's share.

    ``weights`` are the unit-averaged LRN weights of each word in the final state, ``shares`` its
    contribution to ``logit(positive) - logit(negative)``; for the identity activation
    ``sum(shares) + bias_share`` equals that logit difference exactly (``error`` says how far off
    it is, for tanh). ``token_weights`` holds the full analysis (:class:`~drnn_demo.token_weights.TokenWeights`).
    """

    words: list[str]
    ids: torch.Tensor
    probabilities: torch.Tensor  # (2,)
    weights: torch.Tensor  # (L,)
    shares: torch.Tensor  # (L,)
    bias_share: float
    margin: float  # the model's logit(positive) - logit(negative)
    error: float  # |margin - (sum(shares) + bias_share)|
    token_weights: object


@torch.no_grad()
def explain(model, text: str, vocab: list[str]) -> Explanation:
    """Run ``model`` (a sentiment :class:`~drnn_demo.models.SequenceModel` with an LRN core) on
    ``text`` and split its decision over the words."""
    from ..token_weights import token_weights

    index = {w: i for i, w in enumerate(vocab)}
    ids = encode(text, index)
    words = [w if w in index else f"{w} ({UNK})" for w in tokenize(text)] or [UNK]
    logits = model.eval()(ids.unsqueeze(0))[0].double()
    tw = token_weights(model, ids, tokens=words)
    contrib = tw.logit_contributions(-1)  # (L, 2)
    shares = contrib[:, 1] - contrib[:, 0]
    head_bias = model.head.bias.detach().double()
    initial = (tw.readout_weight @ (tw.log_forget_chain(-1)[0].exp() * tw.forget_gate[0] * tw.h0))
    bias_share = float(head_bias[1] - head_bias[0] + initial[1] - initial[0])
    margin = float(logits[1] - logits[0])
    return Explanation(
        words=words, ids=ids, probabilities=torch.softmax(logits, -1), weights=tw.mean[-1], shares=shares,
        bias_share=bias_share, margin=margin, error=abs(margin - float(shares.sum()) - bias_share), token_weights=tw,
    )
