"""Checkpoints: weights in safetensors, everything else in a JSON "model card". Never pickle.

A checkpoint ``runs/x`` is two files side by side:

- ``runs/x.safetensors``: the model's ``state_dict`` (CPU, contiguous);
- ``runs/x.json``: the model card, with at least

  ``model``      the :class:`~drnn_demo.models.SequenceModel` constructor keywords (``model.config``)
  ``task``, ``task_args``, ``train``, ``metrics``, ``seed``   as given by the caller (see
                 :meth:`drnn_demo.training.TrainResult.card`); ``task``, ``task_args`` and ``seed``
                 are filled from ``train`` when the caller gives only that
  ``versions``   torch, drnn_demo, python, numpy, safetensors
  ``weights``    the weights file's name; ``sha256`` its SHA-256; ``created`` (UTC, ISO 8601)

Loading rebuilds the model from the card through the model registry, checks the hash, the keys,
the shapes and that every weight is finite, and raises :class:`CheckpointError` (naming the file)
on any problem. Both files are written atomically (a temporary file, then ``os.replace``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import safetensors
import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from . import __version__
from .fileio import JSONFileError, loads_json, read_json
from .models import MODELS, SequenceModel
from .models.common import MAX_PARAMETERS, check_parameter_count

FORMAT_VERSION = 1
SUFFIXES = (".safetensors", ".json")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and the problem."""


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(weights, card)`` paths for ``path`` given with or without ``.safetensors`` / ``.json``."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in SUFFIXES else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a checkpoint is an ordinary readable file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _jsonable(value):
    """Plain JSON types; non-finite floats become None (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "to_dict"):
        return _jsonable(value.to_dict())
    raise TypeError(f"model card value of type {type(value).__name__} is not JSON-able: {value!r}")


def library_versions() -> dict[str, str]:
    return {"torch": torch.__version__, "drnn_demo": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "safetensors": safetensors.__version__}


def save_checkpoint(path: str | os.PathLike, model: SequenceModel, card: dict | None = None) -> Path:
    """Write ``<stem>.safetensors`` and ``<stem>.json``; returns the ``.safetensors`` path.

    Args:
        path: ``runs/x``, ``runs/x.safetensors`` or ``runs/x.json`` (same checkpoint).
        model: a :class:`~drnn_demo.models.SequenceModel` (anything with a ``config`` dict of
            ``SequenceModel`` keywords and a ``state_dict``).
        card: task, task_args, train config, metrics, seed ... (JSON-able; non-finite floats are
            stored as null). ``model``, ``versions``, ``weights``, ``sha256``, ``created`` and
            ``format_version`` are set here and override the caller's.
    """
    config = getattr(model, "config", None)
    if not isinstance(config, dict) or "core" not in config:
        raise ValueError(f"save_checkpoint needs a SequenceModel (with a .config dict), got {type(model).__name__}")
    weights_path, card_path = checkpoint_paths(path)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    blob = save_safetensors_bytes(tensors, metadata={"format": "pt", "drnn_demo": __version__})
    full = dict(card or {})
    train = full.get("train")
    if hasattr(train, "to_dict"):
        train = full["train"] = train.to_dict()
    if isinstance(train, dict):
        full.setdefault("task", train.get("task"))
        full.setdefault("task_args", train.get("task_args"))
        full.setdefault("seed", train.get("seed"))
    for key in ("task", "task_args", "train", "metrics", "seed"):
        full.setdefault(key, None)
    full.update({
        "format_version": FORMAT_VERSION,
        "model": config,
        "versions": library_versions(),
        "weights": weights_path.name,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    })
    text = json.dumps(_jsonable(full), indent=2, allow_nan=False)
    _atomic_write(weights_path, blob)
    _atomic_write(card_path, text.encode("utf-8"))
    return weights_path


MAX_CARD_BYTES = 4 * 2**20  # a model card (its history of a long run is the bulk)
MAX_HEADER_BYTES = 2**20  # the JSON header of a safetensors file
# The largest weights file a card may point to: every parameter in float64, plus its header.
MAX_WEIGHTS_BYTES = MAX_PARAMETERS * 8 + MAX_HEADER_BYTES


def read_card(path: str | os.PathLike) -> dict:
    """The model card of a checkpoint, without loading the weights (for listings)."""
    _, card_path = checkpoint_paths(path)
    try:
        return _parse_card(read_json(card_path, expect=None, max_bytes=MAX_CARD_BYTES), card_path.name)
    except FileNotFoundError as err:
        raise CheckpointError(f"{card_path.name}: model card not found ({card_path})") from err
    except JSONFileError as err:
        raise CheckpointError(f"the model card {err}") from None


def _parse_card(card, name: str) -> dict:
    """``card`` (already parsed) checked to be an object with a ``model`` object a build can use."""
    model = card.get("model") if isinstance(card, dict) else None
    if not isinstance(model, dict):
        raise CheckpointError(f"{name}: the model card has no 'model' object")
    if not isinstance(model.get("core_args", {}), dict):
        raise CheckpointError(f"{name}: the card's model 'core_args' must be an object")
    return card


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[SequenceModel, dict]:
    """Rebuild the model from ``<stem>.json`` and load ``<stem>.safetensors``; returns ``(model, card)``.

    The model is in eval mode on ``map_location``. Raises :class:`CheckpointError` (a
    ``ValueError``) naming the file for: a missing file, a corrupt or truncated weights file or
    card, a SHA-256 mismatch (the weights were changed after saving), an unknown model name or bad
    model arguments, a model beyond the resource limits, missing or unexpected tensors, shape
    mismatches and non-finite weights. See :func:`_build_checked` for the order of the checks:
    nothing the card asks for is allocated before the card and the file agree.
    """
    weights_path, card_path = checkpoint_paths(path)
    card = read_card(card_path)
    try:
        with open(weights_path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_WEIGHTS_BYTES:
                raise CheckpointError(f"{weights_path.name}: {size:,} bytes, more than a model within the "
                                      f"limit of {MAX_PARAMETERS:,} parameters can need")
            blob = f.read()
    except FileNotFoundError as err:
        raise CheckpointError(f"{weights_path.name}: weights file not found ({weights_path})") from err
    except OSError as err:
        raise CheckpointError(f"{weights_path.name}: cannot read the weights: {err}") from err
    return _build_checked(blob, card, weights_path.name, card_path.name, map_location)


# safetensors dtype names and their sizes in bytes
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def safetensors_header(blob: bytes, name: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{tensor name: (dtype, shape)}`` from a safetensors file's header, without reading a tensor.

    The format: 8 bytes little-endian header length ``n``, ``n`` bytes of JSON
    ``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``, then the
    data. Checked here: ``n`` fits in the file and :data:`MAX_HEADER_BYTES`; every entry has a known
    dtype, a shape of non-negative ints, and offsets inside the data whose length is exactly
    ``dtype size x prod(shape)``. Raises :class:`CheckpointError` naming ``name``.
    """
    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"{name}: corrupt or truncated safetensors file ({why})")

    if len(blob) < 8:
        raise bad(f"{len(blob)} bytes, shorter than the 8-byte header length")
    n = int.from_bytes(blob[:8], "little")
    if n > min(len(blob) - 8, MAX_HEADER_BYTES):
        raise bad(f"the header claims {n:,} bytes; the file has {len(blob) - 8:,} after the length")
    try:
        header = loads_json(blob[8 : 8 + n], f"{name} header")
    except JSONFileError as err:
        raise bad(str(err)) from None
    data_bytes = len(blob) - 8 - n
    entries = {}
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise bad(f"entry {key!r} is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in _DTYPE_BYTES:
            raise bad(f"{key}: unknown dtype {dtype!r}")
        if not isinstance(shape, list) or len(shape) > 8 or \
                not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_PARAMETERS for d in shape):
            raise bad(f"{key}: bad shape {shape!r}")
        if not isinstance(offsets, list) or len(offsets) != 2 or \
                not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets):
            raise bad(f"{key}: bad data_offsets {offsets!r}")
        begin, end = offsets
        if not 0 <= begin <= end <= data_bytes or end - begin != _DTYPE_BYTES[dtype] * math.prod(shape):
            raise bad(f"{key}: data_offsets {offsets} do not fit {dtype} {shape} in {data_bytes:,} data bytes")
        entries[key] = (dtype, tuple(shape))
    return entries


