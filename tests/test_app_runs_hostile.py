"""AppTest: the Training runs page over a runs directory with damaged and hostile runs lists the good
run as before, each damaged one as corrupt with its reason and a Delete button, offers no download that
reads outside a run, and deletes only after a second click."""

import json
from pathlib import Path

import pytest
import streamlit as st
from apptest_helpers import open_page

from drnn_demo.checkpoints import save_checkpoint
from drnn_demo.models import SequenceModel

PAGE = "views/training_runs.py"
GOOD = "20240101-000000-aaaaaa"
CORRUPT = {  # run id -> what is wrong, and a word of the reason the page must show
    "20240101-000001-bbbbbb": ({"state": {"step": "abc"}}, "step"),
    "20240101-000002-cccccc": ({"run": {"params": "str"}}, "params"),
    "20240101-000003-dddddd": ({"state_text": '{"status": "finished", "step": 3, "hist'}, "state.json"),
}
HOSTILE = {  # run id -> how its checkpoint points outside the run
    "20240101-000004-eeeeee": "../../../etc/passwd",
    "20240101-000005-ffffff": "symlink",
}


def write_run(root: Path, run_id: str, run: dict | None = None, state: dict | None = None,
              state_text: str | None = None) -> Path:
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    base_run = {"id": run_id, "kind": "train", "config": {}, "label": f"run {run_id[-6:]}", "page": "",
                "params": {}, "threads": 1, "created": 1_700_000_000.0 + int(run_id[9:15])}
    base_state = {"status": "finished", "message": "finished 10 steps", "step": 10, "total_steps": 10,
                  "started": 1_700_000_001.0, "ended": 1_700_000_005.0, "metrics": {"test_accuracy": 0.9},
                  "history": [{"step": 10, "loss": 0.5}], "checkpoint": "model.safetensors"}
    (run_dir / "run.json").write_text(json.dumps({**base_run, **(run or {})}))
    (run_dir / "state.json").write_text(state_text or json.dumps({**base_state, **(state or {})}))
    return run_dir


def build_hostile_runs(root: Path) -> Path:
    """One good run with a checkpoint, three damaged runs and two whose checkpoint leads outside the run."""
    good = write_run(root, GOOD)
    save_checkpoint(good / "model", SequenceModel("delayed", {"hidden_size": 3}, input_size=2, output_size=2),
                    {"task": "reversal"})
    for run_id, (files, _) in CORRUPT.items():
        write_run(root, run_id, **files)
    write_run(root, next(iter(HOSTILE)), state={"checkpoint": HOSTILE[next(iter(HOSTILE))]})
    linked = write_run(root, list(HOSTILE)[1])
    (linked / "model.safetensors").symlink_to("/etc/passwd")
    (linked / "model.json").symlink_to("/etc/passwd")
    return root


@pytest.fixture
def hostile_runs(tmp_path, monkeypatch):
    """The runs above; the app's job manager is re-created on them for this test only."""
    root = build_hostile_runs(tmp_path / "runs")
    monkeypatch.setenv("DRNN_RUNS_DIR", str(root))
    st.cache_resource.clear()  # the app's one JobManager is re-created on this directory
    yield root
    st.cache_resource.clear()  # and the next test gets one on the session's runs directory again


def card_texts(at) -> str:
    return " ".join(x.value for x in [*at.markdown, *at.error, *at.caption])


def test_the_page_lists_good_runs_and_damaged_ones_as_corrupt(hostile_runs):
    at = open_page(PAGE)
    assert not at.exception
    text = card_texts(at)
    assert GOOD in text and "finished 10 steps" in text
    damaged = [e.value for e in at.error if "damaged" in e.value]
    assert len(damaged) == len(CORRUPT)
    for _, word in CORRUPT.values():
        assert any(word in e for e in damaged), word
    checkpoint_downloads = [b for b in at.get("download_button") if b.proto.label == "Download checkpoint"]
    for run_id in HOSTILE:  # listed, but with no download of a file outside the run
        assert run_id in text
        assert not [b for b in checkpoint_downloads if run_id in str(b.proto.id) + str(b.proto)]
    assert len(checkpoint_downloads) == 1  # only the good run's (run exports read no checkpoint: tests/test_export.py)


def test_delete_asks_first_then_removes_a_corrupt_run(hostile_runs):
    at = open_page(PAGE)
    victim = next(iter(CORRUPT))
    at.button(key=f"delete_{victim}").click().run()
    assert not at.exception and (hostile_runs / victim).exists()  # one click only asks
    assert any("Delete this run" in c.value for c in at.caption)
    at.button(key=f"delete_no_{victim}").click().run()
    assert (hostile_runs / victim).exists()
    at.button(key=f"delete_{victim}").click().run()
    at.button(key=f"delete_yes_{victim}").click().run()
    assert not at.exception and not (hostile_runs / victim).exists()
    assert (hostile_runs / GOOD).exists()
