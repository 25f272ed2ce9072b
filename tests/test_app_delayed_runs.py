"""AppTest: the Delayed outputs page shows pretrained models and reacts to its sliders; a tiny run
started there finishes and is listed on the Training runs page."""


import numpy as np
from apptest_helpers import figure_titled, figures, open_page, rerun_until

DELAYED = "views/delayed_outputs.py"
RUNS = "views/training_runs.py"


def test_delayed_page_shows_the_model_the_curve_and_the_heatmap():
    at = open_page(DELAYED)
    assert not at.exception
    titles = [f["layout"]["title"]["text"] for f in figures(at)]
    assert any("delay d = 9" in t for t in titles)
    assert any("vs delay" in t for t in titles) and any("per output position" in t for t in titles)
    curve = figure_titled(at, "vs delay")
    names = [trace.get("name", "") for trace in curve["data"]]
    assert "theoretical best" in names and any("bidirectional" in n for n in names)


def test_moving_the_delay_slider_changes_the_shown_model():
    at = open_page(DELAYED)
    before = figure_titled(at, "One test sequence")
    at.slider(key="delay_reversal").set_value(19).run()
    assert not at.exception
    after = figure_titled(at, "One test sequence")
    assert "delay d = 19" in after["layout"]["title"]["text"]
    assert after["data"][2]["y"] != before["data"][2]["y"]  # the predictions changed
    assert any("d19" in i.value or "exact match" in i.value for i in at.info)


def test_sine_and_extremes_run():
    for query in ({"task": "sine", "delay_sine": "10", "hidden": "16"}, {"task": "reversal", "delay_reversal": "0",
                                                                          "cell": "rnn", "hidden": "128"}):
        at = open_page(DELAYED, query=query)
        assert not at.exception, query
        assert at.info and "nearest pretrained model" in at.info[0].value or "exact match" in at.info[0].value


def test_sine_curve_is_on_a_log_scale_with_the_floor():
    at = open_page(DELAYED, query={"task": "sine"})
    curve = figure_titled(at, "vs delay")
    assert curve["layout"]["yaxis"]["type"] == "log"
    floor = next(t for t in curve["data"] if t.get("name") == "theoretical best")
    assert np.all(np.asarray(floor["y"][5:]) == 0) and floor["y"][0] > 5e-4


def test_a_tiny_run_started_on_the_page_finishes_and_is_listed():
    at = open_page(DELAYED)
    at.number_input(key="steps").set_value(20).run()
    next(b for b in at.button if b.label == "Train this configuration").click().run()
    assert not at.exception
    rerun_until(at, "finished_run")
    assert any("finished" in s.value for s in at.success)
    at.switch_page(RUNS).run()
    assert not at.exception
    assert any("reversal lstm d=9 h=64" in m.value for m in at.markdown)
    assert len(figures(at)) >= 1  # its curves


def test_the_test_sequence_and_output_position_round_trip_through_the_url():
    at = open_page(DELAYED, query={"example": "3", "position": "5"})
    assert not at.exception
    assert at.slider(key="example").value == 3 and at.slider(key="position").value == 5
    at.slider(key="example").set_value(4).run()  # a view-only slider: the page still draws, with no exception
    assert not at.exception and at.slider(key="example").value == 4
