"""Helpers for Streamlit AppTest: run a page, read its plotly figures as plain JSON."""

import base64
import json
import re
import time
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).parents[1] / "app.py")


def open_page(page: str | None = None, query: dict | None = None, timeout: float = 120) -> AppTest:
    """Run the app (torch import makes the first run slow, hence the long timeout) on ``page``."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    return at


def decode_arrays(value):
    """Plotly >= 6 ships numpy arrays as {"dtype", "bdata", "shape"}: turn them back into lists (NaN as None: both
    are a gap to plotly.js)."""
    if isinstance(value, dict):
        if "bdata" in value and "dtype" in value:
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
            if "shape" in value:
                array = array.reshape([int(s) for s in str(value["shape"]).split(",")])
            return _nan_to_none(array.tolist())
        return {k: decode_arrays(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_arrays(v) for v in value]
    return value


def _nan_to_none(values):
    if isinstance(values, list):
        return [_nan_to_none(v) for v in values]
    return None if isinstance(values, float) and values != values else values


def figures(at: AppTest) -> list[dict]:
    """Every plotly chart on the page as a decoded figure dict (``data`` and ``layout``)."""
    return [decode_arrays(json.loads(chart.proto.spec)) for chart in at.get("plotly_chart")]


def figure_titled(at: AppTest, text: str) -> dict:
    for fig in figures(at):
        title = fig.get("layout", {}).get("title", {}).get("text", "") or ""
        if text in title:
            return fig
    raise AssertionError(f"no figure titled {text!r}")


def rerun_until(at: AppTest, session_key: str, timeout: float = 180) -> None:
    """Rerun the page once a second until ``session_key`` appears in its session state (a background
    run ended); fail after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while session_key not in at.session_state and time.time() < deadline:
        time.sleep(1)
        at.run()
    assert session_key in at.session_state, f"{session_key!r} did not appear within {timeout:.0f} s"


def markdown_tables(at: AppTest) -> list[dict[str, list[str]]]:
    """The markdown tables the page wrote (views.ui.table), each as {column: [cell text, one per row]}, unescaped."""
    tables = []
    for element in at.markdown:
        lines = element.value.splitlines()
        if len(lines) < 2 or not lines[0].startswith("| ") or set(lines[1]) - set("|- "):
            continue
        rows = [[re.sub(r"\\(.)", r"\1", c.strip()) for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]
        tables.append({name: [row[i] for row in rows[2:]] for i, name in enumerate(rows[0])})
    return tables
