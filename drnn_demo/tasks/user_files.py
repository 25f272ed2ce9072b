"""Reading an uploaded data set: decoding, the formats, and every check, each problem one message naming the line.

The data-set side of :mod:`drnn_demo.tasks.user_data` (which stores a checked set and serves it as a
task; its docstring lists the formats). :func:`parse_upload` turns the bytes of an upload into a
:class:`UserDataset` or raises :class:`UserDataError`; nothing here writes a file.

Limits: :data:`MAX_UPLOAD_BYTES` (5 MB), :data:`MAX_EXAMPLES` examples of 1 to :data:`MAX_TOKENS`
tokens (a token at most :data:`MAX_TOKEN_CHARS` characters, a label at most :data:`MAX_LABEL_CHARS`),
at least two classes of at least :data:`MIN_PER_CLASS` examples (tagging: two tags of that many tokens),
at most :data:`MAX_CLASSES`, no empty split, and each held-out split, padded to its longest example,
within :data:`MAX_SPLIT_FLOATS` floats (``examples x longest x (1 + 2 x tags)``, the trainer's limit).
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..models.common import check_choice
from .sentiment import split_of

MAX_UPLOAD_BYTES = 5 * 2**20  # 5 MB of text
MAX_EXAMPLES = 20_000  # rows (classification) or sentences (tagging)
MAX_TOKENS = 1_000  # tokens of one text or sentence
MAX_TOKEN_CHARS = 200  # characters of one token (a longer "word" is most likely not text)
MAX_LABEL_CHARS = 100
MIN_PER_CLASS = 5
MAX_CLASSES = 100
MAX_SPLIT_FLOATS = 2**28  # = resources.MAX_EVAL_FLOATS: a padded held-out split, its targets and predictions
FORMATS = ("csv", "tsv", "conllu", "tokens")
FORMAT_NAMES = {"csv": "CSV (text,label)", "tsv": "TSV (text<TAB>label)", "conllu": "CoNLL-U", "tokens": "token/tag"}
SPLITS = ("train", "val", "test")
_WORD = re.compile(r"[^\W_]+(?:'[^\W\d_]+)?|[!?]")
_CONTROL = re.compile(rb"[\x00-\x08\x0e-\x1f]")
_SUFFIX = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".conllu": "conllu"}


class UserDataError(ValueError):
    """An upload (or a stored data set) that cannot be used; the message is one sentence naming the line."""


def tokenize(text: str) -> list[str]:
    """Lower-cased words of any script (with an apostrophe suffix such as ``don't``), numbers, ``!`` and ``?``.

    On ASCII text this is exactly :func:`drnn_demo.tasks.sentiment.tokenize` (the LRN gates page reads a
    sentence with that one)."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class UserDataset:
    """A parsed, checked data set. ``problem``: ``"classification"`` (``targets[i]`` a class id) or
    ``"tagging"`` (``targets[i]`` a tuple of tag ids, one per token). ``labels`` are sorted; ids index them."""

    problem: str
    fmt: str
    labels: tuple[str, ...]
    tokens: tuple[tuple[str, ...], ...]
    targets: tuple
    texts: tuple[str, ...]  # the text, or the sentence's tokens joined by spaces: what the split hashes
    lines: tuple[int, ...]  # the line each example starts on
    splits: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "splits", tuple(split_of(t) for t in self.texts))

    def counts(self) -> dict[str, int]:
        """Examples per class (classification) or tokens per tag (tagging)."""
        c = Counter(self.targets) if self.problem == "classification" else Counter(t for ts in self.targets for t in ts)
        return {label: c[i] for i, label in enumerate(self.labels)}

    def split_sizes(self) -> dict[str, int]:
        c = Counter(self.splits)
        return {s: c[s] for s in SPLITS}


def _line_of(data: bytes | str, offset: int) -> int:
    return data[:offset].count(b"\n" if isinstance(data, bytes) else "\n") + 1


