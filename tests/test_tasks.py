"""Tasks: seeded determinism, shapes, targets against plain loops, the theory (reversal's bound, the
sine floor, copy's baseline) against brute force, and the scoring against obvious references."""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from drnn_demo.tasks import (
    IGNORE_INDEX,
    TASKS,
    CopyMemory,
    Reversal,
    SineFiltering,
    build_task,
    reversal_best_accuracy,
    sine_irreducible_mse,
    task_arguments,
)

SMALL = {"reversal": {"length": 7, "classes": 3}, "sine": {"length": 12, "causal": 4, "acausal": 2},
         "copy_memory": {"copy_length": 3, "gap": 5}}


def small(name):
    return build_task(name, **SMALL.get(name, {}))


# ----------------------------------------------------------------- registry and the common contract


def test_build_task_rejects_unknown_names_and_arguments():
    with pytest.raises(ValueError, match="reversal"):
        build_task("reversel")
    with pytest.raises(ValueError, match=r"length"):
        build_task("reversal", lenght=5)
    with pytest.raises(ValueError, match="classes"):
        build_task("reversal", classes=0)
    with pytest.raises(ValueError, match="scale"):
        build_task("sine", scale=float("nan"))


@pytest.mark.parametrize("name", ["reversal", "sine", "copy_memory"])
def test_task_contract_shapes_dtypes_and_args(name):
    task = small(name)
    assert task.name == name and TASKS[name] is type(task)
    assert set(task.args) == set(task_arguments(name)), "args must hold every constructor argument"
    assert json.loads(json.dumps(task.args)) == task.args
    x, y = task.sample(5, seed=3)
    T = x.shape[1]
    assert x.dtype == torch.float32 and x.shape == (5, T, task.input_size) and task.vocab_size is None
    if task.kind == "classification":
        assert y.dtype == torch.long and y.shape == (5, T)
        assert 0 <= int(y.min()) and int(y.max()) < task.output_size
    else:
        assert y.dtype == torch.float32 and y.shape == (5, T, task.output_size)
    pred = torch.randn(5, T, task.output_size)
    metrics = task.metrics(pred, y)
    assert task.metric in metrics and all(isinstance(v, float) for v in metrics.values())
    assert task.loss(pred, y).shape == ()
    assert task.per_position(pred, y).shape == (T,)
    assert isinstance(task.higher_is_better, bool)


@pytest.mark.parametrize("name", ["reversal", "sine", "copy_memory"])
def test_sampling_is_deterministic_by_seed_and_rebuildable_from_args(name):
    task = small(name)
    x1, y1 = task.sample(6, seed=11)
    x2, y2 = type(task)(**task.args).sample(6, seed=11)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    x3, _ = task.sample(6, seed=12)
    assert not torch.equal(x1, x3)
    with pytest.raises(ValueError, match="seed"):
        task.sample(2, seed=-1)
    with pytest.raises(ValueError, match="n"):
        task.sample(0, seed=0)


# ----------------------------------------------------------------- reversal


def test_reversal_inputs_are_one_hot_and_targets_are_the_reversed_tokens():
    task = Reversal(length=9, classes=5)
    x, y = task.sample(20, seed=0)
    assert torch.equal(x.sum(-1), torch.ones(20, 9))
    tokens = x.argmax(-1)
    for i in range(20):
        for t in range(9):
            assert y[i, t] == tokens[i, 9 - 1 - t]
    counts = torch.bincount(task.sample(4000, seed=1)[1].flatten(), minlength=5).double()
    assert torch.allclose(counts / counts.sum(), torch.full((5,), 0.2, dtype=torch.double), atol=0.01)


def brute_force_best_accuracy(T, V, d):
    """Output t emits x[T-1-t]; it has been read by step t+d iff T-1-t <= t+d, else guess (1/V)."""
    return sum(1.0 if T - 1 - t <= t + d else 1.0 / V for t in range(T)) / T


@given(T=st.integers(1, 40), V=st.integers(1, 12), d=st.integers(0, 60))
@settings(max_examples=300, deadline=None)
def test_reversal_best_accuracy_matches_brute_force(T, V, d):
    assert reversal_best_accuracy(T, V, d) == pytest.approx(brute_force_best_accuracy(T, V, d))


