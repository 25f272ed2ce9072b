"""AppTest: a link's query value that a page cannot use falls back (to the default, or the clamped / cut value), the
page says so once with a toast naming the parameter, and the URL is rewritten to the value in use (a default is
written as no parameter, Streamlit's convention). Valid values are applied without a word."""

import pytest
from apptest_helpers import open_page

DELAYED = "views/delayed_outputs.py"
EQUIVALENCE = "views/equivalence.py"
MEMORY = "views/memory.py"
LRN = "views/lrn_gates.py"
PAPER = "views/paper_experiments.py"


def notices(at, key: str) -> list[str]:
    return [t.value for t in at.toast if f"`{key}=" in t.value]


def widget_value(at, kind: str, key: str):
    return getattr(at, kind)(key=key).value


# page, parameter, link value, widget kind, value in use, the URL's value afterwards (None: not in the URL)
INVALID = [
    (DELAYED, "delay_reversal", "abc", "slider", 9, None),
    (DELAYED, "delay_reversal", "999", "slider", 9, None),
    (DELAYED, "delay_reversal", "5.5", "slider", 5, "5"),
    (DELAYED, "cell", "foo", "segmented_control", "lstm", None),
    (DELAYED, "hidden", "7", "select_slider", 64, None),
    (EQUIVALENCE, "eq_layers", "-3", "slider", 3, None),
    (EQUIVALENCE, "eq_h1", "x" * 10_000, "number_input", 8, None),
    (MEMORY, "mem_cells", ["LSTM", "Bogus"], "multiselect", ["lstm"], "LSTM"),
    (MEMORY, "mem_gap", "7", "select_slider", 50, None),
    (LRN, "lrn_mode", "Nope", "segmented_control", "Sentiment", None),
    (LRN, "lrn_log", "maybe", "toggle", True, None),
    (PAPER, "paper_exp", "reversal", "segmented_control", "reversal", None),  # the URL names it by its title
]


@pytest.mark.parametrize("page,key,raw,kind,expected,url", INVALID,
                         ids=[f"{p.split('/')[1][:-3]}-{k}-{str(r)[:12]}" for p, k, r, *_ in INVALID])
def test_an_unusable_value_falls_back_and_is_said_once(page, key, raw, kind, expected, url):
    at = open_page(page, query={key: raw})
    assert not at.exception
    said = notices(at, key)
    assert len(said) == 1, [t.value for t in at.toast]
    assert said[0].startswith(f"Ignored `{key}=") and "from the link" in said[0]
    assert widget_value(at, kind, key) == expected
    assert at.query_params.get(key) == url
    at.run()  # a rerun (any interaction) does not repeat it
    assert not at.exception and not notices(at, key)
    assert widget_value(at, kind, key) == expected


def test_valid_values_are_applied_without_a_notice_beside_an_invalid_one():
    at = open_page(DELAYED, query={"cell": "gru", "hidden": "32", "delay_reversal": "banana", "unknown": "x"})
    assert not at.exception
    assert at.segmented_control(key="cell").value == "gru" and at.select_slider(key="hidden").value == 32
    assert at.slider(key="delay_reversal").value == 9
    assert [t.value for t in at.toast] == [
        "Ignored `delay_reversal=banana` from the link (not a number); showing `delay_reversal=9`."]
    assert at.query_params.get("cell") == "gru" and at.query_params.get("hidden") == "32"
    assert "delay_reversal" not in at.query_params and at.query_params.get("unknown") == "x"  # unknown: left alone


def test_numbers_and_options_written_differently_are_no_mistake():
    at = open_page(EQUIVALENCE, query={"eq_layers": "05", "eq_eps": "0", "eq_cell": "nope"})
    assert not at.exception
    assert at.slider(key="eq_layers").value == 5 and at.select_slider(key="eq_eps").value == 0.0
    assert [t.value for t in at.toast] == [
        "Ignored `eq_cell=nope` from the link (not one of the options); showing `eq_cell=lstm`."]


def test_a_long_hostile_value_is_quoted_short_and_never_as_markdown():
    raw = "[click](http://x) `:red[boom]` " + "y" * 10_000
    at = open_page(DELAYED, query={"cell": raw})
    assert not at.exception and at.segmented_control(key="cell").value == "lstm"
    (said,) = notices(at, "cell")
    assert len(said) < 250 and f"({len(raw):,} characters)" in said
    assert said.startswith("Ignored `cell=[click](http://x) ':red[boom]' yyyy") and said.count("`") == 4


def test_an_over_long_text_is_cut_to_the_limit_and_said():
    from views.lrn_gates import MAX_CHARS

    text = ("great food " * (MAX_CHARS // 10))[: MAX_CHARS + 500]
    at = open_page(LRN, query={"lrn_text": text})
    assert not at.exception
    (said,) = notices(at, "lrn_text")
    assert f"longer than {MAX_CHARS:,} characters: cut to the first {MAX_CHARS:,}" in said
    assert at.text_area(key="lrn_text").value == text[:MAX_CHARS]
    assert at.query_params.get("lrn_text") == text[:MAX_CHARS]
    assert any("first 150" in w.value for w in at.warning)  # the page then analyses the first 150 words, as typed


def test_the_same_bad_link_is_said_once_per_session():
    at = open_page(EQUIVALENCE, query={"eq_layers": "99"})
    assert len(notices(at, "eq_layers")) == 1
    at.switch_page("views/home.py").run()
    at.query_params["eq_layers"] = "99"  # the same link again, in the same session
    at.switch_page(EQUIVALENCE).run()
    assert not at.exception and at.slider(key="eq_layers").value == 3
    assert not notices(at, "eq_layers")
    at.switch_page("views/home.py").run()
    at.query_params["eq_layers"] = "-1"  # another bad value is news
    at.switch_page(EQUIVALENCE).run()
    assert len(notices(at, "eq_layers")) == 1


def test_a_bad_link_on_a_revisit_keeps_the_value_of_this_session_and_says_so():
    at = open_page(EQUIVALENCE, query={"eq_layers": "4"})
    assert at.slider(key="eq_layers").value == 4 and not at.toast
    at.switch_page("views/home.py").run()
    at.query_params["eq_layers"] = "seven"
    at.switch_page(EQUIVALENCE).run()
    assert not at.exception and at.slider(key="eq_layers").value == 4
    assert [t.value for t in at.toast] == [
        "Ignored `eq_layers=seven` from the link (not a number); showing `eq_layers=4`."]
    assert at.query_params.get("eq_layers") == "4"
