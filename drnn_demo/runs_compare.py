"""Comparing runs: which settings differ, their final metrics, and their curves on one axis.

A run's settings are its config (a ``TrainConfig`` dict for ``train`` runs, whatever the kind was given
otherwise) flattened to dotted keys (``model.core_args.delay``), plus the run kind. Only the keys whose values are
not the same in every run are shown; a key that some runs lack differs too. Histories are the progress points
``{"step", "loss", "elapsed", <metric>: value}`` of :class:`~drnn_demo.jobs.RunInfo`.

Works on any objects with the fields ``id``, ``label``, ``kind``, ``status``, ``config``, ``metrics`` and
``history`` (a :class:`~drnn_demo.jobs.RunInfo`), so nothing here reads files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

HISTORY_FIXED = ("step", "loss", "elapsed")
KIND_KEY = "run kind"  # the run's kind, beside its config keys
MAX_DEPTH = 16  # deeper values are compared (and shown) as JSON text
MISSING = "—"  # a setting the run does not have


def flatten(config: Mapping, prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": [1, 2]}`` -> ``{"a.b": 1, "c": [1, 2]}``: nested mappings become dotted keys; lists
    and other values are kept whole (an empty mapping too). Keys are turned into text; beyond
    :data:`MAX_DEPTH` levels a mapping is kept whole."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and depth < MAX_DEPTH:
            flat.update(flatten(value, f"{name}.", depth + 1))
        else:
            flat[name] = value
    return flat


def _canonical(value: Any) -> Any:
    """Whole floats as ints (1.0 -> 1, as a config means them), inside lists and mappings too; bools stay bools."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def _same(value: Any) -> str:
    """The text two values are compared by: canonical JSON with sorted keys (so 1 and 1.0 are equal)."""
    try:
        return json.dumps(_canonical(value), sort_keys=True, default=str)
    except ValueError:  # a circular structure cannot come from a JSON file; compare its repr
        return repr(value)


def shown(value: Any) -> str:
    """A setting as the table shows it: strings as they are, everything else as compact JSON."""
    if value is MISSING or isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": "), sort_keys=True, default=str)


def settings(run) -> dict[str, Any]:
    """A run's flattened config plus its kind under :data:`KIND_KEY`."""
    return {KIND_KEY: run.kind, **flatten(run.config or {})}


def differing_keys(flats: Sequence[Mapping[str, Any]]) -> list[str]:
    """The keys whose values are not equal in every one of ``flats`` (absent counts as a value), in the order they
    first appear. One run (or none) differs from nothing: ``[]``."""
    if len(flats) < 2:
        return []
    keys = list(dict.fromkeys(k for flat in flats for k in flat))
    return [k for k in keys if len({_same(flat.get(k, MISSING)) for flat in flats}) > 1]


def final_metrics(run) -> dict[str, float]:
    """The run's numeric final metrics (the last reported values and the ``val_``/``test_`` ones it ended with)."""
    return {k: float(v) for k, v in (run.metrics or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


@dataclass
class Comparison:
    """Several runs side by side: ``names[i]`` is run i's column title (label and the end of its id),
    ``settings[key][i]`` its value of a differing setting (:data:`MISSING` when it has none), ``metrics[name][i]``
    its final value of a metric (None when it has none)."""

    names: list[str]
    settings: dict[str, list[Any]]
    metrics: dict[str, list[float | None]]

    def table(self) -> list[dict[str, str | None]]:
        """Rows for display: one per differing setting, then one per final metric (``"metric: <name>"``); one column
        per run. Values are text (settings as :func:`shown`, metrics to 4 significant digits) so every column
        has one type."""
        rows: list[dict[str, str | None]] = []
        for key, values in self.settings.items():
            rows.append({"setting": key, **{n: shown(v) for n, v in zip(self.names, values, strict=True)}})
        for key, values in self.metrics.items():
            rows.append({"setting": f"final {key}", **{n: None if v is None else f"{v:.4g}"
                                                       for n, v in zip(self.names, values, strict=True)}})
        return rows


def run_name(run) -> str:
    """A short unique title: the label and the last 6 characters of the id (the random part)."""
    return f"{run.label or run.id} · {run.id[-6:]}"


def run_names(runs: Sequence) -> list[str]:
    """:func:`run_name` of each run; the whole id instead when two of those coincide."""
    names = [run_name(r) for r in runs]
    if len(set(names)) < len(names):
        names = [f"{r.label or r.id} · {r.id}" for r in runs]
    return names


def compare(runs: Sequence) -> Comparison:
    """The :class:`Comparison` of ``runs`` (in the given order)."""
    flats = [settings(r) for r in runs]
    keys = differing_keys(flats)
    finals = [final_metrics(r) for r in runs]
    metric_names = sorted({k for f in finals for k in f})
    names = run_names(runs)
    return Comparison(names=names, settings={k: [f.get(k, MISSING) for f in flats] for k in keys},
                      metrics={m: [f.get(m) for f in finals] for m in metric_names})


# ----------------------------------------------------------------------------- curves


def metric_names(histories: Sequence[Sequence[dict]]) -> list[str]:
    """The metrics reported in ``histories`` (names other than step / loss / elapsed with a number somewhere),
    those that more runs report first, then by name."""
    count: dict[str, int] = {}
    for history in histories:
        for name in {k for p in history for k, v in p.items() if k not in HISTORY_FIXED and _number(v)}:
            count[name] = count.get(name, 0) + 1
    return sorted(count, key=lambda n: (-count[n], n))


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def series(history: Sequence[dict], name: str, x: str = "step") -> tuple[list[float], list[float]]:
    """``(xs, ys)``: the points of ``history`` with a finite number for ``name`` and for ``x`` ("step" or
    "elapsed"), sorted by ``x``; of several points at the same ``x`` the last reported is kept (a resumed or
    re-reported step)."""
    if x not in ("step", "elapsed"):
        raise ValueError(f"x must be 'step' or 'elapsed', got {x!r}")
    by_x: dict[float, float] = {}
    for p in history:
        if _number(p.get(x)) and _number(p.get(name)):
            by_x[p[x]] = float(p[name])  # a step stays a whole number
    xs = sorted(by_x)
    return xs, [by_x[v] for v in xs]


def overlay_series(runs: Sequence, metric: str | None, x: str = "step") -> list[dict]:
    """What :func:`drnn_demo.viz.runs_overlay` draws: per run ``{"name", "loss": (xs, ys), "metric": (xs, ys)}``
    (``metric`` empty when None or not reported by that run)."""
    return [{"name": name, "loss": series(r.history, "loss", x),
             "metric": series(r.history, metric, x) if metric else ([], [])}
            for name, r in zip(run_names(runs), runs, strict=True)]