def test_reversal_best_accuracy_known_values_and_the_oracle_reaches_it():
    assert reversal_best_accuracy(20, 4, 0) == pytest.approx(0.625)
    assert reversal_best_accuracy(20, 4, 19) == 1.0 and reversal_best_accuracy(20, 4, 18) < 1.0
    # the best causal decoder at delay d: copy the token when it has been read, else guess class 0
    T, V, d = 20, 4, 6
    task = Reversal(T, V)
    x, y = task.sample(3000, seed=5)
    tokens = x.argmax(-1)
    guess = torch.zeros_like(y)
    for t in range(T):
        if T - 1 - t <= t + d:
            guess[:, t] = tokens[:, T - 1 - t]
    pred = torch.nn.functional.one_hot(guess, V).float()
    assert task.metrics(pred, y)["accuracy"] == pytest.approx(task.best_possible(d), abs=0.01)
    per_position = task.per_position(pred, y)
    first_seen = math.ceil((T - 1 - d) / 2)
    assert np.all(per_position[first_seen:] == 1.0) and np.all(per_position[:first_seen] < 0.35)
    assert per_position[0] == pytest.approx(1 / V, abs=0.03)


# ----------------------------------------------------------------- sine filtering


def reference_sine_targets(x, h, c, a, scale):
    """The reference code's loop: the filter truncated at both edges."""
    n, T = x.shape
    y = np.zeros((n, T))
    for j in range(n):
        for k in range(T):
            left, right = min(c, k + 1), min(a, T - 1 - k)
            y[j, k] = np.sum(x[j, k + 1 - left : k + 1 + right] * h[c - left : c + right])
    return np.sin(scale * y)


@pytest.mark.parametrize("c,a,T", [(15, 5, 50), (4, 2, 12), (1, 0, 5), (6, 3, 4)])
def test_sine_targets_match_the_reference_loop(c, a, T):
    task = SineFiltering(length=T, causal=c, acausal=a, scale=0.3, filter_seed=4)
    x, y = task.sample(8, seed=2)
    expected = reference_sine_targets(x[..., 0].double().numpy(), task.filter.numpy(), c, a, 0.3)
    np.testing.assert_allclose(y[..., 0].numpy(), expected, atol=1e-6)


def test_sine_filter_is_shared_across_seeds_and_changes_with_filter_seed():
    task = SineFiltering()
    assert torch.equal(task.filter, SineFiltering().filter)
    assert task.filter.shape == (20,) and 0 <= float(task.filter.min()) and float(task.filter.max()) < 1
    assert not torch.equal(task.filter, SineFiltering(filter_seed=1).filter)
    x, y = task.sample(4, seed=0)
    other = SineFiltering(filter_seed=1)
    assert not torch.allclose(other.targets(x), y)
    assert torch.allclose(task.targets(x), y)


