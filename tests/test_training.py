"""Trainer, TrainConfig and the one builder: statuses (finished, early_stopped, cancelled, diverged),
progress reports, determinism, the kept best model, device choice and config round trips."""

import json
import math

import pytest
import torch

from drnn_demo.models import SequenceModel
from drnn_demo.tasks import TASKS, Reversal
from drnn_demo.training import (
    Progress,
    TrainConfig,
    Trainer,
    build_for_config,
    derived_seed,
    evaluate,
    pick_device,
)

TINY_MODEL = {"core": "delayed", "core_args": {"hidden_size": 8, "delay": 1, "cell": "lstm"}}


def tiny(**overrides) -> TrainConfig:
    base = dict(task="reversal", task_args={"length": 6, "classes": 3}, model=TINY_MODEL, steps=30, batch_size=8,
                eval_every=10, patience=0, val_size=40, test_size=50, seed=0, device="cpu", log_every=5)
    base.update(overrides)
    return TrainConfig(**base)


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ----------------------------------------------------------------- config and builder


def test_config_round_trips_through_json_and_rejects_unknown_keys():
    config = tiny(lr_schedule="cosine", task_args={"length": 9})
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert TrainConfig.from_dict({}) == TrainConfig()
    with pytest.raises(ValueError, match="stepz"):
        TrainConfig.from_dict({"stepz": 3})


@pytest.mark.parametrize("field,value", [("steps", 0), ("batch_size", -1), ("lr", 0.0), ("lr", math.nan),
                                         ("clip", -1.0), ("patience", -1), ("eval_every", 1.5),
                                         ("lr_schedule", "linear"), ("model", {"core_args": {}})])
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        tiny(**{field: value})


def test_build_for_config_takes_sizes_from_the_task():
    task, model = build_for_config(tiny(task_args={"length": 5, "classes": 7}))
    assert isinstance(model, SequenceModel) and isinstance(task, Reversal)
    assert model.config["input_size"] == 7 and model.config["output_size"] == 7
    assert model.config["vocab_size"] is None and model.config["readout"] == "steps"
    x, _ = task.sample(2, seed=0)
    assert model(x).shape == (2, 5, 7)
    _, sine_model = build_for_config(tiny(task="sine", task_args={"length": 8}))
    assert sine_model.config["input_size"] == 1 and sine_model.config["output_size"] == 1
    with pytest.raises(ValueError, match="output_size"):
        build_for_config(tiny(model=dict(TINY_MODEL, output_size=2)))
    with pytest.raises(ValueError, match="input_size"):
        build_for_config(tiny(model=dict(TINY_MODEL, input_size=2)))
    with pytest.raises(ValueError, match="model"):
        build_for_config(tiny(model={"core": "transformer", "core_args": {}}))


