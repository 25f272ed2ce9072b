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
