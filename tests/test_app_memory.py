"""AppTest: the Memory & stability page shows the pretrained copy-memory and digits models (loss with its
baseline, gradient norms over time, asRNN's saturation, orthogonality), reacts to its widgets, survives extreme
settings, and trains the selected cells side by side in background runs that then replace the curves."""

import math

import numpy as np
from apptest_helpers import figure_titled, figures, markdown_tables, open_page, rerun_until

from drnn_demo.memory_analysis import memory_task
from drnn_demo.pretrained import PRETRAINED_DIR
from drnn_demo.recipes.memory import PRETRAIN_CELLS, pretrained_name

MEMORY = "views/memory.py"
K = 10


def baseline(gap: int) -> float:
    return K * math.log(8) / (gap + 2 * K)


def show(at, view: str):
    """Open one of the tabs below the loss curves (as a click on it does: the page reruns with it open)."""
    at.session_state["mem_view"] = view
    return at.run()


def cell_traces(fig: dict) -> list[dict]:
    return [t for t in fig["data"] if t.get("showlegend", True) is not False and "baseline" not in t.get("name", "")]


def test_pretrained_memory_models_exist():
    for task in (memory_task(), memory_task("digits"), memory_task("digits", permuted=True)):
        for cell in PRETRAIN_CELLS:
            assert (PRETRAINED_DIR / f"{pretrained_name(cell, task)}.safetensors").exists(), (cell, task)


def test_digits_tasks_show_their_own_baseline_accuracy_and_phases():
    at = open_page(MEMORY, query={"mem_task": "permuted digits"})
    assert not at.exception
    assert at.select_slider(key="mem_gap").disabled  # the gap is copy memory's setting
    loss = figure_titled(at, "Cross-entropy vs iteration (permuted digits)")
    line = next(t for t in loss["data"] if t["name"].startswith("baseline"))
    assert np.allclose(line["y"], math.log(10))
    (table,) = markdown_tables(at)
    assert set(table["shown"]) == {"pretrained"} and "validation accuracy" in table
    grads = figure_titled(at, "Gradient norm")
    assert all(len(t["x"]) == 64 for t in grads["data"])  # one norm per pixel
    assert any("random order" in s["text"] for s in grads["layout"]["annotations"])
    at.segmented_control(key="mem_task").set_value("sequential digits").run()
    assert not at.exception
    grads = figure_titled(at, "Gradient norm")
    assert any("row by row" in s["text"] for s in grads["layout"]["annotations"])
    assert "sequential digits" in figure_titled(at, "Cross-entropy vs iteration")["layout"]["title"]["text"]


def test_defaults_show_every_figure_with_the_baseline():
    at = open_page(MEMORY)
    assert not at.exception
    loss = figure_titled(at, "Cross-entropy vs iteration")
    line = next(t for t in loss["data"] if t["name"].startswith("baseline"))
    assert np.allclose(line["y"], baseline(50))  # K ln 8 / (L + 2K) at L = 50
    assert loss["layout"]["yaxis"]["type"] == "log"
    names = {t["name"] for t in cell_traces(loss)}
    assert {"LSTM", "asRNN", "expRNN", "SRU"} <= names
    (table,) = markdown_tables(at)
    assert set(table["shown"]) == {"pretrained"}
    ratios = dict(zip(table["cell"], map(float, table["× baseline"]), strict=True))
    assert ratios["asRNN"] < 0.5 and ratios["expRNN"] < 0.5  # the orthogonal cells remember across L = 50
    grads = figure_titled(at, "Gradient norm")
    assert grads["layout"]["yaxis"]["type"] == "log"
    for trace in grads["data"]:
        assert len(trace["x"]) == 50 + 2 * K  # one norm per time step
    assert len(figures(at)) == 2  # the loss, and the open tab's (by default: the gradients); the other tabs not built
    show(at, "asRNN saturation")
    assert figure_titled(at, "asRNN saturation levels at step")
    assert figure_titled(at, "during training")
    assert len(figures(at)) == 3
    assert figure_titled(show(at, "Connectivity"), "Connectivity")
    ortho = figure_titled(show(at, "Orthogonality"), "Orthogonality error")
    assert {t["name"] for t in ortho["data"]} == {"asRNN", "expRNN"}
    for trace in ortho["data"]:
        assert max(trace["customdata"]) < 1e-3  # W_hh stays orthogonal through training