def test_derived_seeds_differ_by_purpose_and_step():
    seeds = {derived_seed(0, p, i) for p in ("train", "val", "test") for i in range(50)}
    assert len(seeds) == 150
    assert derived_seed(3, "val") == derived_seed(3, "val") != derived_seed(4, "val")


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device"):
        pick_device("banana")
    with pytest.raises(ValueError, match="device"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")


# ----------------------------------------------------------------- runs


def test_finished_run_reports_progress_with_increasing_steps_and_keeps_history():
    reports: list[Progress] = []
    result = Trainer(tiny(), on_progress=reports.append).run()
    assert result.status == "finished" and result.steps == 30
    steps = [p.step for p in reports]
    assert steps == sorted(set(steps)) and steps[-1] == 30
    assert steps == [5, 10, 15, 20, 25, 30], "a report every log_every steps"
    assert all(p.total_steps == 30 and math.isfinite(p.loss) for p in reports)
    evals = [p for p in reports if p.metrics]
    assert [p.step for p in evals] == [10, 20, 30] and all("accuracy" in p.metrics for p in evals)
    elapsed = [p.elapsed for p in reports]
    assert elapsed == sorted(elapsed)
    assert [h["step"] for h in result.history] == steps
    assert set(result.test_metrics) == {"accuracy", "cross_entropy"}
    assert "finished 30 steps" in result.message


def test_runs_are_reproducible_from_the_config():
    a, b = Trainer(tiny()).run(), Trainer(tiny()).run()
    def strip(history):
        return [{k: v for k, v in h.items() if k != "elapsed"} for h in history]

    assert a.test_metrics == b.test_metrics and strip(a.history) == strip(b.history)
    for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    c = Trainer(tiny(seed=1)).run()
    assert not torch.equal(a.model.head.weight, c.model.head.weight)


def test_the_kept_model_is_the_best_on_validation():
    result = Trainer(tiny(steps=60, lr=0.05)).run()
    val_scores = [h["metrics"]["accuracy"] for h in result.history if "metrics" in h]
    best = max(val_scores)
    assert result.val_metrics["accuracy"] == pytest.approx(best)
    assert result.best_step == [h["step"] for h in result.history if "metrics" in h][val_scores.index(best)]


def test_training_learns_something():
    result = Trainer(tiny(task_args={"length": 4, "classes": 2}, steps=150, lr=0.03, eval_every=50,
                          model={"core": "delayed", "core_args": {"hidden_size": 16, "delay": 3, "cell": "lstm"}})
                     ).run()
    assert result.test_metrics["accuracy"] > 0.9, result.message


class ConstantMetric(Reversal):
    """Reversal whose validation accuracy never improves: early stopping must trigger."""

    name = "constant_metric"

    def metrics(self, pred, y):
        return {"accuracy": 0.5, "cross_entropy": 1.0}


def test_early_stopping_after_patience_evaluations_without_improvement(monkeypatch):
    monkeypatch.setitem(TASKS, "constant_metric", ConstantMetric)
    result = Trainer(tiny(task="constant_metric", steps=100, eval_every=5, patience=2)).run()
    assert result.status == "early_stopped"
    assert result.steps == 15, "best at step 5, no improvement at 10 and 15"
    assert result.best_step == 5 and "early stop" in result.message
    no_patience = Trainer(tiny(task="constant_metric", steps=30, eval_every=5, patience=0)).run()
    assert no_patience.status == "finished" and no_patience.steps == 30


def test_should_stop_cancels_and_still_scores_the_model():
    calls = {"n": 0}

    def should_stop():
        calls["n"] += 1
        return calls["n"] > 12

    result = Trainer(tiny(steps=1000), should_stop=should_stop).run()
    assert result.status == "cancelled" and result.steps == 12
    assert result.best_step == 10 and "cancelled at step 12" in result.message
    assert 0 <= result.test_metrics["accuracy"] <= 1
    immediately = Trainer(tiny(), should_stop=lambda: True).run()
    assert immediately.status == "cancelled" and immediately.steps == 0 and immediately.best_step is None
    assert math.isfinite(immediately.test_metrics["accuracy"])


class NanAfter(Reversal):
    """Reversal whose training loss turns NaN on the ``nan_at``-th call (a divergence hook)."""

    name = "nan_after"
    nan_at = 14

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0

    def loss(self, pred, y):
        self.calls += 1
        loss = super().loss(pred, y)
        return loss * math.nan if self.calls >= self.nan_at else loss


def test_non_finite_loss_ends_the_run_as_diverged_keeping_the_best_model(monkeypatch):
    monkeypatch.setitem(TASKS, "nan_after", NanAfter)
    reports = []
    result = Trainer(tiny(task="nan_after", steps=100), on_progress=reports.append).run()
    assert result.status == "diverged" and result.steps == 13
    assert "diverged at step 14" in result.message and "nan" in result.message
    assert result.best_step == 10
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    best_eval = [h for h in result.history if h["step"] == 10][0]["metrics"]
    assert result.val_metrics == pytest.approx(best_eval)
    assert math.isfinite(result.test_metrics["accuracy"])


def test_divergence_at_the_first_step_keeps_the_initial_weights(monkeypatch):
    monkeypatch.setitem(TASKS, "nan_after", NanAfter)
    monkeypatch.setattr(NanAfter, "nan_at", 1)
    result = Trainer(tiny(task="nan_after")).run()
    assert result.status == "diverged" and result.steps == 0 and result.best_step is None
    torch.manual_seed(0)
    _, initial = build_for_config(tiny(task="nan_after"))
    for p, q in zip(result.model.parameters(), initial.parameters(), strict=True):
        assert torch.equal(p, q)


def test_huge_learning_rate_never_crashes():
    result = Trainer(tiny(task="sine", task_args={"length": 8}, lr=1e6, clip=0.0, steps=20)).run()
    assert result.status in ("finished", "diverged")
    assert result.steps <= 20 and result.message


def test_card_holds_what_a_checkpoint_needs():
    result = Trainer(tiny(steps=10)).run()
    card = result.card(run_id="abc")
    assert card["task"] == "reversal" and card["task_args"] == {"length": 6, "classes": 3}
    assert card["train"] == tiny(steps=10).to_dict() and card["seed"] == 0 and card["run_id"] == "abc"
    assert card["metrics"]["test"] == result.test_metrics and card["status"] == "finished"
    json.dumps(card, allow_nan=False)


def test_evaluate_in_chunks_equals_one_batch():
    task, model = build_for_config(tiny())
    x, y = task.sample(37, seed=0)
    with torch.no_grad():
        whole = task.metrics(model(x), y)
    assert evaluate(model, task, x, y, batch_size=5) == pytest.approx(whole)


def test_cosine_schedule_ends_at_zero_learning_rate(monkeypatch):
    """With lr -> 0 at the end, the last step barely moves the weights; a constant lr keeps moving them."""
    import drnn_demo.training as training

    def last_step_change(schedule):
        models, snapshots = [], []

        def capture(config):
            task, model = build_for_config(config)
            models.append(model)
            return task, model

        def on_progress(p):
            if p.step in (29, 30):
                snapshots.append([q.detach().clone() for q in models[0].parameters()])

        monkeypatch.setattr(training, "build_for_config", capture)
        Trainer(tiny(lr_schedule=schedule, log_every=1, eval_every=100, lr=0.05), on_progress=on_progress).run()
        return max(float((a - b).abs().max()) for a, b in zip(*snapshots, strict=True))

    # the last step runs at lr * (1 + cos(29 pi / 30)) / 2 = 0.0027 lr
    assert last_step_change("cosine") < 0.01 * last_step_change("constant")


def test_orthogonal_weights_of_asrnn_train_at_a_tenth_of_the_learning_rate():
    # Adam's first step moves every parameter with a non-zero gradient by exactly its learning rate.
    config = tiny(model={"core": "asrnn", "core_args": {"hidden_size": 8}}, steps=1, eval_every=1, lr=1e-2, clip=0.0)
    torch.manual_seed(config.seed)
    _, initial = build_for_config(config)
    trained = Trainer(config).run().model
    moved = {name: (p.detach() - dict(initial.named_parameters())[name].detach()).abs().max().item()
             for name, p in trained.named_parameters()}
    assert moved["core.skew_hh"] == pytest.approx(1e-3, rel=1e-3)
    assert moved["core.weight_ih"] == pytest.approx(1e-2, rel=1e-3)
