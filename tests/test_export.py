"""Exports: a figure's CSV gives back the plotted numbers (lines, scatter, bars, heatmaps, subplots, the app's own
figures), a page's HTML holds every figure with plotly.js once, and a run's zip holds its config, its history as
CSV and TensorBoard event files that TensorBoard's own reader reads back to the same numbers; hostile run
directories give no byte from outside the run."""

import csv
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from drnn_demo import export, viz
from drnn_demo.export import figure_to_csv, figures_to_html, history_csv, run_zip
from drnn_demo.fileio import JSONFileError
from drnn_demo.jobs import JobManager
from drnn_demo.jobs.layout import UnsafeRunFileError

TESTS_DIR = Path(__file__).resolve().parent


def rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def num(cell: str) -> float:
    return float("nan") if cell == "" else float(cell)


# ----------------------------------------------------------------------------- figure_to_csv


def test_line_figure_round_trips_exactly_float32_and_gaps_included():
    y = np.array([0.1, 1 / 3, 2.5e-8, np.nan, 7.0], dtype=np.float32)
    fig = go.Figure(go.Scatter(x=np.arange(5), y=y, mode="lines", name="loss"))
    got = rows(figure_to_csv(fig))
    assert list(got[0]) == ["trace", "x", "y"]
    assert [r["trace"] for r in got] == ["loss"] * 5
    assert [int(r["x"]) for r in got] == [0, 1, 2, 3, 4]
    back = np.array([num(r["y"]) for r in got])
    np.testing.assert_array_equal(back[[0, 1, 2, 4]], y[[0, 1, 2, 4]].astype(float))  # exact, not approximately
    assert got[3]["y"] == ""  # NaN is an empty cell


def test_scatter_traces_with_hover_data_and_unnamed_traces():
    fig = go.Figure([go.Scatter(x=[1.5, 2.5], y=[3, 4], mode="markers", name="a", customdata=[10.25, 20.5]),
                     go.Scatter(y=[9, 8, 7], mode="markers"),  # no x: plotly plots against the index
                     go.Scatter(x=[None], y=[None], name="legend only")])
    got = rows(figure_to_csv(fig))
    assert [(r["trace"], num(r["x"]), num(r["y"]), r["hover_data"]) for r in got] == [
        ("a", 1.5, 3, "10.25"), ("a", 2.5, 4, "20.5"),
        ("trace 1", 0, 9, ""), ("trace 1", 1, 8, ""), ("trace 1", 2, 7, "")]


def test_bar_with_categories():
    fig = go.Figure(go.Bar(x=["the", "cat", "the"], y=[0.5, -0.25, 1.0], name="share"))
    got = rows(figure_to_csv(fig))
    assert [(r["x"], num(r["y"])) for r in got] == [("the", 0.5), ("cat", -0.25), ("the", 1.0)]


def test_heatmap_long_form_every_cell_with_labels_and_indices():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3, 4))
    z[1, 2] = np.nan
    tokens = ["a", "b", "a", "c"]  # repeated labels: the indices keep cells apart
    fig = go.Figure(go.Heatmap(z=z, x=tokens, y=["t0", "t1", "t2"], customdata=np.abs(z) * 10, name="w"))
    got = rows(figure_to_csv(fig))
    assert list(got[0]) == ["trace", "x", "y", "row", "col", "z", "hover_data"]
    assert len(got) == 12
    back = np.full((3, 4), -1.0)
    for r in got:
        i, j = int(r["row"]), int(r["col"])
        assert r["x"] == tokens[j] and r["y"] == f"t{i}"
        back[i, j] = num(r["z"])
        if r["z"]:
            assert float(r["hover_data"]) == abs(z[i, j]) * 10
    np.testing.assert_array_equal(back, z)  # NaN where z is NaN, every other value exact


def test_heatmap_without_labels_uses_coordinates():
    fig = go.Figure(go.Heatmap(z=[[1, 2], [3, 4]], x0=10, dx=5))
    got = rows(figure_to_csv(fig))
    assert [(num(r["x"]), num(r["y"]), num(r["z"])) for r in got] == [(10, 0, 1), (15, 0, 2), (10, 1, 3), (15, 1, 4)]


