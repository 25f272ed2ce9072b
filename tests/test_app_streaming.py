"""AppTest: the Streaming page loads without an exception for each task, "now" moves the outputs (the delayed row
fills d steps behind the input, restart mode revises), typed sentences stream, and the view lives in the URL."""

import re
from types import SimpleNamespace

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


# ---------------------------------------------------------------- a tagger trained on your data ("your run")

RUN_D, RUN_BI, RUN_BUSY, RUN_CLASSIFIER, RUN_DAMAGED = (f"20240101-00000{i}-{c * 6}" for i, c in enumerate("dbrcx"))
ORDER = [RUN_DAMAGED, RUN_D, RUN_BUSY, RUN_CLASSIFIER, RUN_BI]  # oldest first: the bidirectional run is the newest


def write_run(root, run_id: str, config: dict, status: str = "finished", checkpoint: str | None = None,
              label: str = "", metrics: dict | None = None) -> None:
    """A run directory as the job manager lists it (run.json, state.json; the checkpoint, if any, already there)."""
    import json
    import time

    run_dir = root / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    now = time.time()
    (run_dir / "state.json").write_text(json.dumps({
        "status": status, "message": f"{status} (test)", "step": 40, "total_steps": 40, "started": now,
        "ended": None if status == "running" else now, "metrics": metrics or {}, "checkpoint": checkpoint}))
    (run_dir / "run.json").write_text(json.dumps({"id": run_id, "kind": "train", "config": config,
                                                  "label": label or run_id, "page": "views/your_data.py",
                                                  "created": 1_700_000_000.0 + ORDER.index(run_id)}))


@pytest.fixture(scope="module")
def your_runs(tmp_path_factory):
    """A private runs directory with a tagging data set and runs of it: a delayed tagger (d = 2) and a bidirectional
    one, trained here as the worker trains them, and three that cannot stream (running, a classifier, damaged)."""
    import shutil

    import streamlit as st
    import torch
    from test_user_data import small_conllu

    from drnn_demo.jobs import run_train
    from drnn_demo.recipes.user_data import user_data_config
    from drnn_demo.tasks import user_data as ud

    root = tmp_path_factory.mktemp("stream_runs") / "runs"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRNN_RUNS_DIR", str(root))
        st.cache_resource.clear()  # the app's one JobManager is re-created on this directory
        info = ud.store_dataset(small_conllu(), name="small.conllu")
        for run_id, cell, label in ((RUN_D, "delayed", "Delayed LSTM d=2 h=8 on small.conllu"),
                                    (RUN_BI, "bidirectional", "Bidirectional LSTM h=8 on small.conllu")):
            config = user_data_config(info.id, cell, hidden_size=8, delay=2, steps=40, lr=1e-2, device="cpu")
            (root / run_id).mkdir(parents=True)
            result = run_train(config, lambda progress: None, lambda: False, root / run_id)
            write_run(root, run_id, config, checkpoint="model.safetensors", label=label, metrics=result["metrics"])
        tagger = user_data_config(info.id, "delayed", hidden_size=8, delay=2)
        write_run(root, RUN_BUSY, tagger, status="running", label="busy tagger")
        write_run(root, RUN_CLASSIFIER, {**tagger, "model": {**tagger["model"], "readout": "last", "core": "lrn"}},
                  label="a classifier")
        (root / RUN_DAMAGED).mkdir()
        for suffix in (".safetensors", ".json"):
            shutil.copy(root / RUN_D / f"model{suffix}", root / RUN_DAMAGED / f"model{suffix}")
        weights = root / RUN_DAMAGED / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")  # the card's SHA-256 no longer matches
        write_run(root, RUN_DAMAGED, tagger, checkpoint="model.safetensors", label="damaged tagger")
        yield SimpleNamespace(root=root, dataset=info)
        st.cache_resource.clear()
    torch.set_num_threads(threads)


def open_run(run_id: str, **query):
    at = open_page(PAGE, query={"task": "your run", "run": run_id, **query})
    assert not at.exception, at.exception
    return at


