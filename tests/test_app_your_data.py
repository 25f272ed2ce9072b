"""The Your data page (AppTest): the uploader says its limit; a valid upload is stored and previewed with class
counts and split sizes; a bad one shows its one message and stores nothing; a run trained here opens on LRN gates."""

import pytest
import streamlit as st
from apptest_helpers import open_page, rerun_until
from test_user_data import reviews_csv, small_conllu

from drnn_demo.tasks import user_data as ud

PAGE = "views/your_data.py"


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """A private runs directory: the app's one JobManager and the data sets live there for this test."""
    root = tmp_path / "runs"
    monkeypatch.setenv("DRNN_RUNS_DIR", str(root))
    st.cache_resource.clear()
    yield root
    st.cache_resource.clear()


def upload(at, name: str, data: bytes):
    at.file_uploader(key="ud_upload").set_value((name, data, "text/plain")).run()
    assert not at.exception, at.exception
    return at


def metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


def test_a_valid_upload_is_stored_and_previewed_with_counts_and_splits(runs):
    at = open_page(PAGE)
    assert not at.exception
    uploader = at.file_uploader(key="ud_upload")
    assert "at most 5 MB" in uploader.label and uploader.proto.max_upload_size_mb == 5
    assert any("No data set stored yet" in i.value for i in at.info)
    upload(at, "reviews.csv", reviews_csv())
    (ident, info, _), = ud.list_datasets()
    assert f"stored as data set `{ident}`" in at.success[0].value
    assert at.selectbox(key="ud_pick").value == ident
    shown = metrics(at)
    assert shown["Examples"] == "160" and shown["Classes"] == "2"
    assert {shown[f"{s.capitalize()} split"] for s in ("train", "val", "test")} == \
        {f"{n:,}" for n in info.split_sizes.values()}
    counts = at.dataframe[0].value
    assert dict(zip(counts["class"], counts["count"], strict=True)) == {"bad": 80, "good": 80}
    assert list(at.dataframe[1].value["label"][:2]) == ["bad", "good"]
    assert any("scores **50.0%**" in c.value for c in at.caption)


def test_a_conllu_upload_previews_tags(runs):
    at = upload(open_page(PAGE), "small.conllu", small_conllu())
    assert metrics(at)["Tags"] == "6" and "Read as CoNLL-U" in " ".join(c.value for c in at.caption)
    assert "tags" in at.dataframe[1].value.columns


@pytest.mark.parametrize("name, data, message", [
    ("bad.csv", b"sentence,sentiment\nnice,good\n", "line 1: the header must name the columns text and label"),
    ("one.csv", b"text,label\n" + b"a fine film,good\n" * 30, "only one class"),
    ("blob.csv", b"\x89PNG\r\n\x1a\n\x00\x00", "binary content"),
    ("long.csv", b"text,label\n\"" + b"good " * 10_000 + b"\",good\n", "line 2: 10,000 tokens"),
])
def test_an_invalid_upload_shows_its_one_message_and_stores_nothing(runs, name, data, message):
    at = upload(open_page(PAGE), "reviews.csv", reviews_csv())
    before = {p.name: p.read_bytes() for p in (runs / "datasets").iterdir()}
    upload(at, name, data)
    assert len(at.error) == 1 and message in at.error[0].value and f"**{name}** was not kept" in at.error[0].value
    assert {p.name: p.read_bytes() for p in (runs / "datasets").iterdir()} == before
    assert not at.success


@pytest.mark.slow  # a worker process trains an LRN: about 15 s
def test_an_lrn_trained_here_opens_on_lrn_gates(runs):
    at = upload(open_page(PAGE), "reviews.csv", reviews_csv())
    at.selectbox(key="ud_cell").set_value("lrn").run()
    at.select_slider(key="ud_hidden").set_value(16).run()
    at.number_input(key="ud_steps").set_value(150).run()
    at.button(key="ud_train").click().run()
    rerun_until(at, "ud_done", timeout=180)
    assert not at.exception
    assert any("opens on **LRN gates**" in m.value for m in at.markdown)
    run_id = at.session_state["ud_done"]
    # "Open in its page" on Training runs links here with the run
    linked = open_page(PAGE, query={"ud_set": at.selectbox(key="ud_pick").value, "run": run_id})
    assert not linked.exception and any("opens on **LRN gates**" in m.value for m in linked.markdown)
    gates = open_page("views/lrn_gates.py", query={"lrn_mode": "Sentiment", "run": run_id})
    assert not gates.exception
    assert gates.selectbox(key="lrn_model_sentiment").value == f"run:{run_id}"
    assert any("Trained on your data set" in c.value for c in gates.caption)


def test_delete_removes_the_stored_set_and_the_page_says_so(runs):
    at = upload(open_page(PAGE), "reviews.csv", reviews_csv())
    at.button(key="ud_delete").click().run()
    assert not at.exception and ud.list_datasets() == []
    assert any("was stored, then deleted" in i.value for i in at.info) and not at.success
