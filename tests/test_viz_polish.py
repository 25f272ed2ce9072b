"""Figures a new user reads at a glance: a diverged run does not squash the other curves, and scores and
losses get their own labelled axes."""

import math

from drnn_demo import viz


def test_a_diverged_curve_is_clipped_and_named_so_the_others_stay_readable():
    baseline = math.log(10)
    steps = list(range(0, 100, 10))
    good = [2.0 - 0.15 * i for i in range(10)]
    records = [{"label": "LSTM", "cell": "lstm", "history": {"step": steps, "loss": good}},
               {"label": "expRNN", "cell": "exprnn", "history": {"step": steps, "loss": [2.0, 5.0, 42.6] + [40.0] * 7}}]
    fig = viz.memory_loss_curves(records, baseline)
    low, high = fig.layout.yaxis.range
    assert math.isclose(10**high, 3 * baseline) and 10**low < 0.65  # the useful range, the good curve inside it
    assert "expRNN diverged (cross-entropy up to 42.6" in fig.layout.annotations[0].text
    calm = viz.memory_loss_curves(records[:1], baseline)
    assert calm.layout.yaxis.range is None and not calm.layout.annotations


def test_scores_and_losses_are_on_separate_labelled_panels():
    history = [{"step": s, "loss": 1.0 / s, "accuracy": 0.5 + s / 400, "cross_entropy": 2.0 / s} for s in (10, 20, 30)]
    fig = viz.training_curves(history)
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["training loss", "scores", "losses"]
    assert fig.layout.yaxis2.title.text == "accuracy" and fig.layout.yaxis3.title.text == "cross_entropy"
    assert {t.name: t.yaxis for t in fig.data} == {"loss": "y", "accuracy": "y2", "cross_entropy": "y3"}


def test_unknown_words_are_visible_on_the_token_axis():
    fig = viz.lrn_token_shares(["a", "dull (<unk>)", "film"], [0.1, 0.0, -0.2])
    ticks = list(fig.layout.xaxis.ticktext)
    assert ticks[0] == "a" and "dull (&lt;unk&gt;)" in ticks[1] and "<i" in ticks[1]  # escaped, not a lost tag


def test_an_untrained_loss_above_three_baselines_is_a_start_not_a_divergence():
    baseline = 0.3  # the copy task's: its untrained cross-entropy (about ln 8) is far above 3x this
    steps = list(range(0, 100, 10))
    learning = [2.2 - 0.2 * i for i in range(10)]
    records = [{"label": "LSTM", "cell": "lstm", "history": {"step": steps, "loss": learning}},
               {"label": "asRNN", "cell": "asrnn", "history": {"step": steps, "loss": [2.1, 1.5, 93.7] + [1.0] * 7}}]
    fig = viz.memory_loss_curves(records, baseline)
    note = fig.layout.annotations[0].text
    assert "asRNN diverged (cross-entropy up to 93.7" in note and "LSTM" not in note
    low, high = fig.layout.yaxis.range
    assert 10**high >= max(learning) and 10**high < 93.7  # the learning curve whole, the spike cut off
    assert not viz.memory_loss_curves(records[:1], baseline).layout.annotations


def test_the_layer_overlay_keeps_every_layer_on_its_own_row_and_hovers_the_true_values():
    import numpy as np

    rng = np.random.default_rng(0)
    stacked = [rng.normal(size=(12, 4)) * 10.0**-l for l in range(4)]  # layers of very different scales
    delayed = [a + 1e-7 for a in stacked]
    fig = viz.layer_overlay(stacked, delayed, unit=2)
    assert not any(k.startswith(("xaxis2", "yaxis2")) for k in fig.layout.to_plotly_json())  # one axis, k rows
    assert [t.split("<br>")[0] for t in fig.layout.yaxis.ticktext] == [f"layer {l}" for l in range(1, 5)]
    low, high = fig.layout.yaxis.range
    for l, (line, marks) in enumerate(zip(fig.data[0::2], fig.data[1::2], strict=True)):
        row = fig.layout.yaxis.tickvals[l]
        assert low < min(line.y) and max(line.y) < high and np.ptp(line.y) > 0.5  # the tiny layer fills its row
        assert np.all(np.abs(np.asarray(line.y) - row) <= 1.0)  # and stays inside it
        np.testing.assert_allclose(line.customdata, stacked[l][:, 2])  # the hover reads the values themselves
        np.testing.assert_allclose(np.asarray(marks.customdata)[:, 0], delayed[l][:, 2])
