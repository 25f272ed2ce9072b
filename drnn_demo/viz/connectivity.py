"""The connectivity map ||dy_t / dx_s||, drawn on every page that shows a model's reach."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from .style import PALETTE, figure

CONNECTIVITY_SCALE = "Viridis"
CONNECTIVITY_ZERO = "#c8c8c8"  # exact zeros: a flat grey, outside the colour scale
CONNECTIVITY_DECADES = 10  # the colour scale spans at most this many decades below the largest norm


def connectivity_map(matrix: np.ndarray, delay: int | None = None,
                     title: str = "Connectivity ‖∂y_t/∂x_s‖ (log scale)", boxes: Sequence[dict] = (),
                     tick_labels: Sequence[str] | None = None) -> go.Figure:
    """Heatmap of ``C[t, s] = ||dy_t / dx_s||`` (:func:`drnn_demo.analysis.connectivity`): rows output step ``t``,
    columns input step ``s``, coloured by ``log10 C`` over at most :data:`CONNECTIVITY_DECADES` decades.

    Exact zeros (inputs the output cannot read) are a flat grey outside the scale, with "exactly 0" in the hover;
    the hover of every other cell gives the real norm. ``delay``: draws the boundary ``s = t + delay`` as a
    staircase between the last readable column and the first unreadable one (a delayed RNN is exactly 0 right of
    it; ``delay=0`` for a causal network). ``boxes``: rectangles to outline, ``{"rows": (t0, t1), "cols": (s0, s1),
    "label": str}`` with half-open ranges (e.g. the recall steps against the stored symbols). ``tick_labels``: one
    label per step (e.g. the words), on both axes.
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
    data = [dict(type="heatmap", z=z.astype(np.float32), customdata=c, colorscale=CONNECTIVITY_SCALE, zmin=zmin,
                 zmax=zmax, hoverongaps=False, name="‖∂y_t/∂x_s‖",
                 colorbar=dict(title="‖∂y_t/∂x_s‖", tickvals=ticks, ticktext=[f"{10 ** k:.3g}" for k in ticks]),
                 hovertemplate=where + "‖∂y_t/∂x_s‖ = %{customdata:.3e}<extra></extra>")]
    if zero.any():
        data += [dict(type="heatmap", z=np.where(zero, 0.0, np.nan).astype(np.float32), showscale=False,
                      colorscale=[[0, CONNECTIVITY_ZERO], [1, CONNECTIVITY_ZERO]], hoverongaps=False, name="exactly 0",
                      hovertemplate=where + "exactly 0<extra></extra>"),
                 dict(type="scatter", x=[None], y=[None], mode="markers", name="exactly 0 (grey)",
                      marker=dict(symbol="square", size=12, color=CONNECTIVITY_ZERO))]
    if delay is not None:
        t = np.arange(T_out)
        edge = t + delay + 0.5  # between column t + d (read) and t + d + 1 (not read)
        keep = edge < T_in - 0.5
        xs = np.repeat(edge[keep], 2)
        ys = np.stack([t[keep] - 0.5, t[keep] + 0.5], 1).ravel()
        if xs.size:
            data.append(dict(type="scatter", x=xs, y=ys, mode="lines", name=f"s = t + {delay}" if delay else "s = t",
                             line=dict(color=PALETTE[1], width=2), hoverinfo="skip"))
    shapes, labels = [], []
    for box in boxes:
        (t0, t1), (s0, s1) = box["rows"], box["cols"]
        shapes.append(dict(type="rect", x0=s0 - 0.5, x1=s1 - 0.5, y0=t0 - 0.5, y1=t1 - 0.5,
                           line=dict(color="white", width=2, dash="dot")))
        if box.get("label"):
            labels.append(dict(x=s0 - 0.5, y=t0 - 0.5, text=box["label"], showarrow=False, xanchor="left",
                               yanchor="bottom", font=dict(color="white", size=12), bgcolor="rgba(0,0,0,0.45)"))
    square = dict(scaleanchor="x", scaleratio=1) if T_out == T_in else {}
    ticks = dict(tickvals=list(range(len(tick_labels))), ticktext=list(tick_labels)) if tick_labels else {}
    slanted = dict(tickangle=-45, **ticks) if ticks else {}  # word labels under the columns, slanted to fit
    height = int(min(720, max(380, 6 * T_out + 200))) if T_out > 1 else 260
    return figure(data, title, height=height, margin=dict(l=60, r=20, t=50, b=90), plot_bgcolor="white",
                  shapes=shapes, annotations=labels,
                  xaxis=dict(title="input step s", range=[-0.5, T_in - 0.5], constrain="domain", showgrid=False,
                             **slanted),
                  yaxis=dict(title="output step t", range=[T_out - 0.5, -0.5], constrain="domain", showgrid=False,
                             **square, **ticks))