def test_subplots_name_each_row_by_its_panel():
    fig = make_subplots(rows=1, cols=2, subplot_titles=["training loss", "accuracy"])
    fig.add_trace(go.Scatter(x=[1, 2], y=[0.9, 0.5], name="run A"), row=1, col=1)
    fig.add_trace(go.Scatter(x=[1, 2], y=[0.4, 0.8], name="run A"), row=1, col=2)
    fig.add_trace(go.Heatmap(z=[[5]]), row=1, col=2)
    got = rows(figure_to_csv(fig))
    assert [(r["trace"], r["panel"], num(r["y"])) for r in got[:4]] == [
        ("run A", "training loss", 0.9), ("run A", "training loss", 0.5), ("run A", "accuracy", 0.4),
        ("run A", "accuracy", 0.8)]
    assert got[4]["panel"] == "accuracy" and num(got[4]["z"]) == 5


def test_the_apps_figures_export_their_numbers():
    matrix = np.array([[1.0, 0.0, 0.0], [0.5, 2e-3, 0.0]])
    fig = viz.connectivity_map(matrix, delay=0, title="conn")
    got = [r for r in rows(figure_to_csv(fig)) if r["trace"] == "‖∂y_t/∂x_s‖"]
    real = {(int(r["row"]), int(r["col"])): float(r["hover_data"]) for r in got}
    assert real == {(i, j): matrix[i, j] for i in range(2) for j in range(3)}  # the real norms, not log10
    history = [{"step": s, "loss": 1 / s, "elapsed": s / 10, "accuracy": s / 20} for s in range(1, 11)]
    got = rows(figure_to_csv(viz.training_curves(history)))
    loss = [(num(r["x"]), num(r["y"])) for r in got if r["trace"] == "loss"]
    assert loss == [(p["step"], p["loss"]) for p in history]
    assert {r["panel"] for r in got} == {"training loss", "scores"}


def test_too_many_points_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(export, "MAX_CSV_POINTS", 10)
    with pytest.raises(ValueError, match="more than 10 points"):
        figure_to_csv(go.Figure(go.Scatter(y=np.arange(11))))


# ----------------------------------------------------------------------------- figures_to_html


def test_page_html_holds_every_figure_and_plotly_js_once():
    figs = [go.Figure(go.Scatter(x=[1, 2], y=[3, 4], name=f"curve-{i}")) for i in range(3)]
    page = figures_to_html(figs, "Training <runs> & co")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for i in range(3):
        assert f'id="figure-{i}"' in page and f'"name":"curve-{i}"' in page
    assert page.count("* plotly.js v") == 1  # the bundle's banner: embedded once, inline
    assert "<script src=" not in page  # no script fetched from the network
    assert "<title>Training &lt;runs&gt; &amp; co</title>" in page
    assert "No figures" in figures_to_html([], "empty")


# ----------------------------------------------------------------------------- run_zip


@pytest.fixture
def finished_train_run(tmp_path, monkeypatch):
    """A real ``train`` run (tiny reversal LSTM, 40 steps) run by the job manager in a worker process."""
    from job_helpers import wait_until

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("DRNN_MAX_RUNS", raising=False)
    jm = JobManager(tmp_path / "runs")
    config = dict(task="reversal", task_args={"length": 6, "classes": 3},
                  model={"core": "delayed", "core_args": {"hidden_size": 8, "delay": 1, "cell": "lstm"}}, steps=40,
                  batch_size=8, eval_every=10, patience=0, val_size=40, test_size=50, seed=0, device="cpu",
                  log_every=5)
    run_id = jm.submit("train", config, label="tiny reversal")
    info = wait_until(jm, lambda: (i := jm.get(run_id)) and not i.active and i, timeout=120)
    assert info.status == "finished", info.message
    return jm.get(run_id), config


