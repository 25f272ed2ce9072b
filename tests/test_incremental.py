"""Incremental metrics (edit overhead, correction time, relative correctness) against hand-made output histories
and a slow reference, and the delayed network's stream: never revised, so EO = 0, CT = 0, RC = 1."""

import numpy as np
import pytest

from drnn_demo.analysis import incremental as inc


def test_a_history_with_two_corrections():
    # step 0 shows token 0 as 0; step 1 corrects it to 1 and adds token 1; step 2 corrects token 1 and adds token 2
    history = [[0], [1, 1], [1, 0, 2]]
    assert inc.revisions(history) == 2
    assert inc.edit_overhead(history) == pytest.approx(2 / 5)  # 3 additions + 2 replacements
    assert inc.correction_times(history).tolist() == [1, 1, 0]
    assert inc.relative_correctness(history) == pytest.approx(1 / 3)  # only the last step is a prefix of the final


def test_a_label_that_flips_and_flips_back_costs_two_edits_and_its_whole_wait():
    history = [[0], [1, 0], [0, 0]]
    assert inc.revisions(history) == 2
    assert inc.edit_overhead(history) == pytest.approx(2 / 4)
    assert inc.correction_times(history).tolist() == [2, 0]  # token 0 is final only from step 2, though right at 0
    assert inc.relative_correctness(history) == pytest.approx(2 / 3)  # steps 0 and 2 are prefixes of [0, 0]


def test_a_stable_history_with_pauses_has_no_overhead():
    history = [[], [], [2], [2, 1], [2, 1, 1, 0]]
    m = inc.metrics(history)
    assert m["edit_overhead"] == 0 and m["correction_time"] == 0 and m["relative_correctness"] == 1
    assert m["tokens"] == 4 and m["steps"] == 5


def _reference(history):
    """EO, CT and RC straight from their definitions, one label at a time."""
    final, n = history[-1], len(history[-1])
    edits = 0
    for now, partial in enumerate(history):
        before = history[now - 1] if now else []
        edits += sum(1 for t in range(len(partial)) if t >= len(before) or partial[t] != before[t])
    eo = (edits - n) / edits if edits else 0.0
    ct = []
    for t in range(n):
        first = next(now for now, p in enumerate(history) if len(p) > t)
        decided = next(now for now in range(first, len(history))
                       if all(len(p) > t and p[t] == final[t] for p in history[now:]))
        ct.append(decided - first)
    rc = sum(list(p) == list(final[: len(p)]) for p in history) / len(history)
    return eo, ct, rc


@pytest.mark.parametrize("seed", range(20))
def test_metrics_match_the_definitions_on_random_histories(seed):
    rng = np.random.default_rng(seed)
    n, classes = int(rng.integers(1, 9)), int(rng.integers(2, 4))
    lengths = np.sort(rng.integers(0, n + 1, size=int(rng.integers(1, 12))))
    lengths[-1] = n
    history, current = [], []
    for length in lengths:
        current = [int(c) if rng.random() < 0.3 else current[i] if i < len(current) else int(rng.integers(classes))
                   for i, c in enumerate(rng.integers(classes, size=length))]
        history.append(list(current))
    eo, ct, rc = _reference(history)
    assert inc.edit_overhead(history) == pytest.approx(eo)
    assert inc.correction_times(history).tolist() == ct
    assert inc.relative_correctness(history) == pytest.approx(rc)


@pytest.mark.parametrize("delay", [0, 1, 3, 7])
def test_a_delayed_stream_shows_label_t_at_t_plus_d_and_never_changes_it(delay):
    labels = np.random.default_rng(delay).integers(0, 5, size=9)
    c = inc.delayed_history(labels, delay)
    T = len(labels)
    for now in range(T):
        shown = c[now] >= 0
        expected = T if now == T - 1 else max(0, now - delay + 1)  # the last step flushes the rest
        assert shown.sum() == expected and shown[:expected].all()
        assert (c[now][shown] == labels[shown]).all()  # whatever is shown is already final
    m = inc.metrics(c)
    assert m["edit_overhead"] == 0 and m["correction_time"] == 0 and m["relative_correctness"] == 1


def test_lag_accuracy_reads_each_label_lag_steps_after_its_token():
    history = [[0], [1, 1], [1, 0, 2]]
    assert inc.lag_accuracy(history, [1, 0, 2], 0) == (1, 3)  # 0, 1, 2 as first shown: only token 2 right
    assert inc.lag_accuracy(history, [1, 0, 2], 1) == (3, 3)
    delayed = inc.delayed_history([1, 0, 2, 2], 2)
    assert inc.lag_accuracy(delayed, [1, 0, 2, 2], 0) == (1, 4)  # only token 3 is shown on arrival (the final flush)
    assert inc.lag_accuracy(delayed, [1, 0, 2, 2], 2) == (4, 4)


def test_summarize_averages_sentences_and_tokens():
    histories = [[[0], [1, 1], [1, 0, 2]], inc.delayed_history([3, 3], 1)]
    s = inc.summarize(histories, [[1, 0, 2], [3, 0]], lags=(0,))
    assert s["edit_overhead"] == pytest.approx((0.4 + 0.0) / 2)
    assert s["correction_time"] == pytest.approx(2 / 5)  # [1, 1, 0] and [0, 0] over 5 tokens
    assert s["accuracy"] == pytest.approx(4 / 5) and s["tokens"] == 5


@pytest.mark.parametrize("history, message", [
    ([], "at least one time step"),
    ([[0, 1], [0]], "may not shrink"),
    ([[0], [-2, 1]], "non-negative"),
])
def test_bad_histories_get_one_clear_error(history, message):
    with pytest.raises(ValueError, match=message):
        inc.metrics(history)


def test_bad_delays_and_golds_are_refused():
    with pytest.raises(ValueError, match="delay"):
        inc.delayed_history([0, 1], -1)
    with pytest.raises(ValueError, match="gold has 1 labels"):
        inc.lag_accuracy([[0, 1]], [0], 0)
