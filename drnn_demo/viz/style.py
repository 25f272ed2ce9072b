"""The shared look of every figure: palette, fonts, margins, and the finishing touch ``_finish``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

DIVERGING = "RdBu_r"  # weights: blue negative, white zero, red positive
SEQUENTIAL = "Viridis"
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
# The look of plotly's "plotly_white" template under Streamlit's chart theme, set explicitly (checked pixel for pixel
# in Chromium): plotly validates a named template on every figure, milliseconds and kilobytes each, while these few
# settings cost next to nothing. "none" keeps plotly from adding its default template when the figure is sent.
LAYOUT = dict(template="none", margin=dict(l=60, r=20, t=50, b=50), font=dict(size=13), paper_bgcolor="white",
              plot_bgcolor="white", hovermode="closest", hoverlabel=dict(align="left"),
              legend=dict(orientation="h", yanchor="top", y=-0.22, x=0, xanchor="left"))
AXIS = dict(automargin=True, ticks="")  # on every axis, subplots included, where the figure set nothing
COLORBAR = dict(outlinewidth=0, ticks="")  # on every heatmap's own colour bar


def _defaults(obj, values: dict) -> None:
    """Set each of ``values`` on a plotly object where the figure did not set it."""
    for name, value in values.items():
        if obj[name] is None:
            obj[name] = value


def figure(data: Sequence[dict], title: str, height: int = 380, **layout) -> go.Figure:
    """One ``go.Figure`` from plain trace dicts (each with its ``type``) and layout keywords, in the shared look.

    The same figure as building it step by step with ``add_trace`` / ``update_layout`` and :func:`_finish`, at a
    fraction of the cost: plotly validates the whole figure once instead of dispatching every step (a slider move
    rebuilds the figures it changes, so this is on every page's critical path). ``layout`` keys override
    :data:`LAYOUT` (shallow: a given ``legend`` or ``margin`` replaces the default one); every axis ``xaxis``,
    ``yaxis``, ``xaxis2``, ... gets :data:`AXIS` where it did not set a key, heatmaps :data:`COLORBAR`, bars a thin
    white outline."""
    layout = {**LAYOUT, **layout, "title": dict(text=title, x=0.0, xanchor="left"), "height": height}
    for name in {"xaxis", "yaxis", *(k for k in layout if k.startswith(("xaxis", "yaxis")))}:
        layout[name] = {**AXIS, **layout.get(name, {})}
    for trace in data:
        if trace["type"] == "heatmap":
            trace["colorbar"] = {**COLORBAR, **trace.get("colorbar", {})}
        elif trace["type"] == "bar":
            trace.setdefault("marker", {}).setdefault("line", dict(color="white", width=0.5))
    return go.Figure(data=list(data), layout=layout)


def grid(rows: int, cols: int = 1, *, row_heights: Sequence[float] | None = None,
         column_widths: Sequence[float] | None = None, vertical_spacing: float | None = None,
         horizontal_spacing: float | None = None, shared_xaxes: bool = False, shared_yaxes: bool = False,
         titles: Sequence[str] = ()) -> dict:
    """The layout keys of a ``rows x cols`` grid of subplots, laid out as ``plotly.subplots.make_subplots`` does
    (row 1 on top; spacings are fractions of the figure, by default plotly's ``0.3 / rows`` and ``0.2 / cols``),
    without building a figure. Subplot ``(r, c)`` (1-based) draws on the axes ``axes(r, c, cols)``.
    ``shared_xaxes``: every row's x axis matches the bottom row's, and only the bottom row shows tick labels;
    ``shared_yaxes``: each row's y axes match its first column's, whose tick labels alone are shown.
    ``titles``: one per subplot, row by row, above its plot area."""
    vertical_spacing = 0.3 / rows if vertical_spacing is None else vertical_spacing
    horizontal_spacing = 0.2 / cols if horizontal_spacing is None else horizontal_spacing
    heights = np.asarray(row_heights if row_heights is not None else [1.0] * rows, dtype=float)
    widths = np.asarray(column_widths if column_widths is not None else [1.0] * cols, dtype=float)
    heights = heights / heights.sum() * (1 - vertical_spacing * (rows - 1))
    widths = widths / widths.sum() * (1 - horizontal_spacing * (cols - 1))
    tops = 1 - np.concatenate([[0.0], np.cumsum(heights + vertical_spacing)[:-1]])
    lefts = np.concatenate([[0.0], np.cumsum(widths + horizontal_spacing)[:-1]])
    layout, annotations = {}, []
    for r in range(1, rows + 1):
        for c in range(1, cols + 1):
            x, y = axes(r, c, cols)
            left, top = float(lefts[c - 1]), float(tops[r - 1])
            xaxis = {"anchor": y, "domain": [left, left + float(widths[c - 1])]}
            yaxis = {"anchor": x, "domain": [max(0.0, top - float(heights[r - 1])), top]}
            if shared_xaxes and r < rows:
                xaxis.update(matches=axes(rows, c, cols)[0], showticklabels=False)
            if shared_yaxes and c > 1:
                yaxis.update(matches=axes(r, 1, cols)[1], showticklabels=False)
            layout[_axis_key(x)], layout[_axis_key(y)] = xaxis, yaxis
            index = (r - 1) * cols + c - 1
            if index < len(titles) and titles[index]:
                annotations.append(dict(text=titles[index], x=left + float(widths[c - 1]) / 2, y=top, xref="paper",
                                        yref="paper", xanchor="center", yanchor="bottom", showarrow=False,
                                        font=dict(size=16)))
    if annotations:
        layout["annotations"] = annotations
    return layout


def axes(row: int, col: int = 1, cols: int = 1) -> tuple[str, str]:
    """The axis references (``"x2"``, ``"y2"``) of subplot ``(row, col)`` in a :func:`grid` of ``cols`` columns."""
    index = (row - 1) * cols + col
    return ("x", "y") if index == 1 else (f"x{index}", f"y{index}")


def _axis_key(ref: str) -> str:
    """``"x2"`` -> ``"xaxis2"``, ``"y"`` -> ``"yaxis"``."""
    return f"{ref[0]}axis{ref[1:]}"


def _finish(fig: go.Figure, title: str, height: int = 380, **layout) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.0, xanchor="left"), height=height, **{**LAYOUT, **layout})
    for axis in (*fig.select_xaxes(), *fig.select_yaxes()):
        _defaults(axis, AXIS)
    for trace in fig.data:
        if trace.type == "heatmap":
            _defaults(trace.colorbar, COLORBAR)
        elif trace.type == "bar" and trace.marker.line.width is None:
            trace.marker.line.update(color="white", width=0.5)
    return fig


def downsample(values: Sequence, max_points: int = 500) -> np.ndarray:
    """Indices of at most ``max_points`` evenly spread points, always keeping the last one."""
    n = len(values)
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
