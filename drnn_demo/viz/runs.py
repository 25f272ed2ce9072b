"""Figures of the Training runs page: a run's loss and metric curves."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import PALETTE, _finish, downsample


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
