"""The paper-experiment runner: a tiny smoke run of every experiment, resume / skip / force, the results
files, the claims read from results, the CLI and the background-run kind."""

import csv
import json
import math
import subprocess
import sys

import pytest
import torch

from drnn_demo import reproduce
from drnn_demo.experiments import EXPERIMENTS, experiment
from drnn_demo.experiments.runtime import lstm_params, matched_hidden
from drnn_demo.reproduce import claims, load_results, record, run_cell_job, run_experiment, series
from drnn_demo.tasks import build_task


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    """Every experiment's tiny grid, run once into a temporary results directory."""
    directory = tmp_path_factory.mktemp("results")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return directory, {name: run_experiment(name, "tiny", directory=directory, log=lambda _: None)
                           for name in EXPERIMENTS}
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_runs_its_tiny_grid_and_stores_json_and_csv(tiny_results, name):
    directory, results = tiny_results
    module = experiment(name)
    rows = results[name]
    assert [r["cell"]["id"] for r in rows] == [c["id"] for c in module.cells("tiny")]
    for r in rows:
        value = r["result"][module.METRIC]
        assert math.isfinite(value) and r["result"]["params"] > 0 and r["result"]["status"] == "finished"
    assert {"delayed", "bidirectional"} <= {r["cell"]["family"] for r in rows}
    with open(directory / f"{name}_tiny.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [t["id"] for t in table] == [r["cell"]["id"] for r in rows]
    assert [float(t[module.METRIC]) for t in table] == pytest.approx([r["result"][module.METRIC] for r in rows])
    assert load_results(name, "tiny", directory) == json.loads((directory / f"{name}_tiny.json").read_text())


def test_done_cells_are_skipped_and_force_or_only_reruns_them(tmp_path, monkeypatch):
    calls = []

    def fake(cell, seed, on_progress, should_stop):
        calls.append(cell["id"])
        on_progress(0.5, "half")
        return {"ratio": 1.0 + len(calls), "params": 1, "seconds": 0.0, "status": "finished"}

    monkeypatch.setattr(experiment("runtime"), "run_cell", fake)
    ids = [c["id"] for c in experiment("runtime").cells("tiny")]
    progress = []
    run_experiment("runtime", "tiny", directory=tmp_path, log=lambda _: None,
                   on_progress=lambda f, text: progress.append(f))
    assert calls == ids and progress == sorted(progress) and 0 < progress[0] < progress[-1] < 1
    logs = []
    run_experiment("runtime", "tiny", directory=tmp_path, log=logs.append)
    assert calls == ids and all("skipped" in line for line in logs)  # resumed: nothing left to do
    rows = run_experiment("runtime", "tiny", directory=tmp_path, only=[ids[1]], log=lambda _: None)
    assert calls == [*ids, ids[1]]
    assert [r["cell"]["id"] for r in rows] == ids  # the rerun replaced its row, in grid order
    assert rows[1]["result"]["ratio"] == 1.0 + len(calls)
    run_experiment("runtime", "tiny", directory=tmp_path, force=True, log=lambda _: None)
    assert len(calls) == 2 * len(ids) + 1
    with pytest.raises(ValueError, match="no cell 'nope'"):
        run_experiment("runtime", "tiny", directory=tmp_path, only=["nope"])
    with pytest.raises(ValueError, match="budget"):
        run_experiment("runtime", "huge", directory=tmp_path)


def test_a_failed_write_keeps_the_previous_results(tmp_path, monkeypatch):
    cell = experiment("runtime").cells("tiny")[0]
    record("runtime", "tiny", cell, 0, {"ratio": 0.5, "status": "finished"}, tmp_path)
    before = (tmp_path / "runtime_tiny.json").read_bytes()

    def broken(data, fp, *args, **kwargs):
        fp.write('[{"cell": ')  # a partial write, then the crash
        raise OSError("disk full")

    monkeypatch.setattr("drnn_demo.jobs.json.dump", broken)
    with pytest.raises(OSError):
        record("runtime", "tiny", cell, 0, {"ratio": 0.7, "status": "finished"}, tmp_path)
    assert (tmp_path / "runtime_tiny.json").read_bytes() == before
    assert load_results("runtime", "tiny", tmp_path)[0]["result"]["ratio"] == 0.5


def test_a_malformed_results_file_is_named_in_the_error(tmp_path):
    (tmp_path / "sine_small.json").write_text('{"not": "rows"}')
    with pytest.raises(ValueError, match="sine_small.json"):
        load_results("sine", "small", tmp_path)


def test_series_carries_the_reversal_bound_and_the_baselines(tiny_results):
    _, results = tiny_results
    data = series("reversal", results["reversal"])
    delays, values = data["bound"]
    task = build_task("reversal", length=20, classes=4)
    assert values == [task.best_possible(d) for d in delays] and delays[-1] == 19
    assert {p["delay"] for p in data["points"]} == {0, 19}
    assert {b["name"] for b in data["baselines"]} == {"bidirectional", "stacked"}


def row(cell_id: str, family: str, delay: int, **result) -> dict:
    return {"cell": {"id": cell_id, "family": family, "delay": delay}, "seed": 0,
            "result": {"status": "finished", **result}}


def test_claims_follow_the_numbers_agree_disagree_or_missing():
    good = {
        "reversal": [row("delayed_d19", "delayed", 19, test_accuracy=0.998),
                     row("bidirectional", "bidirectional", 0, test_accuracy=0.999)],
        "sine": [row("delayed_d5", "delayed", 5, test_mse=4e-4),
                 row("bidirectional", "bidirectional", 0, test_mse=5e-4)],
        "pos": [row("delayed_d1", "delayed", 1, test_accuracy=0.899),
                row("bidirectional", "bidirectional", 0, test_accuracy=0.901)],
        "runtime": [row("delayed_d5", "delayed", 5, ratio=0.55), row("bidirectional", "bidirectional", 0, ratio=1.0)],
    }
    verdicts = [c["verdict"] for c in claims(good)]
    assert verdicts == ["agrees", "agrees", "agrees", "agrees"]  # sine: 4e-4 is clearly below 5e-4
    assert "sine: best dRNN 0.0004 clearly beats" in claims(good)[1]["evidence"]
    assert "reversal: best dRNN 0.998 ties with" in claims(good)[1]["evidence"]
    assert "0.998" in claims(good)[0]["evidence"] and "-0.20 points" not in claims(good)[2]["evidence"]
    assert "+0.20 points" in claims(good)[2]["evidence"]

    bad = {**good, "pos": [row("delayed_d1", "delayed", 1, test_accuracy=0.85),
                           row("bidirectional", "bidirectional", 0, test_accuracy=0.90)],
           "runtime": [row("delayed_d5", "delayed", 5, ratio=1.4)]}
    verdicts = [c["verdict"] for c in claims(bad)]
    assert verdicts[2:] == ["disagrees", "disagrees"]
    assert [c["verdict"] for c in claims({})] == ["not measured yet"] * 4


def test_runtime_parameter_counts_match_torch_and_are_matched():
    for hidden, layers, directions in ((16, 1, 1), (20, 2, 1), (12, 2, 2)):
        torch_lstm = torch.nn.LSTM(7, hidden, num_layers=layers, bidirectional=directions == 2)
        assert lstm_params(7, hidden, layers, directions) == sum(p.numel() for p in torch_lstm.parameters())
    target = lstm_params(64, 128)
    h = matched_hidden(target, 64, 1, 2)
    assert abs(lstm_params(64, h, 1, 2) - target) <= abs(lstm_params(64, h + 1, 1, 2) - target)
    assert abs(lstm_params(64, h, 1, 2) - target) <= abs(lstm_params(64, h - 1, 1, 2) - target)


def test_the_background_run_kind_records_its_cell(tmp_path):
    cell = experiment("runtime").cells("tiny")[0]
    progress = []
    out = run_cell_job({"experiment": "runtime", "budget": "tiny", "cell": cell["id"], "seed": 3,
                        "directory": str(tmp_path)}, progress.append, lambda: False, tmp_path)
    assert out["status"] == "finished" and cell["id"] in out["message"] and progress
    stored = load_results("runtime", "tiny", tmp_path)
    assert stored[0]["cell"] == cell and stored[0]["seed"] == 3


def test_cli_runs_an_experiment_and_refuses_an_unknown_cell(tmp_path):
    command = [sys.executable, "-m", "drnn_demo", "reproduce", "runtime", "--budget", "tiny", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "delayed_d0" in done.stdout and "ratio" in done.stdout
    assert (tmp_path / "runtime_tiny.csv").exists()
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert "skipped" in again.stdout
    bad = subprocess.run([*command, "--only", "nope"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "no cell 'nope'" in bad.stderr


def test_shipped_small_results_exist_for_every_experiment():
    for name in EXPERIMENTS:
        rows = load_results(name, "small", reproduce.SHIPPED_RESULTS)
        assert [r["cell"]["id"] for r in rows] == [c["id"] for c in experiment(name).cells("small")], name
