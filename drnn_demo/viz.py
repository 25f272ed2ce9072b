"""Plotly figure builders: pure functions, numbers in -> ``go.Figure`` out.

Every figure the app shows comes from here, so a test can build and inspect it without a
browser. Colour scales are explicit, hover text carries the real numbers, and long histories
are downsampled before plotting.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

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


# ---------------------------------------------------------------- stacked = delayed


def block_matrix(weight: np.ndarray, block_edges: Sequence[int], gates: Sequence[str] = ("",),
                 title: str = "Delayed recurrent matrix W") -> go.Figure:
    """Heatmap of ``W`` (G*H, H) with the layer blocks outlined inside every gate chunk."""
    weight = np.asarray(weight)
    hidden = block_edges[-1]
    limit = float(np.abs(weight).max()) or 1.0
    # no text per cell: the hover reads row, column and W from the heatmap itself (the gate is labelled beside it)
    fig = go.Figure(go.Heatmap(
        z=weight, colorscale=DIVERGING, zmin=-limit, zmax=limit,
        hovertemplate="row %{y}, column %{x}<br>W = %{z:.4f}<extra></extra>", colorbar=dict(title="weight"),
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


def layer_errors(layer_error: np.ndarray) -> go.Figure:
    """Max |stacked - delayed| per layer over time: non-zero errors on a log axis (top), and the
    steps where a layer's error is exactly 0 as a row of marks per layer (bottom), so an exact layer
    is neither drawn at a made-up floor nor hidden under another one."""
    errors = np.asarray(layer_error, dtype=float)
    k = errors.shape[0]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.06)
    for l, e in enumerate(errors):
        color, t = PALETTE[l % len(PALETTE)], np.arange(len(e))
        fig.add_trace(go.Scatter(x=t, y=[v if v > 0 else None for v in e], mode="lines", name=f"layer {l + 1}",
                                 legendgroup=str(l), line=dict(color=color, width=2.5 - 1.5 * l / max(k - 1, 1)),
                                 customdata=e, hovertemplate="t=%{x}<br>max error %{customdata:.3e}<extra></extra>"),
                      row=1, col=1)
        zero = t[e == 0]
        fig.add_trace(go.Scatter(x=zero, y=[f"layer {l + 1}"] * len(zero), mode="markers", legendgroup=str(l),
                                 showlegend=False, marker=dict(color=color, symbol="line-ns-open", size=9),
                                 hovertemplate=f"layer {l + 1}, t=%{{x}}<br>exactly 0<extra></extra>"), row=2, col=1)
    fig.update_yaxes(type="log", title="max |stacked - delayed|", exponentformat="e", row=1, col=1)
    fig.update_yaxes(title="exactly 0", type="category", autorange="reversed",
                     categoryarray=[f"layer {l + 1}" for l in range(k)], row=2, col=1)
    fig.update_xaxes(title="time step t", row=2, col=1)
    if not (errors > 0).any():
        fig.add_annotation(text="every layer is exactly 0 at every step", xref="x domain", yref="y domain",
                           x=0.5, y=0.5, showarrow=False, font=dict(size=14), row=1, col=1)
        fig.update_yaxes(range=[-17, -15], row=1, col=1)
    return _finish(fig, "Error per layer over time", height=380)


def eps_curve(eps_grid: np.ndarray, eps_errors: np.ndarray, eps: float) -> go.Figure:
    """Output error after relaxing the zero blocks by ``eps``, on a log axis; the chosen eps marked.
    An error of exactly 0 (eps = 0 in an exact construction) is said in a note, not drawn at a floor."""
    eps_grid, eps_errors = np.asarray(eps_grid), np.asarray(eps_errors)
    shown = [v if v > 0 else None for v in eps_errors]
    fig = go.Figure(go.Scatter(x=eps_grid, y=shown, mode="lines+markers", name="error",
                               customdata=eps_errors, line=dict(color=PALETTE[0]),
                               hovertemplate="eps=%{x:.3g}<br>max output error %{customdata:.3e}<extra></extra>"))
    chosen = eps_errors[np.isclose(eps_grid, eps)]
    if chosen.size and chosen[0] > 0:
        fig.add_trace(go.Scatter(x=[eps], y=chosen[:1], mode="markers", name=f"eps = {eps:g}",
                                 marker=dict(color=PALETTE[1], size=13, symbol="diamond")))
    zeros = [f"{g:g}" for g, v in zip(eps_grid, eps_errors, strict=True) if v == 0]
    if zeros:
        fig.add_annotation(text=f"exactly 0 at eps = {', '.join(zeros)}" + (" (chosen)" if f"{eps:g}" in zeros else ""),
                           xref="paper", yref="paper", x=0.02, y=0.04, showarrow=False, xanchor="left",
                           font=dict(color=PALETTE[1]))
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
    # the note sits inside the shaded band and the legend below the plot, so neither runs into the title or
    # the subplot titles on a narrow screen
    fig.add_annotation(x=0.01, xref="x domain", y=0.98, yref="y domain", row=1, col=1, showarrow=False,
                       text=f"output t={position} has read x[0..{position + delay}]", xanchor="left", yanchor="top",
                       bgcolor="rgba(255,255,255,0.75)")
    fig.update_xaxes(title="time step", row=2, col=1)
    return _finish(fig, f"One test sequence, delay d = {delay}", height=500, margin=dict(l=50, r=20, t=60, b=100),
                   legend=dict(orientation="h", y=-0.16, yanchor="top", x=0, xanchor="left"))


def metric_vs_delay(points: Sequence[dict], metric: str, baselines: Sequence[dict] = (),
                    bound: tuple[Sequence[int], Sequence[float]] | None = None, current: dict | None = None,
                    lower_is_better: bool = False, title: str | None = None) -> go.Figure:
    """The dRNN metric at each delay, baselines as horizontal lines, the theory bound dashed.

    ``points``: ``{"delay", "value", "label"}`` with optional ``"low"`` / ``"high"`` (an interval
    over seeds, drawn as error bars) and ``"n"`` (seeds); ``baselines``: ``{"name", "value"}``
    with the same optional keys (the interval drawn as a band); ``title``: default "Test <metric>
    vs delay".
    """
    fig = go.Figure()
    if bound is not None:
        fig.add_trace(go.Scatter(x=list(bound[0]), y=list(bound[1]), mode="lines", name="theoretical best",
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
    fig.add_trace(go.Scatter(x=[p["delay"] for p in points], y=[p["value"] for p in points], mode="lines+markers",
                             name="delayed RNN" + (" (mean, 95 % interval)" if intervals else ""),
                             marker=dict(size=9, color=PALETTE[0]), error_y=error_y,
                             customdata=list(zip([p.get("label", "") for p in points], spread, strict=True)),
                             hovertemplate="delay %{x}<br>" + metric
                             + " %{y:.4g}<br>%{customdata[1]}<br>%{customdata[0]}<extra></extra>"))
    for i, b in enumerate(baselines):
        color = PALETTE[(i + 1) % len(PALETTE)]
        fig.add_hline(y=b["value"], line=dict(color=color, dash="dot"))
        if b.get("low") is not None:
            fig.add_hrect(y0=b["low"], y1=b["high"], fillcolor=color, opacity=0.12, line_width=0)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"{b['name']}: {b['value']:.4g}",
                                 line=dict(color=color, dash="dot")))
    if current is not None:
        fig.add_trace(go.Scatter(x=[current["delay"]], y=[current["value"]], mode="markers", name="shown model",
                                 marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(color=PALETTE[1], width=3))))
    fig.update_xaxes(title="delay d")
    fig.update_yaxes(title=metric, type="log" if lower_is_better else "linear")
    # horizontal lines do not widen plotly's autorange: make room for every value drawn
    drawn = [p["value"] for p in points] + [b["value"] for b in baselines] + list(bound[1] if bound else [])
    drawn += [x[k] for x in [*points, *baselines] for k in ("low", "high") if x.get(k) is not None]
    values = [v for v in drawn if v is not None and np.isfinite(v) and (v > 0 or not lower_is_better)]
    if values:
        lo, hi = (np.log10(min(values)), np.log10(max(values))) if lower_is_better else (min(values), max(values))
        pad = 0.06 * (hi - lo) if hi > lo else 0.1 * (abs(hi) or 1)
        fig.update_yaxes(range=[lo - pad, hi + pad])
    return _finish(fig, title or f"Test {metric} vs delay", height=420, margin=dict(l=60, r=20, t=50, b=110))


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
    """Training loss (left), then the reported metrics against the step, downsampled: scores such as
    accuracy on one panel (0 to 1) and losses such as cross-entropy or MSE on another, each panel with
    its own labelled axis (one shared axis would flatten one kind against the other).

    ``history`` holds points ``{"step", "loss", "elapsed", <metric>: value, ...}``.
    """
    rows = [history[i] for i in downsample(history, max_points)]
    names = sorted({k for r in rows for k, v in r.items() if k not in ("step", "loss", "elapsed") and v is not None})
    scores = [n for n in names if "accuracy" in n]
    losses = [n for n in names if n not in scores]
    panels = [("training loss", ["loss"])] + [(t, group) for t, group in (("scores", scores), ("losses", losses))
                                               if group]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[t for t, _ in panels])
    color = 0
    for col, (title, group) in enumerate(panels, start=1):
        for name in group:
            points = [(r["step"], r[name]) for r in rows if isinstance(r.get(name), int | float)]
            fig.add_trace(go.Scatter(x=[s for s, _ in points], y=[v for _, v in points], name=name,
                                     mode="lines" if name == "loss" else "lines+markers",
                                     line=dict(color=PALETTE[color % len(PALETTE)]), marker=dict(size=5)),
                          row=1, col=col)
            color += 1
        if title == "scores":
            fig.update_yaxes(title="accuracy", range=[0, 1.02], row=1, col=col)
        else:
            fig.update_yaxes(type="log", title="loss" if col == 1 else ", ".join(group), row=1, col=col)
    fig.update_xaxes(title="step")
    return _finish(fig, "", height=280, margin=dict(l=50, r=10, t=30, b=40),
                   legend=dict(orientation="h", y=-0.3, yanchor="top"))


# ---------------------------------------------------------------- memory & stability

MEMORY_CELL_NAMES = {"lstm": "LSTM", "exprnn": "expRNN", "asrnn": "asRNN", "sru": "SRU", "lrn": "LRN"}
MEMORY_CELL_COLORS = {"lstm": PALETTE[0], "exprnn": PALETTE[2], "asrnn": PALETTE[1], "sru": PALETTE[3],
                      "lrn": PALETTE[4]}
BASELINE_COLOR = "#555555"


def _cell_color(cell: str) -> str:
    return MEMORY_CELL_COLORS.get(cell, PALETTE[7])


def _positive(values: Sequence, floor: float) -> list:
    """Values for a log axis: non-finite -> None (a gap), zero or below -> ``floor``."""
    out = []
    for v in values:
        if v is None or not np.isfinite(v):
            out.append(None)
        else:
            out.append(max(float(v), floor))
    return out


def memory_loss_curves(records: Sequence[dict], baseline: float, title: str = "Cross-entropy vs iteration",
                       max_points: int = 500, floor: float = 1e-12) -> go.Figure:
    """Training cross-entropy of each cell against the step (log scale), with the baseline line.

    ``records``: ``{"label", "cell", "history": {"step": [...], "loss": [...]}, "snapshots": [{"step",
    "val_loss"}, ...] (optional)}``; the snapshots' validation losses are drawn as markers on the
    cell's colour. ``baseline``: the "blank, then guess" cross-entropy ``K ln 8 / (L + 2K)``.
    """
    fig = go.Figure()
    last_step = 1
    for rec in records:
        color, label = _cell_color(rec["cell"]), rec["label"]
        steps, losses = list(rec["history"].get("step", [])), list(rec["history"].get("loss", []))
        idx = downsample(steps, max_points)
        if len(idx):
            last_step = max(last_step, steps[idx[-1]])
        ratios = [None if losses[i] is None else losses[i] / baseline for i in idx]
        fig.add_trace(go.Scatter(
            x=[steps[i] for i in idx], y=_positive([losses[i] for i in idx], floor), mode="lines", name=label,
            legendgroup=label, line=dict(color=color, width=1.6), customdata=ratios,
            hovertemplate=f"{label}<br>step %{{x}}<br>train CE %{{y:.4f}}<br>= %{{customdata:.3f}} × baseline"
                          "<extra></extra>"))
        snaps = [s for s in rec.get("snapshots") or [] if s.get("val_loss") is not None]
        if snaps:
            fig.add_trace(go.Scatter(
                x=[s["step"] for s in snaps], y=_positive([s["val_loss"] for s in snaps], floor), mode="markers",
                name=f"{label} (validation)", legendgroup=label, showlegend=False,
                marker=dict(color=color, size=7, symbol="circle-open", line=dict(width=2)),
                customdata=[s["val_loss"] / baseline for s in snaps],
                hovertemplate=f"{label}<br>step %{{x}}<br>validation CE %{{y:.4f}}<br>= %{{customdata:.3f}} × "
                              "baseline<extra></extra>"))
    fig.add_trace(go.Scatter(
        x=[0, last_step], y=[baseline, baseline], mode="lines", name=f"baseline {baseline:.4f}",
        line=dict(color=BASELINE_COLOR, dash="dash", width=2),
        hovertemplate=f"baseline: blank, then a uniform guess<br>CE {baseline:.4f}<extra></extra>"))
    fig.update_xaxes(title="training step")
    fig.update_yaxes(title="cross-entropy (log)", type="log")
    # A diverged run (cross-entropy far above chance) would squash every other curve: the axis stops at
    # 3x the baseline and a note names the runs that rise above it.
    top = 3 * baseline
    values = [v for rec in records for v in [*rec["history"].get("loss", []),
                                             *(s.get("val_loss") for s in rec.get("snapshots") or [])]
              if v is not None and np.isfinite(v) and v > 0]
    above = [(rec["label"], max(v for v in rec["history"].get("loss", []) if v is not None and np.isfinite(v)))
             for rec in records if any(v is not None and np.isfinite(v) and v > top
                                       for v in rec["history"].get("loss", []))]
    if above and values:
        fig.update_yaxes(range=[np.log10(min(values)) - 0.05, np.log10(top)])
        fig.add_annotation(text="; ".join(f"{label} diverged (cross-entropy up to {peak:.3g}, above the axis)"
                                          for label, peak in above),
                           xref="paper", yref="paper", x=0.01, y=0.99, xanchor="left", yanchor="top",
                           showarrow=False, font=dict(color="#b00020"), bgcolor="rgba(255,255,255,0.8)")
    return _finish(fig, title, height=420)


PHASE_COLORS = {"input": "#2ca02c", "wait": "#cccccc", "loss": "#d62728"}


def gradient_norms_over_time(records: Sequence[dict], phases: Sequence[dict], which: str = "final") -> go.Figure:
    """``||dL/ds_t||`` against ``t`` for each cell (log scale), with the phases of the task shaded.

    ``records``: ``{"label", "cell", "gradient_norms": {"initial": [...], "final": [...]}}``;
    ``phases``: ``[{"start", "stop", "label", "role"}]`` with role "input" / "wait" / "loss"
    (:func:`drnn_demo.memory_analysis.task_phases`); ``which``: "final", "initial" or "both"
    (initial dashed). A flat curve means the loss reaches the first input steps; a curve falling by
    many decades to the left means vanishing gradients, one rising means exploding ones. Exact zeros
    (a state the loss does not depend on, e.g. SRU's last cell state) are left out of the log plot;
    hover shows the rest.
    """
    fig = go.Figure()
    kinds = {"final": ["final"], "initial": ["initial"], "both": ["initial", "final"]}[which]
    T = max(p["stop"] for p in phases)
    for rec in records:
        color, label = _cell_color(rec["cell"]), rec["label"]
        for kind in kinds:
            norms = (rec.get("gradient_norms") or {}).get(kind)
            if not norms:
                continue
            T = len(norms)
            values = np.asarray([np.nan if v is None else v for v in norms], dtype=float)
            name = label if kind == "final" or which == "initial" else f"{label} (at initialisation)"
            fig.add_trace(go.Scatter(
                x=list(range(len(norms))), y=[v if v > 0 else None for v in _positive(values, 0.0)], mode="lines",
                name=name, legendgroup=label,
                line=dict(color=color, width=2 if kind == "final" else 1.4, dash="solid" if kind == "final" else "dot"),
                customdata=values,
                hovertemplate=f"{name}<br>t = %{{x}}<br>||dL/ds_t|| = %{{customdata:.3e}}<extra></extra>"))
    for phase in phases:
        fig.add_vrect(x0=phase["start"] - 0.5, x1=phase["stop"] - 0.5, fillcolor=PHASE_COLORS[phase["role"]],
                      opacity=0.08 if phase["stop"] - phase["start"] > 1 else 0.25, line_width=0,
                      annotation_text=phase["label"], annotation_position="bottom left", annotation_font_size=11)
    fig.update_xaxes(title="time step t", range=[-0.5, T - 0.5])
    fig.update_yaxes(title="||dL/ds_t|| (log)", type="log", exponentformat="power")
    return _finish(fig, "Gradient norm ||∂L/∂h_t|| over time", height=420)


def _level_bins(snapshots: Sequence[dict], bins: int) -> np.ndarray:
    levels = np.concatenate([np.asarray(s["saturation"], dtype=float) for s in snapshots if s.get("saturation")])
    lo, hi = np.log10(levels.min()), np.log10(levels.max())
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def saturation_histogram(snapshots: Sequence[dict], step: int, bins: int = 40) -> go.Figure:
    """asRNN's saturation levels ``|s| + eps`` (log10 bins) at ``step``, over the levels at step 0.

    ``snapshots``: ``[{"step", "saturation": [H levels]}, ...]`` (the card's snapshots). Small
    levels: the unit is linear (orthogonal RNN); large: it saturates like a tanh RNN.
    """
    snaps = [s for s in snapshots if s.get("saturation")]
    edges = _level_bins(snaps, bins)
    centers = (edges[:-1] + edges[1:]) / 2
    real = np.stack([10 ** edges[:-1], 10 ** edges[1:]], axis=1)
    fig = go.Figure()
    shown = min(snaps, key=lambda s: abs(s["step"] - step))
    chosen = [(snaps[0], "#9e9e9e", f"step {snaps[0]['step']} (start)")]
    if shown is not snaps[0]:
        chosen.append((shown, MEMORY_CELL_COLORS["asrnn"], f"step {shown['step']}"))
    for snap, color, name in chosen:
        log_levels = np.log10(np.asarray(snap["saturation"], dtype=float))
        counts, _ = np.histogram(np.clip(log_levels, edges[0], edges[-1]), edges)
        fig.add_trace(go.Bar(x=centers, y=counts, name=name, marker=dict(color=color), opacity=0.75,
                             width=(edges[1] - edges[0]) * 0.95, customdata=real,
                             hovertemplate=f"{name}<br>|s|+eps in [%{{customdata[0]:.3g}}, %{{customdata[1]:.3g}}]"
                                           "<br>%{y} units<extra></extra>"))
    ticks = np.arange(np.floor(edges[0]), np.ceil(edges[-1]) + 1)
    fig.update_xaxes(title="saturation level |s| + eps (log scale)", tickvals=ticks,
                     ticktext=[f"1e{int(t)}" for t in ticks], range=[edges[0], edges[-1]])
    fig.update_yaxes(title="units")
    levels = np.asarray(shown["saturation"], dtype=float)
    return _finish(fig, f"asRNN saturation levels at step {shown['step']} (median {np.median(levels):.3g})",
                   height=380, barmode="overlay")


def saturation_trajectory(snapshots: Sequence[dict], step: int | None = None) -> go.Figure:
    """How asRNN's saturation levels move during training: median, 10-90 % band, min and max per snapshot
    (log scale); a vertical line marks ``step``."""
    snaps = [s for s in snapshots if s.get("saturation")]
    steps = [s["step"] for s in snaps]
    q = np.array([np.quantile(np.asarray(s["saturation"], dtype=float), [0.0, 0.1, 0.5, 0.9, 1.0]) for s in snaps])
    color = MEMORY_CELL_COLORS["asrnn"]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=steps, y=q[:, 3], mode="lines", line=dict(width=0), showlegend=False,
                             hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=steps, y=q[:, 1], mode="lines", line=dict(width=0), fill="tonexty",
                             fillcolor="rgba(214,39,40,0.18)", name="10–90 % of units",
                             customdata=q[:, [1, 3]],
                             hovertemplate="step %{x}<br>10 %: %{customdata[0]:.3g}<br>90 %: %{customdata[1]:.3g}"
                                           "<extra></extra>"))
    fig.add_trace(go.Scatter(x=steps, y=q[:, 2], mode="lines+markers", name="median", line=dict(color=color, width=2),
                             marker=dict(size=5), hovertemplate="step %{x}<br>median %{y:.3g}<extra></extra>"))
    for col, name in ((0, "min"), (4, "max")):
        fig.add_trace(go.Scatter(x=steps, y=q[:, col], mode="lines", name=name,
                                 line=dict(color=color, width=1, dash="dot"),
                                 hovertemplate=f"step %{{x}}<br>{name} %{{y:.3g}}<extra></extra>"))
    if step is not None:
        fig.add_vline(x=step, line=dict(color="#333333", dash="dash", width=1))
    fig.update_xaxes(title="training step")
    fig.update_yaxes(title="|s| + eps (log)", type="log", exponentformat="power")
    return _finish(fig, "asRNN saturation levels during training", height=380)


def orthogonality_errors(records: Sequence[dict], floor: float = 1e-17) -> go.Figure:
    """``||W_hh^T W_hh - I||_F`` against the step (log scale) for the cells with an orthogonal
    ``W_hh`` (asRNN, expRNN). ``records``: ``{"label", "cell", "snapshots": [{"step",
    "orthogonality_error"}, ...]}``; records without the error are skipped."""
    fig = go.Figure()
    largest = 0.0
    for rec in records:
        snaps = [s for s in rec.get("snapshots") or [] if s.get("orthogonality_error") is not None]
        if not snaps:
            continue
        errors = [s["orthogonality_error"] for s in snaps]
        largest = max([largest, *[e for e in errors if np.isfinite(e)]])
        fig.add_trace(go.Scatter(
            x=[s["step"] for s in snaps], y=_positive(errors, floor), mode="lines+markers", name=rec["label"],
            line=dict(color=_cell_color(rec["cell"]), width=2), marker=dict(size=5), customdata=errors,
            hovertemplate=f"{rec['label']}<br>step %{{x}}<br>||WᵀW − I||_F = %{{customdata:.3e}}<extra></extra>"))
    fig.update_xaxes(title="training step")
    # a fixed span of decades: round-off jitter must not look like a trend
    top = max(1.0, largest * 10)
    fig.update_yaxes(title="||W_hhᵀ W_hh − I||_F (log)", type="log", exponentformat="power",
                     range=[-10, float(np.log10(top))])
    return _finish(fig, "Orthogonality error of W_hh", height=380)


# ---------------------------------------------------------------- LRN

LRN_WEIGHT_SCALE = "Viridis"  # weights and gates in [0, 1] (or their log10)
LRN_SIDE_COLORS = ("#d6604d", "#4393c3")  # bars pushing toward label 0 / label 1
LRN_MARK_COLOR = "#d62728"  # ground-truth (decisive) tokens
LRN_OTHER_COLOR = "rgba(140,140,140,0.35)"
LRN_UNKNOWN_COLOR = "#888888"  # words outside the vocabulary, read as <unk>
LRN_TICK_LIMIT = 60  # label every position with its token up to this many positions


def _token_ticks(tokens: Sequence[str], marks: Sequence[int] = (), limit: int = LRN_TICK_LIMIT) -> dict:
    """Axis settings that label positions by their tokens (duplicates stay apart: the axis is numeric);
    ``marks`` (ground truth) in bold red. Past ``limit`` positions, plain numbers, or only the marks."""
    T = len(tokens)
    if T > limit:
        if not marks:
            return dict(tickmode="auto")
        return dict(tickmode="array", tickvals=list(marks), tickangle=-45,
                    ticktext=[f"<b style='color:{LRN_MARK_COLOR}'>{k}: {_tick(tokens[k])}</b>" for k in marks])
    marked = set(marks)
    text = [f"<b style='color:{LRN_MARK_COLOR}'>{_tick(w)}</b>" if k in marked else _tick(w)
            for k, w in enumerate(tokens)]
    return dict(tickmode="array", tickvals=list(range(T)), ticktext=text, tickangle=-45 if T > 8 else 0)


def _tick(token) -> str:
    """A token as tick text: escaped (plotly would take ``<unk>`` for a tag and show nothing), and a
    word the model does not know (``"dull (<unk>)"``) in grey italics."""
    text = html.escape(str(token))
    return f"<i style='color:{LRN_UNKNOWN_COLOR}'>{text}</i>" if "&lt;unk&gt;" in text else text


def _token_categories(tokens: Sequence[str], marks: Sequence[int] = (), limit: int = LRN_TICK_LIMIT,
                      angle: bool = True) -> tuple[list[str], dict]:
    """A categorical token axis: unique names ``"k: token"`` (they are what the hover shows, so heatmaps
    need no per-cell text) and axis settings that label the ticks with the bare tokens up to ``limit``."""
    names = [f"{k}: {w}" for k, w in enumerate(tokens)]
    ticks = _token_ticks(tokens, marks, limit)
    if ticks.get("tickmode") == "array":
        ticks["tickvals"] = [names[k] for k in ticks["tickvals"]]
    if not angle:
        ticks.pop("tickangle", None)
    return names, dict(type="category", **ticks)


def _log10_or_none(values: np.ndarray, floor: float) -> np.ndarray:
    """log10 of positive values (clipped at ``floor``); NaN (not drawn) where the value is not positive."""
    values = np.asarray(values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(np.maximum(values, floor))
    return np.where(values > 0, out, np.nan)


def lrn_token_shares(tokens: Sequence[str], shares: Sequence[float], labels: Sequence[str] = ("negative", "positive"),
                     marks: Sequence[int] = (), bias: float | None = None, margin: float | None = None,
                     title: str | None = None) -> go.Figure:
    """Each token's share of the decision, ``logit(labels[1]) - logit(labels[0])`` (one bar per position).

    The shares come from the unfolded LRN (:meth:`TokenWeights.logit_contributions`): for the identity
    activation they sum, with ``bias`` (head bias and initial state), to the model's ``margin`` exactly.
    ``marks``: ground-truth positions (bold red tick labels).
    """
    shares = np.asarray(shares, dtype=float)
    T = len(shares)
    colors = [LRN_SIDE_COLORS[1] if s >= 0 else LRN_SIDE_COLORS[0] for s in shares]
    custom = np.array([[k, str(w)] for k, w in enumerate(tokens)], dtype=object)
    fig = go.Figure(go.Bar(
        x=np.arange(T), y=shares, marker=dict(color=colors), customdata=custom, name="share",
        hovertemplate=f"token %{{customdata[0]}} '%{{customdata[1]}}'<br>share %{{y:+.4f}} of logit({labels[1]}) − "
                      f"logit({labels[0]})<extra></extra>"))
    fig.add_hline(y=0, line=dict(color="#555", width=1))
    notes = []
    if bias is not None:
        notes.append(f"bias {bias:+.3f}")
    if margin is not None:
        notes.append(f"sum {float(shares.sum()) + (bias or 0.0):+.3f} vs margin {margin:+.3f}")
    fig.update_xaxes(title="input token k", range=[-0.5, T - 0.5], **_token_ticks(tokens, marks))
    fig.update_yaxes(title=f"share (+ {labels[1]}, − {labels[0]})", zeroline=False)
    title = title or f"Each token's share of the decision, logit({labels[1]}) − logit({labels[0]})"
    return _finish(fig, title + (f" ({'; '.join(notes)})" if notes else ""), height=340, showlegend=False,
                   margin=dict(l=70, r=20, t=50, b=90))


def lrn_weight_heatmap(weights: np.ndarray, tokens: Sequence[str], unit: int | None = None, log: bool = False,
                       marks: Sequence[int] = (), floor: float = 1e-12) -> go.Figure:
    """``w[t, k]``: the weight of input token ``k`` (columns) in the state ``h_t`` (rows), lower triangle.

    ``weights``: ``(T, T)``, the unit mean ``mean_u w[t, k, u]`` or one ``unit``'s weights; entries with
    ``k > t`` (not yet read) are left blank. ``log``: colour by ``log10 w`` (clipped at ``floor``),
    which shows how fast old tokens fade; the hover always gives the real weight.
    """
    w = np.asarray(weights, dtype=float)
    T = w.shape[0]
    future = np.triu(np.ones((T, T), dtype=bool), 1)
    shown = np.where(future, np.nan, w)
    z = _log10_or_none(shown, floor) if log else shown
    names, x_axis = _token_categories(tokens, marks)
    _, y_axis = _token_categories(tokens, angle=False)
    which = "mean over units" if unit is None else f"unit {unit}"
    finite = z[np.isfinite(z)]
    zmin, zmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if not log:
        zmin = 0.0
    if zmax <= zmin:
        zmax = zmin + 1e-12
    # numeric arrays travel as base64 (a 150-token view stays small); in log view the real weights ride along
    fig = go.Figure(go.Heatmap(
        z=z.astype(np.float32) if log else shown, x=names, y=names, colorscale=LRN_WEIGHT_SCALE, zmin=zmin, zmax=zmax,
        customdata=shown if log else None, colorbar=dict(title="log10 w" if log else "w"), hoverongaps=False,
        hovertemplate=f"state after %{{y}}<br>token %{{x}}<br>w = %{{{'customdata' if log else 'z'}:.4g}}"
                      "<extra></extra>"))
    fig.update_xaxes(title="input token k", **x_axis)
    fig.update_yaxes(title="output position t (state h_t)", autorange="reversed", **y_axis)
    height = int(min(720, max(380, 14 * T + 200)))
    return _finish(fig, f"Weight w[t, k] of token k in state h_t ({which}{', log scale' if log else ''})",
                   height=height, margin=dict(l=90, r=20, t=50, b=90))


def lrn_decay_curves(weights: np.ndarray, tokens: Sequence[str], highlight: Sequence[int] = (), log: bool = True,
                     unit: int | None = None, floor: float = 1e-300) -> go.Figure:
    """How each token's weight decays over the later states (the paper's figure): for every token ``k``,
    ``w[t, k]`` for ``t = k .. T-1``. ``highlight``: tokens drawn in colour (e.g. the top ones), the
    rest in one grey trace. ``weights``: ``(T, T)`` as in :func:`lrn_weight_heatmap`."""
    w = np.asarray(weights, dtype=float)
    T = w.shape[0]
    words = [str(x) for x in tokens]
    chosen = [k for k in dict.fromkeys(int(k) for k in highlight) if 0 <= k < T]
    fig = go.Figure()
    others = [k for k in range(T) if k not in chosen]
    if others:  # one grey trace, the curves separated by NaN gaps; numeric arrays travel as base64
        xs = np.concatenate([np.append(np.arange(k, T), np.nan) for k in others]).astype(np.float32)
        ys = np.concatenate([np.append(np.where(w[k:, k] > 0, w[k:, k], np.nan), np.nan) for k in others])
        ks = np.concatenate([np.full(T - k + 1, k, dtype=np.float32) for k in others])
        fig.add_trace(go.Scatter(x=xs, y=ys, customdata=ks, mode="lines", name="other tokens",
                                 line=dict(color=LRN_OTHER_COLOR, width=1),
                                 hovertemplate="token %{customdata} in h_%{x}: w = %{y:.4g}<extra></extra>"))
    for i, k in enumerate(chosen):
        t = np.arange(k, T)
        values = w[k:, k]
        fig.add_trace(go.Scatter(
            x=t, y=[float(v) if v > 0 else None for v in values], mode="lines+markers" if T - k <= 60 else "lines",
            name=f"{k}: {words[k]}", line=dict(color=PALETTE[i % len(PALETTE)], width=2.5), marker=dict(size=5),
            customdata=values, hovertemplate=f"token {k} '{words[k]}'<br>in h_%{{x}}: w = %{{customdata:.4g}}"
                                             "<extra></extra>"))
    fig.update_xaxes(title="later position t (state h_t)", range=[-0.5, T - 0.5], **_token_ticks(tokens))
    if log:
        positive = w[np.tril(np.ones((T, T), dtype=bool)) & (w > 0)]
        decades = np.log10(positive.max() / positive.min()) if positive.size else 0.0
        fig.update_yaxes(title="w[t, k] (log)", type="log", exponentformat="power", dtick=1 if decades > 3 else "D2")
    else:
        fig.update_yaxes(title="w[t, k]", rangemode="tozero")
    which = "mean over units" if unit is None else f"unit {unit}"
    return _finish(fig, f"Decay of each token's weight over later positions ({which})", height=420,
                   margin=dict(l=70, r=20, t=50, b=90), legend=dict(orientation="v", x=1.01, y=1, xanchor="left"))


def lrn_gate_heatmaps(input_gate: np.ndarray, forget_chain: np.ndarray, tokens: Sequence[str],
                      unit: int | None = None, log: bool = False, floor: float = 1e-12) -> go.Figure:
    """Two heatmaps, units (rows) x positions (columns): the input gate ``i_k`` (how much of token ``k``
    enters each unit) and the forget chain ``prod_{j=k+1..T-1} f_j`` (how much of it survives to the
    final state). Their product is the token's weight in the final state. ``input_gate`` and
    ``forget_chain`` are ``(T, H)``; ``unit`` is outlined; ``log`` colours by log10 (clipped at ``floor``)."""
    gate, chain = np.asarray(input_gate, dtype=float).T, np.asarray(forget_chain, dtype=float).T  # (H, T)
    H, T = gate.shape
    names, x_axis = _token_categories(tokens)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=["input gate i_k (how much of token k enters)",
                                        "forget chain f_{k+1} ⋯ f_{T−1} (how much of it survives to the final state)"])
    zs = [_log10_or_none(a, floor) if log else a for a in (gate, chain)]
    finite = np.concatenate([z[np.isfinite(z)] for z in zs])
    zmin = float(finite.min()) if log and finite.size else 0.0
    zmax = 0.0 if log else 1.0
    for row, (name, raw, z) in enumerate((("i", gate, zs[0]), ("chain", chain, zs[1])), start=1):
        fig.add_trace(go.Heatmap(
            z=z.astype(np.float32), x=names, y=np.arange(H), coloraxis="coloraxis", customdata=raw,
            hovertemplate=f"unit %{{y}}, token %{{x}}<br>{name} = %{{customdata:.4g}}<extra></extra>"), row=row, col=1)
        fig.update_yaxes(title="unit", autorange="reversed", row=row, col=1)
    if unit is not None and 0 <= unit < H:
        for row in (1, 2):
            fig.add_shape(type="rect", x0=-0.5, x1=T - 0.5, y0=unit - 0.5, y1=unit + 0.5, row=row, col=1,
                          line=dict(color=LRN_MARK_COLOR, width=2))
    fig.update_xaxes(**x_axis)
    fig.update_xaxes(title="input token k", row=2, col=1)
    fig.update_annotations(font_size=12)
    height = int(min(900, max(460, 2 * (8 * H + 60) + 170)))
    return _finish(fig, "Input gates and forget chains, per unit" + (" (log10)" if log else ""), height=height,
                   coloraxis=dict(colorscale=LRN_WEIGHT_SCALE, cmin=zmin, cmax=zmax,
                                  colorbar=dict(title="log10" if log else "value")),
                   margin=dict(l=70, r=20, t=70, b=90))


def lrn_activation_comparison(records: Sequence[dict], marks: Sequence[int] = (), floor: float = 1e-17) -> go.Figure:
    """tanh vs identity side by side on the same input: each token's share of the decision (top row)
    and the error of the linear unfolding ``max_u |h_t - sum_k w[t, k] r_k|`` per position (bottom
    row, shared log scale, with the state scale ``max_u |h_t|`` dotted for reference).

    ``records``: ``{"label", "tokens", "shares" (T,), "error" (T,), "scale" (T,) (optional),
    "probability": float (optional), "prediction": str (optional)}``, one per column; ``marks``:
    ground-truth positions (bold red tick labels).
    """
    n = len(records)
    titles = []
    for rec in records:
        err = np.asarray(rec["error"], dtype=float)
        scale = np.asarray(rec.get("scale", [1.0]), dtype=float)
        rel = float(err.max() / scale.max()) if scale.max() > 0 else float(err.max())
        pred = f": {rec['prediction']} ({rec['probability']:.3f})" if rec.get("prediction") else ""
        titles.append(f"{rec['label']}{pred}<br><sub>max unfolding error {err.max():.2e} = {rel:.1e} of max |h|</sub>")
    fig = make_subplots(rows=2, cols=max(n, 1), shared_yaxes="rows", vertical_spacing=0.22, horizontal_spacing=0.06,
                        subplot_titles=titles + [""] * n, row_heights=[0.5, 0.5])
    for col, rec in enumerate(records, start=1):
        tokens = [str(x) for x in rec["tokens"]]
        shares = np.asarray(rec["shares"], dtype=float)
        T = len(shares)
        fig.add_trace(go.Bar(
            x=np.arange(T), y=shares, marker=dict(color=[LRN_SIDE_COLORS[int(s >= 0)] for s in shares]),
            customdata=tokens, showlegend=False, name=f"{rec['label']} share",
            hovertemplate=f"{rec['label']}<br>token %{{x}} '%{{customdata}}'<br>share %{{y:+.4f}}<extra></extra>"),
            row=1, col=col)
        err = np.asarray(rec["error"], dtype=float)
        fig.add_trace(go.Scatter(
            x=np.arange(T), y=np.maximum(err, floor), mode="lines+markers" if T <= 60 else "lines",
            name="unfolding error", legendgroup="error", showlegend=col == 1, line=dict(color=PALETTE[1], width=2),
            marker=dict(size=5), customdata=np.stack([err, np.asarray(tokens, dtype=object)], axis=-1),
            hovertemplate=f"{rec['label']}<br>h_%{{x}} (after '%{{customdata[1]}}')<br>error %{{customdata[0]:.3e}}"
                          "<extra></extra>"), row=2, col=col)
        if rec.get("scale") is not None:
            scale = np.asarray(rec["scale"], dtype=float)
            fig.add_trace(go.Scatter(
                x=np.arange(T), y=np.maximum(scale, floor), mode="lines", name="state scale max |h_t|",
                legendgroup="scale", showlegend=col == 1, line=dict(color="#555", dash="dot", width=1.5),
                hovertemplate=f"{rec['label']}<br>max |h_%{{x}}| = %{{y:.3g}}<extra></extra>"), row=2, col=col)
        fig.update_xaxes(**_token_ticks(tokens, marks, limit=LRN_TICK_LIMIT // 3), tickfont=dict(size=11), row=1,
                         col=col)
        fig.update_xaxes(title="position t", row=2, col=col)
    fig.update_yaxes(title="share of the decision", row=1, col=1)
    fig.update_yaxes(title="error (log)", type="log", exponentformat="power", row=2, col=1)
    for col in range(2, n + 1):
        fig.update_yaxes(type="log", exponentformat="power", row=2, col=col)
    fig.update_annotations(font_size=13)
    return _finish(fig, "tanh vs identity: the same input, the unfolded shares and how exact the unfolding is",
                   height=640, margin=dict(l=70, r=20, t=110, b=60),
                   legend=dict(orientation="h", yanchor="bottom", y=0.40, x=1, xanchor="right"))


# ---------------------------------------------------------------- connectivity (dy_t / dx_s)

CONNECTIVITY_SCALE = "Viridis"
CONNECTIVITY_ZERO = "#c8c8c8"  # exact zeros: a flat grey, outside the colour scale
CONNECTIVITY_DECADES = 10  # the colour scale spans at most this many decades below the largest norm


def connectivity_map(matrix: np.ndarray, delay: int | None = None,
                     title: str = "Connectivity ‖∂y_t/∂x_s‖ (log scale)", boxes: Sequence[dict] = ()) -> go.Figure:
    """Heatmap of ``C[t, s] = ||dy_t / dx_s||`` (:func:`drnn_demo.analysis.connectivity`): rows output step ``t``,
    columns input step ``s``, coloured by ``log10 C`` over at most :data:`CONNECTIVITY_DECADES` decades.

    Exact zeros (inputs the output cannot read) are a flat grey outside the scale, with "exactly 0" in the hover;
    the hover of every other cell gives the real norm. ``delay``: draws the boundary ``s = t + delay`` as a
    staircase between the last readable column and the first unreadable one (a delayed RNN is exactly 0 right of
    it; ``delay=0`` for a causal network). ``boxes``: rectangles to outline, ``{"rows": (t0, t1), "cols": (s0, s1),
    "label": str}`` with half-open ranges (e.g. the recall steps against the stored symbols).
    """
    c = np.asarray(matrix, dtype=float)
    if c.ndim == 1:
        c = c[None]
    T_out, T_in = c.shape
    zero = c == 0
    positive = c > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(positive, np.log10(np.where(positive, c, 1.0)), np.nan)
    finite = z[np.isfinite(z)]
    zmax = float(finite.max()) if finite.size else 0.0
    zmin = max(float(finite.min()), zmax - CONNECTIVITY_DECADES) if finite.size else zmax - 1.0
    if zmax <= zmin:
        zmin = zmax - 1.0
    steps = (0.0,) if zmax - zmin > 3 else (0.0, np.log10(2), np.log10(5))  # 1-2-5 ticks on a short scale
    ticks = [k + f for k in range(int(np.floor(zmin)), int(np.ceil(zmax)) + 1) for f in steps if zmin <= k + f <= zmax]
    where = "output t=%{y}, input s=%{x}<br>"
    fig = go.Figure(go.Heatmap(
        z=z.astype(np.float32), customdata=c, colorscale=CONNECTIVITY_SCALE, zmin=zmin, zmax=zmax,
        hoverongaps=False, name="‖∂y_t/∂x_s‖",
        colorbar=dict(title="‖∂y_t/∂x_s‖", tickvals=ticks, ticktext=[f"{10 ** k:.3g}" for k in ticks]),
        hovertemplate=where + "‖∂y_t/∂x_s‖ = %{customdata:.3e}<extra></extra>"))
    if zero.any():
        fig.add_trace(go.Heatmap(
            z=np.where(zero, 0.0, np.nan).astype(np.float32), showscale=False,
            colorscale=[[0, CONNECTIVITY_ZERO], [1, CONNECTIVITY_ZERO]], hoverongaps=False, name="exactly 0",
            hovertemplate=where + "exactly 0<extra></extra>"))
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="exactly 0 (grey)",
                                 marker=dict(symbol="square", size=12, color=CONNECTIVITY_ZERO)))
    if delay is not None:
        t = np.arange(T_out)
        edge = t + delay + 0.5  # between column t + d (read) and t + d + 1 (not read)
        keep = edge < T_in - 0.5
        xs = np.repeat(edge[keep], 2)
        ys = np.stack([t[keep] - 0.5, t[keep] + 0.5], 1).ravel()
        if xs.size:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"s = t + {delay}" if delay else "s = t",
                                     line=dict(color=PALETTE[1], width=2), hoverinfo="skip"))
    shapes, labels = [], []
    for box in boxes:
        (t0, t1), (s0, s1) = box["rows"], box["cols"]
        shapes.append(dict(type="rect", x0=s0 - 0.5, x1=s1 - 0.5, y0=t0 - 0.5, y1=t1 - 0.5,
                           line=dict(color="white", width=2, dash="dot")))
        if box.get("label"):
            labels.append(dict(x=s0 - 0.5, y=t0 - 0.5, text=box["label"], showarrow=False, xanchor="left",
                               yanchor="bottom", font=dict(color="white", size=12), bgcolor="rgba(0,0,0,0.45)"))
    fig.update_layout(shapes=shapes, annotations=labels)
    fig.update_xaxes(title="input step s", range=[-0.5, T_in - 0.5], constrain="domain", showgrid=False)
    square = dict(scaleanchor="x", scaleratio=1) if T_out == T_in else {}
    fig.update_yaxes(title="output step t", range=[T_out - 0.5, -0.5], constrain="domain", showgrid=False, **square)
    height = int(min(720, max(380, 6 * T_out + 200))) if T_out > 1 else 260
    return _finish(fig, title, height=height, margin=dict(l=60, r=20, t=50, b=90), plot_bgcolor="white")
