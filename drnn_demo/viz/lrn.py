"""Figures of the LRN gates page: token shares, unfolded weights, decay curves, gates, activations.

Each figure is built as plain trace and layout dicts (:func:`~drnn_demo.viz.style.figure`, subplots laid out by
:func:`~drnn_demo.viz.style.grid`) and validated by plotly once: a slider move rebuilds them."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from .style import PALETTE, axes, axis_key, figure, grid

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
    data = [dict(type="bar", x=np.arange(T), y=shares, marker=dict(color=colors), customdata=custom, name="share",
                 hovertemplate=f"token %{{customdata[0]}} '%{{customdata[1]}}'<br>share %{{y:+.4f}} of "
                               f"logit({labels[1]}) − logit({labels[0]})<extra></extra>")]
    zero = dict(type="line", x0=0, x1=1, xref="x domain", y0=0, y1=0, yref="y", line=dict(color="#555", width=1))
    notes = []
    if bias is not None:
        notes.append(f"bias {bias:+.3f}")
    if margin is not None:
        notes.append(f"sum {float(shares.sum()) + (bias or 0.0):+.3f} vs margin {margin:+.3f}")
    title = title or f"Each token's share of the decision, logit({labels[1]}) − logit({labels[0]})"
    return figure(data, title + (f" ({'; '.join(notes)})" if notes else ""), height=340, showlegend=False,
                  margin=dict(l=70, r=20, t=50, b=90), shapes=[zero],
                  xaxis=dict(title="input token k", range=[-0.5, T - 0.5], **_token_ticks(tokens, marks)),
                  yaxis=dict(title=f"share (+ {labels[1]}, − {labels[0]})", zeroline=False))


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
    data = [dict(type="heatmap", z=z.astype(np.float32) if log else shown, x=names, y=names,
                 colorscale=LRN_WEIGHT_SCALE, zmin=zmin, zmax=zmax, customdata=shown if log else None,
                 colorbar=dict(title="log10 w" if log else "w"), hoverongaps=False,
                 hovertemplate=f"state after %{{y}}<br>token %{{x}}<br>w = %{{{'customdata' if log else 'z'}:.4g}}"
                               "<extra></extra>")]
    height = int(min(720, max(380, 14 * T + 200)))
    return figure(data, f"Weight w[t, k] of token k in state h_t ({which}{', log scale' if log else ''})",
                  height=height, margin=dict(l=90, r=20, t=50, b=90), xaxis=dict(title="input token k", **x_axis),
                  yaxis=dict(title="output position t (state h_t)", autorange="reversed", **y_axis))


def lrn_decay_curves(weights: np.ndarray, tokens: Sequence[str], highlight: Sequence[int] = (), log: bool = True,
                     unit: int | None = None, floor: float = 1e-300) -> go.Figure:
    """How each token's weight decays over the later states (the paper's figure): for every token ``k``,
    ``w[t, k]`` for ``t = k .. T-1``. ``highlight``: tokens drawn in colour (e.g. the top ones), the
    rest in one grey trace. ``weights``: ``(T, T)`` as in :func:`lrn_weight_heatmap`."""
    w = np.asarray(weights, dtype=float)
    T = w.shape[0]
    words = [str(x) for x in tokens]
    chosen = [k for k in dict.fromkeys(int(k) for k in highlight) if 0 <= k < T]
    data = []
    others = [k for k in range(T) if k not in chosen]
    if others:  # one grey trace, the curves separated by NaN gaps; numeric arrays travel as base64
        xs = np.concatenate([np.append(np.arange(k, T), np.nan) for k in others]).astype(np.float32)
        ys = np.concatenate([np.append(np.where(w[k:, k] > 0, w[k:, k], np.nan), np.nan) for k in others])
        ks = np.concatenate([np.full(T - k + 1, k, dtype=np.float32) for k in others])
        data.append(dict(type="scatter", x=xs, y=ys, customdata=ks, mode="lines", name="other tokens",
                         line=dict(color=LRN_OTHER_COLOR, width=1),
                         hovertemplate="token %{customdata} in h_%{x}: w = %{y:.4g}<extra></extra>"))
    for i, k in enumerate(chosen):
        values = w[k:, k]
        data.append(dict(
            type="scatter", x=np.arange(k, T), y=[float(v) if v > 0 else None for v in values],
            mode="lines+markers" if T - k <= 60 else "lines", name=f"{k}: {words[k]}",
            line=dict(color=PALETTE[i % len(PALETTE)], width=2.5), marker=dict(size=5), customdata=values,
            hovertemplate=f"token {k} '{words[k]}'<br>in h_%{{x}}: w = %{{customdata:.4g}}<extra></extra>"))
    if log:
        positive = w[np.tril(np.ones((T, T), dtype=bool)) & (w > 0)]
        decades = np.log10(positive.max() / positive.min()) if positive.size else 0.0
        yaxis = dict(title="w[t, k] (log)", type="log", exponentformat="power", dtick=1 if decades > 3 else "D2")
    else:
        yaxis = dict(title="w[t, k]", rangemode="tozero")
    which = "mean over units" if unit is None else f"unit {unit}"
    return figure(data, f"Decay of each token's weight over later positions ({which})", height=420,
                  margin=dict(l=70, r=20, t=50, b=90), legend=dict(orientation="v", x=1.01, y=1, xanchor="left"),
                  xaxis=dict(title="later position t (state h_t)", range=[-0.5, T - 0.5], **_token_ticks(tokens)),
                  yaxis=yaxis)


def lrn_gate_heatmaps(input_gate: np.ndarray, forget_chain: np.ndarray, tokens: Sequence[str],
                      unit: int | None = None, log: bool = False, floor: float = 1e-12) -> go.Figure:
    """Two heatmaps, units (rows) x positions (columns): the input gate ``i_k`` (how much of token ``k``
    enters each unit) and the forget chain ``prod_{j=k+1..T-1} f_j`` (how much of it survives to the
    final state). Their product is the token's weight in the final state. ``input_gate`` and
    ``forget_chain`` are ``(T, H)``; ``unit`` is outlined; ``log`` colours by log10 (clipped at ``floor``).
    One shared colour axis, two rows of a :func:`~drnn_demo.viz.style.grid` with a shared token axis."""
    gate, chain = np.asarray(input_gate, dtype=float).T, np.asarray(forget_chain, dtype=float).T  # (H, T)
    H, T = gate.shape
    names, x_axis = _token_categories(tokens)
    layout = grid(2, 1, shared_xaxes=True, vertical_spacing=0.1,
                  titles=["input gate i_k (how much of token k enters)",
                          "forget chain f_{k+1} ⋯ f_{T−1} (how much of it survives to the final state)"])
    for note in layout["annotations"]:
        note["font"] = dict(size=12)
    zs = [_log10_or_none(a, floor) if log else a for a in (gate, chain)]
    finite = np.concatenate([z[np.isfinite(z)] for z in zs])
    zmin = float(finite.min()) if log and finite.size else 0.0
    zmax = 0.0 if log else 1.0
    data, shapes = [], []
    for row, (name, raw, z) in enumerate((("i", gate, zs[0]), ("chain", chain, zs[1])), start=1):
        x, y = axes(row)
        data.append(dict(type="heatmap", z=z.astype(np.float32), x=names, y=np.arange(H), coloraxis="coloraxis",
                         customdata=raw, xaxis=x, yaxis=y,
                         hovertemplate=f"unit %{{y}}, token %{{x}}<br>{name} = %{{customdata:.4g}}<extra></extra>"))
        layout[axis_key(x)].update(x_axis)
        layout[axis_key(y)].update(title="unit", autorange="reversed")
        if unit is not None and 0 <= unit < H:
            shapes.append(dict(type="rect", x0=-0.5, x1=T - 0.5, y0=unit - 0.5, y1=unit + 0.5, xref=x, yref=y,
                               line=dict(color=LRN_MARK_COLOR, width=2)))
    layout["xaxis2"]["title"] = "input token k"
    height = int(min(900, max(460, 2 * (8 * H + 60) + 170)))
    return figure(data, "Input gates and forget chains, per unit" + (" (log10)" if log else ""), height=height,
                  coloraxis=dict(colorscale=LRN_WEIGHT_SCALE, cmin=zmin, cmax=zmax,
                                 colorbar=dict(title="log10" if log else "value")),
                  margin=dict(l=70, r=20, t=70, b=90), shapes=shapes, **layout)


def lrn_activation_comparison(records: Sequence[dict], marks: Sequence[int] = (), floor: float = 1e-17) -> go.Figure:
    """tanh vs identity side by side on the same input: each token's share of the decision (top row)
    and the error of the linear unfolding ``max_u |h_t - sum_k w[t, k] r_k|`` per position (bottom
    row, shared log scale, with the state scale ``max_u |h_t|`` dotted for reference).

    ``records``: ``{"label", "tokens", "shares" (T,), "error" (T,), "scale" (T,) (optional),
    "probability": float (optional), "prediction": str (optional)}``, one per column (a 2 x n
    :func:`~drnn_demo.viz.style.grid`, each row's y axes shared); ``marks``: ground-truth positions
    (bold red tick labels).
    """
    n = len(records)
    cols = max(n, 1)
    titles = []
    for rec in records:
        err = np.asarray(rec["error"], dtype=float)
        scale = np.asarray(rec.get("scale", [1.0]), dtype=float)
        rel = float(err.max() / scale.max()) if scale.max() > 0 else float(err.max())
        pred = f": {rec['prediction']} ({rec['probability']:.3f})" if rec.get("prediction") else ""
        titles.append(f"{rec['label']}{pred}<br><sub>max unfolding error {err.max():.2e} = {rel:.1e} of max |h|</sub>")
    layout = grid(2, cols, shared_yaxes=True, vertical_spacing=0.22, horizontal_spacing=0.06, titles=titles,
                  row_heights=[0.5, 0.5])
    for note in layout.get("annotations", []):
        note["font"] = dict(size=13)
    data = []
    for col, rec in enumerate(records, start=1):
        (x1, y1), (x2, y2) = axes(1, col, cols), axes(2, col, cols)
        tokens = [str(x) for x in rec["tokens"]]
        shares = np.asarray(rec["shares"], dtype=float)
        T = len(shares)
        data.append(dict(
            type="bar", x=np.arange(T), y=shares, marker=dict(color=[LRN_SIDE_COLORS[int(s >= 0)] for s in shares]),
            customdata=tokens, showlegend=False, name=f"{rec['label']} share", xaxis=x1, yaxis=y1,
            hovertemplate=f"{rec['label']}<br>token %{{x}} '%{{customdata}}'<br>share %{{y:+.4f}}<extra></extra>"))
        err = np.asarray(rec["error"], dtype=float)
        data.append(dict(
            type="scatter", x=np.arange(T), y=np.maximum(err, floor), mode="lines+markers" if T <= 60 else "lines",
            name="unfolding error", legendgroup="error", showlegend=col == 1, line=dict(color=PALETTE[1], width=2),
            marker=dict(size=5), customdata=np.stack([err, np.asarray(tokens, dtype=object)], axis=-1),
            xaxis=x2, yaxis=y2,
            hovertemplate=f"{rec['label']}<br>h_%{{x}} (after '%{{customdata[1]}}')<br>error %{{customdata[0]:.3e}}"
                          "<extra></extra>"))
        if rec.get("scale") is not None:
            scale = np.asarray(rec["scale"], dtype=float)
            data.append(dict(
                type="scatter", x=np.arange(T), y=np.maximum(scale, floor), mode="lines", name="state scale max |h_t|",
                legendgroup="scale", showlegend=col == 1, line=dict(color="#555", dash="dot", width=1.5),
                xaxis=x2, yaxis=y2, hovertemplate=f"{rec['label']}<br>max |h_%{{x}}| = %{{y:.3g}}<extra></extra>"))
        layout[axis_key(x1)].update(_token_ticks(tokens, marks, limit=LRN_TICK_LIMIT // 3), tickfont=dict(size=11))
        layout[axis_key(x2)]["title"] = "position t"
    for col in range(1, cols + 1):
        layout[axis_key(axes(2, col, cols)[1])].update(type="log", exponentformat="power")
    layout["yaxis"]["title"] = "share of the decision"
    layout[axis_key(axes(2, 1, cols)[1])]["title"] = "error (log)"
    return figure(data, "tanh vs identity: the same input, the unfolded shares and how exact the unfolding is",
                  height=640, margin=dict(l=70, r=20, t=110, b=60),
                  legend=dict(orientation="h", yanchor="bottom", y=0.40, x=1, xanchor="right"), **layout)
