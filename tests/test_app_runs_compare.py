"""AppTest: on Training runs, two runs picked (from a link or the multiselect) show their curves overlaid and a table
of only the settings that differ with their final metrics; every chart has its CSV download right below it, each
run an export, and the page one HTML download in the sidebar."""

import json
from pathlib import Path

import pytest
import streamlit as st
from apptest_helpers import figures, open_page

PAGE = "views/training_runs.py"
A, B = "20240101-000000-aaaaaa", "20240101-000001-bbbbbb"
NAMES = {A: "delay 1 · aaaaaa", B: "delay 3 · bbbbbb"}


def write_run(root: Path, run_id: str, label: str, delay: int, scale: float, test_accuracy: float) -> None:
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    config = {"task": "reversal", "lr": 0.003, "steps": 10,
              "model": {"core": "delayed", "core_args": {"hidden_size": 8, "delay": delay, "cell": "lstm"}}}
    (run_dir / "run.json").write_text(json.dumps({"id": run_id, "kind": "train", "config": config, "label": label,
                                                  "created": 1_700_000_000.0 + delay}))
    history = [{"step": s, "loss": scale / s, "elapsed": s / 10, "accuracy": s / (10 * scale)} for s in range(1, 11)]
    (run_dir / "state.json").write_text(json.dumps({
        "status": "finished", "message": "10 steps", "step": 10, "total_steps": 10, "started": 1_700_000_001.0,
        "ended": 1_700_000_002.0, "metrics": {"accuracy": history[-1]["accuracy"], "test_accuracy": test_accuracy},
        "history": history}))


@pytest.fixture
def two_runs(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    write_run(root, A, "delay 1", 1, 1.0, 0.75)
    write_run(root, B, "delay 3", 3, 2.0, 0.5)
    monkeypatch.setenv("DRNN_RUNS_DIR", str(root))
    st.cache_resource.clear()  # the app's one JobManager is re-created on this directory
    yield root
    st.cache_resource.clear()


def overlay(at) -> dict:
    (fig,) = [f for f in figures(at) if [a.get("text") for a in f["layout"].get("annotations", [])][:1]
              == ["training loss"] and len(f["data"]) == 4]
    return fig


def check_comparison(at) -> None:
    fig = overlay(at)
    for axis in ("y", "y2"):  # one curve per run in each panel
        assert sorted(t["name"] for t in fig["data"] if t.get("yaxis", "y") == axis) == sorted(NAMES.values())
    (table,) = [d.value for d in at.dataframe if "setting" in d.value.columns]
    assert list(table["setting"]) == ["model.core_args.delay", "final accuracy", "final test_accuracy"]
    by_setting = table.set_index("setting")
    assert by_setting.loc["model.core_args.delay", NAMES[A]] == "1"
    assert by_setting.loc["model.core_args.delay", NAMES[B]] == "3"
    assert by_setting.loc["final test_accuracy", NAMES[A]] == "0.75"


def test_two_runs_from_a_link_are_compared(two_runs):
    at = open_page(PAGE, query={"compare": [NAMES[A], NAMES[B]]})
    assert not at.exception
    assert at.multiselect(key="compare").value == [A, B]
    check_comparison(at)
    at.segmented_control(key="compare_x").set_value("time").run()
    fig = overlay(at)
    assert fig["layout"]["xaxis"]["title"]["text"] == "elapsed (s)"
    assert [round(x, 6) for x in fig["data"][0]["x"]] == [s / 10 for s in range(1, 11)]


def test_picking_runs_in_the_multiselect_shows_the_comparison(two_runs):
    at = open_page(PAGE)
    assert not at.exception
    assert not at.dataframe  # nothing picked yet: no comparison
    at.multiselect(key="compare").select(A).run()
    assert not at.dataframe and any("two or more" in c.value for c in at.caption)
    at.multiselect(key="compare").select(B).run()
    assert not at.exception
    check_comparison(at)


def flat(node) -> list:
    """The page's elements in the order they are drawn."""
    children = getattr(node, "children", None)
    if not children:
        return [node]
    return [leaf for key in sorted(children) for leaf in flat(children[key])]


def csv_buttons_follow_charts(at) -> int:
    """Check that right after every chart comes its CSV download; return the number of charts."""
    elements = flat(at.main)
    charts = [i for i, e in enumerate(elements) if e.type == "plotly_chart"]
    for i in charts:
        after = elements[i + 1]
        assert after.type == "download_button" and after.proto.label == "CSV", after
        assert after.proto.id.endswith("_csv")
    return len(charts)


def test_every_chart_has_its_csv_download_each_run_an_export_the_page_an_html(two_runs):
    at = open_page(PAGE, query={"compare": [NAMES[A], NAMES[B]]})
    assert csv_buttons_follow_charts(at) == 3  # the overlay and each run's curves
    exports = [b for b in at.get("download_button") if b.proto.label == "Export run"]
    assert sorted(b.proto.id.rsplit("export_", 1)[1] for b in exports) == [A, B]
    (page,) = at.sidebar.get("download_button")
    assert page.proto.label == "Download this page (HTML)"


def test_another_page_has_csv_downloads_beside_its_charts():
    at = open_page("views/equivalence.py")
    assert not at.exception
    assert csv_buttons_follow_charts(at) >= 2  # the matrix and the open tab's chart
    assert [b.proto.label for b in at.sidebar.get("download_button")] == ["Download this page (HTML)"]
