"""The shipped checkpoints: each reloads (never unpickled), re-measures the metric its card claims,
and the ladder tells the story the pages draw."""

from pathlib import Path

import pytest

from drnn_demo.checkpoints import load_checkpoint
from drnn_demo.pretrained import PRETRAINED_DIR, catalog, describe, entries, evaluate_on_test_set, nearest
from drnn_demo.tasks import build_task

NAMES = {e.name for e in entries(["delayed_outputs"])}
CARDS = [c for c in catalog() if c.get("name") in NAMES]


def test_every_entry_is_shipped_and_the_directory_is_small():
    assert {c["name"] for c in CARDS} == NAMES, "run `python -m drnn_demo pretrain`"
    total = sum(f.stat().st_size for f in Path(PRETRAINED_DIR).iterdir() if f.is_file())
    assert total < 8 * 2**20  # "a few MB"


@pytest.mark.parametrize("card", CARDS, ids=[c.get("name", c["path"]) for c in CARDS])
def test_each_checkpoint_reloads_and_re_measures_its_metric(card):
    model, loaded = load_checkpoint(card["path"])
    view = evaluate_on_test_set(model, loaded)
    metric = build_task(card["task"]).metric
    claimed = card["metrics"]["test"][metric]
    assert view.metrics[metric] == pytest.approx(claimed, rel=1e-3, abs=1e-4)


def by_name(name):
    return next(describe(c) for c in CARDS if c.get("name") == name)


def test_reversal_ladder_matches_the_paper_story():
    bound_0 = build_task("reversal").best_possible(0)
    assert by_name("reversal_delayed_lstm_h128_d19")["test"]["accuracy"] >= 0.99
    assert by_name("reversal_delayed_lstm_h64_d19")["test"]["accuracy"] >= 0.98  # H=64 within its budget
    assert by_name("reversal_delayed_lstm_h128_d0")["test"]["accuracy"] <= bound_0 + 0.01
    assert by_name("reversal_delayed_lstm_h64_d0")["test"]["accuracy"] <= bound_0 + 0.01
    accuracies = [by_name(f"reversal_delayed_lstm_h64_d{d}")["test"]["accuracy"] for d in (0, 3, 6, 9, 12, 15, 19)]
    assert accuracies == sorted(accuracies)  # every extra step of delay helps
    assert by_name("reversal_stacked_lstm_2x64")["test"]["accuracy"] <= bound_0 + 0.01
    assert by_name("reversal_bidirectional_lstm_h64")["test"]["accuracy"] >= 0.95


def test_sine_ladder_delay_buys_accuracy():
    floor_0 = build_task("sine").best_possible(0)
    assert by_name("sine_delayed_lstm_h64_d5")["test"]["mse"] <= 1e-3
    assert by_name("sine_delayed_lstm_h64_d0")["test"]["mse"] >= floor_0 * 0.95


def test_nearest_prefers_the_delay_then_says_what_differs():
    best, note = nearest(CARDS, "reversal", "gru", 18, 64)
    assert best["delay"] == 19 and best["hidden"] == 64
    assert "cell lstm instead of gru" in note and "delay 19 instead of 18" in note
    assert nearest(CARDS, "reversal", "lstm", 19, 128)[0]["hidden"] == 128
    best, note = nearest(CARDS, "sine", "lstm", 5, 64)
    assert best["delay"] == 5 and note == "exact match"