def decode_upload(data: bytes) -> str:
    """The text of an upload: within the size limit, not empty, not binary, UTF-8 (a BOM is dropped)."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise UserDataError(f"the file has {len(data):,} bytes; the limit is {MAX_UPLOAD_BYTES // 2**20} MB "
                            f"({MAX_UPLOAD_BYTES:,} bytes)")
    if not data.strip():
        raise UserDataError("the file is empty")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise UserDataError("the file is UTF-16 text: save it as UTF-8")
    binary = _CONTROL.search(data)
    if binary:
        at = binary.start()
        raise UserDataError(f"line {_line_of(data, at)}: binary content (byte 0x{data[at]:02x}); "
                            "upload a UTF-8 text file (CSV, TSV, CoNLL-U or token/tag)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserDataError(f"line {_line_of(data, err.start)}: not UTF-8 (byte 0x{data[err.start]:02x}); save the "
                            "file as UTF-8") from None
    return text.removeprefix("\ufeff")


def _first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip() and not line.startswith("#")), "")


def detect_format(text: str, name: str = "") -> str:
    """``"csv"``, ``"tsv"``, ``"conllu"`` or ``"tokens"``: by the file name's suffix, else by the first line."""
    suffix = Path(name).suffix.lower()
    if suffix in _SUFFIX:
        return _SUFFIX[suffix]
    first = _first_line(text)
    if first.count("\t") >= 9:
        return "conllu"
    for fmt, delimiter in (("tsv", "\t"), ("csv", ",")):
        if {"text", "label"} & {c.strip().lower() for c in first.split(delimiter)}:
            return fmt
    return "csv" if "," in first and "\t" not in first else "tokens"


def _check_tokens(tokens: list[str], where: str) -> None:
    if not tokens:
        raise UserDataError(f"{where}: no words in the text")
    if len(tokens) > MAX_TOKENS:
        raise UserDataError(f"{where}: {len(tokens):,} tokens; the limit is {MAX_TOKENS:,} per "
                            f"{'sentence' if where.startswith('sentence') else 'text'}")
    long = next((t for t in tokens if len(t) > MAX_TOKEN_CHARS), None)
    if long is not None:
        raise UserDataError(f"{where}: a token of {len(long):,} characters ({long[:20]}…); the limit is "
                            f"{MAX_TOKEN_CHARS}")


def _check_count(count: int, line: int, what: str) -> None:
    if count > MAX_EXAMPLES:
        raise UserDataError(f"line {line}: more than {MAX_EXAMPLES:,} {what}; the limit is {MAX_EXAMPLES:,}")


def _parse_table(text: str, delimiter: str) -> tuple[list, list, list, list]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    sep = "tab" if delimiter == "\t" else "comma"
    tokens, labels, texts, lines = [], [], [], []
    header, start = None, 1
    try:
        for row in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [c.strip().lower() for c in row]
                if header.count("text") != 1 or header.count("label") != 1:
                    found = ", ".join(repr(c) for c in row[:6]) + (", …" if len(row) > 6 else "")
                    raise UserDataError(f"line {line}: the header must name the columns text and label once each "
                                        f"({sep}-separated); found {found}")
                i_text, i_label = header.index("text"), header.index("label")
                continue
            if len(row) != len(header):
                raise UserDataError(f"line {line}: {len(row)} fields, the header has {len(header)} (a text with a "
                                    f"{sep} in it must be in double quotes)")
            _check_count(len(texts) + 1, line, "rows")
            body, label = row[i_text].strip(), row[i_label].strip()
            if not label:
                raise UserDataError(f"line {line}: the label is empty")
            if len(label) > MAX_LABEL_CHARS:
                raise UserDataError(f"line {line}: a label of {len(label):,} characters; the limit is "
                                    f"{MAX_LABEL_CHARS}")
            words = tokenize(body)
            _check_tokens(words, f"line {line}")
            tokens.append(tuple(words)), labels.append(label), texts.append(body), lines.append(line)
    except csv.Error as err:
        raise UserDataError(f"line {reader.line_num}: {err}") from None
    if header is None:
        raise UserDataError("the file is empty")
    if not texts:
        raise UserDataError("the file has a header but no rows")
    return tokens, labels, texts, lines


def _parse_tagged(text: str, fmt: str) -> tuple[list, list, list, list]:
    tokens, tags, lines = [], [], []
    words, word_tags, start = [], [], 0

    def end_sentence() -> None:
        if words:
            _check_count(len(tokens) + 1, start, "sentences")
            _check_tokens(words, f"sentence at line {start}")
            tokens.append(tuple(words)), tags.append(tuple(word_tags)), lines.append(start)
        words.clear(), word_tags.clear()

    for number, raw in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        line = raw.strip()
        if not line:
            end_sentence()
            continue
        if fmt == "conllu":
            if line.startswith("#"):
                continue
            cols = raw.rstrip("\n").split("\t")
            if len(cols) != 10:
                raise UserDataError(f"line {number}: {len(cols)} tab-separated columns; CoNLL-U has 10")
            if "-" in cols[0] or "." in cols[0]:
                continue  # a multi-word range or an empty node
            if not cols[0].isdigit():
                raise UserDataError(f"line {number}: ID {cols[0][:20]!r} is not a CoNLL-U word id")
            form, tag = cols[1].strip(), cols[3].strip()
            if not form:
                raise UserDataError(f"line {number}: the word (FORM, column 2) is empty")
            if not tag or tag == "_":
                raise UserDataError(f"line {number}: no UPOS tag (column 4 is {tag or 'empty'!r})")
        else:
            cols = line.split("\t") if "\t" in line else line.split()
            if len(cols) != 2:
                raise UserDataError(f"line {number}: {len(cols)} columns; a token/tag file has two (token, tag) "
                                    "and a blank line between sentences")
            form, tag = cols[0].strip(), cols[1].strip()
            if not form or not tag:
                raise UserDataError(f"line {number}: an empty {'token' if not form else 'tag'}")
        if len(tag) > MAX_LABEL_CHARS:
            raise UserDataError(f"line {number}: a tag of {len(tag):,} characters; the limit is {MAX_LABEL_CHARS}")
        if not words:
            start = number
        words.append(form.lower())
        word_tags.append(tag)
    end_sentence()
    if not tokens:
        raise UserDataError("the file has no sentences" if fmt == "conllu" else "the file has no token lines")
    return tokens, tags, [" ".join(ws) for ws in tokens], lines


