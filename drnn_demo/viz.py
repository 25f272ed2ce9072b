"""Plotly figure builders: pure functions, numbers in -> ``go.Figure`` out.

Every figure the app shows comes from here, so a test can build and inspect it without a
browser. Colour scales are explicit, hover text carries the real numbers, and long histories
are downsampled before plotting.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

DIVERGING = "RdBu_r"  # weights: blue negative, white zero, red positive
SEQUENTIAL = "Viridis"
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=50, b=50), font=dict(size=13),
              legend=dict(orientation="h", yanchor="top", y=-0.22, x=0, xanchor="left"))


def _finish(fig: go.Figure, title: str, height: int = 380, **layout) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.0, xanchor="left"), height=height, **{**LAYOUT, **layout})
    return fig


def downsample(values: Sequence, max_points: int = 500) -> np.ndarray:
    """Indices of at most ``max_points`` evenly spread points, always keeping the last one."""
    n = len(values)
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))


# ---------------------------------------------------------------- stacked = delayed


def block_matrix(weight: np.ndarray, block_edges: Sequence[int], gates: Sequence[str] = ("",),
                 title: str = "Delayed recurrent matrix W") -> go.Figure:
    """Heatmap of ``W`` (G*H, H) with the layer blocks outlined inside every gate chunk."""
    weight = np.asarray(weight)
    hidden = block_edges[-1]
    limit = float(np.abs(weight).max()) or 1.0
    rows = np.arange(weight.shape[0])
    row_label = [f"{gates[r // hidden]} row {r % hidden}".strip() for r in rows]
    fig = go.Figure(go.Heatmap(
        z=weight, colorscale=DIVERGING, zmin=-limit, zmax=limit, customdata=np.array(row_label)[:, None].repeat(
            weight.shape[1], 1),
        hovertemplate="%{customdata}, column %{x}<br>W = %{z:.4f}<extra></extra>", colorbar=dict(title="weight"),
    ))
    shapes, labels = [], []  # built in one go: add_shape one by one is slow
    for g in range(weight.shape[0] // hidden):
        for edge in block_edges:
            y = g * hidden + edge - 0.5
            width = 3 if edge in (0, hidden) else 1  # gate chunk borders thick, layer blocks thin
            shapes.append(dict(type="line", x0=-0.5, x1=hidden - 0.5, y0=y, y1=y,
                               line=dict(color="black", width=width)))
        if gates[g % len(gates)]:
            labels.append(dict(x=hidden - 0.5, y=(g + 0.5) * hidden - 0.5, text=f"<b>{gates[g]}</b>", showarrow=False,
                               xanchor="left", xshift=4))
    shapes += [dict(type="line", x0=edge - 0.5, x1=edge - 0.5, y0=-0.5, y1=weight.shape[0] - 0.5,
                    line=dict(color="black", width=1)) for edge in block_edges]
    fig.update_layout(shapes=shapes, annotations=labels)
    fig.update_yaxes(autorange="reversed", title="row (gate chunk, then layer block)")
    fig.update_xaxes(title="column (state unit, layer blocks left to right)", constrain="domain")
    return _finish(fig, title, height=max(380, min(900, 4 * weight.shape[0] + 120)))


def layer_overlay(stacked_layers: Sequence[np.ndarray], delayed_layers: Sequence[np.ndarray],
                  unit: int = 0) -> go.Figure:
    """One panel per layer: stacked layer ``l`` (line) over delayed block ``l`` read ``l-1`` steps later."""
    k = len(stacked_layers)
    fig = make_subplots(rows=k, cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        subplot_titles=[f"layer {l + 1}: stacked h^{l + 1}_t vs delayed block {l + 1} at step t+{l}"
                                        for l in range(k)])
    for l, (a, b) in enumerate(zip(stacked_layers, delayed_layers, strict=True)):
        u = min(unit, a.shape[1] - 1)
        t = np.arange(a.shape[0])
        fig.add_trace(go.Scatter(x=t, y=a[:, u], mode="lines", name="stacked", legendgroup="stacked",
                                 showlegend=l == 0, line=dict(color=PALETTE[0], width=3),
                                 hovertemplate="t=%{x}<br>stacked %{y:.6f}<extra></extra>"), row=l + 1, col=1)
        fig.add_trace(go.Scatter(x=t, y=b[:, u], mode="markers", name="delayed (shifted back)", legendgroup="delayed",
                                 showlegend=l == 0, marker=dict(color=PALETTE[1], size=6, symbol="x"),
                                 customdata=np.abs(a[:, u] - b[:, u]),
                                 hovertemplate="t=%{x}<br>delayed %{y:.6f}<br>|diff| %{customdata:.2e}<extra></extra>"),
                      row=l + 1, col=1)
    fig.update_xaxes(title="time step t of the stacked network", row=k, col=1)
    fig.update_annotations(font_size=12)
    return _finish(fig, f"Stacked layers vs delayed blocks (unit {unit})", height=170 * k + 150,
                   margin=dict(l=60, r=20, t=90, b=50),
                   legend=dict(orientation="h", yref="container", y=0.98, yanchor="top", x=1, xanchor="right"))


def layer_errors(layer_error: np.ndarray, floor: float = 1e-17) -> go.Figure:
    """Max |stacked - delayed| per layer over time, log scale (exact zeros drawn at ``floor``)."""
    fig = go.Figure()
    for l, errors in enumerate(np.asarray(layer_error)):
        fig.add_trace(go.Scatter(x=np.arange(len(errors)), y=np.maximum(errors, floor), mode="lines",
                                 name=f"layer {l + 1}", line=dict(color=PALETTE[l % len(PALETTE)]),
                                 customdata=errors,
                                 hovertemplate="t=%{x}<br>max error %{customdata:.3e}<extra></extra>"))
    fig.update_yaxes(type="log", title="max |stacked - delayed|", exponentformat="e")
    fig.update_xaxes(title="time step t")
    return _finish(fig, "Error per layer over time", height=340)


def eps_curve(eps_grid: np.ndarray, eps_errors: np.ndarray, eps: float, floor: float = 1e-17) -> go.Figure:
    """Output error after relaxing the zero blocks by ``eps``; the chosen eps marked."""
    eps_grid, eps_errors = np.asarray(eps_grid), np.asarray(eps_errors)
    fig = go.Figure(go.Scatter(x=eps_grid, y=np.maximum(eps_errors, floor), mode="lines+markers", name="error",
                               customdata=eps_errors, line=dict(color=PALETTE[0]),
                               hovertemplate="eps=%{x:.3g}<br>max output error %{customdata:.3e}<extra></extra>"))
    chosen = np.maximum(eps_errors[np.isclose(eps_grid, eps)], floor)
    fig.add_trace(go.Scatter(x=[eps] * len(chosen), y=chosen, mode="markers", name=f"eps = {eps:g}",
                             marker=dict(color=PALETTE[1], size=13, symbol="diamond")))
    fig.update_yaxes(type="log", title="max |stacked - relaxed delayed|", exponentformat="e")
    fig.update_xaxes(title="eps (scale of the noise put into the zero blocks)")
    return _finish(fig, "Relaxing the zero blocks breaks the equivalence", height=340)


def influence_map(influence: np.ndarray) -> go.Figure:
    """Rows: layer blocks; columns: how many steps ahead an input lies; colour: gradient norm."""
    influence = np.asarray(influence)
    k = influence.shape[0]
    fig = go.Figure(go.Heatmap(
        z=influence, x=[f"+{o}" for o in range(k)], y=[f"block {l + 1}" for l in range(k)], colorscale=SEQUENTIAL,
        zmin=0, colorbar=dict(title="‖∂s/∂x‖"),
        hovertemplate="%{y} reads x[t%{x}]<br>gradient norm %{z:.3e}<extra></extra>",
    ))
    fig.update_xaxes(title="input position relative to the stacked time step t (future >= +1)", type="category")
    fig.update_yaxes(autorange="reversed", type="category")
    return _finish(fig, "Which future inputs reach which block", height=300)


# ---------------------------------------------------------------- delayed outputs


def sequence_panels(inputs: np.ndarray, target: np.ndarray, prediction: np.ndarray, delay: int, position: int,
                    kind: str = "classification") -> go.Figure:
    """Input, target and prediction over time for one example.

    The shaded band on the input marks what ``output[position]`` has read: ``x[0 .. position + delay]``.
    ``inputs`` is ``(T,)`` (tokens or values); ``target`` and ``prediction`` are ``(T,)``.
    """
    T = len(target)
    t = np.arange(T)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=["input x[s]", "target and prediction y[t]"])
    mode = "markers+lines" if kind == "regression" else "markers"
    fig.add_trace(go.Scatter(x=t, y=inputs, mode=mode, name="input", marker=dict(color="#555", size=8),
                             line=dict(color="#999"), hovertemplate="s=%{x}<br>x=%{y}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=t, y=target, mode=mode, name="target", marker=dict(color=PALETTE[0], size=12,
                             symbol="circle-open"), line=dict(color=PALETTE[0]),
                             hovertemplate="t=%{x}<br>target %{y}<extra></extra>"), row=2, col=1)
    correct = np.isclose(prediction, target) if kind == "classification" else np.ones(T, bool)
    fig.add_trace(go.Scatter(x=t, y=prediction, mode=mode, name="prediction",
                             marker=dict(color=np.where(correct, PALETTE[2], PALETTE[1]), size=7, symbol="x"),
                             line=dict(color=PALETTE[2], dash="dot"),
                             hovertemplate="t=%{x}<br>prediction %{y:.4g}<extra></extra>"), row=2, col=1)
    seen = min(position + delay, T - 1)
    fig.add_vrect(x0=-0.5, x1=seen + 0.5, fillcolor="#ffd54f", opacity=0.25, line_width=0, row=1, col=1)
    fig.add_vline(x=position, line=dict(color=PALETTE[1], dash="dash"), row=2, col=1)
    fig.add_annotation(x=seen, y=1.0, yref="y domain", text=f"output t={position} has read x[0..{position + delay}]",
                       showarrow=False, xanchor="right", yanchor="bottom", row=1, col=1)
    fig.update_xaxes(title="time step", row=2, col=1)
    return _finish(fig, f"One test sequence, delay d = {delay}", height=460,
                   legend=dict(orientation="h", y=1.08, yanchor="bottom", x=1, xanchor="right"))


def metric_vs_delay(points: Sequence[dict], metric: str, baselines: Sequence[dict] = (),
                    bound: tuple[Sequence[int], Sequence[float]] | None = None, current: dict | None = None,
                    lower_is_better: bool = False) -> go.Figure:
    """The dRNN metric at each delay, baselines as horizontal lines, the theory bound dashed.

    ``points``: ``{"delay", "value", "label"}``; ``baselines``: ``{"name", "value"}``.
    """
    fig = go.Figure()
    if bound is not None:
        fig.add_trace(go.Scatter(x=list(bound[0]), y=list(bound[1]), mode="lines", name="theoretical best",
                                 line=dict(color="#555", dash="dash", shape="hv"),
                                 hovertemplate="delay %{x}<br>best possible %{y:.4f}<extra></extra>"))
    points = sorted(points, key=lambda p: p["delay"])
    fig.add_trace(go.Scatter(x=[p["delay"] for p in points], y=[p["value"] for p in points], mode="lines+markers",
                             name="delayed RNN", marker=dict(size=9, color=PALETTE[0]),
                             customdata=[p.get("label", "") for p in points],
                             hovertemplate="delay %{x}<br>" + metric + " %{y:.4g}<br>%{customdata}<extra></extra>"))
    for i, b in enumerate(baselines):
        color = PALETTE[(i + 1) % len(PALETTE)]
        fig.add_hline(y=b["value"], line=dict(color=color, dash="dot"))
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"{b['name']}: {b['value']:.4g}",
                                 line=dict(color=color, dash="dot")))
    if current is not None:
        fig.add_trace(go.Scatter(x=[current["delay"]], y=[current["value"]], mode="markers", name="shown model",
                                 marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(color=PALETTE[1], width=3))))
    fig.update_xaxes(title="delay d")
    fig.update_yaxes(title=metric, type="log" if lower_is_better else "linear")
    return _finish(fig, f"Test {metric} vs delay", height=420, margin=dict(l=60, r=20, t=50, b=110))


def position_heatmap(matrix: np.ndarray, delays: Sequence[int], metric: str) -> go.Figure:
    """Per-position metric, rows delays, columns output positions."""
    fig = go.Figure(go.Heatmap(z=np.asarray(matrix), x=np.arange(np.asarray(matrix).shape[1]),
                               y=[str(d) for d in delays], colorscale=SEQUENTIAL, colorbar=dict(title=metric),
                               hovertemplate="delay %{y}, position %{x}<br>" + metric + " %{z:.3f}<extra></extra>"))
    fig.update_xaxes(title="output position t")
    fig.update_yaxes(title="delay d", type="category")
    return _finish(fig, f"Test {metric} per output position", height=360)


# ---------------------------------------------------------------- training runs


def training_curves(history: Sequence[dict], max_points: int = 500) -> go.Figure:
    """Training loss (left) and every other reported metric (right) against the step, downsampled.

    ``history`` holds points ``{"step", "loss", "elapsed", <metric>: value, ...}``.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=["training loss", "metrics"])
    rows = [history[i] for i in downsample(history, max_points)]
    steps = [r["step"] for r in rows]
    fig.add_trace(go.Scatter(x=steps, y=[r.get("loss") for r in rows], mode="lines", name="loss",
                             line=dict(color=PALETTE[0])), row=1, col=1)
    names = sorted({k for r in rows for k, v in r.items() if k not in ("step", "loss", "elapsed") and v is not None})
    for i, name in enumerate(names):
        points = [(r["step"], r[name]) for r in rows if isinstance(r.get(name), int | float)]
        fig.add_trace(go.Scatter(x=[s for s, _ in points], y=[v for _, v in points], mode="lines+markers", name=name,
                                 line=dict(color=PALETTE[(i + 1) % len(PALETTE)]), marker=dict(size=5)), row=1, col=2)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_xaxes(title="step")
    return _finish(fig, "", height=280, margin=dict(l=50, r=10, t=30, b=40),
                   legend=dict(orientation="h", y=-0.3, yanchor="top"))
