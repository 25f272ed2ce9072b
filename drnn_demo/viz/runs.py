"""Figures of the Training runs page: a run's loss and metric curves, several runs' curves overlaid."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from .style import PALETTE, axes, axis_key, downsample, figure, grid


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
    layout = grid(1, len(panels), titles=[t for t, _ in panels])
    data, color = [], 0
    for col, (title, group) in enumerate(panels, start=1):
        x, y = axes(1, col, len(panels))
        for name in group:
            points = [(r["step"], r[name]) for r in rows if isinstance(r.get(name), int | float)]
            data.append(dict(type="scatter", x=[s for s, _ in points], y=[v for _, v in points], name=name,
                             mode="lines" if name == "loss" else "lines+markers",
                             line=dict(color=PALETTE[color % len(PALETTE)]), marker=dict(size=5), xaxis=x, yaxis=y))
            color += 1
        if title == "scores":
            layout[axis_key(y)].update(title="accuracy", range=[0, 1.02])
        else:
            layout[axis_key(y)].update(type="log", title="loss" if col == 1 else ", ".join(group))
        layout[axis_key(x)]["title"] = "step"
    return figure(data, "", height=280, margin=dict(l=50, r=10, t=30, b=40),
                  legend=dict(orientation="h", y=-0.3, yanchor="top"), **layout)


DASHES = ("solid", "dash", "dot", "dashdot")  # past len(PALETTE) runs the colours repeat with another dash


def runs_overlay(runs: Sequence[dict], metric: str | None, x_title: str = "step", max_points: int = 500) -> go.Figure:
    """Several runs' curves on shared axes: training loss (left panel, log scale) and ``metric`` (right panel; an
    accuracy on 0..1, another metric on a log scale when all its values are positive). One colour per run, the
    same in both panels, one legend entry per run (clicking it hides the run in both).

    ``runs``: ``[{"name", "loss": (xs, ys), "metric": (xs, ys)}, ...]``
    (:func:`drnn_demo.runs_compare.overlay_series`); each curve is downsampled to ``max_points``.
    """
    panels = ["training loss"] + ([metric] if metric else [])
    layout = grid(1, len(panels), titles=panels, horizontal_spacing=0.08)
    data = []
    for i, run in enumerate(runs):
        style = dict(color=PALETTE[i % len(PALETTE)], dash=DASHES[(i // len(PALETTE)) % len(DASHES)], width=2)
        for col, (part, label) in enumerate((("loss", "loss"), ("metric", metric))[: len(panels)], start=1):
            xs, ys = run[part]
            keep = downsample(xs, max_points)
            x, y = axes(1, col, len(panels))
            data.append(dict(
                type="scatter", x=[xs[j] for j in keep], y=[ys[j] for j in keep], name=run["name"],
                legendgroup=run["name"], showlegend=col == 1, mode="lines" if part == "loss" else "lines+markers",
                line=dict(style), marker=dict(size=5, color=style["color"]),
                hovertemplate=f"{run['name']}<br>{x_title} %{{x:,}}<br>{label} %{{y:.4g}}<extra></extra>",
                xaxis=x, yaxis=y))
    losses = [v for run in runs for v in run["loss"][1]]
    layout["yaxis"].update(type="log" if losses and min(losses) > 0 else "linear", title="loss")
    if metric:
        values = [v for run in runs for v in run["metric"][1]]
        if "accuracy" in metric:
            layout["yaxis2"].update(title=metric, range=[0, 1.02])
        else:
            layout["yaxis2"].update(title=metric, type="log" if values and min(values) > 0 else "linear")
    for name in ("xaxis", "xaxis2")[: len(panels)]:
        layout[name]["title"] = x_title
    return figure(data, "", height=340, margin=dict(l=50, r=10, t=30, b=40),
                  legend=dict(orientation="h", y=-0.25, yanchor="top"), **layout)
