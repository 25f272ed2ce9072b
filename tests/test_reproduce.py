"""The paper-experiment runner: a tiny smoke run of every experiment, resume / skip / force, the results
files, the claims read from results, the CLI and the background-run kind."""

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import stats

from drnn_demo import reproduce
from drnn_demo.claims import claims, series
from drnn_demo.experiments import EXPERIMENTS, experiment
from drnn_demo.experiments.runtime import lstm_params, matched_hidden
from drnn_demo.reproduce import load_results, record, run_cell_job, run_experiment
from drnn_demo.stats import difference_interval, mean_interval
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

    monkeypatch.setattr("drnn_demo.fileio.json.dump", broken)
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


def row(cell_id: str, family: str, delay: int, seed: int = 0, **result) -> dict:
    return {"cell": {"id": cell_id, "family": family, "delay": delay}, "seed": seed,
            "result": {"status": "finished", "seconds": 1.0, **result}}


def seeds(cell_id: str, family: str, delay: int, metric: str, values) -> list[dict]:
    """One row per seed, the validation metric equal to the test one."""
    val = metric.replace("test_", "val_", 1)
    return [row(cell_id, family, delay, seed=i, **{metric: v, val: v}) for i, v in enumerate(values)]


def test_claims_need_an_interval_on_one_side_of_the_claims_margin():
    good = {
        "reversal": seeds("delayed_d19", "delayed", 19, "test_accuracy", [0.998, 0.997, 0.999])
        + seeds("bidirectional", "bidirectional", 0, "test_accuracy", [0.999, 0.998, 0.9995]),
        "sine": seeds("delayed_d5", "delayed", 5, "test_mse", [4.0e-4, 4.1e-4, 3.9e-4])
        + seeds("bidirectional", "bidirectional", 0, "test_mse", [5.0e-4, 5.2e-4, 5.1e-4]),
        "pos": seeds("delayed_d1", "delayed", 1, "test_accuracy", [0.950, 0.951, 0.9505])
        + seeds("bidirectional", "bidirectional", 0, "test_accuracy", [0.951, 0.952, 0.9515]),
        "runtime": seeds("delayed_d5", "delayed", 5, "ratio", [0.55, 0.56, 0.54])
        + seeds("bidirectional", "bidirectional", 0, "ratio", [1.0, 1.0, 1.0]),
    }
    verdicts = [c["verdict"] for c in claims(good)]
    assert verdicts == ["agrees", "agrees", "agrees", "agrees"]  # sine: 4e-4 is clearly below 5e-4
    assert "sine: dRNN (d5) 0.0004 [" in claims(good)[1]["evidence"] and "beats" in claims(good)[1]["evidence"]
    assert "reversal: dRNN (d19)" in claims(good)[1]["evidence"]
    assert "a gap of +0.10 [" in claims(good)[2]["evidence"]
    assert all(c["test"] and c["paper"] for c in claims(good))

    bad = {**good, "pos": seeds("delayed_d1", "delayed", 1, "test_accuracy", [0.85, 0.86, 0.855])
           + seeds("bidirectional", "bidirectional", 0, "test_accuracy", [0.90, 0.905, 0.90]),
           "runtime": seeds("delayed_d5", "delayed", 5, "ratio", [1.4, 1.5, 1.45])}
    assert [c["verdict"] for c in claims(bad)][2:] == ["disagrees", "disagrees"]

    noisy = {"pos": seeds("delayed_d1", "delayed", 1, "test_accuracy", [0.90, 0.95, 0.92])
             + seeds("bidirectional", "bidirectional", 0, "test_accuracy", [0.93, 0.90, 0.95])}
    assert claims(noisy)[2]["verdict"] == "inconclusive"  # the interval straddles the 0.3-point margin
    one_seed = {name: [r for r in rows if r["seed"] == 0] for name, rows in good.items()}
    assert {c["verdict"] for c in claims(one_seed)} == {"inconclusive"}  # one seed: no interval
    assert [c["verdict"] for c in claims({})] == ["not measured yet"] * 4


