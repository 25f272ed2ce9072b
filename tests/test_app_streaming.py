"""AppTest: the Streaming page loads without an exception for each task, "now" moves the outputs (the delayed row
fills d steps behind the input, restart mode revises), typed sentences stream, and the view lives in the URL."""

import re

import pytest
from apptest_helpers import figure_titled, figures, open_page

PAGE = "views/streaming.py"


def table(at) -> dict[str, list[str]]:
    """The "now" table as {row name: cell texts}, "·" for a label not shown yet, "~x~" for a struck-through one."""
    body = at.get("html")[0].proto.body
    rows = {}
    for name, cells in re.findall(r"<tr data-name='([^']*)'><td[^>]*><b>[^<]*</b></td>(.*?)</tr>", body):
        rows[name] = [re.sub(r"<s [^>]*>([^<]*)</s>", r"~\1~", re.sub(r"<span[^>]*>([^<]*)</span>", r"\1", c)).strip()
                      for c in re.findall(r"<td[^>]*>(.*?)</td>", cells)]
    return rows


def pending(cells: list[str]) -> int:
    return sum(c == "·" for c in cells)


@pytest.fixture(scope="module")
def reversal():
    at = open_page(PAGE, query={"task": "reversal", "d_reversal": "3"})  # the view comes from the link
    assert not at.exception and at.select_slider(key="d_reversal").value == 3
    return at


def test_the_page_opens_on_pos_with_its_sections():
    at = open_page(PAGE)
    assert not at.exception and not at.error
    rows = table(at)
    assert set(rows) == {"delayed d=2", "causal d=0", "bidirectional, restart", "target"}
    assert pending(rows["delayed d=2"]) == len(rows["target"])  # step 0: the delayed tagger has said nothing yet
    assert pending(rows["causal d=0"]) == len(rows["target"]) - 1  # the causal one has tagged the first word
    titles = [f["layout"]["title"]["text"] for f in figures(at)]
    assert any("‖∂y_t/∂x_s‖ of the delayed RNN, d = 2" in t for t in titles)
    assert any("Delayed d=2" in t for t in titles) and any("restart" in t for t in titles)


@pytest.mark.parametrize("now", [0, 3, 7, 19])
def test_moving_now_fills_the_delayed_row_d_steps_behind_the_input(reversal, now):
    reversal.slider(key="now").set_value(now).run()
    assert not reversal.exception
    rows = table(reversal)
    T = len(rows["delayed d=3"])
    shown = T if now == T - 1 else max(0, now - 3 + 1)
    assert T - pending(rows["delayed d=3"]) == shown
    assert T - pending(rows["causal d=0"]) == (T if now == T - 1 else now + 1)
    assert T - pending(rows["bidirectional, restart"]) == now + 1  # restart mode answers every arrived token at once
    assert f"Step {now} of {T - 1}" in " ".join(c.value for c in reversal.caption)


def test_restart_mode_revises_and_the_delayed_row_does_not(reversal):
    reversal.slider(key="now").set_value(19).run()
    rows = table(reversal)
    assert sum("~" in c for c in rows["bidirectional, restart"]) > 0  # struck-through earlier labels
    assert not any("~" in c for c in rows["delayed d=3"] + rows["causal d=0"])
    fig = figure_titled(reversal, "Bidirectional, restart: revised")
    status = [v for row in fig["data"][0]["z"] for v in row if v is not None]
    assert 2 in status  # red cells: labels replaced at some step
    delayed = figure_titled(reversal, "Delayed d=3")
    assert 2 not in [v for row in delayed["data"][0]["z"] for v in row if v is not None]


def test_a_typed_sentence_streams_and_a_too_long_one_is_refused():
    at = open_page(PAGE)
    at.segmented_control(key="src").set_value("your own").run()
    at.text_input(key="text").input("Time flies like an arrow .").run()
    assert not at.exception
    at.slider(key="now").set_value(5).run()
    rows = table(at)
    assert "target" not in rows and len(rows["delayed d=2"]) == 6 and pending(rows["delayed d=2"]) == 0
    assert "Time" in at.get("html")[0].proto.body
    at.text_input(key="text").input(" ".join(["a"] * 61)).run()
    assert not at.exception and any("at most 60" in e.value for e in at.error)


def test_sine_streams_values_and_the_connectivity_map_follows_the_choice():
    at = open_page(PAGE)
    at.segmented_control(key="task").set_value("sine").run()
    assert not at.exception
    assert figure_titled(at, "Step now = 0")
    at.segmented_control(key="conn").set_value("bidirectional").run()
    assert not at.exception
    fig = figure_titled(at, "‖∂y_t/∂x_s‖ of the bidirectional network")
    assert min(v for row in fig["data"][0]["customdata"] for v in row) > 0  # reads every input


def test_the_view_round_trips_through_the_url():
    # (AppTest does not write the URL back: a link with the values must reproduce the view)
    link = {"task": "POS", "src": "EWT test", "sent": "5", "d_pos": "4", "now": "6", "conn": "causal"}
    at = open_page(PAGE, query=link)
    assert not at.exception and not at.toast
    assert at.number_input(key="sent").value == 5 and at.slider(key="now").value == 6
    assert "d = 4" in " ".join(c.value for c in at.caption) or "Delayed d = 4" in " ".join(c.value for c in at.caption)
    assert figure_titled(at, "‖∂y_t/∂x_s‖ of the delayed RNN, d = 0")
    at = open_page(PAGE, query={"task": "POS", "now": "500"})  # beyond the sentence: clamped, and said so
    assert not at.exception and any("`now=500`" in t.value for t in at.toast)


def test_a_one_token_sentence_streams_without_a_slider():
    at = open_page(PAGE, query={"sent": "785"})  # EWT test 785 is "Thanks"
    assert not at.exception and not at.error
    assert table(at)["target"] == ["NOUN"] and not [s for s in at.slider if s.key == "now"]
    at.segmented_control(key="src").set_value("your own").run()
    at.text_input(key="text").input("Hello").run()
    assert not at.exception and len(table(at)["delayed d=2"]) == 1
