"""Figures of the Streaming page: the outputs at "now", incremental charts, accuracy against latency, compute."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from .connectivity import connectivity_map
from .style import PALETTE, figure

STREAM_NEW = "#4c9be8"  # a label shown for the first time
STREAM_KEPT = "#e8eef4"  # a label shown before, unchanged
STREAM_CHANGED = "#e4572e"  # a label replaced at this step: a revision
STREAM_PENDING = "·"
STRUCK_SHOWN = 2  # struck-through earlier labels shown per token (older ones are counted: "5+")


def _status(chart: np.ndarray) -> np.ndarray:
    """Per cell of a chart: NaN no label, 0 kept, 1 first shown, 2 changed at this step."""
    shown = chart >= 0 if chart.dtype.kind in "iu" else ~np.isnan(chart)
    before = np.vstack([np.zeros((1, chart.shape[1]), bool), shown[:-1]])
    previous = np.vstack([chart[:1], chart[:-1]])
    status = np.where(before, np.where(previous != chart, 2.0, 0.0), 1.0)
    return np.where(shown, status, np.nan)


def incremental_chart(chart: np.ndarray, labels: Sequence[str], tokens: Sequence[str], now: int,
                      title: str) -> go.Figure:
    """The incremental chart of one stream up to step ``now``: row = time step, column = token, text = the label
    shown at that step (``chart[step, t]``, ``-1`` = not yet). Blue: shown for the first time; pale: unchanged;
    red: replaced at this step (a revision); the page's caption says so (no legend). A delayed network's chart
    is a staircase ``d`` columns behind the
    input with no red; restart mode's is a triangle with red wherever the right context changed its mind."""
    chart = np.asarray(chart)[: now + 1]
    T = chart.shape[1]
    status = _status(chart)
    text = np.where(chart >= 0, np.asarray(labels, dtype=object)[np.clip(chart, 0, None)], "")
    arrived = np.where(np.arange(T)[None] <= np.arange(len(chart))[:, None], "", "not arrived")
    names = np.array(["unchanged", "first shown", "revised"], dtype=object)
    what = np.where(np.isnan(status), np.where(arrived == "", "not shown yet", "not arrived"),
                    names[np.nan_to_num(status).astype(int)])
    ticks = [f"{t}: {w}" for t, w in enumerate(tokens)]
    data = [dict(type="heatmap", z=status, x=list(range(T)), y=list(range(len(chart))), text=text,
                 texttemplate="%{text}", textfont=dict(size=11), zmin=0, zmax=2, showscale=False, xgap=1, ygap=1,
                 hoverongaps=False,
                 colorscale=[[0, STREAM_KEPT], [0.33, STREAM_KEPT], [0.34, STREAM_NEW], [0.66, STREAM_NEW],
                             [0.67, STREAM_CHANGED], [1, STREAM_CHANGED]],
                 customdata=np.dstack([np.broadcast_to(np.asarray(ticks, dtype=object), chart.shape), what]),
                 hovertemplate="step %{y}, token %{customdata[0]}<br>%{text} (%{customdata[1]})<extra></extra>")]
    return figure(data, title, height=int(min(620, max(260, 22 * len(chart) + 170))),
                  margin=dict(l=60, r=20, t=50, b=110),
                  xaxis=dict(title="token", tickvals=list(range(T)), ticktext=[str(w)[:10] for w in tokens],
                             range=[-0.5, T - 0.5], tickangle=-45 if T > 8 else 0),
                  yaxis=dict(title="time step (now)", range=[max(len(chart), 1) - 0.5, -0.5]))


