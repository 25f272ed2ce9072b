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
