"""Figures of the Delayed outputs page: sequence panels, metric against delay, per-position heatmaps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from .style import PALETTE, SEQUENTIAL, figure, grid


def sequence_panels(inputs: np.ndarray, target: np.ndarray, prediction: np.ndarray, delay: int, position: int,
                    kind: str = "classification") -> go.Figure:
    """Input, target and prediction over time for one example.

    The shaded band on the input marks what ``output[position]`` has read: ``x[0 .. position + delay]``.
    ``inputs`` is ``(T,)`` (tokens or values); ``target`` and ``prediction`` are ``(T,)``.
    """
    T = len(target)
    t = np.arange(T)
    layout = grid(2, 1, shared_xaxes=True, vertical_spacing=0.12,
                  titles=["input x[s]", "target and prediction y[t]"])
    mode = "markers+lines" if kind == "regression" else "markers"
    correct = np.isclose(prediction, target) if kind == "classification" else np.ones(T, bool)
    data = [dict(type="scatter", x=t, y=inputs, mode=mode, name="input", marker=dict(color="#555", size=8),
                 line=dict(color="#999"), hovertemplate="s=%{x}<br>x=%{y}<extra></extra>", xaxis="x", yaxis="y"),
            dict(type="scatter", x=t, y=target, mode=mode, name="target",
                 marker=dict(color=PALETTE[0], size=12, symbol="circle-open"), line=dict(color=PALETTE[0]),
                 hovertemplate="t=%{x}<br>target %{y}<extra></extra>", xaxis="x2", yaxis="y2"),
            dict(type="scatter", x=t, y=prediction, mode=mode, name="prediction",
                 marker=dict(color=np.where(correct, PALETTE[2], PALETTE[1]), size=7, symbol="x"),
                 line=dict(color=PALETTE[2], dash="dot"),
                 hovertemplate="t=%{x}<br>prediction %{y:.4g}<extra></extra>", xaxis="x2", yaxis="y2")]
    seen = min(position + delay, T - 1)
    layout["shapes"] = [
        dict(type="rect", x0=-0.5, x1=seen + 0.5, y0=0, y1=1, xref="x", yref="y domain", fillcolor="#ffd54f",
             opacity=0.25, line_width=0),
        dict(type="line", x0=position, x1=position, y0=0, y1=1, xref="x2", yref="y2 domain",
             line=dict(color=PALETTE[1], dash="dash"))]
    # the note sits inside the shaded band and the legend below the plot, so neither runs into the title or
    # the subplot titles on a narrow screen
    layout["annotations"].append(dict(x=0.01, xref="x domain", y=0.98, yref="y domain", showarrow=False,
                                      text=f"output t={position} has read x[0..{position + delay}]", xanchor="left",
                                      yanchor="top", bgcolor="rgba(255,255,255,0.75)"))
    layout["xaxis2"]["title"] = "time step"
    return figure(data, f"One test sequence, delay d = {delay}", height=500, margin=dict(l=50, r=20, t=60, b=100),
                  legend=dict(orientation="h", y=-0.16, yanchor="top", x=0, xanchor="left"), **layout)


def metric_vs_delay(points: Sequence[dict], metric: str, baselines: Sequence[dict] = (),
                    bound: tuple[Sequence[int], Sequence[float]] | None = None, current: dict | None = None,
                    lower_is_better: bool = False, title: str | None = None) -> go.Figure:
    """The dRNN metric at each delay, baselines as horizontal lines, the theory bound dashed.

    ``points``: ``{"delay", "value", "label"}`` with optional ``"low"`` / ``"high"`` (an interval
    over seeds, drawn as error bars) and ``"n"`` (seeds); ``baselines``: ``{"name", "value"}``
    with the same optional keys (the interval drawn as a band); ``title``: default "Test <metric>
    vs delay".
    """
    data, shapes = [], []
    if bound is not None:
        data.append(dict(type="scatter", x=list(bound[0]), y=list(bound[1]), mode="lines", name="theoretical best",
                         line=dict(color="#555", dash="dash", shape="hv"),
                         hovertemplate="delay %{x}<br>best possible %{y:.4f}<extra></extra>"))
    points = sorted(points, key=lambda p: p["delay"])
    intervals = any(p.get("low") is not None for p in points)
    error_y = None
    if intervals:
        error_y = dict(type="data", symmetric=False, color=PALETTE[0], thickness=1.5, width=5,
                       array=[p["high"] - p["value"] if p.get("high") is not None else 0 for p in points],
                       arrayminus=[p["value"] - p["low"] if p.get("low") is not None else 0 for p in points])
    spread = [f"95 % interval {p['low']:.4g} – {p['high']:.4g} over {p.get('n')} seeds" if p.get("low") is not None
              else f"{p.get('n', 1)} seed" for p in points]
    data.append(dict(type="scatter", x=[p["delay"] for p in points], y=[p["value"] for p in points],
                     mode="lines+markers", name="delayed RNN" + (" (mean, 95 % interval)" if intervals else ""),
                     marker=dict(size=9, color=PALETTE[0]), error_y=error_y,
                     customdata=list(zip([p.get("label", "") for p in points], spread, strict=True)),
                     hovertemplate="delay %{x}<br>" + metric
                     + " %{y:.4g}<br>%{customdata[1]}<br>%{customdata[0]}<extra></extra>"))
    for i, b in enumerate(baselines):
        color = PALETTE[(i + 1) % len(PALETTE)]
        shapes.append(dict(type="line", x0=0, x1=1, xref="x domain", y0=b["value"], y1=b["value"], yref="y",
                           line=dict(color=color, dash="dot")))
        if b.get("low") is not None:
            shapes.append(dict(type="rect", x0=0, x1=1, xref="x domain", y0=b["low"], y1=b["high"], yref="y",
                               fillcolor=color, opacity=0.12, line_width=0))
        data.append(dict(type="scatter", x=[None], y=[None], mode="lines", name=f"{b['name']}: {b['value']:.4g}",
                         line=dict(color=color, dash="dot")))
    if current is not None:
        data.append(dict(type="scatter", x=[current["delay"]], y=[current["value"]], mode="markers",
                         name="shown model",
                         marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(color=PALETTE[1], width=3))))
    yaxis = dict(title=metric, type="log" if lower_is_better else "linear")
    # horizontal lines do not widen plotly's autorange: make room for every value drawn
    drawn = [p["value"] for p in points] + [b["value"] for b in baselines] + list(bound[1] if bound else [])
    drawn += [x[k] for x in [*points, *baselines] for k in ("low", "high") if x.get(k) is not None]
    values = [v for v in drawn if v is not None and np.isfinite(v) and (v > 0 or not lower_is_better)]
    if values:
        lo, hi = (np.log10(min(values)), np.log10(max(values))) if lower_is_better else (min(values), max(values))
        pad = 0.06 * (hi - lo) if hi > lo else 0.1 * (abs(hi) or 1)
        yaxis["range"] = [lo - pad, hi + pad]
    return figure(data, title or f"Test {metric} vs delay", height=420, margin=dict(l=60, r=20, t=50, b=110),
                  xaxis=dict(title="delay d"), yaxis=yaxis, shapes=shapes)


def position_heatmap(matrix: np.ndarray, delays: Sequence[int], metric: str) -> go.Figure:
    """Per-position metric, rows delays, columns output positions."""
    matrix = np.asarray(matrix)
    data = [dict(type="heatmap", z=matrix, x=np.arange(matrix.shape[1]), y=[str(d) for d in delays],
                 colorscale=SEQUENTIAL, colorbar=dict(title=metric),
                 hovertemplate="delay %{y}, position %{x}<br>" + metric + " %{z:.3f}<extra></extra>")]
    return figure(data, f"Test {metric} per output position", height=360, xaxis=dict(title="output position t"),
                  yaxis=dict(title="delay d", type="category"))
