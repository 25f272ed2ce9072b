"""AppTest: the connectivity heatmaps ||dy_t/dx_s|| on Delayed outputs and Memory & stability draw without an
exception, show the exact zeros each architecture must have, and follow their URL-bound widgets."""

import numpy as np
from apptest_helpers import figure_titled, figures, open_page

DELAYED = "views/delayed_outputs.py"
MEMORY = "views/memory.py"
K = 10


def norms(fig: dict) -> np.ndarray:
    """The real norms of the map (the hover's customdata), rows t, columns s."""
    return np.asarray(fig["data"][0]["customdata"], dtype=float)


def trace_named(fig: dict, name: str) -> dict | None:
    return next((t for t in fig["data"] if t.get("name") == name), None)


def test_delayed_outputs_map_is_zero_exactly_beyond_t_plus_d():
    at = open_page(DELAYED)
    assert not at.exception
    fig = figure_titled(at, "Connectivity")
    assert "delay d = 9" in fig["layout"]["title"]["text"] and "test sequence 0" in fig["layout"]["title"]["text"]
    c = norms(fig)
    t, s = np.indices(c.shape)
    assert c.shape == (20, 20)  # reversal: 20 output steps x 20 input steps
    assert np.all(c[s > t + 9] == 0) and np.all(c[s <= t + 9] > 0)
    assert trace_named(fig, "s = t + 9") is not None and trace_named(fig, "exactly 0") is not None
    assert any("right of the line is exactly 0" in c.value for c in at.caption)

    at.segmented_control(key="conn_model").set_value("bidirectional").run()
    assert not at.exception
    fig = figure_titled(at, "Connectivity")
    assert "bidirectional baseline" in fig["layout"]["title"]["text"]
    assert np.all(norms(fig) > 0) and trace_named(fig, "exactly 0") is None  # reads everything

    at.segmented_control(key="conn_model").set_value("stacked").run()
    fig = figure_titled(at, "Connectivity")
    c = norms(fig)
    assert np.all(c[s > t] == 0) and np.all(c[s <= t] > 0)  # causal: lower-triangular
    assert trace_named(fig, "s = t") is not None


def test_delayed_outputs_map_follows_the_sequence_the_task_and_the_link():
    at = open_page(DELAYED)
    before = norms(figure_titled(at, "Connectivity"))
    at.slider(key="example").set_value(3).run()
    assert not at.exception
    after = figure_titled(at, "Connectivity")
    assert "test sequence 3" in after["layout"]["title"]["text"] and not np.array_equal(norms(after), before)

    at = open_page(DELAYED, query={"task": "sine", "delay_sine": "5", "conn_model": "stacked"})
    assert not at.exception
    fig = figure_titled(at, "Connectivity")
    assert "stacked baseline" in fig["layout"]["title"]["text"] and norms(fig).shape == (50, 50)
    at.segmented_control(key="conn_model").set_value("model shown").run()
    c = norms(figure_titled(at, "Connectivity"))
    t, s = np.indices(c.shape)
    assert np.all(c[s > t + 5] == 0) and np.all(c[s <= t + 5] > 0)


def test_memory_map_shows_the_recall_steps_reading_the_stored_symbols():
    at = open_page(MEMORY, query={"mem_view": "Connectivity"})  # the map's tab
    assert not at.exception
    fig = figure_titled(at, "Connectivity")
    assert "asRNN" in fig["layout"]["title"]["text"]
    c = norms(fig)
    T = 50 + 2 * K
    t, s = np.indices(c.shape)
    assert c.shape == (T, T) and np.all(c[s > t] == 0)  # causal
    recall = c[T - K:]
    assert list(recall.argmax(1)) == list(range(K))  # recall step k reads stored symbol k most strongly
    assert any(a["text"] == "recall ← symbols" for a in fig["layout"]["annotations"])

    at.segmented_control(key="mem_conn_cell").set_value("lstm").run()
    assert not at.exception
    fig = figure_titled(at, "Connectivity")
    assert "LSTM" in fig["layout"]["title"]["text"]
    assert not np.array_equal(norms(fig), c)

    at.multiselect(key="mem_cells").set_value(["sru", "lrn"]).run()  # the chosen cell is no longer shown
    assert not at.exception
    assert figure_titled(at, "Connectivity")


def test_memory_map_cell_comes_from_the_link_by_its_name():
    at = open_page(MEMORY, query={"mem_view": "Connectivity", "mem_conn_cell": "expRNN"})
    assert not at.exception and not at.toast
    assert "expRNN" in figure_titled(at, "Connectivity")["layout"]["title"]["text"]
    at = open_page(MEMORY, query={"mem_view": "Connectivity", "mem_conn_cell": "nope"})
    assert not at.exception
    assert [t.value for t in at.toast if "mem_conn_cell" in t.value] == [
        "Ignored `mem_conn_cell=nope` from the link (not one of the options); showing `mem_conn_cell=asRNN`."]


def test_memory_map_is_for_copy_memory_only():
    at = open_page(MEMORY, query={"mem_task": "sequential digits", "mem_view": "Connectivity"})
    assert not at.exception
    assert not any("Connectivity" in (f["layout"].get("title", {}).get("text") or "") for f in figures(at))
    assert any("Connectivity maps are drawn for copy memory" in c.value for c in at.caption)
