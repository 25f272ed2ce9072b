"""Small UI helpers shared by the pages (widgets and layout only: no model math here)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import plotly.graph_objects as go
import streamlit as st

PLOTLY_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
NUMERIC_WIDGETS = {"slider", "number_input"}
BOOLEAN_WIDGETS = {"toggle", "checkbox"}
TEXT_WIDGETS = {"text_input", "text_area"}  # every other widget picks among options, in the URL as format_func(option)
SHOWN_CHARS = 40  # a link's value is quoted in a notice up to this many characters


PAGE_FIGURES = "_page_figures"  # session key: chart key -> figure, of the page's last full run (app.py starts it)


def file_stem(text: str, fallback: str = "chart") -> str:
    """``text`` as a safe file name stem: ASCII letters, digits, ``.``, ``-``, ``_``; at most 60 characters."""
    stem = re.sub(r"[^A-Za-z0-9.-]+", "_", text or "").strip("._")[:60].strip("._")
    return stem or fallback


def chart(fig: go.Figure, key: str, name: str | None = None, csv: bool = True) -> None:
    """A full-width plotly chart with a stable key and, below it on the right, a small "CSV" download of its data
    (:func:`drnn_demo.export.figure_to_csv`, built only when clicked); the figure joins the page's HTML export
    (:func:`page_download`). ``name`` names the file (default: the figure's title, else the key)."""
    st.plotly_chart(fig, width="stretch", key=key, config=PLOTLY_CONFIG)
    collected = st.session_state.get(PAGE_FIGURES)
    if isinstance(collected, dict):
        collected[key] = fig
    if csv:
        title = fig.layout.title.text if fig.layout.title and fig.layout.title.text else None
        with st.container(horizontal=True, horizontal_alignment="right"):
            st.download_button("CSV", data=lambda: _export().figure_to_csv(fig), mime="text/csv",
                               file_name=f"{file_stem(name or title or key)}.csv", key=f"{key}_csv", type="tertiary",
                               icon=":material/download:", on_click="ignore",
                               help="This chart's data as CSV: one row per point (a heatmap: one per cell)")


def table(rows: list[dict]) -> None:
    """A few rows (dicts with the same keys) as a markdown table: read at a glance, and no data-grid JS for the
    browser to load beside the page's first chart (``st.dataframe`` costs ~1.6 MB of it)."""
    def cell(value) -> str:  # markdown's own characters escaped: a run id's "_" is not an italic
        return re.sub(r"([\\`*_\[\]<>|$~])", r"\\\1", str(value)).replace("\n", " ")

    columns = list(rows[0])
    lines = [" | ".join(cell(c) for c in columns), " | ".join("---" for _ in columns)]
    lines += [" | ".join(cell(row[c]) for c in columns) for row in rows]
    st.markdown("\n".join(f"| {line} |" for line in lines))


def _export():
    from drnn_demo import export

    return export


def start_page() -> None:
    """Begin collecting the figures :func:`chart` draws (app.py calls this before each full run of a page;
    fragment reruns then update the same collection)."""
    st.session_state[PAGE_FIGURES] = {}


def page_download(title: str) -> None:
    """A sidebar button "Download this page (HTML)": every figure the page drew, in one standalone HTML file
    (:func:`drnn_demo.export.figures_to_html`, plotly.js embedded once; built only when clicked). Nothing when the
    page drew no figure."""
    collected = st.session_state.get(PAGE_FIGURES)
    if not isinstance(collected, dict) or not collected:
        return
    st.sidebar.download_button(
        "Download this page (HTML)", data=lambda: _export().figures_to_html(tuple(collected.values()), title),
        file_name=f"{file_stem(title, 'page')}.html", mime="text/html", key="page_html", icon=":material/download:",
        on_click="ignore", help="Every chart of this page, interactive, in one file that opens without a network "
                                "(about 5 MB: plotly.js is inside)")


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
    status = info.status.replace("_", " ")
    said = info.message.lower().startswith(status.split()[0])  # "finished 500 steps; ...": no "finished. finished"
    (st.success if info.status in ("finished", "early_stopped") else st.warning)(
        f"{info.label}: {info.message}" if said else f"{info.label}: {status}. {info.message}")


def _run_ids(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _known_runs(run_ids: list[str]) -> list:
    jobs, infos = job_manager(), []
    for run_id in run_ids:
        try:
            infos.append(jobs.get(run_id))
        except KeyError:  # deleted meanwhile, or a stale id
            continue
    return infos


@st.fragment(run_every=1.0)
def _follow(running_key: str, done_key: str, show: str, live: Callable | None) -> None:
    """Polls while one of the followed runs is queued or running; then hands over to the page once."""
    job_manager().poll()
    infos = _known_runs(_run_ids(st.session_state.get(running_key)))
    if any(info.active for info in infos):
        for info in infos:
            run_progress(info, show)
        if live is not None:
            live(infos)
        return
    st.session_state[done_key] = st.session_state.pop(running_key, None)
    st.rerun()


def follow_runs(running_key: str, done_key: str, show: str = "steps", live: Callable | None = None) -> list:
    """The submit -> follow -> outcome pattern every page shares, for the run id (or ids) a page stored
    in ``st.session_state[running_key]`` when it submitted them.

    While any of them is active, a fragment polls once a second and shows each one's progress bar
    (``show``: "steps" or "percent") and ``live(infos)`` if given (a live chart, say); the rest of
    the page does not rerun. When all have ended, the ids move to ``st.session_state[done_key]`` and
    the page reruns once. Returns the ended runs (RunInfo), each shown with :func:`run_outcome`.
    """
    if st.session_state.get(running_key):
        _follow(running_key, done_key, show, live)
    ended = _known_runs(_run_ids(st.session_state.get(done_key)))
    for info in ended:
        run_outcome(info)
    return ended


# ---------------------------------------------------------------- widgets bound to the URL


def bound(widget: Callable, label: str, *args, key: str, **kwargs) -> Any:
    """``widget(label, *args, key=key, bind="query-params", **kwargs)``: a widget whose value lives in the URL as
    ``?key=...``, and which says so when a link's value for it was not used.

    Streamlit seeds the widget from the URL when its page opens; a value it cannot use (not an option, out of range,
    not a number, too long for ``max_chars``) silently gives the default (or the clamped / cut value, or the value
    this session had), and Streamlit rewrites the URL to it (a default is written as no parameter). This wrapper
    compares the link's value with the one in use, the first time the widget runs in a visit of its page (app.py
    counts the visits), and shows one toast naming the parameter, once per session for each (parameter, value).
    Later reruns read the URL the widget itself wrote. ``widget`` is a Streamlit widget function or a container's
    (``st.slider``, ``columns[0].selectbox``).
    """
    visit = st.session_state.get("_url_visit")
    if visit is None:  # a page run without the router: only a widget new to the session reads the link
        first = key not in st.session_state
    else:
        checked = st.session_state.setdefault("_url_checked", {})
        first, checked[key] = checked.get(key) != visit, visit
    raw = st.query_params.get_all(key) if first else []
    value = widget(label, *args, key=key, bind="query-params", **kwargs)
    if raw:
        _say_if_unused(widget.__name__, key, raw, value, args, kwargs)
    return value


def view_tabs(labels: list[str], key: str) -> tuple[str, Any]:
    """Tabs of which only the open one is built: ``(open label, its container)``. The choice lives in the URL as
    ``?key=label`` (through :func:`bound`, so a link's unknown label says so). A tab switch reruns the page; a
    slider move redraws the open view's charts only, not those of every tab (Streamlit draws hidden tabs too)."""
    containers: dict[str, Any] = {}

    def tabs(options: list[str], *, key: str, bind: str) -> str:
        containers.update(zip(options, st.tabs(options, key=key, bind=bind, on_change="rerun"), strict=True))
        return next((label for label, tab in containers.items() if tab.open), options[0])

    label = bound(tabs, labels, key=key)
    return label, containers[label]


def _values(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _number(v) -> str:
    return str(int(v)) if isinstance(v, float) and math.isfinite(v) and v == int(v) else str(v)


def _url_text(kind: str, value, format_func: Callable) -> list[str]:
    """The value as the URL writes it (what a link must say to select it)."""
    if kind in NUMERIC_WIDGETS:
        return [_number(v) for v in _values(value)]
    if kind in BOOLEAN_WIDGETS:
        return ["true" if value else "false"]
    if kind in TEXT_WIDGETS:
        return [value or ""]
    return [str(format_func(v)) for v in _values(value)]


def _matches(kind: str, raw: list[str], value, format_func: Callable) -> bool:
    """Whether the link's value is the one in use (a scalar widget reads the last of repeated values)."""
    shown = _url_text(kind, value, format_func)
    if kind in NUMERIC_WIDGETS:
        raw = raw[-len(shown):]
        try:
            return [float(r) for r in raw] == [float(v) for v in _values(value)]
        except (TypeError, ValueError):
            return False
    if kind in BOOLEAN_WIDGETS:
        return raw[-1].lower() == shown[0]
    if isinstance(value, (list, tuple)):  # a multi-choice widget: every value counts, empty ones say "none"
        return [r for r in raw if r != ""] == shown
    return raw[-1] == shown[0] or _same_number(raw[-1], shown[0])  # ?eps=0 for the option 0.0 is no mistake


def _same_number(a: str, b: str) -> bool:
    try:
        return float(a) == float(b)
    except ValueError:
        return False


def _why(kind: str, raw: list[str], args: tuple, kwargs: dict) -> str:
    text = raw[-1]
    if kind in NUMERIC_WIDGETS:
        try:
            number = float(text)
        except ValueError:
            return "not a number"
        if not math.isfinite(number):
            return "not a finite number"
        low = kwargs.get("min_value", args[0] if args else None)
        high = kwargs.get("max_value", args[1] if len(args) > 1 else None)
        if low is not None and high is not None and not low <= number <= high:
            return f"outside {_number(low)}–{_number(high)}"
        return "not a whole number" if number != int(number) else "not a valid value"
    if kind in BOOLEAN_WIDGETS:
        return "not true or false"
    if kind in TEXT_WIDGETS:
        limit = kwargs.get("max_chars")
        return f"longer than {limit:,} characters: cut to the first {limit:,}" if limit and len(text) > limit \
            else "not a valid value"
    return "not one of the options"


def _quoted(key: str, values: list[str]) -> str:
    """``key=value`` as inline code, so a link's text is never rendered as Markdown; a long value is shortened."""
    text = ",".join(values)
    shown = " ".join(text[:SHOWN_CHARS].replace("`", "'").split())
    return f"`{key}={shown}`" + (f"… ({len(text):,} characters)" if len(text) > SHOWN_CHARS else "")


def _say_if_unused(kind: str, key: str, raw: list[str], value, args: tuple, kwargs: dict) -> None:
    format_func = kwargs.get("format_func") or str
    if _matches(kind, raw, value, format_func):
        return
    said = st.session_state.setdefault("_url_notices", set())
    seen = (key, hash(tuple(raw)))
    if seen in said:
        return
    said.add(seen)
    st.toast(f"Ignored {_quoted(key, raw)} from the link ({_why(kind, raw, args, kwargs)}); showing "
             f"{_quoted(key, _url_text(kind, value, format_func))}.", icon=":material/link_off:", duration="long")
