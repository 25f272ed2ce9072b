"""Exports: a figure's data as CSV, a page's figures as one standalone HTML file, a run as a zip.

- :func:`figure_to_csv` writes one row per plotted point (a heatmap: one row per cell), so the
  numbers behind any chart can be re-plotted elsewhere.
- :func:`figures_to_html` writes one HTML document with every figure, interactive, plotly.js
  embedded once (the file opens without a network).
- :func:`run_zip` packs a run directory's config, final metrics, full metrics history (CSV) and
  TensorBoard event files (``tensorboard --logdir <unzipped folder>`` shows the run by its id).

Nothing here imports streamlit; torch (for TensorBoard's writer) is imported only by :func:`run_zip`.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go

from .fileio import JSONFileError, loads_json
from .jobs.layout import (
    MAX_RUN_JSON_BYTES,
    MAX_STATE_BYTES,
    PROGRESS_FILE,
    RUN_FILE,
    STATE_FILE,
    UnsafeRunFileError,
    check_run,
    check_state,
    open_run_file,
    read_run_json,
)

MAX_PROGRESS_BYTES = 64 * 2**20  # progress.jsonl: ~100 bytes a point, so ~600k points; a larger one is not read
MAX_CSV_POINTS = 2_000_000  # rows of one figure's CSV (a chart the browser can draw holds far fewer)
HISTORY_FIXED = ("step", "loss", "elapsed")  # the first columns of history.csv; metrics follow, sorted


# ----------------------------------------------------------------------------- figure -> CSV


def _cell(value: Any) -> Any:
    """A value as a CSV cell: numbers as the shortest text that reads back to the same float, NaN and None empty,
    a tuple (a point's several hover values) joined by "; "."""
    if value is None:
        return ""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, list | tuple | np.ndarray):
        return "; ".join(str(_cell(v)) for v in value)
    return value


def _points(values: Any) -> list | None:
    """A trace's per-point array as a list (None when the trace has none)."""
    if values is None:
        return None
    if isinstance(values, np.ndarray):
        return values.tolist()
    if isinstance(values, str | int | float):
        return None  # one value for every point (plotly allows a scalar customdata): not per-point data
    return list(values)


def _panel_names(fig: go.Figure) -> dict[tuple[str, str], str]:
    """``(xaxis, yaxis) -> name`` of each subplot: its title (the annotation ``make_subplots`` puts centred above
    it), else its y axis title, else the axis pair ("x2 y2")."""
    layout = fig.layout
    names: dict[tuple[str, str], str] = {}
    for trace in fig.data:
        xa, ya = getattr(trace, "xaxis", None) or "x", getattr(trace, "yaxis", None) or "y"
        if (xa, ya) in names:
            continue
        x_axis = layout[f"xaxis{xa[1:]}"] if f"xaxis{xa[1:]}" in layout else None
        y_axis = layout[f"yaxis{ya[1:]}"] if f"yaxis{ya[1:]}" in layout else None
        title = None
        if x_axis is not None and y_axis is not None and x_axis.domain and y_axis.domain:
            (x0, x1), top = x_axis.domain, y_axis.domain[1]
            for note in layout.annotations or ():
                if (note.xref == "paper" and note.yref == "paper" and note.text and note.x is not None
                        and note.y is not None and x0 <= note.x <= x1 and abs(note.y - top) < 1e-6):
                    title = note.text
                    break
        if title is None and y_axis is not None and y_axis.title and y_axis.title.text:
            title = y_axis.title.text
        names[(xa, ya)] = title or f"{xa} {ya}"
    return names


def _heatmap_rows(trace) -> Iterable[dict]:
    """One row per cell of a heatmap: ``row``, ``col`` (indices into z), ``x``, ``y`` (the axis labels, or the
    coordinates ``x0 + col·dx`` when there are none) and ``z``; ``hover_data`` when customdata has z's shape."""
    z = np.asarray(trace.z if trace.z is not None else [], dtype=float)
    if z.ndim == 1:
        z = z[None]
    if z.ndim != 2:
        raise ValueError(f"heatmap {trace.name!r}: z must be 2-D, got shape {z.shape}")
    n_rows, n_cols = z.shape
    xs, ys = _points(trace.x), _points(trace.y)
    x0, dx = trace.x0 if trace.x0 is not None else 0, trace.dx if trace.dx is not None else 1
    y0, dy = trace.y0 if trace.y0 is not None else 0, trace.dy if trace.dy is not None else 1
    xs = xs if xs is not None and len(xs) == n_cols else [x0 + c * dx for c in range(n_cols)]
    ys = ys if ys is not None and len(ys) == n_rows else [y0 + r * dy for r in range(n_rows)]
    custom = _points(trace.customdata)
    shaped = (custom is not None and len(custom) == n_rows
              and all(isinstance(r, list | tuple) and len(r) == n_cols for r in custom))
    for r in range(n_rows):
        for c in range(n_cols):
            row = {"row": r, "col": c, "x": xs[c], "y": ys[r], "z": float(z[r, c])}
            if shaped:
                row["hover_data"] = custom[r][c]
            yield row


