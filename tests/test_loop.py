"""drnn_demo.loop.fit, the one training loop: selection, patience, cancelling, divergence, running out of data."""

import math

import pytest
import torch
from torch import nn

from drnn_demo.loop import Progress, fit


def linear_problem(n_batches=40, seed=0):
    """Fit y = 3x on fixed batches; returns (model, optimizer, batches, loss_fn)."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    batches = [(x := torch.randn(8, 1, generator=g), 3 * x) for _ in range(n_batches)]
    return model, torch.optim.SGD(model.parameters(), lr=0.1), batches, lambda m, b: ((m(b[0]) - b[1]) ** 2).mean()


def scripted(values):
    """An evaluate hook that returns the next scripted score each time (and counts its calls)."""
    it = iter(values)
    calls = []

    def evaluate(model):
        calls.append(float(model.weight.detach()))
        return {"score": next(it)}
    return evaluate, calls


def test_the_best_scored_weights_are_restored_and_patience_counts_evaluations():
    model, opt, batches, loss = linear_problem()
    evaluate, calls = scripted([0.1, 0.5, 0.4, 0.3, 0.2, 0.9])
    done = fit(model, opt, batches, loss, 40, evaluate=evaluate, eval_every=5, score=lambda m: m["score"], patience=3)
    assert done.status == "early_stopped" and done.steps == 25 and done.best_step == 10
    assert float(model.weight.detach()) == calls[1]  # the weights evaluated at step 10
    assert "3 evaluations" in done.message


def test_progress_reports_every_log_every_steps_and_at_each_evaluation():
    model, opt, batches, loss = linear_problem()
    seen: list[Progress] = []
    evaluate, _ = scripted([1.0] * 10)
    done = fit(model, opt, batches, loss, 12, evaluate=evaluate, eval_every=5, score=lambda m: m["score"],
               log_every=4, on_progress=seen.append)
    assert [p.step for p in seen] == [4, 5, 8, 10, 12]
    assert [bool(p.metrics) for p in seen] == [False, True, False, True, True]
    assert all(p.total_steps == 12 and math.isfinite(p.loss) for p in seen)
    assert done.status == "finished" and done.steps == 12 and len(done.history) == 5


def test_on_eval_receives_the_mean_training_loss_since_the_previous_evaluation():
    model, opt, batches, loss = linear_problem()
    seen, got = [], []
    fit(model, opt, batches, lambda m, b: seen.append(float(loss(m, b).detach())) or loss(m, b), 6,
        evaluate=lambda m: {"score": 0.0}, eval_every=3, log_every=1, on_eval=lambda s, m, mean: got.append(mean))
    assert got == pytest.approx([sum(seen[:3]) / 3, sum(seen[3:6]) / 3])


def test_a_cancel_is_polled_before_every_step():
    model, opt, batches, loss = linear_problem()
    steps = []
    done = fit(model, opt, batches, lambda m, b: steps.append(1) or loss(m, b), 40,
               should_stop=lambda: len(steps) >= 7)
    assert done.status == "cancelled" and done.steps == 7 and "step 7" in done.message


@pytest.mark.parametrize("bad", [float("nan"), (1.0, float("nan"))])
def test_a_non_finite_validation_score_ends_the_run_as_diverged_keeping_the_best_weights(bad):
    model, opt, batches, loss = linear_problem()
    evaluate, calls = scripted([0.5, 0.7, "bad"])
    done = fit(model, opt, batches, loss, 40, evaluate=evaluate, eval_every=5,
               score=lambda m: bad if m["score"] == "bad" else ((m["score"], 0.0) if isinstance(bad, tuple)
                                                               else m["score"]))
    assert done.status == "diverged" and done.steps == 15 and done.best_step == 10
    assert "not finite" in done.message and float(model.weight.detach()) == calls[1]


def test_a_non_finite_training_loss_stops_before_the_update():
    model, opt, batches, loss = linear_problem()
    calls = []

    def third_is_nan(m, b):
        calls.append(1)
        return loss(m, b) * (float("nan") if len(calls) == 3 else 1.0)
    done = fit(model, opt, batches, third_is_nan, 40)
    assert done.status == "diverged" and done.steps == 2 and "training loss is nan" in done.message
    assert math.isfinite(float(model.weight.detach()))


def test_running_out_of_batches_ends_the_run_with_a_last_evaluation():
    model, opt, batches, loss = linear_problem(n_batches=7)
    evaluate, calls = scripted([0.1, 0.2])
    done = fit(model, opt, batches, loss, 100, evaluate=evaluate, eval_every=5, score=lambda m: m["score"])
    assert done.status == "finished" and done.steps == 7 and len(calls) == 2 and done.best_step == 7
    assert [h["step"] for h in done.history if "metrics" in h] == [5, 7]


def test_fewer_steps_than_eval_every_still_evaluates_at_the_end_and_bad_settings_are_refused():
    model, opt, batches, loss = linear_problem()
    evaluate, calls = scripted([0.3])
    done = fit(model, opt, batches, loss, 3, evaluate=evaluate, eval_every=50, score=lambda m: m["score"])
    assert done.steps == 3 and len(calls) == 1 and done.best_step == 3
    with pytest.raises(ValueError, match="log_every"):
        fit(model, opt, batches, loss, 3, log_every=0)
    with pytest.raises(ValueError, match="eval_every"):
        fit(model, opt, batches, loss, 3, evaluate=evaluate, eval_every=-1)