def now_table_html(tokens: Sequence[str], now: int, lines: Sequence[tuple[str, Sequence[str | None],
                                                                          Sequence[Sequence[str]]]]) -> str:
    """An HTML table of what each model shows at step ``now``: one column per token (arrived ones in bold), one
    row per model ``(name, labels, earlier)`` where ``labels[t]`` is the label shown (None: not yet) and
    ``earlier[t]`` the labels it showed before and replaced (the last :data:`STRUCK_SHOWN` struck through, the
    older ones counted). Every string is escaped."""
    e = html.escape
    pad = "padding:2px 7px;text-align:left"
    head = "".join(f"<th style='{pad}{'' if t <= now else ';color:#bbb;font-weight:normal'}'>{e(str(w))}</th>"
                   for t, w in enumerate(tokens))
    rows = [f"<tr><td style='{pad}'><b>input</b></td>{head}</tr>"]
    for name, labels, earlier in lines:
        cells = []
        for t in range(len(tokens)):
            hidden = len(earlier[t]) - STRUCK_SHOWN
            old = (f"<span class='more' style='color:{STREAM_CHANGED};font-size:0.7rem'>{hidden}+</span> "
                   if hidden > 0 else "") + "".join(
                f"<s class='revised' style='color:{STREAM_CHANGED};font-size:0.75rem'>{e(str(o))}</s> "
                for o in earlier[t][-STRUCK_SHOWN:])
            label = labels[t]
            shown = f"<span class='label'>{e(str(label))}</span>" if label is not None else \
                f"<span class='pending' style='color:#bbb'>{STREAM_PENDING}</span>"
            cells.append(f"<td style='{pad}'>{old}{shown}</td>")
        rows.append(f"<tr data-name='{e(name)}'><td style='{pad}'><b>{e(name)}</b></td>{''.join(cells)}</tr>")
    return (f"<div style='overflow-x:auto'><table class='stream-table' data-now='{now}' "
            "style='border-collapse:collapse;font-size:0.85rem;white-space:nowrap'>" + "".join(rows) + "</table></div>")


def stream_values(now: int, x: np.ndarray, target: np.ndarray, delayed: np.ndarray, delayed_at: np.ndarray,
                  causal: np.ndarray, causal_at: np.ndarray, restart: np.ndarray, delay: int) -> go.Figure:
    """A regression stream at step ``now``: the input so far, the target, the delayed and causal outputs shown so
    far (fixed once shown), restart mode's current output over the prefix and, faint, its earlier outputs (each one
    a revision of the one before)."""
    T = len(target)
    t = np.arange(T)
    data = [dict(type="scatter", x=t[: now + 1], y=x[: now + 1], mode="lines", name="input x (arrived)",
                 line=dict(color="#999", width=1)),
            dict(type="scatter", x=t, y=target, mode="lines", name="target", line=dict(color="#333", dash="dot"))]
    data += [dict(type="scatter", x=t[: step + 1], y=restart[step, : step + 1], mode="lines", showlegend=False,
                  line=dict(color=PALETTE[1], width=1), opacity=0.15 + 0.05 * (step - now + 8), hoverinfo="skip")
             for step in range(max(0, now - 8), now)]
    data.append(dict(type="scatter", x=t[: now + 1], y=restart[now, : now + 1], mode="lines",
                     name="bidirectional, restart (faint: its earlier outputs)", line=dict(color=PALETTE[1])))
    for name, values, at, color in ((f"delayed d={delay}", delayed, delayed_at, PALETTE[0]),
                                    ("causal d=0", causal, causal_at, PALETTE[2])):
        shown = at <= now
        data.append(dict(type="scatter", x=t[shown], y=values[shown], mode="lines+markers", name=name,
                         marker=dict(size=4), line=dict(color=color)))
    now_line = dict(type="line", x0=now, x1=now, xref="x", y0=0, y1=1, yref="y domain",
                    line=dict(color="#888", dash="dash"))
    return figure(data, f"Step now = {now}", height=420, shapes=[now_line],
                  xaxis=dict(title="time step", range=[-0.5, T - 0.5]))