def _xy_rows(trace) -> Iterable[dict]:
    """One row per point of a scatter / bar / histogram (x or y alone: the other is the point's index, as plotly
    draws it); ``hover_data`` when the trace has per-point customdata. Points with neither x nor y (legend-only
    placeholders) are left out."""
    xs, ys = _points(getattr(trace, "x", None)), _points(getattr(trace, "y", None))
    if xs is None and ys is None:
        return
    if trace.type == "histogram":  # raw samples, not points
        samples = xs if xs is not None else ys
        for v in samples:
            yield {"x": v} if xs is not None else {"y": v}
        return
    n = len(xs) if xs is not None else len(ys)
    xs = xs if xs is not None else list(range(n))
    ys = ys if ys is not None else list(range(n))
    custom = _points(getattr(trace, "customdata", None))
    for i in range(min(len(xs), len(ys))):
        if xs[i] is None and ys[i] is None:
            continue
        row = {"x": xs[i], "y": ys[i]}
        if custom is not None and i < len(custom):
            row["hover_data"] = custom[i]
        yield row


def figure_to_csv(fig: go.Figure) -> str:
    """The data of every trace of ``fig`` as CSV text, one row per point.

    Columns: ``trace`` (its name, else "trace <i>"), ``panel`` (only for a figure with several subplots: the
    subplot's title), ``x``, ``y``; for a figure with heatmaps also ``row``, ``col`` (cell indices) and ``z`` (the
    value the colour shows); ``hover_data`` when a trace carries per-point hover values (customdata: e.g. the real
    norm behind a log colour scale). Floats are written as the shortest text that reads back to the same value
    (``float(cell) == value``), NaN and None as empty cells. Traces without x or y data (shapes, a legend-only
    marker) add no rows. ``ValueError`` past :data:`MAX_CSV_POINTS` rows.
    """
    panels = _panel_names(fig)
    several = len(set(panels.values())) > 1
    rows: list[dict] = []
    for i, trace in enumerate(fig.data):
        name = trace.name if getattr(trace, "name", None) else f"trace {i}"
        panel = panels.get((getattr(trace, "xaxis", None) or "x", getattr(trace, "yaxis", None) or "y"), "")
        for row in _heatmap_rows(trace) if trace.type == "heatmap" else _xy_rows(trace):
            rows.append({"trace": name, **({"panel": panel} if several else {}), **row})
            if len(rows) > MAX_CSV_POINTS:
                raise ValueError(f"the figure has more than {MAX_CSV_POINTS:,} points: too many for one CSV")
    columns = ["trace", *(["panel"] if several else []), "x", "y"]
    if any(t.type == "heatmap" for t in fig.data):
        columns += ["row", "col", "z"]
    if any("hover_data" in r for r in rows):
        columns.append("hover_data")
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return out.getvalue()


# ----------------------------------------------------------------------------- figures -> one HTML page


def figures_to_html(figs: Sequence[go.Figure], title: str) -> str:
    """One standalone HTML document showing ``figs`` in order, each interactive as in the app, under a heading
    ``title`` (escaped). plotly.js is embedded once, inline, with the first figure (about 4.8 MB); the others
    reuse it, so the file needs no network. Each figure sits in ``<div id="figure-<i>">``."""
    parts = []
    for i, fig in enumerate(figs):
        div = fig.to_html(full_html=False, include_plotlyjs=i == 0, div_id=f"figure-{i}",
                          config={"displaylogo": False, "responsive": True})
        parts.append(f'<section class="figure">{div}</section>')
    body = "\n".join(parts) if parts else "<p>No figures on this page.</p>"
    name = html.escape(title)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{name}</title>\n'
            '<style>body{font-family:sans-serif;margin:2em auto;max-width:1200px}'
            'section.figure{margin-bottom:2em}</style>\n'
            f"</head>\n<body>\n<h1>{name}</h1>\n{body}\n</body>\n</html>\n")


# ----------------------------------------------------------------------------- a run -> zip


def _check_point(point: Any, where: str) -> dict:
    """A progress point: an object whose ``step``/``loss``/``elapsed`` are numbers or null, as state.json's
    history items are checked; non-numeric metric values become empty cells later."""
    if not isinstance(point, dict):
        raise JSONFileError(f"{where} must be an object")
    # check_state checks a history the same way: reuse it on a one-point history
    check_state({"status": "finished", "history": [point]}, where)
    return point


