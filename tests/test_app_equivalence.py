"""AppTest: the home and Stacked = Delayed pages run, react to their widgets, keep their state in the URL."""

import numpy as np
import pytest
from apptest_helpers import figure_titled, figures, open_page

PAGE = "views/equivalence.py"


def metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def test_home_runs_and_shows_a_live_figure_per_page():
    at = open_page()
    assert not at.exception
    assert figure_titled(at, "Test accuracy vs delay") and figure_titled(at, "Error per layer")
    shares = figure_titled(at, "Each word's share of the decision")  # the pretrained LRN on an example sentence
    tokens = shares["layout"]["xaxis"]["ticktext"]
    assert "great" in tokens and "not" in tokens and len(shares["data"][0]["y"]) == len(tokens)
    memory = figure_titled(at, "Copy memory, L = 50")
    assert {t["name"] for t in memory["data"]} >= {"asRNN", "LSTM"}
    assert any("Seed papers" in s.value for s in at.subheader)


def test_equivalence_defaults_are_exact_and_drawn():
    at = open_page(PAGE)
    assert not at.exception
    assert float(metric(at, "max |stacked − delayed|")) <= 1e-5
    matrix = figure_titled(at, "Delayed recurrent matrix")
    assert np.asarray(matrix["data"][0]["z"]).shape == (4 * 24, 24)  # LSTM, three layers of 8
    assert len(figures(at)) == 2  # the matrix, and the open tab's (by default: the stacked layers over the delayed)


def test_each_tab_builds_only_its_own_figure_and_lives_in_the_url():
    for view, title in (("Overlay", "Stacked layers vs delayed blocks"),
                        ("Error per layer", "Error per layer over time"), ("Relaxed blocks", "Relaxing"),
                        ("Future inputs", "future inputs")):
        at = open_page(PAGE, query={"eq_view": view})
        assert not at.exception, view
        titles = [f["layout"]["title"]["text"] for f in figures(at)]
        assert len(titles) == 2 and title in titles[1], (view, titles)


def test_layers_slider_changes_the_matrix_and_gru_shows_its_error():
    at = open_page(PAGE)
    at.slider(key="eq_layers").set_value(5).run()
    assert not at.exception
    assert np.asarray(figure_titled(at, "Delayed recurrent matrix")["data"][0]["z"]).shape == (4 * 40, 40)
    at.segmented_control(key="eq_cell").set_value("gru").run()
    assert not at.exception
    assert float(metric(at, "max |stacked − delayed|")) > 1e-3
    assert any("reset gate" in w.value for w in at.warning)


def test_eps_slider_moves_the_error_and_the_influence_map():
    at = open_page(PAGE, query={"eq_view": "Future inputs"})
    influence = np.asarray(figure_titled(at, "future inputs")["data"][0]["z"])
    assert np.all(influence[:, 1:] == 0)
    at.select_slider(key="eq_eps").set_value(0.3).run()
    assert not at.exception
    assert float(metric(at, "error at eps=0.3")) > 1e-3
    influence = np.asarray(figure_titled(at, "future inputs")["data"][0]["z"])
    assert influence[-1, -1] > 0


@pytest.mark.parametrize("layers,size,length", [(1, 1, 5), (6, 64, 200)])
def test_extreme_settings_run(layers, size, length):
    at = open_page(PAGE, query={"eq_layers": str(layers), "eq_length": str(length)})
    for l in range(layers):
        at.number_input(key=f"eq_h{l + 1}").set_value(size)
    at.run()
    assert not at.exception
    assert metric(at, "delayed layer") == f"H={layers * size}, d={layers - 1}"


def test_query_params_reproduce_the_view():
    at = open_page(PAGE, query={"eq_cell": "rnn", "eq_layers": "2", "eq_h1": "5"})
    assert not at.exception
    assert at.slider(key="eq_layers").value == 2
    assert metric(at, "delayed layer") == "H=13, d=1"


def test_an_exact_zero_is_said_not_drawn_at_a_floor_and_every_layer_stays_visible():
    at = open_page(PAGE, query={"eq_view": "Error per layer"})
    errors = figure_titled(at, "Error per layer over time")
    lines = [t for t in errors["data"] if t.get("mode") == "lines"]
    marks = [t for t in errors["data"] if t.get("mode") == "markers"]
    assert len(lines) == len(marks) == 3  # one line and one row of "exactly 0" marks per layer
    assert all(y is None or y > 1e-16 for t in lines for y in t["y"])  # no made-up 1e-17 points
    assert {t["y"][0] for t in marks} == {"layer 1", "layer 2", "layer 3"}  # each layer on its own row
    home = figure_titled(open_page("views/home.py"), "Error per layer over time")  # the LSTM card: all exact
    assert home["layout"]["yaxis"]["showticklabels"] is False  # no 1e-16 ticks of an empty axis
    assert any("exactly 0" in a["text"] for a in home["layout"]["annotations"])
    curve = figure_titled(open_page(PAGE, query={"eq_view": "Relaxed blocks"}), "Relaxing the zero blocks")
    assert all(y is None or y > 1e-16 for y in curve["data"][0]["y"])
    assert any("exactly 0 at eps = 0" in a["text"] for a in curve["layout"]["annotations"])


def test_the_unit_shown_round_trips_through_the_url():
    at = open_page(PAGE, query={"eq_unit": "3"})
    assert not at.exception and at.slider(key="eq_unit").value == 3  # (AppTest does not write the URL back)
