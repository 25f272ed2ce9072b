"""Figures of "Are gates attention?" on the LRN gates page: gate weights beside captum's attributions
for one prediction, and how well the methods agree over a test set. Built as plain dicts and validated by
plotly once (:func:`~drnn_demo.viz.style.figure`, :func:`~drnn_demo.viz.style.grid`)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from .lrn import LRN_SIDE_COLORS, _token_ticks
from .style import PALETTE, axes, axis_key, figure, grid

ATTRIBUTION_WEIGHT_COLOR = "#5e3c99"  # the (non-negative) gate weight row
ATTRIBUTION_FOR, ATTRIBUTION_AGAINST = LRN_SIDE_COLORS[1], LRN_SIDE_COLORS[0]  # toward / away from the prediction


def attribution_bars(tokens: Sequence[str], rows: Mapping[str, Sequence[float]], prediction: str,
                     marks: Sequence[int] = (), signed: Sequence[bool] | None = None,
                     title: str | None = None) -> go.Figure:
    """One bar row per method over the same tokens, aligned: ``rows`` maps a method's name to its
    ``(T,)`` scores (e.g. the gate weight ``mean_u w[T-1, k]``, integrated gradients, gradient × input).

    ``signed[i]``: row ``i`` is signed evidence for the ``prediction`` (blue for, red against); an
    unsigned row (the gate weight) is drawn in one colour. Each row has its own y scale; the hover
    gives the value and the token's rank by size within its row. ``marks``: deciding tokens (red ticks).
    """
    names = list(rows)
    if not names:
        raise ValueError("attribution_bars needs at least one row of scores")
    values = [np.asarray(rows[n], dtype=float) for n in names]
    T = len(tokens)
    if any(v.shape != (T,) for v in values):
        raise ValueError(f"every row needs {T} scores, one per token; got {[v.shape for v in values]}")
    signed = list(signed) if signed is not None else [bool((v < 0).any()) for v in values]
    n, gap = len(names), 0.07
    span = (1 - gap * (n - 1)) / n
    traces, layout, notes = [], {}, []
    for row, (name, v, is_signed) in enumerate(zip(names, values, signed, strict=True)):
        # one shared x axis (ticks at the bottom), one y axis per row stacked by domain, all plain dicts: several
        # times cheaper to build than make_subplots and go objects, and this figure is rebuilt for every new input
        axis = "" if row == 0 else str(row + 1)
        top = 1 - row * (span + gap)
        rank = np.empty(T, dtype=int)
        rank[np.argsort(-np.abs(v), kind="stable")] = np.arange(1, T + 1)
        colors = ([ATTRIBUTION_FOR if s >= 0 else ATTRIBUTION_AGAINST for s in v] if is_signed
                  else ATTRIBUTION_WEIGHT_COLOR)
        custom = np.array([[k, str(w), int(rank[k])] for k, w in enumerate(tokens)], dtype=object)
        traces.append(dict(
            type="bar", x=np.arange(T), y=v, marker=dict(color=colors), customdata=custom, name=name,
            showlegend=False, xaxis="x", yaxis=f"y{axis}",
            hovertemplate=f"{name}<br>token %{{customdata[0]}} '%{{customdata[1]}}'<br>"
                          f"%{{y:{'+' if is_signed else ''}.4g}} (rank %{{customdata[2]}} of {T} by size)"
                          "<extra></extra>"))
        layout[f"yaxis{axis}"] = dict(domain=[max(0.0, top - span), top], anchor="x", zeroline=is_signed,
                                      zerolinecolor="#555", zerolinewidth=1)
        notes.append(dict(text=html.escape(name), x=0.5, y=top, xref="paper", yref="paper", xanchor="center",
                          yanchor="bottom", showarrow=False, font=dict(size=14, color="#666")))
    layout["xaxis"] = dict(anchor=f"y{n if n > 1 else ''}", range=[-0.5, T - 0.5], title="input token k",
                           **_token_ticks(tokens, marks))
    title = title or (f"Gate weights beside gradient attributions, for the prediction “{prediction}” "
                      "(blue: for it, red: against)")
    return figure(traces, title, height=150 + 150 * n, showlegend=False, margin=dict(l=70, r=20, t=80, b=90),
                  annotations=notes, **layout)


def agreement_chart(models: Mapping[str, Mapping], pair_labels: Mapping[str, str],
                    method_labels: Mapping[str, str] | None = None, highlight: str | None = None) -> go.Figure:
    """Agreement over a test set, one colour per model: the mean per-sequence Spearman correlation of
    each pair of methods with its interval (left), and where known (last-keyword task) the fraction of
    sequences whose top token is a deciding one, per method (right).

    ``models``: label -> a row of :func:`drnn_demo.analysis.attributions.agreement` (``spearman``
    pair -> {mean, low, high, n}; optional ``top_token`` method -> the same). ``highlight``: the label of
    the model in view (drawn larger).
    """
    if not models:
        raise ValueError("agreement_chart needs at least one model")
    with_top = [m for m, row in models.items() if row.get("top_token")]
    cols = 2 if with_top else 1
    layout = grid(1, cols, column_widths=[0.62, 0.38][:cols], horizontal_spacing=0.2,
                  titles=["mean Spearman ρ of |score| per sequence (95% interval)",
                          "top token is a deciding one (fraction)"][:cols])
    pair_keys = list(pair_labels)
    methods = list(method_labels or {})
    lowest = 0.0
    data = []
    for i, (label, row) in enumerate(models.items()):
        color = PALETTE[i % len(PALETTE)]
        size = 12 if label == highlight else 8
        for col, table, cats, names in ((1, row.get("spearman", {}), pair_keys, pair_labels),
                                        (2, row.get("top_token") or {}, methods, method_labels)):
            if col > cols or not table:
                continue
            present = [k for k in cats if table.get(k) and table[k].get("mean") is not None]
            means = np.array([table[k]["mean"] for k in present], dtype=float)
            low = np.array([table[k]["low"] if table[k]["low"] is not None else table[k]["mean"] for k in present])
            high = np.array([table[k]["high"] if table[k]["high"] is not None else table[k]["mean"] for k in present])
            lowest = min(lowest, float(low.min(initial=0.0)))
            x, y = axes(1, col, cols)
            data.append(dict(
                type="scatter", x=means, y=[names[k] for k in present], mode="markers", name=label,
                legendgroup=label, showlegend=col == 1, xaxis=x, yaxis=y,
                marker=dict(color=color, size=size, symbol="circle" if col == 1 else "diamond"),
                error_x=dict(type="data", symmetric=False, array=high - means, arrayminus=means - low, color=color),
                customdata=np.array([[table[k]["n"], table[k]["low"], table[k]["high"]] for k in present],
                                    dtype=object),
                hovertemplate=f"{label}<br>%{{y}}: %{{x:.3f}} [%{{customdata[1]:.3f}}, %{{customdata[2]:.3f}}], "
                              "n = %{customdata[0]}<extra></extra>"))
    layout["xaxis"].update(range=[lowest - 0.05, 1.05], title="ρ")
    if cols == 2:
        layout["xaxis2"].update(range=[-0.05, 1.05], title="fraction", tickformat=".0%")
    for col in range(1, cols + 1):
        layout[axis_key(axes(1, col, cols)[1])]["autorange"] = "reversed"
    return figure(data, "Do the gates rank the tokens as the attributions do? Agreement on the test set",
                  height=420, margin=dict(l=60, r=20, t=70, b=60), **layout)
