"""Figures of the Stacked ≡ Delayed page: the block weight matrix, per-layer overlays and errors, the eps sweep."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from .style import DIVERGING, PALETTE, SEQUENTIAL, figure, grid


def block_matrix(weight: np.ndarray, block_edges: Sequence[int], gates: Sequence[str] = ("",),
                 title: str = "Delayed recurrent matrix W") -> go.Figure:
    """Heatmap of ``W`` (G*H, H) with the layer blocks outlined inside every gate chunk."""
    weight = np.asarray(weight)
    hidden = block_edges[-1]
    limit = float(np.abs(weight).max()) or 1.0
    # no text per cell: the hover reads row, column and W from the heatmap itself (the gate is labelled beside it)
    data = [dict(type="heatmap", z=weight, colorscale=DIVERGING, zmin=-limit, zmax=limit,
                 hovertemplate="row %{y}, column %{x}<br>W = %{z:.4f}<extra></extra>", colorbar=dict(title="weight"))]
    shapes, labels = [], []
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
    return figure(data, title, height=max(380, min(900, 4 * weight.shape[0] + 120)), shapes=shapes,
                  annotations=labels,
                  xaxis=dict(title="column (state unit, layer blocks left to right)", constrain="domain"),
                  yaxis=dict(autorange="reversed", title="row (gate chunk, then layer block)"))


def layer_overlay(stacked_layers: Sequence[np.ndarray], delayed_layers: Sequence[np.ndarray],
                  unit: int = 0) -> go.Figure:
    """Stacked layer ``l`` (line) over delayed block ``l`` read ``l-1`` steps later (crosses), one row per layer
    on one shared axis: row ``l`` plots ``v / s_l - 2.5 l`` for each value ``v`` of unit ``unit``, where ``s_l``
    is the largest ``|v|`` of that layer (shown in the row's label), so every layer fills its row whatever its
    scale. The hover reads the values themselves. One axis for ``k`` layers: a browser draws it in a fraction of
    the time of ``k`` subplots, and a Layers k move redraws it."""
    k = len(stacked_layers)
    data, rows, labels = [], [], []
    for l, (a, b) in enumerate(zip(stacked_layers, delayed_layers, strict=True)):
        u = min(unit, a.shape[1] - 1)
        stacked, delayed, t = a[:, u], b[:, u], np.arange(a.shape[0])
        scale, row = float(max(np.abs(stacked).max(), np.abs(delayed).max())) or 1.0, -2.5 * l
        rows.append(row)
        labels.append(f"layer {l + 1}<br>±{scale:.2g}")
        data += [dict(type="scatter", x=t, y=stacked / scale + row, mode="lines", name="stacked h^l_t",
                      legendgroup="stacked", showlegend=l == 0, line=dict(color=PALETTE[0], width=3),
                      customdata=stacked, hovertemplate=f"layer {l + 1}, t=%{{x}}<br>stacked %{{customdata:.6f}}"
                                                        "<extra></extra>"),
                 dict(type="scatter", x=t, y=delayed / scale + row, mode="markers",
                      name="delayed block l at step t+l−1", legendgroup="delayed", showlegend=l == 0,
                      marker=dict(color=PALETTE[1], size=6, symbol="x"),
                      customdata=np.stack([delayed, np.abs(stacked - delayed)], axis=-1),
                      hovertemplate=f"layer {l + 1}, t=%{{x}}<br>delayed %{{customdata[0]:.6f}}<br>"
                                    "|diff| %{customdata[1]:.2e}<extra></extra>")]
    return figure(data, f"Stacked layers vs delayed blocks (unit {unit})", height=95 * k + 190,
                  margin=dict(l=70, r=20, t=50, b=90),  # the legend sits below, clear of plotly's toolbar
                  legend=dict(orientation="h", yref="container", y=0, yanchor="bottom", x=0, xanchor="left"),
                  xaxis=dict(title="time step t of the stacked network", zeroline=False),
                  yaxis=dict(tickvals=rows, ticktext=labels, range=[-2.5 * (k - 1) - 1.25, 1.25], zeroline=False,
                             title="each layer scaled to its largest |value|"))


def layer_errors(layer_error: np.ndarray) -> go.Figure:
    """Max |stacked - delayed| per layer over time: non-zero errors on a log axis (top), and the
    steps where a layer's error is exactly 0 as a row of marks per layer (bottom), so an exact layer
    is neither drawn at a made-up floor nor hidden under another one."""
    errors = np.asarray(layer_error, dtype=float)
    k = errors.shape[0]
    layout = grid(2, 1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.06)
    data = []
    for l, e in enumerate(errors):
        color, t = PALETTE[l % len(PALETTE)], np.arange(len(e))
        zero = t[e == 0]
        data += [dict(type="scatter", x=t, y=[v if v > 0 else None for v in e], mode="lines", name=f"layer {l + 1}",
                      legendgroup=str(l), line=dict(color=color, width=2.5 - 1.5 * l / max(k - 1, 1)),
                      customdata=e, hovertemplate="t=%{x}<br>max error %{customdata:.3e}<extra></extra>",
                      xaxis="x", yaxis="y"),
                 dict(type="scatter", x=zero, y=[f"layer {l + 1}"] * len(zero), mode="markers", legendgroup=str(l),
                      showlegend=False, marker=dict(color=color, symbol="line-ns-open", size=9),
                      hovertemplate=f"layer {l + 1}, t=%{{x}}<br>exactly 0<extra></extra>", xaxis="x2", yaxis="y2")]
    layout["yaxis"].update(type="log", title="max |stacked - delayed|", exponentformat="e")
    layout["yaxis2"].update(title="exactly 0", type="category", autorange="reversed",
                            categoryarray=[f"layer {l + 1}" for l in range(k)])
    layout["xaxis2"]["title"] = "time step t"
    if not (errors > 0).any():  # nothing to draw on the log axis: no ticks of a made-up range, a note instead
        layout["annotations"] = [dict(text="every layer is exactly 0<br>at every step", xref="x domain",
                                      yref="y domain", x=0.5, y=0.5, showarrow=False, font=dict(size=14))]
        layout["yaxis"].update(range=[-17, -15], showticklabels=False, showgrid=False)
    return figure(data, "Error per layer over time", height=380, **layout)


def eps_curve(eps_grid: np.ndarray, eps_errors: np.ndarray, eps: float) -> go.Figure:
    """Output error after relaxing the zero blocks by ``eps``, on a log axis; the chosen eps marked.
    An error of exactly 0 (eps = 0 in an exact construction) is said in a note, not drawn at a floor."""
    eps_grid, eps_errors = np.asarray(eps_grid), np.asarray(eps_errors)
    shown = [v if v > 0 else None for v in eps_errors]
    data = [dict(type="scatter", x=eps_grid, y=shown, mode="lines+markers", name="error", customdata=eps_errors,
                 line=dict(color=PALETTE[0]),
                 hovertemplate="eps=%{x:.3g}<br>max output error %{customdata:.3e}<extra></extra>")]
    chosen = eps_errors[np.isclose(eps_grid, eps)]
    if chosen.size and chosen[0] > 0:
        data.append(dict(type="scatter", x=[eps], y=chosen[:1], mode="markers", name=f"eps = {eps:g}",
                         marker=dict(color=PALETTE[1], size=13, symbol="diamond")))
    zeros = [f"{g:g}" for g, v in zip(eps_grid, eps_errors, strict=True) if v == 0]
    layout = {}
    if zeros:
        layout["annotations"] = [dict(
            text=f"exactly 0 at eps = {', '.join(zeros)}" + (" (chosen)" if f"{eps:g}" in zeros else ""),
            xref="paper", yref="paper", x=0.02, y=0.04, showarrow=False, xanchor="left", font=dict(color=PALETTE[1]))]
    return figure(data, "Relaxing the zero blocks breaks the equivalence", height=340,
                  xaxis=dict(title="eps (scale of the noise put into the zero blocks)"),
                  yaxis=dict(type="log", title="max |stacked - relaxed delayed|", exponentformat="e"), **layout)


def influence_map(influence: np.ndarray) -> go.Figure:
    """Rows: layer blocks; columns: how many steps ahead an input lies; colour: gradient norm."""
    influence = np.asarray(influence)
    k = influence.shape[0]
    data = [dict(type="heatmap", z=influence, x=[f"+{o}" for o in range(k)], y=[f"block {l + 1}" for l in range(k)],
                 colorscale=SEQUENTIAL, zmin=0, colorbar=dict(title="‖∂s/∂x‖"),
                 hovertemplate="%{y} reads x[t%{x}]<br>gradient norm %{z:.3e}<extra></extra>")]
    return figure(data, "Which future inputs reach which block", height=300,
                  xaxis=dict(title="input position relative to the stacked time step t (future >= +1)",
                             type="category"),
                  yaxis=dict(autorange="reversed", type="category"))