def unzip(data: bytes, into: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(into)
        return {name: zf.read(name) for name in zf.namelist()}


def test_run_zip_of_a_real_run_reads_back_in_tensorboard(finished_train_run, tmp_path):
    info, config = finished_train_run
    members = unzip(run_zip(info.path), tmp_path / "out")
    folder = info.id
    assert {n.split("/")[0] for n in members} == {folder}
    assert not [n for n in members if "safetensors" in n or n.endswith("model.json")]  # the checkpoint is separate
    saved = json.loads(members[f"{folder}/config.json"])
    assert saved["kind"] == "train" and saved["label"] == "tiny reversal"
    assert {k: saved["config"][k] for k in config} == config
    final = json.loads(members[f"{folder}/metrics.json"])
    assert final["status"] == "finished" and final["metrics"] == info.metrics

    history = rows(members[f"{folder}/history.csv"].decode())
    progress = [json.loads(line) for line in (info.path / "progress.jsonl").read_text().splitlines()]
    assert len(history) == len(progress) == len(info.history)  # 40 steps, well under the 500 state.json keeps
    for row, point, listed in zip(history, progress, info.history, strict=True):
        assert point == listed
        for key, value in point.items():
            assert num(row[key]) == value, key  # exact
    metric_names = {k for p in progress for k in p} - {"step", "loss", "elapsed"}
    assert "accuracy" in metric_names

    events = [n for n in members if "tfevents" in n]
    assert len(events) == 1
    acc = EventAccumulator(str(tmp_path / "out" / folder))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "loss" in tags and metric_names <= set(tags)
    for tag in ["loss", *sorted(metric_names)]:
        points = [(p["step"], p[tag]) for p in progress if isinstance(p.get(tag), int | float)]
        scalars = acc.Scalars(tag)
        assert [s.step for s in scalars] == [s for s, _ in points]
        np.testing.assert_allclose([s.value for s in scalars], [v for _, v in points], rtol=1e-6)  # float32 inside
    last = max(p["step"] for p in progress)
    for name, value in info.metrics.items():
        (scalar,) = acc.Scalars(f"final/{name}")
        assert scalar.step == last and scalar.value == pytest.approx(value, rel=1e-6)


def write_run(root: Path, name: str = "20240101-000000-aaaaaa", progress: str | None = None) -> Path:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"id": name, "kind": "train", "config": {"lr": 0.1}}))
    (run_dir / "state.json").write_text(json.dumps({"status": "finished", "metrics": {"test_accuracy": 0.75},
                                                    "history": [{"step": 10, "loss": 0.5}]}))
    if progress is not None:
        (run_dir / "progress.jsonl").write_text(progress)
    return run_dir


def history_of(data: bytes) -> list[dict]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        name = next(n for n in zf.namelist() if n.endswith("history.csv"))
        return rows(zf.read(name).decode())


def test_a_torn_last_progress_line_is_skipped_a_damaged_one_is_refused(tmp_path):
    good = '{"step": 1, "loss": 0.9, "accuracy": 0.1}\n{"step": 2, "loss": 0.8}\n'
    got = history_of(run_zip(write_run(tmp_path / "a", progress=good + '{"step": 3, "lo')))
    assert [(r["step"], r["loss"], r["accuracy"]) for r in got] == [("1", "0.9", "0.1"), ("2", "0.8", "")]
    with pytest.raises(JSONFileError, match="progress.jsonl line 2"):
        run_zip(write_run(tmp_path / "b", progress='{"step": 1, "loss": 1}\n{"step": "x"}\n{"step": 3}\n'))


def test_without_progress_file_or_past_its_bound_the_state_history_is_used(tmp_path, monkeypatch):
    data = run_zip(write_run(tmp_path / "a"))
    assert [(r["step"], r["loss"]) for r in history_of(data)] == [("10", "0.5")]
    monkeypatch.setattr(export, "MAX_PROGRESS_BYTES", 10)
    data = run_zip(write_run(tmp_path / "b", progress='{"step": 1, "loss": 0.9}\n' * 5))
    assert [(r["step"], r["loss"]) for r in history_of(data)] == [("10", "0.5")]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        metrics = json.loads(zf.read(next(n for n in zf.namelist() if n.endswith("metrics.json"))))
    assert "downsampled" in metrics["history_source"]


def test_hostile_run_directories_give_nothing_from_outside(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text('{"step": 1, "loss": 123456789}\n')
    linked = write_run(tmp_path / "a")
    (linked / "progress.jsonl").symlink_to(secret)
    with pytest.raises(ValueError, match="symbolic link"):
        run_zip(linked)
    state_link = write_run(tmp_path / "b")
    (state_link / "state.json").unlink()
    (state_link / "state.json").symlink_to(secret)
    with pytest.raises(ValueError, match="symbolic link"):
        run_zip(state_link)
    real = write_run(tmp_path / "c")
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    with pytest.raises(UnsafeRunFileError):
        run_zip(tmp_path / "link")
    (real / "model.safetensors").symlink_to(secret)  # a checkpoint, even a hostile one, is never read
    with zipfile.ZipFile(io.BytesIO(run_zip(real))) as zf:
        assert all(b"123456789" not in zf.read(n) for n in zf.namelist())


def test_history_csv_columns():
    text = history_csv([{"step": 1, "loss": None, "elapsed": 0.5, "b": 2}, {"step": 2, "loss": 1.5, "a": "x"}])
    assert text.splitlines() == ["step,loss,elapsed,a,b", "1,,0.5,,2", "2,1.5,,,"]