def _meta_model(config: dict, card_name: str) -> SequenceModel:
    """The card's model built on the ``meta`` device: its tensor names and shapes, no memory.

    The constructors check every argument against the limits of :mod:`drnn_demo.models.common`;
    the parameter count is checked against :data:`MAX_PARAMETERS` here.
    """
    core = config.get("core")
    if core not in MODELS:
        raise CheckpointError(f"{card_name}: unknown model {core!r}; known models are {sorted(MODELS)}")
    try:
        with torch.device("meta"):
            model = SequenceModel(**config)
        check_parameter_count(model)
    except (TypeError, ValueError, RuntimeError, NotImplementedError) as err:
        raise CheckpointError(f"{card_name}: cannot build the model from its card: {err}") from err
    return model


def _build_checked(blob: bytes, card: dict, weights_name: str, card_name: str,
                   map_location: str | torch.device) -> tuple[SequenceModel, dict]:
    """The model of ``card`` with the weights in ``blob``; errors name ``weights_name`` / ``card_name``.

    In this order, so that a hostile card costs nothing: the model's arguments and size limits
    (built on the meta device), the safetensors header (names, shapes, offsets) against that
    model, the SHA-256, and only then the tensors are read (finite values) and the model built.
    """
    meta = _meta_model(card["model"], card_name)
    header = safetensors_header(blob, weights_name)
    own = {k: tuple(v.shape) for k, v in meta.state_dict().items()}
    missing, unexpected = sorted(set(own) - set(header)), sorted(set(header) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{weights_name}: tensors do not match the model: missing {missing[:10]}, "
                              f"unexpected {unexpected[:10]}")
    wrong = [f"{k}: file {header[k][1]} vs model {shape}" for k, shape in own.items() if header[k][1] != shape]
    if wrong:
        raise CheckpointError(f"{weights_name}: shape mismatch: " + "; ".join(wrong[:10]))
    expected = card.get("sha256")
    if not isinstance(expected, str):
        raise CheckpointError(f"{card_name}: the model card has no sha256 of the weights")
    actual = hashlib.sha256(blob).hexdigest()
    if actual != expected:
        raise CheckpointError(f"{weights_name}: sha256 mismatch (card says {expected[:12]}..., file is "
                              f"{actual[:12]}...): the weights were modified or belong to another card")
    try:
        tensors = load_safetensors_bytes(blob)
    except Exception as err:  # safetensors raises its own SafetensorError (and others) on bad bytes
        raise CheckpointError(f"{weights_name}: corrupt or truncated safetensors file ({err})") from err
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{weights_name}: non-finite weights in {bad}")
    model = SequenceModel(**card["model"])
    model.load_state_dict(tensors, strict=True)
    model.to(map_location)
    model.eval()
    return model, card


