"""Part-of-speech tagging on UD English EWT: data, vocabularies, batches and a small trainer.

The shipped files (``drnn_demo/data/ud_english_ewt``, CC BY-SA 4.0) are the treebank's train
(gzip-compressed), dev and test splits, parsed with the ``conllu`` package; multi-word token ranges
and empty nodes are skipped, so a sentence is its words and their UPOS tags. Two ways to split
them (``source``):

- ``"ewt"``, as the paper: train on the train file (12,544 sentences), validate (early stopping,
  model selection) on the dev file, report the test file;
- ``"dev"``, the small budget's quick setting: train on the dev file except its last
  :data:`VAL_SENTENCES` sentences, validate on those, report the test file.

The score is token accuracy over every word of the test file.

Vocabularies come from the training sentences only: lowercased word forms seen at least
``min_count`` times (the others map to ``<unk>``; the character encoder still reads them) and
every character of the training words (unseen characters map to ``<unk>``).
"""

from __future__ import annotations

import functools
import gzip
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..models.pos_tagger import POSTagger

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "ud_english_ewt"
FILES = {"train": "en_ewt-ud-train.conllu.gz", "dev": "en_ewt-ud-dev.conllu", "test": "en_ewt-ud-test.conllu"}
SPLITS = ("train", "val", "test")
SOURCES = ("ewt", "dev")
VAL_SENTENCES = 200
MAX_CHARS = 20  # characters per word read by the character encoder (longer words are cut)
PAD, UNK = 0, 1


@functools.lru_cache(maxsize=3)
def read_conllu(name: str) -> tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]:
    """The sentences of a shipped file (``"train"``, ``"dev"`` or ``"test"``) as (words, UPOS tags) pairs."""
    import conllu

    if name not in FILES:
        raise ValueError(f"name must be one of {sorted(FILES)}, got {name!r}")
    path = DATA_DIR / FILES[name]
    text = gzip.decompress(path.read_bytes()).decode("utf-8") if path.suffix == ".gz" else path.read_text("utf-8")
    sentences = []
    for sentence in conllu.parse(text):
        tokens = [t for t in sentence if isinstance(t["id"], int)]
        sentences.append((tuple(t["form"] for t in tokens), tuple(t["upos"] for t in tokens)))
    return tuple(sentences)


def sentences(split: str, source: str = "dev") -> tuple:
    """(words, tags) pairs of ``"train"``, ``"val"`` or ``"test"`` as ``source`` splits the treebank:
    ``"ewt"``: the train, dev and test files; ``"dev"``: dev minus its last 200, those 200, test."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {list(SOURCES)}, got {source!r}")
    if split == "test":
        return read_conllu("test")
    if source == "ewt" and split in ("train", "val"):
        return read_conllu("train" if split == "train" else "dev")
    dev = read_conllu("dev")
    if split == "train":
        return dev[:-VAL_SENTENCES]
    if split == "val":
        return dev[-VAL_SENTENCES:]
    raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")


@dataclass(frozen=True)
class Vocabulary:
    """Word, character and tag ids (index 0 = padding, 1 = ``<unk>`` for words and characters)."""

    words: tuple[str, ...]
    chars: tuple[str, ...]
    tags: tuple[str, ...]

    @classmethod
    def from_training(cls, min_count: int = 2, source: str = "dev") -> Vocabulary:
        train = sentences("train", source)
        counts = Counter(w.lower() for words, _ in train for w in words)
        words = sorted(w for w, c in counts.items() if c >= min_count)
        chars = sorted({ch for words_, _ in train for w in words_ for ch in w})
        tags = sorted({t for _, tags_ in train for t in tags_} | {t for _, tags_ in read_conllu("test") for t in tags_})
        return cls(("<pad>", "<unk>", *words), ("<pad>", "<unk>", *chars), tuple(tags))

    @functools.cached_property
    def _index(self) -> tuple[dict, dict, dict]:
        return ({w: i for i, w in enumerate(self.words)}, {c: i for i, c in enumerate(self.chars)},
                {t: i for i, t in enumerate(self.tags)})

    def batch(self, batch: list[tuple]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Padded ids of (words, tags) pairs: word_ids ``(B, L)``, char_ids ``(B, L, M)``, lengths ``(B,)``,
        tag_ids ``(B, L)`` with -100 (not scored) at padding."""
        words, chars, tags = self._index
        B, L = len(batch), max(len(w) for w, _ in batch)
        M = min(MAX_CHARS, max(len(w) for ws, _ in batch for w in ws))
        word_ids = torch.zeros(B, L, dtype=torch.long)
        char_ids = torch.zeros(B, L, M, dtype=torch.long)
        tag_ids = torch.full((B, L), -100, dtype=torch.long)
        for b, (ws, ts) in enumerate(batch):
            for t, (w, tag) in enumerate(zip(ws, ts, strict=True)):
                word_ids[b, t] = words.get(w.lower(), UNK)
                char_ids[b, t, : min(len(w), M)] = torch.tensor([chars.get(c, UNK) for c in w[:M]])
                tag_ids[b, t] = tags[tag]
        lengths = torch.tensor([len(w) for w, _ in batch])
        return word_ids, char_ids, lengths, tag_ids


@torch.no_grad()
def evaluate(model: POSTagger, vocab: Vocabulary, data, batch_size: int = 64) -> dict:
    """Token accuracy and cross-entropy over every word of ``data``, in batches of similar length."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(data)), key=lambda i: len(data[i][0]))
    correct = total = 0
    loss = 0.0
    for start in range(0, len(order), batch_size):
        word_ids, char_ids, lengths, tags = vocab.batch([data[i] for i in order[start : start + batch_size]])
        logits = model(word_ids, char_ids, lengths)
        scored = tags != -100
        correct += int(((logits.argmax(-1) == tags) & scored).sum())
        total += int(scored.sum())
        loss += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tags.reshape(-1), reduction="sum"))
    model.train(was_training)
    return {"accuracy": correct / total, "cross_entropy": loss / total, "tokens": total}