def test_a_delayed_tagger_of_yours_streams_d_steps_behind_and_never_changes(your_runs):
    at = open_run(RUN_D)
    assert not at.error and at.selectbox(key="u_run").value == RUN_D and at.query_params["run"] == RUN_D
    rows = table(at)
    assert set(rows) == {"delayed d=2", "target"}  # one run, one model: no causal or bidirectional row to fake
    assert any("causal and bidirectional rows are absent" in c.value for c in at.caption)
    T = len(rows["target"])
    seen = {}
    for now in range(T):
        if now:
            at.slider(key="now").set_value(now).run()
            assert not at.exception
        cells = table(at)["delayed d=2"]
        shown = T if now == T - 1 else max(0, now - 2 + 1)
        assert T - pending(cells) == shown  # the delayed row fills two steps behind the input
        for t, label in enumerate(cells):
            if label != "·":
                assert seen.setdefault(t, label) == label  # once shown, never changed
        assert table(at)["target"].count("·") == T - 1 - now  # gold tags of the arrived tokens
    fig = figure_titled(at, "‖∂y_t/∂x_s‖ of your delayed RNN, d = 2")
    C = fig["data"][0]["customdata"]
    assert all(C[t][s] == 0 for t in range(T) for s in range(t + 3, T))  # nothing beyond s = t + d is read
    assert figure_titled(at, "Delayed d=2")


def test_a_bidirectional_tagger_of_yours_restarts_and_a_typed_sentence_streams(your_runs):
    at = open_run(RUN_BI)
    assert not at.error and set(table(at)) == {"bidirectional, restart", "target"}
    at.slider(key="now").set_value(3).run()
    assert T_arrived(table(at)["bidirectional, restart"]) == 4
    fig = figure_titled(at, "‖∂y_t/∂x_s‖ of your bidirectional network")
    assert min(v for row in fig["data"][0]["customdata"] for v in row) > 0  # it reads every input
    at.segmented_control(key="u_src").set_value("your own").run()
    at.text_input(key="u_text").input("The big dog runs zebra .").run()
    assert not at.exception and not at.error
    rows = table(at)
    assert "target" not in rows and len(rows["bidirectional, restart"]) == 6
    assert any("`zebra`" in c.value and "<unk>" in c.value for c in at.caption)


def T_arrived(cells: list[str]) -> int:
    return sum(c != "·" for c in cells)


@pytest.mark.parametrize("run_id, message", [
    ("20991231-000000-nonexx", "There is no run `20991231-000000-nonexx`"),
    (RUN_BUSY, "is still running: it opens here once it has finished"),
    (RUN_CLASSIFIER, "is a classifier of your data, not a tagger"),
    (RUN_DAMAGED, "cannot be streamed: model.safetensors: sha256 mismatch"),
])
def test_a_run_that_cannot_stream_gives_one_error_and_the_page_keeps_working(your_runs, run_id, message):
    at = open_run(run_id)
    assert len(at.error) == 1 and message in at.error[0].value, [e.value for e in at.error]
    if run_id != RUN_DAMAGED:  # the page goes on with the newest run that streams
        assert at.selectbox(key="u_run").value == RUN_BI and table(at) and at.query_params["run"] == RUN_BI
        at.selectbox(key="u_run").set_value(RUN_D).run()
        assert not at.exception and not at.error and "delayed d=2" in table(at)
        assert at.query_params["run"] == RUN_D  # the URL names the run in view
    at.segmented_control(key="task").set_value("reversal").run()
    assert not at.exception and not at.error and "run" not in at.query_params


def test_your_data_links_a_finished_tagger_to_streaming(your_runs):
    at = open_page("views/your_data.py", query={"ud_set": your_runs.dataset.id, "run": RUN_D})
    assert not at.exception
    assert any("opens on **Streaming**" in m.value for m in at.markdown)
    links = [p.proto for p in at.get("page_link") if p.proto.label == "Open on Streaming"]
    assert len(links) == 1 and "streaming" in links[0].page and f"run={RUN_D}" in links[0].query_string