MAX_UPLOAD_BYTES = 50 * 2**20  # an uploaded checkpoint archive, and each file in it once unpacked


def load_checkpoint_zip(data: bytes, map_location: str | torch.device = "cpu") -> tuple[SequenceModel, dict]:
    """Load a checkpoint uploaded as the zip the Training runs page offers for download.

    Checked before use, in this order: the size (at most :data:`MAX_UPLOAD_BYTES`), that it is a
    zip holding exactly one ``.safetensors`` and one ``.json`` file with plain names, their
    unpacked sizes (no zip bombs), then everything :func:`load_checkpoint` checks (the card, the
    model's size limits, tensor names and shapes against the header, the weights' SHA-256, finite
    values), in an order that allocates nothing the card asks for until the card and the weights
    agree. Never unpickles. Raises :class:`CheckpointError` saying what is wrong.
    """
    weights, card, weights_name, card_name = unpack_checkpoint_zip(data)
    return _build_checked(weights, card, weights_name, card_name, map_location)


def unpack_checkpoint_zip(data: bytes) -> tuple[bytes, dict, str, str]:
    """``(weights bytes, parsed card, weights file name, card file name)`` of an uploaded checkpoint
    zip, after the archive checks of :func:`load_checkpoint_zip` (the model is not checked yet)."""
    import io
    import zipfile

    limit_mb = MAX_UPLOAD_BYTES // 2**20
    if len(data) > MAX_UPLOAD_BYTES:
        raise CheckpointError(f"the upload is {len(data) / 2**20:.1f} MB; the limit is {limit_mb} MB")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise CheckpointError("not a zip archive: upload the .zip that 'Download checkpoint' gives "
                              "(a .safetensors file and its .json card)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            names = sorted(m.filename for m in members)[:10]
            weights = [m for m in members if m.filename.endswith(".safetensors")]
            cards = [m for m in members if m.filename.endswith(".json")]
            if len(members) != 2 or len(weights) != 1 or len(cards) != 1:
                raise CheckpointError(f"the archive must hold one .safetensors file and one .json card, it holds "
                                      f"{names}")
            contents = []
            for member, limit in ((weights[0], MAX_UPLOAD_BYTES), (cards[0], MAX_CARD_BYTES)):
                if "/" in member.filename or "\\" in member.filename or member.filename.startswith("."):
                    raise CheckpointError(f"the archive member {member.filename!r} is not a plain file name")
                if member.file_size > limit:  # what the archive says; the read below does not trust it
                    raise CheckpointError(f"{member.filename} unpacks to {member.file_size:,} bytes; the limit is "
                                          f"{limit:,}")
                with archive.open(member) as src:
                    contents.append(src.read(limit + 1))
                if len(contents[-1]) > limit:
                    raise CheckpointError(f"{member.filename} unpacks to more than {limit:,} bytes")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError) as err:
        raise CheckpointError(f"a damaged zip archive ({err})") from None
    try:
        card = loads_json(contents[1], cards[0].filename, expect=None)
    except JSONFileError as err:
        raise CheckpointError(f"the model card {err}") from None
    return contents[0], _parse_card(card, cards[0].filename), weights[0].filename, cards[0].filename
