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
