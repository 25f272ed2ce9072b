"""Sentence sentiment (LRN's AmaPolar analogue): word-level reviews, final state -> classifier.

The data are the 2,997 "Sentiment Labelled Sentences" (Kotzias et al., KDD 2015; UCI; CC BY 4.0)
shipped in ``drnn_demo/data/sentiment/`` with their license note. The split is fixed by a hash of
each sentence's text (about 80/10/10 train/val/test, see the data README), so every run, every
seed and every library version sees the same test set.

- :class:`Sentiment` is the task object (the registry's interface). Its ``sample(n, seed)`` draws
  from one split (train by default) with replacement, left-padded to the longest drawn sentence;
  :meth:`Sentiment.eval_sets` gives the fixed validation and test sets.
- :func:`length_batches` groups sentences of *equal length* (no padding, so the final state is exactly
  what the model computes on the bare sentence, as the analysis page shows it) and
  :func:`evaluate_sentences` scores a model on a split that way; :func:`bag_of_words_baseline` is
  the logistic-regression baseline on the same split. The trainer is
  :func:`drnn_demo.recipes.sentiment.train_sentiment`.
- :func:`explain` splits a sentence's logits into per-word shares through the unfolded LRN weights.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from dataclasses import dataclass
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

    The generic :class:`~drnn_demo.training.Trainer` trains on ``sample`` (``split``) and
    validates and tests on :meth:`eval_set`, i.e. on the fixed held-out splits.
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


def length_batches(data: list[tuple[torch.Tensor, int]], batch_size: int, generator: torch.Generator | None):
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
    for x, y in length_batches(data, batch_size, None):
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