def test_widgets_change_the_figures():
    at = open_page(MEMORY)
    grads_before = figure_titled(at, "Gradient norm")
    at.segmented_control(key="mem_grad").set_value("both").run()
    assert not at.exception
    grads_after = figure_titled(at, "Gradient norm")
    assert len(grads_after["data"]) == 2 * len(grads_before["data"])  # initial curves added
    assert any("initialisation" in t["name"] for t in grads_after["data"])

    show(at, "asRNN saturation")
    first_step = at.select_slider(key="mem_snap").options[0]
    at.select_slider(key="mem_snap").set_value(int(first_step)).run()
    hist = figure_titled(at, "asRNN saturation levels at step")
    assert f"at step {first_step} " in hist["layout"]["title"]["text"]
    assert len(hist["data"]) == 1  # at the start only the initial levels are shown

    at.multiselect(key="mem_cells").set_value(["lstm", "exprnn"]).run()
    assert not at.exception
    loss = figure_titled(at, "Cross-entropy vs iteration")
    assert {t["name"] for t in cell_traces(loss)} == {"LSTM", "expRNN"}
    titles = [f["layout"]["title"]["text"] for f in figures(at)]
    assert not any("saturation" in t for t in titles)  # no asRNN, no saturation plots
    assert any("Add asRNN" in c.value for c in at.caption)


def test_extreme_settings_run():
    at = open_page(MEMORY, query={"mem_gap": "200"})
    assert not at.exception
    assert any("pretrained models exist only for L = 50" in i.value for i in at.info)
    at.multiselect(key="mem_cells").set_value([]).run()
    assert not at.exception
    assert at.warning and "Pick at least one cell" in at.warning[0].value
    at = open_page(MEMORY, query={"mem_gap": "10"})
    assert not at.exception


def test_training_cells_side_by_side_replaces_the_curves():
    at = open_page(MEMORY, query={"mem_gap": "10"})
    at.multiselect(key="mem_cells").set_value(["asrnn", "lrn"]).run()
    at.number_input(key="mem_steps").set_value(6).run()
    at.select_slider(key="mem_hidden").set_value(16).run()
    at.select_slider(key="mem_batch").set_value(16).run()
    next(b for b in at.button if b.label == "Train 2 cells").click().run()
    assert not at.exception
    rerun_until(at, "memory_done")
    assert not at.exception
    assert len(at.success) == 2 and all("finished" in s.value for s in at.success)
    (table,) = markdown_tables(at)
    assert all(s.startswith("your run") for s in table["shown"]) and table["steps"] == ["6", "6"]
    loss = figure_titled(at, "Cross-entropy vs iteration")
    assert "L=10" in loss["layout"]["title"]["text"]
    assert {t["name"] for t in cell_traces(loss)} == {"asRNN", "LRN"}
    assert all(len(t["x"]) == 6 for t in cell_traces(loss))
    line = next(t for t in loss["data"] if t["name"].startswith("baseline"))
    assert np.allclose(line["y"], baseline(10))
    assert len(figure_titled(at, "Gradient norm")["data"][0]["x"]) == 10 + 2 * K
    at.segmented_control(key="mem_source").set_value("pretrained").run()  # no pretrained models at L = 10
    assert not at.exception and not markdown_tables(at)
    assert any("pretrained models exist only for L = 50" in i.value for i in at.info)
    at.segmented_control(key="mem_source").set_value("newest runs").run()
    # the asRNN run started from s ~ U[0, 0.1] (the page's default), so its levels are spread above eps
    trajectory = figure_titled(show(at, "asRNN saturation"), "during training")
    low = next(t for t in trajectory["data"] if t.get("name") == "min")["y"]
    high = next(t for t in trajectory["data"] if t.get("name") == "max")["y"]
    assert high[0] > 1e-2 and low[0] < high[0]
    assert not any("levels never moved" in i.value for i in at.info)


def test_the_table_shows_markdown_characters_verbatim():
    from streamlit.testing.v1 import AppTest

    def page():
        from views.ui import table

        table([{"shown": "your run a_b*c* | [x](y) `z`", "steps": 6}, {"shown": "pretrained", "steps": 800}])

    at = AppTest.from_function(page).run()
    assert not at.exception
    assert markdown_tables(at) == [{"shown": ["your run a_b*c* | [x](y) `z`", "pretrained"], "steps": ["6", "800"]}]
    assert r"a\_b\*c\* \| \[x\](y) \`z\`" in at.markdown[0].value  # not an italic, a link or a column
