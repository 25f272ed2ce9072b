"""Comparing runs: the table keeps exactly the settings that differ (nested configs flattened to dotted keys, a
missing key counts as different) with each run's final metrics, and the overlay draws one curve per run in each
panel, one colour per run."""

from types import SimpleNamespace

import pytest

from drnn_demo import viz
from drnn_demo.runs_compare import (
    KIND_KEY,
    MISSING,
    compare,
    differing_keys,
    flatten,
    metric_names,
    overlay_series,
    series,
)
from drnn_demo.training import TrainConfig


def run(run_id: str, config: dict, kind: str = "train", metrics: dict | None = None, history=None, label="r"):
    return SimpleNamespace(id=run_id, label=label, kind=kind, status="finished", config=config,
                           metrics=metrics or {}, history=history or [])


def reference_differing(configs: list[dict]) -> set[str]:
    """Slow and obvious: walk every leaf path of every config, compare the leaves found at it."""
    def leaves(d, path=()):
        for k, v in d.items():
            if isinstance(v, dict) and v:
                yield from leaves(v, (*path, k))
            else:
                yield ".".join((*path, k)), v
    tables = [dict(leaves(c)) for c in configs]
    paths = {p for t in tables for p in t}
    return {p for p in paths if any(t.get(p, "<none>") != tables[0].get(p, "<none>") for t in tables)}


def test_flatten_nested_configs_to_dotted_keys():
    config = TrainConfig(task="sine", lr=0.01).to_dict()
    flat = flatten(config)
    assert flat["task"] == "sine" and flat["lr"] == 0.01
    assert flat["model.core"] == "delayed" and flat["model.core_args.delay"] == 0
    assert flatten({"a": {"b": {"c": 1}}, "e": {}, "l": [1, {"x": 2}]}) == {"a.b.c": 1, "e": {}, "l": [1, {"x": 2}]}


def test_only_differing_settings_are_kept_and_match_a_reference():
    base = TrainConfig(steps=100).to_dict()
    a = {**base, "model": {"core": "delayed", "core_args": {"hidden_size": 64, "delay": 0, "cell": "lstm"}}}
    b = {**base, "lr": 0.01, "model": {"core": "delayed", "core_args": {"hidden_size": 64, "delay": 5, "cell": "lstm"}}}
    c = {**base, "model": {"core": "lrn", "core_args": {"hidden_size": 64}}}
    keys = differing_keys([flatten(x) for x in (a, b, c)])
    assert set(keys) == reference_differing([a, b, c]) == {"lr", "model.core", "model.core_args.delay",
                                                           "model.core_args.cell"}
    assert differing_keys([flatten(a), flatten(dict(a))]) == []  # equal configs: nothing differs
    assert differing_keys([flatten(a)]) == []
    assert differing_keys([{"x": 1}, {"x": 1.0}]) == []  # the same number, as a JSON config reads it
    assert differing_keys([{"x": [1, 2]}, {"x": [1, 2]}, {"x": [2, 1]}]) == ["x"]


def test_the_table_has_the_differing_settings_and_the_final_metrics():
    one = run("20240101-000000-aaaaaa", {"task": "reversal", "lr": 0.003, "seed": 0},
              metrics={"test_accuracy": 0.625, "val_accuracy": 0.7, "note": "text is not a metric"}, label="d=0")
    two = run("20240101-000001-bbbbbb", {"task": "reversal", "lr": 0.01, "seed": 0, "patience": 3},
              metrics={"test_accuracy": 0.95}, label="d=9")
    other = run("20240101-000002-cccccc", {"task": "reversal", "lr": 0.003, "seed": 0}, kind="memory", label="m")
    comparison = compare([one, two, other])
    assert comparison.names == ["d=0 · aaaaaa", "d=9 · bbbbbb", "m · cccccc"]
    assert comparison.settings == {KIND_KEY: ["train", "train", "memory"], "lr": [0.003, 0.01, 0.003],
                                   "patience": [MISSING, 3, MISSING]}
    assert comparison.metrics == {"test_accuracy": [0.625, 0.95, None], "val_accuracy": [0.7, None, None]}
    table = comparison.table()
    assert [r["setting"] for r in table] == [KIND_KEY, "lr", "patience", "final test_accuracy", "final val_accuracy"]
    assert table[1] == {"setting": "lr", "d=0 · aaaaaa": "0.003", "d=9 · bbbbbb": "0.01", "m · cccccc": "0.003"}
    assert table[2]["d=0 · aaaaaa"] == MISSING and table[3]["d=9 · bbbbbb"] == "0.95"
    assert table[4]["m · cccccc"] is None
    assert "seed" not in [r["setting"] for r in table] and "task" not in [r["setting"] for r in table]


def test_same_label_and_id_tail_fall_back_on_the_whole_id():
    names = compare([run("20240101-000000-aaaaaa", {}), run("20240102-000000-aaaaaa", {})]).names
    assert names == ["r · 20240101-000000-aaaaaa", "r · 20240102-000000-aaaaaa"]


def test_series_sorted_finite_last_report_wins():
    history = [{"step": 20, "loss": 0.5}, {"step": 10, "loss": 1.0, "accuracy": 0.4}, {"step": 20, "loss": 0.25},
               {"step": 30, "loss": None}, {"step": 40, "loss": float("nan")}, {"step": 50, "loss": True}]
    assert series(history, "loss") == ([10.0, 20.0], [1.0, 0.25])
    assert series(history, "accuracy") == ([10.0], [0.4])
    with pytest.raises(ValueError, match="'step' or 'elapsed'"):
        series(history, "loss", x="epoch")


def test_metric_names_most_shared_first():
    histories = [[{"step": 1, "loss": 1, "accuracy": 0.5, "mse": 2}], [{"step": 1, "accuracy": 0.1, "bpc": None}]]
    assert metric_names(histories) == ["accuracy", "mse"]  # bpc has no number anywhere


def test_overlay_one_trace_per_run_per_panel_one_colour_per_run():
    runs = [run(f"2024010{i + 1}-000000-abcde{i}", {}, label=f"run {i}",
                history=[{"step": s, "loss": (i + 1) / s, "accuracy": s / (10 + i)} for s in range(1, 11)])
            for i in range(3)]
    fig = viz.runs_overlay(overlay_series(runs, "accuracy"), "accuracy")
    assert [a.text for a in fig.layout.annotations] == ["training loss", "accuracy"]
    for axis, name in (("y", "loss"), ("y2", "accuracy")):
        traces = [t for t in fig.data if (t.yaxis or "y") == axis]
        assert [t.name for t in traces] == ["run 0 · abcde0", "run 1 · abcde1", "run 2 · abcde2"], axis
        for i, t in enumerate(traces):
            assert list(t.x) == list(range(1, 11))
            assert list(t.y) == pytest.approx([p[name] for p in runs[i].history])
    colours = {}
    for t in fig.data:
        colours.setdefault(t.name, set()).add(t.line.color)
    assert all(len(c) == 1 for c in colours.values()) and len({c.pop() for c in colours.values()}) == 3
    assert sum(bool(t.showlegend) for t in fig.data) == 3  # one legend entry per run
    assert tuple(fig.layout.yaxis2.range) == (0, 1.02) and fig.layout.yaxis.type == "log"
    only_loss = viz.runs_overlay(overlay_series(runs, None), None)
    assert len(only_loss.data) == 3 and [a.text for a in only_loss.layout.annotations] == ["training loss"]