def accuracy_vs_latency(rows: Sequence[dict], metric: str = "accuracy", lower_is_better: bool = False,
                        lags: Sequence[int] = (0, 1, 2, 3, 4)) -> go.Figure:
    """The delayed ladder's ``metric`` against its latency ``d`` (each label final when shown), the bidirectional
    network in restart mode read ``k`` steps after each token (``metric_lag<k>``: it may still revise it), and the
    bidirectional network's final output, which waits for the end of the input (a line: its latency is the rest of
    the sequence)."""
    delayed = [r for r in rows if r.get("delay") is not None]
    bi = next((r for r in rows if r.get("delay") is None), None)
    data = [dict(type="scatter", x=[r["delay"] for r in delayed], y=[r[metric] for r in delayed],
                 mode="lines+markers", name="delayed RNN (final when shown)", marker=dict(size=9, color=PALETTE[0]),
                 hovertemplate="d=%{x}<br>" + metric + " %{y:.4f}<extra></extra>")]
    shapes, notes = [], []
    if bi is not None:
        ks = [k for k in lags if f"{metric}_lag{k}" in bi]
        data.append(dict(type="scatter", x=ks, y=[bi[f"{metric}_lag{k}"] for k in ks], mode="lines+markers",
                         name="bidirectional, restart, read k steps late",
                         marker=dict(size=8, symbol="square", color=PALETTE[1]), line=dict(dash="dot"),
                         hovertemplate="k=%{x}<br>" + metric + " %{y:.4f}<extra></extra>"))
        final = bi[metric]
        shapes.append(dict(type="line", x0=0, x1=1, xref="x domain", y0=final, y1=final, yref="y",
                           line=dict(color=PALETTE[1], dash="dash")))
        below = lower_is_better  # the note sits on the side of the line away from the better values
        notes.append(dict(text=f"bidirectional, final (waits for the end): {final:.4f}", showarrow=False,
                          x=1 if below else 0, xanchor="right" if below else "left", xref="x domain", y=final,
                          yanchor="top" if below else "bottom", yref="y"))
    return figure(data, f"Test {metric} against latency", height=400, shapes=shapes, annotations=notes,
                  xaxis=dict(title="latency: steps between a token and its label", dtick=1),
                  yaxis=dict(title=metric + (" (lower is better)" if lower_is_better else "")))


def compute_per_token(sequences: Sequence[dict], delay: int) -> go.Figure:
    """Measured milliseconds per arriving token against the sequence length: the delayed RNN's one step against
    restart mode's re-run of the whole prefix (hover: their ratio and the recurrent cell steps each needs)."""
    length = np.array([s["length"] for s in sequences])
    data = []
    for key, name, color in (("delayed", f"delayed d={delay}: one step", PALETTE[0]),
                             ("restart", "bidirectional, restart: whole prefix", PALETTE[1])):
        ms = np.array([s[key] * 1e3 for s in sequences])
        steps = [s[f"{key}_cell_steps"] for s in sequences]
        ratio = [s["ratio"] for s in sequences]
        data.append(dict(type="scatter", x=length, y=ms, mode="markers", name=name, marker=dict(color=color, size=7),
                         customdata=np.stack([steps, ratio], 1),
                         hovertemplate="T=%{x}: %{y:.3f} ms per token<br>%{customdata[0]} cell steps, "
                                       "restart / delayed = %{customdata[1]:.1f}×<extra></extra>"))
    return figure(data, "Compute per arriving token (measured)", height=380, xaxis=dict(title="sequence length T"),
                  yaxis=dict(title="ms per arriving token", type="log"))


def token_connectivity_map(matrix: np.ndarray, tokens: Sequence[str], delay: int | None = None,
                           title: str = "Connectivity ‖∂y_t/∂x_s‖ (log scale)") -> go.Figure:
    """:func:`~drnn_demo.viz.connectivity.connectivity_map` with the tokens (words) as tick labels on both axes."""
    labels = [f"{str(w)[:12]} ({t})" for t, w in enumerate(tokens)] if len(tokens) <= 60 else None
    return connectivity_map(matrix, delay=delay, title=title, tick_labels=labels)
