"""Figures of the Memory & stability page: loss curves, gradient reach, saturation, orthogonality."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from .style import PALETTE, downsample, figure

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
    data = []
    last_step = 1
    for rec in records:
        color, label = _cell_color(rec["cell"]), rec["label"]
        steps, losses = list(rec["history"].get("step", [])), list(rec["history"].get("loss", []))
        idx = downsample(steps, max_points)
        if len(idx):
            last_step = max(last_step, steps[idx[-1]])
        ratios = [None if losses[i] is None else losses[i] / baseline for i in idx]
        data.append(dict(
            type="scatter", x=[steps[i] for i in idx], y=_positive([losses[i] for i in idx], floor), mode="lines",
            name=label, legendgroup=label, line=dict(color=color, width=1.6), customdata=ratios,
            hovertemplate=f"{label}<br>step %{{x}}<br>train CE %{{y:.4f}}<br>= %{{customdata:.3f}} × baseline"
                          "<extra></extra>"))
        snaps = [s for s in rec.get("snapshots") or [] if s.get("val_loss") is not None]
        if snaps:
            data.append(dict(
                type="scatter", x=[s["step"] for s in snaps], y=_positive([s["val_loss"] for s in snaps], floor),
                mode="markers", name=f"{label} (validation)", legendgroup=label, showlegend=False,
                marker=dict(color=color, size=7, symbol="circle-open", line=dict(width=2)),
                customdata=[s["val_loss"] / baseline for s in snaps],
                hovertemplate=f"{label}<br>step %{{x}}<br>validation CE %{{y:.4f}}<br>= %{{customdata:.3f}} × "
                              "baseline<extra></extra>"))
    data.append(dict(
        type="scatter", x=[0, last_step], y=[baseline, baseline], mode="lines", name=f"baseline {baseline:.4f}",
        line=dict(color=BASELINE_COLOR, dash="dash", width=2),
        hovertemplate=f"baseline: blank, then a uniform guess<br>CE {baseline:.4f}<extra></extra>"))
    yaxis, layout = dict(title="cross-entropy (log)", type="log"), {}
    # A diverged run would squash every other curve: a run diverged when its cross-entropy rises above both 3x the
    # baseline and 1.5x where it started (an untrained loss above 3x the baseline is a start, not a divergence);
    # the axis then stops where the other curves end (at least 3x the baseline) and a note names the diverged runs,
    # bottom left, where loss curves (which start high) leave room.
    values, above, top = [], [], 3 * baseline
    for rec in records:
        losses = [v for v in rec["history"].get("loss", []) if v is not None and np.isfinite(v) and v > 0]
        checked = losses + [v for v in (s.get("val_loss") for s in rec.get("snapshots") or [])
                            if v is not None and np.isfinite(v) and v > 0]
        values += checked
        if not losses:
            continue
        ceiling = max(3 * baseline, 1.5 * losses[0])
        if max(losses) > ceiling:
            above.append((rec["label"], max(losses)))
        top = max(top, min(max(checked), ceiling))
    if above and values:
        yaxis["range"] = [np.log10(min(values)) - 0.05, np.log10(top)]
        note = "; ".join(f"{label} diverged (cross-entropy up to {peak:.3g}, above the axis)" for label, peak in above)
        layout["annotations"] = [dict(
            text=note, xref="paper", yref="paper", x=0.01, y=0.01, xanchor="left", yanchor="bottom", showarrow=False,
            font=dict(color="#b00020"), bgcolor="rgba(255,255,255,0.8)")]
    return figure(data, title, height=420, xaxis=dict(title="training step"), yaxis=yaxis, **layout)


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
    data = []
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
            data.append(dict(
                type="scatter", x=list(range(len(norms))), y=[v or None for v in _positive(values, 0.0)],
                mode="lines", name=name, legendgroup=label,
                line=dict(color=color, width=2 if kind == "final" else 1.4, dash="solid" if kind == "final" else "dot"),
                customdata=values,
                hovertemplate=f"{name}<br>t = %{{x}}<br>||dL/ds_t|| = %{{customdata:.3e}}<extra></extra>"))
    # each phase a band over the whole height, its label in the band's bottom left corner
    shapes = [dict(type="rect", x0=p["start"] - 0.5, x1=p["stop"] - 0.5, y0=0, y1=1, xref="x", yref="y domain",
                   fillcolor=PHASE_COLORS[p["role"]], opacity=0.08 if p["stop"] - p["start"] > 1 else 0.25,
                   line_width=0) for p in phases]
    labels = [dict(text=p["label"], x=p["start"] - 0.5, xref="x", y=0, yref="y domain", xanchor="left",
                   yanchor="bottom", showarrow=False, font=dict(size=11)) for p in phases]
    layout = dict(shapes=shapes, annotations=labels) if phases else {}
    return figure(data, "Gradient norm ||∂L/∂h_t|| over time", height=420,
                  xaxis=dict(title="time step t", range=[-0.5, T - 0.5]),
                  yaxis=dict(title="||dL/ds_t|| (log)", type="log", exponentformat="power"), **layout)


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
    shown = min(snaps, key=lambda s: abs(s["step"] - step))
    chosen = [(snaps[0], "#9e9e9e", f"step {snaps[0]['step']} (start)")]
    if shown is not snaps[0]:
        chosen.append((shown, MEMORY_CELL_COLORS["asrnn"], f"step {shown['step']}"))
    data = []
    for snap, color, name in chosen:
        log_levels = np.log10(np.asarray(snap["saturation"], dtype=float))
        counts, _ = np.histogram(np.clip(log_levels, edges[0], edges[-1]), edges)
        data.append(dict(type="bar", x=centers, y=counts, name=name, marker=dict(color=color), opacity=0.75,
                         width=(edges[1] - edges[0]) * 0.95, customdata=real,
                         hovertemplate=f"{name}<br>|s|+eps in [%{{customdata[0]:.3g}}, %{{customdata[1]:.3g}}]"
                                       "<br>%{y} units<extra></extra>"))
    ticks = np.arange(np.floor(edges[0]), np.ceil(edges[-1]) + 1)
    levels = np.asarray(shown["saturation"], dtype=float)
    return figure(data, f"asRNN saturation levels at step {shown['step']} (median {np.median(levels):.3g})",
                  height=380, barmode="overlay",
                  xaxis=dict(title="saturation level |s| + eps (log scale)", tickvals=ticks,
                             ticktext=[f"1e{int(t)}" for t in ticks], range=[edges[0], edges[-1]]),
                  yaxis=dict(title="units"))


def saturation_trajectory(snapshots: Sequence[dict], step: int | None = None) -> go.Figure:
    """How asRNN's saturation levels move during training: median, 10-90 % band, min and max per snapshot
    (log scale); a vertical line marks ``step``."""
    snaps = [s for s in snapshots if s.get("saturation")]
    steps = [s["step"] for s in snaps]
    q = np.array([np.quantile(np.asarray(s["saturation"], dtype=float), [0.0, 0.1, 0.5, 0.9, 1.0]) for s in snaps])
    color = MEMORY_CELL_COLORS["asrnn"]
    data = [dict(type="scatter", x=steps, y=q[:, 3], mode="lines", line=dict(width=0), showlegend=False,
                 hoverinfo="skip"),
            dict(type="scatter", x=steps, y=q[:, 1], mode="lines", line=dict(width=0), fill="tonexty",
                 fillcolor="rgba(214,39,40,0.18)", name="10–90 % of units", customdata=q[:, [1, 3]],
                 hovertemplate="step %{x}<br>10 %: %{customdata[0]:.3g}<br>90 %: %{customdata[1]:.3g}"
                               "<extra></extra>"),
            dict(type="scatter", x=steps, y=q[:, 2], mode="lines+markers", name="median",
                 line=dict(color=color, width=2), marker=dict(size=5),
                 hovertemplate="step %{x}<br>median %{y:.3g}<extra></extra>")]
    data += [dict(type="scatter", x=steps, y=q[:, col], mode="lines", name=name,
                  line=dict(color=color, width=1, dash="dot"),
                  hovertemplate=f"step %{{x}}<br>{name} %{{y:.3g}}<extra></extra>")
             for col, name in ((0, "min"), (4, "max"))]
    layout = {}
    if step is not None:
        layout["shapes"] = [dict(type="line", x0=step, x1=step, y0=0, y1=1, xref="x", yref="y domain",
                                 line=dict(color="#333333", dash="dash", width=1))]
    return figure(data, "asRNN saturation levels during training", height=380, xaxis=dict(title="training step"),
                  yaxis=dict(title="|s| + eps (log)", type="log", exponentformat="power"), **layout)


def orthogonality_errors(records: Sequence[dict], floor: float = 1e-17) -> go.Figure:
    """``||W_hh^T W_hh - I||_F`` against the step (log scale) for the cells with an orthogonal
    ``W_hh`` (asRNN, expRNN). ``records``: ``{"label", "cell", "snapshots": [{"step",
    "orthogonality_error"}, ...]}``; records without the error are skipped."""
    data = []
    largest = 0.0
    for rec in records:
        snaps = [s for s in rec.get("snapshots") or [] if s.get("orthogonality_error") is not None]
        if not snaps:
            continue
        errors = [s["orthogonality_error"] for s in snaps]
        largest = max([largest, *[e for e in errors if np.isfinite(e)]])
        data.append(dict(
            type="scatter", x=[s["step"] for s in snaps], y=_positive(errors, floor), mode="lines+markers",
            name=rec["label"], line=dict(color=_cell_color(rec["cell"]), width=2), marker=dict(size=5),
            customdata=errors,
            hovertemplate=f"{rec['label']}<br>step %{{x}}<br>||WᵀW − I||_F = %{{customdata:.3e}}<extra></extra>"))
    # a fixed span of decades: round-off jitter must not look like a trend
    top = max(1.0, largest * 10)
    return figure(data, "Orthogonality error of W_hh", height=380, xaxis=dict(title="training step"),
                  yaxis=dict(title="||W_hhᵀ W_hh − I||_F (log)", type="log", exponentformat="power",
                             range=[-10, float(np.log10(top))]))