def test_the_delayed_model_a_claim_compares_is_chosen_on_validation():
    rows = [row("delayed_d1", "delayed", 1, seed=i, test_accuracy=0.99, val_accuracy=0.80) for i in range(3)]
    rows += [row("delayed_d2", "delayed", 2, seed=i, test_accuracy=0.95, val_accuracy=0.90) for i in range(3)]
    rows += [row("bidirectional", "bidirectional", 0, seed=i, test_accuracy=0.96, val_accuracy=0.96) for i in range(3)]
    assert "dRNN (d2) 95.00%" in claims({"pos": rows})[2]["evidence"]


def test_series_averages_seeds_with_their_interval():
    rows = seeds("delayed_d3", "delayed", 3, "ratio", [1.0, 2.0, 3.0]) + seeds("stacked", "stacked", 0, "ratio", [5.0])
    data = series("runtime", rows)
    (point,) = data["points"]
    assert point["value"] == pytest.approx(2.0) and point["n"] == 3
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)
    assert (point["low"], point["high"]) == pytest.approx((2.0 - half, 2.0 + half))
    assert data["baselines"] == [{"name": "stacked", "value": 5.0, "low": None, "high": None, "n": 1}]


def test_intervals_match_scipys():
    a, b = [0.91, 0.93, 0.92, 0.95], [0.90, 0.89, 0.93]
    mine = mean_interval(a)
    assert (mine.low, mine.high) == pytest.approx(stats.t.interval(0.95, 3, loc=np.mean(a), scale=stats.sem(a)))
    diff = difference_interval(a, b)
    reference = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (diff.low, diff.high) == pytest.approx((reference.low, reference.high))
    assert diff.mean == pytest.approx(np.mean(a) - np.mean(b))
    assert not mean_interval([0.5]).known and mean_interval([0.5]).text() == "0.5"


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


def test_every_seed_is_a_row_and_shards_split_the_pairs_between_processes(tmp_path, monkeypatch):
    calls = []

    def fake(cell, seed, on_progress, should_stop):
        calls.append((cell["id"], seed))
        return {"ratio": 1.0 + seed, "params": 1, "seconds": 0.0, "status": "finished"}

    monkeypatch.setattr(experiment("runtime"), "run_cell", fake)
    ids = [c["id"] for c in experiment("runtime").cells("tiny")]
    pairs = [(i, s) for i in ids for s in (0, 1, 2)]
    run_experiment("runtime", "tiny", seeds=[0, 1, 2], shard=(0, 2), directory=tmp_path, log=lambda _: None)
    assert calls == pairs[0::2]
    rows = run_experiment("runtime", "tiny", seeds=[0, 1, 2], shard=(1, 2), directory=tmp_path, log=lambda _: None)
    assert sorted(calls) == sorted(pairs)
    assert [(r["cell"]["id"], r["seed"]) for r in rows] == pairs  # grid order, then seed
    run_experiment("runtime", "tiny", seeds=[0, 1, 2], directory=tmp_path, log=lambda _: None)
    assert len(calls) == len(pairs)  # all done: nothing reruns
    with pytest.raises(ValueError, match="shard"):
        reproduce.parse_shard("2/2")


def test_shipped_medium_results_have_three_seeds_per_cell_and_pos_the_full_train_split():
    for name in EXPERIMENTS:
        rows = load_results(name, "medium", reproduce.SHIPPED_RESULTS)
        pairs = {(r["cell"]["id"], r["seed"]) for r in rows}
        assert pairs == {(c["id"], s) for c in experiment(name).cells("medium") for s in (0, 1, 2)}, name
    pos = load_results("pos", "medium", reproduce.SHIPPED_RESULTS)
    assert {r["result"]["train_sentences"] for r in pos} == {12_544}
    bidirectional = [r["result"]["test_accuracy"] for r in pos if r["cell"]["id"] == "bidirectional"]
    assert sum(bidirectional) / 3 >= 0.94
