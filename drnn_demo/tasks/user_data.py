"""Your own data: an uploaded text file, checked line by line, stored, and served as a task.

Formats (``fmt``; ``"auto"`` decides from the file name, then from the first line):

- ``"csv"`` / ``"tsv"``: a header row naming the columns ``text`` and ``label`` (other columns are
  ignored), one example per row: **sequence classification**, one prediction per text from the
  model's final output (``readout="last"``). A text is lower-cased and cut into words
  (:func:`tokenize`: letters and digits of any script with an apostrophe suffix, ``!``, ``?``).
- ``"conllu"``: CoNLL-U (10 tab-separated columns; ``#`` comments; multi-word ranges and empty nodes
  skipped): each word's FORM is tagged with its UPOS, **tagging**, one prediction per word.
- ``"tokens"``: two columns ``token tag`` per line (a tab or spaces between them), a blank line
  between sentences: **tagging** as well.

Checks (:mod:`drnn_demo.tasks.user_files`), before anything is kept; each problem is one
:class:`UserDataError` whose message names the line: size (at most :data:`MAX_UPLOAD_BYTES`,
5 MB), empty, binary (NUL or control bytes, UTF-16), UTF-8, columns, at most :data:`MAX_EXAMPLES`
examples of 1 to :data:`MAX_TOKENS` tokens each (a token at most :data:`MAX_TOKEN_CHARS`
characters), labels, at least two classes with at least :data:`MIN_PER_CLASS` examples each
(tagging: at least two tags with that many tokens; rarer tags are kept), at most
:data:`MAX_CLASSES` classes, every split non-empty, and each held-out split padded within
:data:`MAX_SPLIT_FLOATS` (the trainer's memory limit of an evaluation set).

Split: fixed by a hash of each example's text (:func:`drnn_demo.tasks.sentiment.split_of`: about
80/10/10 train/val/test), so every run and seed sees the same test set.

Storage: ``<runs dir>/datasets/<id>.json`` (:func:`datasets_dir`: ``$DRNN_RUNS_DIR/datasets``, else
``runs/datasets`` of the checkout), written atomically; ``id`` is the first 16 hex digits of the
SHA-256 of the format and the decoded text. Loading re-checks the file: its size, that its content
still hashes to its name, and every check above.

Python::

    from drnn_demo.tasks.user_data import store_dataset
    from drnn_demo.training import TrainConfig, Trainer

    info = store_dataset("reviews.csv")          # or store_dataset(b"text,label\\n...", name="x.csv")
    info.id, info.counts, info.split_sizes       # "3f1c...", {"bad": 61, "good": 59}, {"train": 96, ...}
    config = TrainConfig(task="user_data", task_args={"dataset": info.id}, steps=300,
                         model={"core": "lrn", "core_args": {"hidden_size": 32, "activation": "identity"}})
    result = Trainer(config).run()               # result.test_metrics["accuracy"]

or ``python -m drnn_demo train --data reviews.csv --model lrn``. :class:`UserData` is the task.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import stat
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from ..fileio import JSONFileError, read_json, write_json_atomic
from ..models.common import check_choice, check_positive_int
from .base import IGNORE_INDEX, Task
from .sentiment import split_of
from .user_files import (
    FORMAT_NAMES,
    FORMATS,
    MAX_CLASSES,
    MAX_EXAMPLES,
    MAX_LABEL_CHARS,
    MAX_SPLIT_FLOATS,
    MAX_TOKEN_CHARS,
    MAX_TOKENS,
    MAX_UPLOAD_BYTES,
    MIN_PER_CLASS,
    SPLITS,
    UserDataError,
    UserDataset,
    decode_upload,
    detect_format,
    parse_text,
    parse_upload,
    tokenize,
)

MAX_VOCAB_WORDS = 50_000  # the most frequent training words; the rest read as <unk>
MAX_VOCAB_JSON = 2**20  # bytes of the vocabulary in a model card (cards are read with a 4 MB limit)
MAX_STORED_BYTES = 6 * MAX_UPLOAD_BYTES + 2**16  # the JSON of a stored set (escapes take up to 6 bytes a char)
PAD, UNK = "<pad>", "<unk>"
EMBEDDING_SIZE = 32  # the suggested embedding size (input_size of the model)
STORE_FORMAT = "drnn_demo user data set"
_ID = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class DatasetInfo:
    """What the page and the CLI show of a (stored) data set."""

    id: str
    name: str
    problem: str
    fmt: str
    labels: tuple[str, ...]
    counts: dict[str, int]
    split_sizes: dict[str, int]
    examples: int
    tokens: int
    longest: int
    preview: list[dict]
    path: Path | None = None


# ------------------------------------------------------------------------------------ storage


def datasets_dir(root: str | os.PathLike | None = None) -> Path:
    """``root``, else ``$DRNN_RUNS_DIR/datasets``, else ``<checkout>/runs/datasets`` (``./runs/datasets``
    outside a checkout): beside the runs, where :func:`drnn_demo.jobs.default_runs_dir` keeps them."""
    if root is not None:
        return Path(root)
    env = os.environ.get("DRNN_RUNS_DIR")
    if env:
        return Path(env) / "datasets"
    project = Path(__file__).resolve().parents[2]
    return (project / "runs" if (project / "pyproject.toml").exists() else Path.cwd() / "runs") / "datasets"


def dataset_id(text: str, fmt: str) -> str:
    return hashlib.sha256(f"{fmt}\n{text}".encode()).hexdigest()[:16]


def describe(ds: UserDataset, ident: str, name: str, path: Path | None = None) -> DatasetInfo:
    """The summary of a parsed set: counts, split sizes, and a preview of its first five examples."""
    if ds.problem == "classification":
        preview = [{"line": ds.lines[i], "split": ds.splits[i], "label": ds.labels[ds.targets[i]],
                    "text": ds.texts[i], "words read": " ".join(ds.tokens[i])}
                   for i in range(min(5, len(ds.texts)))]
    else:
        preview = [{"line": ds.lines[i], "split": ds.splits[i], "tokens": ds.texts[i],
                    "tags": " ".join(ds.labels[t] for t in ds.targets[i])} for i in range(min(5, len(ds.texts)))]
    return DatasetInfo(ident, name, ds.problem, ds.fmt, ds.labels, ds.counts(), ds.split_sizes(), len(ds.texts),
                       sum(map(len, ds.tokens)), max(map(len, ds.tokens)), preview, path)


def _read_source(source: str | os.PathLike | bytes) -> tuple[bytes, str]:
    if isinstance(source, bytes | bytearray):
        return bytes(source), ""
    path = Path(source)
    try:
        size = path.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            raise UserDataError(f"{path.name} has {size:,} bytes; the limit is {MAX_UPLOAD_BYTES // 2**20} MB")
        with open(path, "rb") as f:
            return f.read(MAX_UPLOAD_BYTES + 1), path.name
    except OSError as err:
        raise UserDataError(f"cannot read {path} ({err.strerror or err})") from None


def store_dataset(source: str | os.PathLike | bytes, name: str | None = None, fmt: str = "auto",
                  root: str | os.PathLike | None = None) -> DatasetInfo:
    """Check ``source`` (a path, or the bytes of an upload) and store it under :func:`datasets_dir`.

    Raises :class:`UserDataError` (nothing written) for an unusable file. Storing the same content again
    gives the same id."""
    data, file_name = _read_source(source)
    name = name or file_name or "upload"
    text = decode_upload(data)
    fmt = detect_format(text, name) if fmt == "auto" else fmt
    ds = parse_text(text, fmt)
    ident = dataset_id(text, fmt)
    directory = datasets_dir(root)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{ident}.json"
    write_json_atomic(path, {"format": STORE_FORMAT, "version": 1, "id": ident, "name": str(name)[:200], "fmt": fmt,
                             "stored": time.time(), "text": text})
    return describe(ds, ident, str(name)[:200], path)


def _stored_path(ident: str, root) -> Path:
    if not isinstance(ident, str) or not _ID.fullmatch(ident):
        raise UserDataError(f"a data set id is 16 hex digits (from store_dataset or the Your data page), got {ident!r}")
    return datasets_dir(root) / f"{ident}.json"


@functools.lru_cache(maxsize=32)
def _load(path: str, mtime_ns: int, size: int) -> tuple[UserDataset, str]:
    ident = Path(path).stem
    try:
        record = read_json(path, max_bytes=MAX_STORED_BYTES)
    except (OSError, JSONFileError) as err:
        raise UserDataError(f"stored data set {ident} is damaged: {err}") from None
    text, fmt, name = record.get("text"), record.get("fmt"), record.get("name", "")
    if record.get("format") != STORE_FORMAT or not isinstance(text, str) or fmt not in FORMATS \
            or not isinstance(name, str):
        raise UserDataError(f"stored data set {ident} is damaged: not a {STORE_FORMAT} file")
    if dataset_id(text, fmt) != ident:
        raise UserDataError(f"stored data set {ident} is damaged: its content no longer matches its id (SHA-256)")
    try:
        return parse_text(decode_upload(text.encode("utf-8")), fmt), name
    except UserDataError as err:
        raise UserDataError(f"stored data set {ident}: {err}") from None


def load_dataset(ident: str, root: str | os.PathLike | None = None) -> tuple[UserDataset, DatasetInfo]:
    """A stored data set, checked again as an upload would be (:class:`UserDataError` if missing or unusable)."""
    path = _stored_path(ident, root)
    try:
        st = path.lstat()
    except OSError:
        raise UserDataError(f"no data set {ident} is stored in {path.parent}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UserDataError(f"stored data set {ident} is damaged: {path.name} is not a regular file (a symbolic link?)")
    ds, name = _load(str(path), st.st_mtime_ns, st.st_size)
    return ds, describe(ds, ident, name, path)


def list_datasets(root: str | os.PathLike | None = None) -> list[tuple[str, DatasetInfo | None, str]]:
    """Every stored set, newest first, as ``(id, info, "")`` or ``(id, None, problem)`` for a damaged one."""
    directory = datasets_dir(root)
    found = []
    for path in directory.glob("*.json") if directory.is_dir() else []:
        with contextlib.suppress(OSError):  # gone meanwhile
            if _ID.fullmatch(path.stem):
                found.append((path.lstat().st_mtime, path.stem))
    out = []
    for _, ident in sorted(found, reverse=True):
        try:
            out.append((ident, load_dataset(ident, directory)[1], ""))
        except UserDataError as err:
            out.append((ident, None, str(err)))
    return out


def delete_dataset(ident: str, root: str | os.PathLike | None = None) -> None:
    """Remove a stored set (runs trained on it keep their checkpoints, but cannot be re-tested)."""
    _stored_path(ident, root).unlink(missing_ok=True)


def opens_on_lrn_gates(config: dict) -> bool:
    """Whether a ``train`` run's config is an LRN two-class classifier of user data (the LRN gates page explains it)."""
    model = config.get("model") or {}
    return (config.get("task") == "user_data" and model.get("core") == "lrn" and model.get("readout") == "last"
            and model.get("output_size") == 2)