def read_history(run_dir: Path) -> tuple[list[dict], str]:
    """``(points, source)``: every progress point of the run (``progress.jsonl``, a torn last line skipped), or,
    when that file is missing or larger than :data:`MAX_PROGRESS_BYTES`, the downsampled history in
    ``state.json``. ``source`` says which. Files are opened without following links and never read past their
    bounds; a damaged line raises :class:`~drnn_demo.fileio.JSONFileError` naming it."""
    try:
        with open_run_file(run_dir, PROGRESS_FILE) as f:
            data = f.read(MAX_PROGRESS_BYTES + 1)
    except FileNotFoundError:
        data = None
    if data is not None and len(data) <= MAX_PROGRESS_BYTES:
        lines = data.split(b"\n")
        complete = data.endswith(b"\n")
        points = []
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{PROGRESS_FILE} line {n}"
            try:
                points.append(_check_point(loads_json(line, where, dict), where))
            except JSONFileError:
                if n == len(lines) and not complete:
                    break  # the worker was writing it
                raise
        return points, f"{PROGRESS_FILE} (every point)"
    state = check_state(read_run_json(run_dir, STATE_FILE, MAX_STATE_BYTES))
    why = "missing" if data is None else f"larger than {MAX_PROGRESS_BYTES // 2**20} MB"
    return list(state["history"]), f"{STATE_FILE} (downsampled; {PROGRESS_FILE} {why})"


def history_csv(points: Sequence[dict]) -> str:
    """The points as CSV: ``step, loss, elapsed`` then every metric name (sorted); a missing or non-numeric
    value is an empty cell, floats read back exactly."""
    names = sorted({k for p in points for k in p if k not in HISTORY_FIXED})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*HISTORY_FIXED, *names])
    for p in points:
        writer.writerow([_cell(v) if isinstance(v := p.get(k), int | float) else "" for k in (*HISTORY_FIXED, *names)])
    return out.getvalue()


def _event_files(run: dict, state: dict, points: Sequence[dict]) -> dict[str, bytes]:
    """TensorBoard event files of the history: scalars ``loss`` and each metric at their steps (wall time =
    start + elapsed), the final metrics as ``final/<name>`` at the last step, the config as text."""
    from torch.utils.tensorboard import SummaryWriter

    start = state["started"] or run["created"] or 0.0
    with tempfile.TemporaryDirectory(prefix="drnn-tb-") as tmp:
        writer = SummaryWriter(log_dir=tmp, max_queue=1000, flush_secs=3600)
        try:
            last = 0
            for p in points:
                step = int(p.get("step") or 0)
                last = max(last, step)
                wall = start + p["elapsed"] if isinstance(p.get("elapsed"), int | float) else None
                for tag, value in p.items():
                    if tag in ("step", "elapsed") or isinstance(value, bool) or not isinstance(value, int | float):
                        continue
                    if math.isfinite(value):
                        writer.add_scalar(tag, value, global_step=step, walltime=wall)
            for name, value in state["metrics"].items():
                if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                    writer.add_scalar(f"final/{name}", value, global_step=last, walltime=state["ended"])
            writer.add_text("config", "```\n" + json.dumps(run["config"], indent=2, sort_keys=True) + "\n```",
                            global_step=0, walltime=start)
        finally:
            writer.close()
        files = sorted(p for p in Path(tmp).iterdir() if p.is_file())
        # TensorBoard needs only "tfevents" in the name; the writer's own name carries this machine's host name
        return {f"events.out.tfevents.{int(start)}.drnn_demo.{i}": p.read_bytes() for i, p in enumerate(files)}


def run_zip(run_dir: str | Path) -> bytes:
    """A zip of the run in ``run_dir``, all under one folder named by the run's directory::

        <run id>/config.json       run.json's kind, label, page, params, created and config
        <run id>/metrics.json      status, message, step, total_steps, times, final metrics, history source
        <run id>/history.csv       every progress point (:func:`history_csv`)
        <run id>/events.out.tfevents.*   the same history for ``tensorboard --logdir``

    Only ``run.json``, ``state.json`` and ``progress.jsonl`` are read, each a regular file inside ``run_dir``
    opened without following symbolic links, checked as the job manager checks them and bounded in size
    (:data:`MAX_PROGRESS_BYTES`); the checkpoint and any other file are not included. A damaged run raises
    :class:`~drnn_demo.fileio.JSONFileError` (a ``ValueError``) naming the file, a symbolic-link run directory
    :class:`~drnn_demo.jobs.layout.UnsafeRunFileError`.
    """
    run_dir = Path(run_dir)
    if run_dir.is_symlink():
        raise UnsafeRunFileError(f"{run_dir.name}: a symbolic link (refused)")
    run = check_run(read_run_json(run_dir, RUN_FILE, MAX_RUN_JSON_BYTES))
    state = check_state(read_run_json(run_dir, STATE_FILE, MAX_STATE_BYTES))
    points, source = read_history(run_dir)
    folder = run_dir.name
    config = {k: run[k] for k in ("id", "kind", "label", "page", "params", "created", "config")}
    metrics = {k: state[k] for k in ("status", "message", "step", "total_steps", "started", "ended", "metrics")}
    metrics["history_source"] = source
    members = {"config.json": json.dumps(config, indent=2, sort_keys=True).encode(),
               "metrics.json": json.dumps(metrics, indent=2, sort_keys=True).encode(),
               "history.csv": history_csv(points).encode(),
               **_event_files(run, state, points)}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(f"{folder}/{name}", data)
    return buf.getvalue()
