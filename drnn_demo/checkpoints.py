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
from .models import MODELS, SequenceModel

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


def read_card(path: str | os.PathLike) -> dict:
    """The model card of a checkpoint, without loading the weights (for listings)."""
    _, card_path = checkpoint_paths(path)
    try:
        text = card_path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise CheckpointError(f"{card_path.name}: model card not found ({card_path})") from err
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{card_path.name}: cannot read the model card: {err}") from err
    return _parse_card(text, card_path.name)


def _parse_card(text: str, name: str) -> dict:
    try:
        card = json.loads(text)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{name}: the model card is not valid JSON ({err})") from err
    if not isinstance(card, dict) or not isinstance(card.get("model"), dict):
        raise CheckpointError(f"{name}: the model card has no 'model' object")
    return card


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[SequenceModel, dict]:
    """Rebuild the model from ``<stem>.json`` and load ``<stem>.safetensors``; returns ``(model, card)``.

    The model is in eval mode on ``map_location``. Raises :class:`CheckpointError` (a
    ``ValueError``) naming the file for: a missing file, a corrupt or truncated weights file or
    card, a SHA-256 mismatch (the weights were changed after saving), an unknown model name or bad
    model arguments, missing or unexpected tensors, shape mismatches and non-finite weights.
    """
    weights_path, card_path = checkpoint_paths(path)
    card = read_card(card_path)
    try:
        blob = weights_path.read_bytes()
    except FileNotFoundError as err:
        raise CheckpointError(f"{weights_path.name}: weights file not found ({weights_path})") from err
    except OSError as err:
        raise CheckpointError(f"{weights_path.name}: cannot read the weights: {err}") from err
    return _build_checked(blob, card, weights_path.name, card_path.name, map_location)


def _build_checked(blob: bytes, card: dict, weights_name: str, card_name: str,
                   map_location: str | torch.device) -> tuple[SequenceModel, dict]:
    """The model of ``card`` with the weights in ``blob``, after every check :func:`load_checkpoint`
    lists; errors name ``weights_name`` / ``card_name``."""
    try:
        tensors = load_safetensors_bytes(blob)
    except Exception as err:  # safetensors raises its own SafetensorError (and others) on bad bytes
        raise CheckpointError(f"{weights_name}: corrupt or truncated safetensors file ({err})") from err
    expected = card.get("sha256")
    if not isinstance(expected, str):
        raise CheckpointError(f"{card_name}: the model card has no sha256 of the weights")
    actual = hashlib.sha256(blob).hexdigest()
    if actual != expected:
        raise CheckpointError(f"{weights_name}: sha256 mismatch (card says {expected[:12]}..., file is "
                              f"{actual[:12]}...): the weights were modified or belong to another card")

    config = card["model"]
    core = config.get("core")
    if core not in MODELS:
        raise CheckpointError(f"{card_name}: unknown model {core!r}; known models are {sorted(MODELS)}")
    try:
        model = SequenceModel(**config)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{card_name}: cannot build the model from its card: {err}") from err

    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{weights_name}: tensors do not match the model: missing {missing}, "
                              f"unexpected {unexpected}")
    wrong = [f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(v.shape)}" for k, v in own.items()
             if tuple(tensors[k].shape) != tuple(v.shape)]
    if wrong:
        raise CheckpointError(f"{weights_name}: shape mismatch: " + "; ".join(wrong))
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{weights_name}: non-finite weights in {bad}")
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
    weights' SHA-256, a known model, tensor names and shapes, finite values). Never unpickles.
    Raises :class:`CheckpointError` saying what is wrong.
    """
    import io
    import zipfile

    limit_mb = MAX_UPLOAD_BYTES // 2**20
    if len(data) > MAX_UPLOAD_BYTES:
        raise CheckpointError(f"the upload is {len(data) / 2**20:.1f} MB; the limit is {limit_mb} MB")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise CheckpointError("not a zip archive: upload the .zip that 'Download checkpoint' gives "
                              "(a .safetensors file and its .json card)")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        names = sorted(m.filename for m in members)
        weights = [m for m in members if m.filename.endswith(".safetensors")]
        cards = [m for m in members if m.filename.endswith(".json")]
        if len(members) != 2 or len(weights) != 1 or len(cards) != 1:
            raise CheckpointError(f"the archive must hold one .safetensors file and one .json card, it holds {names}")
        for m in members:
            if "/" in m.filename or "\\" in m.filename or m.filename.startswith("."):
                raise CheckpointError(f"the archive member {m.filename!r} is not a plain file name")
            if m.file_size > MAX_UPLOAD_BYTES:
                raise CheckpointError(f"{m.filename} unpacks to {m.file_size / 2**20:.1f} MB; "
                                      f"the limit is {limit_mb} MB")
        contents = {}
        for member in (weights[0], cards[0]):
            with archive.open(member) as src:
                contents[member.filename] = src.read(MAX_UPLOAD_BYTES + 1)
            if len(contents[member.filename]) > MAX_UPLOAD_BYTES:
                raise CheckpointError(f"{member.filename} unpacks to more than {limit_mb} MB")
    weights_name, card_name = weights[0].filename, cards[0].filename
    try:
        text = contents[card_name].decode("utf-8")
    except UnicodeDecodeError as err:
        raise CheckpointError(f"{card_name}: cannot read the model card: {err}") from err
    return _build_checked(contents[weights_name], _parse_card(text, card_name), weights_name, card_name, map_location)