def opens_on_streaming(config: dict) -> bool:
    """Whether a ``train`` run's config is a tagger of user data (``readout="steps"``) whose core the Streaming page
    streams: a delayed RNN at any delay (stepped once per token) or a bidirectional one (re-run on every prefix)."""
    model = config.get("model") if isinstance(config, dict) else None
    args = model.get("core_args") if isinstance(model, dict) else None
    return (isinstance(args, dict) and config.get("task") == "user_data" and model.get("readout") == "steps"
            and model.get("core") in ("delayed", "bidirectional") and not args.get("block_sizes"))


# ------------------------------------------------------------------------------------ the task


class UserData(Task):
    """A stored data set as a task: classification (one prediction per text) or tagging (one per token).

    Args:
        dataset: the id of a stored set (:func:`store_dataset`).
        min_count: training words seen fewer times become ``<unk>`` (default 2, so ``<unk>`` is trained);
            the vocabulary keeps the most frequent, at most :data:`MAX_VOCAB_WORDS` words and
            :data:`MAX_VOCAB_JSON` bytes of JSON (it goes into the model card).
        root: the datasets directory (default :func:`datasets_dir`).

    Shapes (``n`` examples, ``L`` the longest of them):
        - x: ``(n, L)`` long token ids; classification left-pads with ``<pad>`` (0), so the last column
          is every text's last word; tagging right-pads
        - y: classification ``(n,)`` class ids; tagging ``(n, L)`` tag ids, ``IGNORE_INDEX`` at padding
          (not scored)

    ``sample`` draws from the train split with replacement; ``eval_set`` is the whole val / test split.
    """

    name = "user_data"
    kind = "classification"
    metric = "accuracy"
    higher_is_better = True

    def __init__(self, dataset: str = "", min_count: int = 2, root: str | None = None):
        super().__init__()
        if not dataset:
            raise ValueError("task 'user_data' needs dataset=<id> of a stored data set (store_dataset, the Your data "
                             "page, or `python -m drnn_demo train --data FILE`)")
        check_positive_int("min_count", min_count)
        self.args = {"dataset": dataset, "min_count": min_count, "root": root}
        self.data, self.info = load_dataset(dataset, root)
        self.problem = self.data.problem
        self.readout = "last" if self.problem == "classification" else "steps"
        self.labels = list(self.data.labels)
        counts = Counter(w for words, s in zip(self.data.tokens, self.data.splits, strict=True) if s == "train"
                         for w in words)
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        self.vocab, size = [PAD, UNK], 0
        for word in kept[:MAX_VOCAB_WORDS]:
            size += len(json.dumps(word)) + 2
            if size > MAX_VOCAB_JSON:
                break
            self.vocab.append(word)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.vocab_size = len(self.vocab)
        self.input_size = EMBEDDING_SIZE
        self.output_size = len(self.labels)
        self._encoded = {split: [] for split in SPLITS}
        for words, target, split in zip(self.data.tokens, self.data.targets, self.data.splits, strict=True):
            self._encoded[split].append((torch.tensor([self.index.get(w, 1) for w in words]), target))

    def encode(self, text: str) -> torch.Tensor:
        """Token ids ``(L,)`` of a text as the model reads it (classification), ``[<unk>]`` if it has no words."""
        return torch.tensor([self.index.get(w, 1) for w in tokenize(text)] or [1])

    def _batch(self, items: list) -> tuple[torch.Tensor, torch.Tensor]:
        length = max(len(ids) for ids, _ in items)
        x = torch.zeros(len(items), length, dtype=torch.long)
        if self.problem == "classification":
            for row, (ids, _) in enumerate(items):
                x[row, length - len(ids):] = ids
            return x, torch.tensor([target for _, target in items])
        y = torch.full((len(items), length), IGNORE_INDEX, dtype=torch.long)
        for row, (ids, target) in enumerate(items):
            x[row, : len(ids)], y[row, : len(ids)] = ids, torch.tensor(target)
        return x, y

    def sample(self, n: int, seed: int, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        check_choice("split", split, SPLITS)
        g = self._generator(n, seed)
        data = self._encoded[split]
        return self._batch([data[i] for i in torch.randint(len(data), (n,), generator=g).tolist()])

    def eval_set(self, split: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole held-out ``split`` ("val" or "test"); ``n`` and ``seed`` do not change it (the split is fixed)."""
        check_choice("split", split, ("val", "test"))
        return self._batch(self._encoded[split])

    def card_entries(self) -> dict:
        """What a model card needs to read inputs and name outputs: vocabulary, labels, the data set."""
        return {"vocab": self.vocab, "labels": self.labels, "problem": self.problem,
                "data": f"your data set {self.info.id} ({self.info.name}, {FORMAT_NAMES[self.data.fmt]}): "
                        f"{self.info.examples:,} examples; fixed split by MD5 of the text mod 10: 0 test, 1 val, "
                        "2-9 train"}


__all__ = [
    "FORMATS", "FORMAT_NAMES", "MAX_CLASSES", "MAX_EXAMPLES", "MAX_LABEL_CHARS", "MAX_SPLIT_FLOATS", "MAX_TOKENS",
    "MAX_TOKEN_CHARS", "MAX_UPLOAD_BYTES", "MIN_PER_CLASS", "SPLITS", "DatasetInfo", "UserData", "UserDataError",
    "UserDataset", "datasets_dir", "decode_upload", "delete_dataset", "detect_format", "list_datasets", "load_dataset",
    "opens_on_lrn_gates", "opens_on_streaming", "parse_text", "parse_upload", "split_of", "store_dataset", "tokenize",
]
