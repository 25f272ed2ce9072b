"""JSON files: written atomically, read back as untrusted (bounded, typed errors only).

Writing: :func:`write_json_atomic` replaces a file so that readers see the old version or the
new one, never a torn one; :func:`jsonable` turns numpy / torch scalars, paths and non-finite
floats into plain JSON on the way.

Reading: every JSON file the app reads back (model cards, a run's ``run.json`` / ``state.json``)
may be truncated, hand-edited or hostile. :func:`loads_json` and :func:`read_json` turn every way
such a file can be wrong into one :class:`JSONFileError` (a ``ValueError``) whose message names
the file:

- too large (more than ``max_bytes``; checked on the file's size before it is read),
- not UTF-8, not JSON, truncated, holding NaN / Infinity or an integer of more than 4,300 digits,
- nested deeper than :data:`MAX_DEPTH` (a card nested 100,000 deep stops the parser at its
  recursion limit, which is caught; shallower ones are measured after parsing),
- of the wrong top-level type (``expect=dict`` and the file holds a list, say).

Field-level checks (a string where a number belongs) are the caller's, with :func:`field`.

Locking: :func:`locked` holds an exclusive lock beside a file across processes (the ``filelock``
package, so this also works on Windows).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from filelock import FileLock

MAX_DEPTH = 64  # nesting of [ and { that any file of ours needs is < 10
MAX_JSON_BYTES = 16 * 2**20


class JSONFileError(ValueError):
    """A JSON file that cannot be used; the message names the file and what is wrong."""


def jsonable(x: Any, strict: bool = False) -> Any:
    """``x`` as plain JSON: non-finite floats become None, numpy/torch scalars plain numbers, paths
    strings, objects with ``to_dict()`` their dict. Anything else becomes its ``str`` or, with
    ``strict`` (model cards), a ``TypeError``."""
    if isinstance(x, Mapping):
        return {str(k): jsonable(v, strict) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v, strict) for v in x]
    if x is None or isinstance(x, (bool, int, str)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "to_dict"):
        return jsonable(x.to_dict(), strict)
    if hasattr(x, "item"):  # numpy / torch scalars
        with contextlib.suppress(Exception):
            return jsonable(x.item(), strict)
    if strict:
        raise TypeError(f"a value of type {type(x).__name__} is not JSON-able: {x!r}")
    return str(x)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a torn one.

    The JSON goes to a temporary file in the same directory, which then replaces ``path``
    (``os.replace`` is atomic on POSIX and Windows; it replaces a symbolic link, not its target).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(jsonable(data), f, allow_nan=False)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def locked(path: Path):
    """Hold an exclusive, cross-process lock on ``path`` (the lock file is ``.<name>.lock`` beside it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_name(f".{path.name}.lock")):
        yield


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _depth(data: Any) -> int:
    """How deeply ``data`` nests lists and dicts (iteratively: no recursion of our own)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def loads_json(text: str | bytes, name: str, expect: type | None = dict, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``text`` (the contents of the file called ``name``), or raise :class:`JSONFileError`."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise JSONFileError(f"{name}: not UTF-8 text ({err})") from None
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except RecursionError:  # the parser gives up near 1,000 levels, cheaply
        raise JSONFileError(f"{name}: JSON nested more than {max_depth} levels deep") from None
    except ValueError as err:  # JSONDecodeError, NaN / Infinity, an integer of more than 4,300 digits
        raise JSONFileError(f"{name}: not valid JSON ({err})") from None
    if _depth(data) > max_depth:
        raise JSONFileError(f"{name}: JSON nested more than {max_depth} levels deep")
    if expect is not None and not isinstance(data, expect):
        raise JSONFileError(f"{name}: expected {_a(_json_type(expect))}, found {_a(_json_type(type(data)))}")
    return data


def read_json(path: str | os.PathLike, expect: type | None = dict, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The JSON in ``path``. ``FileNotFoundError`` when it does not exist; :class:`JSONFileError`
    for every other problem (unreadable, larger than ``max_bytes``, malformed, wrong type)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return read_json_from(f, path.name, expect, max_bytes)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise JSONFileError(f"{path.name}: cannot read it ({err.strerror or err})") from None


def read_json_from(f: BinaryIO, name: str, expect: type | None = dict, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The JSON in the open binary file ``f`` (``name`` in errors): its size is checked against
    ``max_bytes`` before it is read, and no more than that is read whatever the size said."""
    size = os.fstat(f.fileno()).st_size
    if size > max_bytes:
        raise JSONFileError(f"{name}: {size:,} bytes, more than the {max_bytes:,} a JSON file may have")
    data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise JSONFileError(f"{name}: more than the {max_bytes:,} bytes a JSON file may have")
    return loads_json(data, name, expect)


_MISSING = object()


def field(data: dict, key: str, types: type | tuple[type, ...], name: str, default: Any = _MISSING) -> Any:
    """``data[key]`` checked to be of ``types`` (``bool`` is never taken for a number), or
    :class:`JSONFileError` naming ``name`` and ``key``. A missing key (or None) gives ``default``
    when one is given."""
    value = data.get(key)
    if value is None and default is not _MISSING:
        return default
    types = types if isinstance(types, tuple) else (types,)
    numeric = any(t in (int, float) for t in types)
    if not isinstance(value, types) or (numeric and isinstance(value, bool) and bool not in types):
        names = " or ".join(dict.fromkeys(_json_type(t) for t in types))
        raise JSONFileError(f"{name}: {key!r} must be {_a(names)}, found {_short(value)}")
    return value


def _json_type(t: type) -> str:
    return {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(t, t.__name__)


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _short(value: Any) -> str:
    plain = isinstance(value, str | int | float | bool) or value is None
    text = json.dumps(value) if plain else _a(_json_type(type(value)))
    return text if len(text) <= 40 else text[:37] + "..."
