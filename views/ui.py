"""Small UI helpers shared by the pages (widgets and layout only: no model math here)."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

PLOTLY_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


def chart(fig: go.Figure, key: str) -> None:
    """A full-width plotly chart with a stable key."""
    st.plotly_chart(fig, width="stretch", key=key, config=PLOTLY_CONFIG)


def seed() -> int:
    return int(st.session_state.get("seed", 0))


def device() -> str:
    return st.session_state.get("device", "auto")


@st.cache_resource
def job_manager():
    """The one JobManager of this server process (runs dir: $DRNN_RUNS_DIR or ./runs)."""
    from drnn_demo.jobs import JobManager

    return JobManager()


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds}s"


def run_progress(info, show: str = "steps") -> None:
    """A progress bar for one background run: its place in the queue, how far it is (``show``:
    "steps" or "percent") with the ETA, or how it ended."""
    if info.status == "queued":
        text = f"{info.label}: queued, position {info.queue_position}"
    elif info.active:
        done = f"step {info.step}/{info.total_steps or '?'}" if show == "steps" else f"{info.fraction:.0%}"
        text = f"{info.label}: {done} · ETA {format_seconds(info.eta)}"
    else:
        text = f"{info.label}: {info.status.replace('_', ' ')}"
    st.progress(min(info.fraction, 1.0), text=text)


def run_outcome(info) -> None:
    """How a background run ended: green when it finished, amber otherwise, with its message."""
    (st.success if info.status in ("finished", "early_stopped") else st.warning)(
        f"{info.label}: {info.status.replace('_', ' ')}. {info.message}")