def _check_classes(labels: list, lines: list[int], problem: str) -> None:
    if problem == "classification":
        counts, first = Counter(labels), {}
        for label, line in zip(labels, lines, strict=True):
            first.setdefault(label, line)
    else:
        counts, first = Counter(t for ts in labels for t in ts), {}
        for ts, line in zip(labels, lines, strict=True):
            for t in ts:
                first.setdefault(t, line)
    unit = "rows" if problem == "classification" else "tokens"
    if len(counts) < 2:
        (only, n), = counts.items()
        raise UserDataError(f"only one {'class' if problem == 'classification' else 'tag'} ({only!r}, {n:,} "
                            f"{unit if n != 1 else unit[:-1]}); "
                            "at least two are needed")
    if len(counts) > MAX_CLASSES:
        raise UserDataError(f"{len(counts):,} different labels; the limit is {MAX_CLASSES} (is the label column "
                            "right?)")
    if problem == "classification":
        for label, n in sorted(counts.items(), key=lambda kv: first[kv[0]]):
            if n < MIN_PER_CLASS:
                raise UserDataError(f"line {first[label]}: class {label!r} has {n} row{'s' * (n != 1)}; each class "
                                    f"needs at least {MIN_PER_CLASS}")
    elif sum(n >= MIN_PER_CLASS for n in counts.values()) < 2:
        raise UserDataError(f"fewer than two tags have at least {MIN_PER_CLASS} tokens ({dict(counts.most_common(3))})")


def _check_splits(ds: UserDataset) -> None:
    sizes = ds.split_sizes()
    for split in SPLITS:
        if not sizes[split]:
            raise UserDataError(f"the {split} split is empty: each example goes to train, val or test (about 80/10/10) "
                                f"by a hash of its text, and {len(ds.texts):,} examples were too few; add more")
    outputs = len(ds.labels) if ds.problem == "tagging" else 0
    for split in ("val", "test"):
        rows = [i for i, s in enumerate(ds.splits) if s == split]
        longest = max(rows, key=lambda i: len(ds.tokens[i]))
        floats = len(rows) * len(ds.tokens[longest]) * (1 + 2 * outputs)
        if floats > MAX_SPLIT_FLOATS:
            raise UserDataError(f"line {ds.lines[longest]}: the {split} split padded to its longest example "
                                f"({len(ds.tokens[longest]):,} tokens) needs {floats:,} floats, more than the "
                                f"{MAX_SPLIT_FLOATS:,} the trainer allows; shorten that example or the file")


def parse_text(text: str, fmt: str) -> UserDataset:
    """Parse and check decoded text in format ``fmt`` (one of :data:`FORMATS`); :class:`UserDataError` if unusable."""
    check_choice("fmt", fmt, FORMATS)
    if fmt in ("csv", "tsv"):
        tokens, labels, texts, lines = _parse_table(text, "," if fmt == "csv" else "\t")
        problem = "classification"
    else:
        tokens, labels, texts, lines = _parse_tagged(text, fmt)
        problem = "tagging"
    _check_classes(labels, lines, problem)
    names = tuple(sorted(set(labels) if problem == "classification" else {t for ts in labels for t in ts}))
    index = {name: i for i, name in enumerate(names)}
    targets = tuple(index[lab] for lab in labels) if problem == "classification" else \
        tuple(tuple(index[t] for t in ts) for ts in labels)
    ds = UserDataset(problem, fmt, names, tuple(tokens), targets, tuple(texts), tuple(lines))
    _check_splits(ds)
    return ds


def parse_upload(data: bytes, name: str = "", fmt: str = "auto") -> UserDataset:
    """Check an upload's bytes and parse them (``fmt="auto"``: :func:`detect_format`); nothing is stored."""
    text = decode_upload(data)
    return parse_text(text, detect_format(text, name) if fmt == "auto" else fmt)