def monte_carlo_floor(task, delay, n_outer=2000, n_inner=100, seed=0):
    """E[Var(y_k | x_<=k+d)] by brute force: draw x, redraw the unread future n_inner times."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n_outer, 1, task.length, generator=g, dtype=torch.float64).expand(n_outer, n_inner, task.length)
    fresh = torch.rand(n_outer, n_inner, task.length, generator=g, dtype=torch.float64)
    floors = np.zeros(task.length)
    for k in range(task.length):
        xk = x.clone()
        xk[..., k + delay + 1 :] = fresh[..., k + delay + 1 :]
        yk = task.targets(xk.reshape(-1, task.length))[:, k, 0].double().reshape(n_outer, n_inner)
        floors[k] = float(yk.var(dim=1).mean())
    return floors


@pytest.mark.parametrize("delay", [0, 1, 3])
def test_sine_irreducible_mse_matches_monte_carlo(delay):
    task = SineFiltering(length=12, causal=4, acausal=4, scale=1.0, filter_seed=3)
    exact = task.irreducible_mse(delay, per_position=True)
    estimate = monte_carlo_floor(task, delay)
    assert exact.shape == (12,)
    np.testing.assert_allclose(exact, estimate, rtol=0.1, atol=1e-6)  # ~3 % Monte Carlo noise per position
    assert exact.mean() == pytest.approx(estimate.mean(), rel=0.03)


def test_sine_irreducible_mse_decreases_with_delay_to_zero_at_acausal():
    floors = [sine_irreducible_mse(d) for d in range(8)]
    assert floors[0] > 5e-4, "the default task must leave a visible floor at delay 0"
    assert all(a >= b for a, b in zip(floors, floors[1:], strict=False))
    assert floors[4] > 0 and floors[5] == 0.0 and floors[7] == 0.0
    assert SineFiltering().best_possible(0) == floors[0]
    per_position = sine_irreducible_mse(0, per_position=True)
    assert per_position[-1] == 0.0 and per_position[-2] > 0, "the last step has no future"


def test_sine_floor_is_below_the_target_variance():
    task = SineFiltering()
    _, y = task.sample(4000, seed=0)
    assert task.irreducible_mse(0) < float(y.var()) / 5


# ----------------------------------------------------------------- copy memory


def test_copy_memory_layout_against_a_loop():
    K, L = 4, 7
    task = CopyMemory(copy_length=K, gap=L)
    x, y = task.sample(10, seed=0)
    assert x.shape == (10, L + 2 * K, 10) and task.length == L + 2 * K
    tokens = x.argmax(-1)
    for i in range(10):
        for t in range(L + 2 * K):
            if t < K:
                assert 1 <= tokens[i, t] <= 8
            elif t == K + L - 1:
                assert tokens[i, t] == 9
            else:
                assert tokens[i, t] == 0
            expected_target = tokens[i, t - (L + K)] if t >= L + K else 0
            assert y[i, t] == expected_target


@pytest.mark.parametrize("K,L", [(10, 50), (3, 20), (10, 100)])
def test_copy_memory_baseline_is_the_loss_of_blank_then_uniform_guess(K, L):
    task = CopyMemory(copy_length=K, gap=L)
    assert task.baseline_loss == pytest.approx(K * math.log(8) / (L + 2 * K))
    x, y = task.sample(50, seed=1)
    logits = torch.full((50, L + 2 * K, 10), -1e4)
    logits[:, : L + K, 0] = 0.0  # certain blank
    logits[:, L + K :, 1:9] = 0.0  # uniform over the 8 symbols
    assert task.metrics(logits, y)["cross_entropy"] == pytest.approx(task.baseline_loss, rel=1e-5)
    assert task.metrics(logits, y)["cross_entropy"] == pytest.approx(float(task.loss(logits, y)), rel=1e-6)


def test_copy_memory_recall_accuracy_scores_only_the_last_k_steps():
    task = CopyMemory(copy_length=3, gap=4)
    _, y = task.sample(5, seed=0)
    perfect = torch.nn.functional.one_hot(y, 10).float()
    blank = torch.nn.functional.one_hot(torch.zeros_like(y), 10).float()
    assert task.metrics(perfect, y)["recall_accuracy"] == 1.0
    blank_metrics = task.metrics(blank, y)
    assert blank_metrics["recall_accuracy"] == 0.0
    assert blank_metrics["accuracy"] == pytest.approx((4 + 3) / (4 + 6))


# ----------------------------------------------------------------- scoring against plain loops


def test_classification_metrics_and_per_position_against_loops():
    task = Reversal(length=6, classes=3)
    _, y = task.sample(40, seed=0)
    y[0, :2] = IGNORE_INDEX  # not scored
    pred = torch.randn(40, 6, 3, generator=torch.Generator().manual_seed(1))
    correct, scored, nll = 0, 0, 0.0
    per_pos_correct, per_pos_scored = np.zeros(6), np.zeros(6)
    for i in range(40):
        for t in range(6):
            if y[i, t] == IGNORE_INDEX:
                continue
            hit = int(pred[i, t].argmax()) == int(y[i, t])
            correct, scored = correct + hit, scored + 1
            per_pos_correct[t] += hit
            per_pos_scored[t] += 1
            nll -= float(torch.log_softmax(pred[i, t], -1)[y[i, t]])
    metrics = task.metrics(pred, y)
    assert metrics["accuracy"] == pytest.approx(correct / scored)
    assert metrics["cross_entropy"] == pytest.approx(nll / scored, rel=1e-5)
    assert float(task.loss(pred, y)) == pytest.approx(nll / scored, rel=1e-5)
    np.testing.assert_allclose(task.per_position(pred, y), per_pos_correct / per_pos_scored)


def test_regression_metrics_and_per_position_against_loops():
    task = SineFiltering(length=5, causal=2, acausal=1)
    _, y = task.sample(7, seed=0)
    pred = y + 0.1 * torch.randn(7, 5, 1, generator=torch.Generator().manual_seed(2))
    errors = [[(float(pred[i, t, 0]) - float(y[i, t, 0])) ** 2 for t in range(5)] for i in range(7)]
    assert task.metrics(pred, y)["mse"] == pytest.approx(np.mean(errors), rel=1e-5)
    np.testing.assert_allclose(task.per_position(pred, y), np.mean(errors, axis=0), rtol=1e-5)
