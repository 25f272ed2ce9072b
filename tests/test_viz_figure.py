"""The dict-first figure helpers give what plotly's step-by-step API gives, so pages can build figures at a
fraction of the cost: ``style.grid`` lays subplots out as ``make_subplots`` does, and ``style.figure`` finishes a
figure as the step-by-step API and the shared defaults do (:func:`finish`, the reference here)."""

import json

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from apptest_helpers import decode_arrays
from plotly.subplots import make_subplots

from drnn_demo.viz.style import AXIS, COLORBAR, LAYOUT, axes, figure, grid, packed


def finish(fig: go.Figure, title: str, height: int = 380, **layout) -> go.Figure:
    """The slow, obvious way: update the built figure, then set every default where the figure set nothing."""
    fig.update_layout(title=dict(text=title, x=0.0, xanchor="left"), height=height, **{**LAYOUT, **layout})
    for obj, defaults in [*((axis, AXIS) for axis in (*fig.select_xaxes(), *fig.select_yaxes())),
                          *((trace.colorbar, COLORBAR) for trace in fig.data if trace.type == "heatmap")]:
        for name, value in defaults.items():
            if obj[name] is None:
                obj[name] = value
    for trace in fig.data:
        if trace.type == "bar" and trace.marker.line.width is None:
            trace.marker.line.update(color="white", width=0.5)
    return fig


def plain(obj) -> dict:
    """What is sent to the browser, its base64 arrays read back as lists."""
    return decode_arrays(json.loads(pio.to_json(obj, validate=False)))


def same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return a == b  # to the last bit
    return a == b


@pytest.mark.parametrize("kwargs", [
    dict(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12, subplot_titles=["input", "output"]),
    dict(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.04, row_heights=[0.5, 0.3, 0.2]),
    dict(rows=2, cols=3, shared_yaxes="rows", vertical_spacing=0.22, horizontal_spacing=0.06,
         subplot_titles=list("abcdef")),
    dict(rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=0.2),
    dict(rows=1, cols=3, subplot_titles=["p", "", "r"]),
])
def test_grid_lays_out_subplots_as_make_subplots_does(kwargs):
    reference = plain(make_subplots(**kwargs).layout)
    reference.pop("template")
    ours = dict(kwargs, titles=kwargs.get("subplot_titles", ()), shared_yaxes=bool(kwargs.get("shared_yaxes")))
    ours.pop("subplot_titles", None)
    assert same(plain(go.Layout(grid(**ours))), reference)


def test_axes_name_subplots_row_by_row():
    assert axes(1, 1, 3) == ("x", "y") and axes(1, 3, 3) == ("x3", "y3") and axes(2, 1, 3) == ("x4", "y4")


def test_figure_finishes_a_figure_as_the_step_by_step_api_does():
    z = np.arange(12.0).reshape(3, 4)
    slow = make_subplots(rows=1, cols=2)
    slow.add_trace(go.Heatmap(z=z, colorbar=dict(title="w")), row=1, col=1)
    slow.add_trace(go.Bar(x=[1, 2], y=[3, 4]), row=1, col=2)
    slow.update_xaxes(title="s", row=1, col=1)
    slow = finish(slow, "Two panels", height=300, margin=dict(l=10, r=10, t=40, b=10))
    layout = grid(1, 2)
    layout["xaxis"]["title"] = "s"
    fast = figure([dict(type="heatmap", z=z, colorbar=dict(title="w"), xaxis="x", yaxis="y"),
                   dict(type="bar", x=[1, 2], y=[3, 4], xaxis="x2", yaxis="y2")], "Two panels", height=300,
                  margin=dict(l=10, r=10, t=40, b=10), **layout)
    assert same(plain(fast), plain(slow))


def test_figure_sends_numeric_lists_as_arrays_with_the_same_values_and_gaps():
    steps, losses, labels = [0, 10, 20, 30], [2.5, None, 1.25, 0.5], ["a", "b", "c", "d"]
    fig = figure([dict(type="scatter", x=steps, y=losses, customdata=labels, mode="lines")], "Loss")
    assert isinstance(fig.data[0].x, np.ndarray) and isinstance(fig.data[0].y, np.ndarray)
    assert tuple(fig.data[0].customdata) == tuple(labels)  # text is left as it is
    sent = plain(fig)["data"][0]
    assert sent["x"] == steps and sent["y"] == losses  # the gap is still a gap
    slow = go.Figure(go.Scatter(x=steps, y=losses, customdata=labels, mode="lines"))
    assert same(plain(slow)["data"][0], sent)
    assert packed([True, False]) == [True, False] and packed([]) == [] and packed([[1, 2]]) == [[1, 2]]
