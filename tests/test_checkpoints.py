"""Checkpoints: a round trip gives the same function, the card carries what rebuilds and explains
the model, nothing is unpickled, writes are atomic, and every kind of damage is a CheckpointError
that names the file."""

import hashlib
import json
import os
import pickle

import pytest
import safetensors.torch
import torch

import drnn_demo
from drnn_demo.checkpoints import CheckpointError, checkpoint_paths, load_checkpoint, read_card, save_checkpoint
from drnn_demo.models import SequenceModel
from drnn_demo.training import TrainConfig, Trainer


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: torch's thread pool only adds contention on a shared two-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_model(core="delayed", **core_args):
    torch.manual_seed(0)
    core_args = core_args or {"hidden_size": 6, "delay": 2, "cell": "lstm"}
    return SequenceModel(core, core_args, input_size=3, output_size=4)


CARD = {"task": "reversal", "task_args": {"length": 5, "classes": 3}, "train": {"steps": 10},
        "metrics": {"test": {"accuracy": 0.75}}, "seed": 7}


@pytest.fixture
def saved(tmp_path):
    model = make_model()
    path = save_checkpoint(tmp_path / "run", model, CARD)
    return model, path


def rewrite_card(path, **changes):
    card_path = checkpoint_paths(path)[1]
    card = json.loads(card_path.read_text())
    card.update(changes)
    card_path.write_text(json.dumps(card))


def rewrite_weights(path, tensors):
    """Replace the weights and re-sign them in the card, so only the content check can object."""
    blob = safetensors.torch.save(tensors)
    path.write_bytes(blob)
    rewrite_card(path, sha256=hashlib.sha256(blob).hexdigest())


# ----------------------------------------------------------------- round trip and the card


@pytest.mark.parametrize("core,core_args", [
    ("delayed", {"hidden_size": 6, "delay": 2, "cell": "lstm"}),
    ("stacked", {"hidden_sizes": [5, 4], "cell": "gru"}),
    ("bidirectional", {"hidden_sizes": [3], "cell": "rnn", "nonlinearity": "relu"}),
])
def test_round_trip_gives_the_same_outputs(tmp_path, core, core_args):
    model = make_model(core, **core_args)
    path = save_checkpoint(tmp_path / "m", model, CARD)
    loaded, card = load_checkpoint(path)
    x = torch.randn(2, 7, 3)
    model.eval()
    assert torch.equal(loaded(x), model(x))
    assert not loaded.training
    assert card["model"] == json.loads(json.dumps(model.config))


def test_card_contents(saved):
    model, path = saved
    card = read_card(path)
    assert path.name == "run.safetensors" and path.with_suffix(".json").exists()
    for key, value in CARD.items():
        assert card[key] == value
    assert card["model"] == model.config
    assert card["versions"]["torch"] == torch.__version__ and card["versions"]["drnn_demo"] == drnn_demo.__version__
    assert card["versions"]["python"].count(".") == 2
    assert card["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert card["weights"] == "run.safetensors" and card["created"].endswith("+00:00")


@pytest.mark.parametrize("suffix", ["", ".safetensors", ".json"])
def test_any_of_the_three_names_finds_the_checkpoint(saved, suffix):
    _, path = saved
    model, _ = load_checkpoint(str(path.with_suffix("")) + suffix)
    assert isinstance(model, SequenceModel)


def test_task_and_seed_come_from_the_train_config_and_nan_is_stored_as_null(tmp_path):
    config = TrainConfig(task="sine", task_args={"length": 8}, seed=3)
    path = save_checkpoint(tmp_path / "x", make_model(), {"train": config, "metrics": {"mse": float("nan")}})
    text = checkpoint_paths(path)[1].read_text()
    card = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert card["task"] == "sine" and card["task_args"] == {"length": 8} and card["seed"] == 3
    assert card["train"] == config.to_dict() and card["metrics"]["mse"] is None


def test_a_card_value_that_is_not_json_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(TypeError, match="object"):
        save_checkpoint(tmp_path / "x", make_model(), {"metrics": {"odd": object()}})
    assert list(tmp_path.iterdir()) == []
    path = save_checkpoint(tmp_path / "y", make_model(), {"metrics": {"loss": torch.tensor(0.5), "path": tmp_path}})
    card = read_card(path)
    assert card["metrics"] == {"loss": 0.5, "path": str(tmp_path)}


def test_a_trained_model_round_trips_with_its_card(tmp_path):
    config = TrainConfig(task="reversal", task_args={"length": 5, "classes": 3}, steps=10, eval_every=5,
                         val_size=20, test_size=20, device="cpu",
                         model={"core": "delayed", "core_args": {"hidden_size": 8, "delay": 4, "cell": "gru"}})
    result = Trainer(config).run()
    path = save_checkpoint(tmp_path / "trained", result.model, result.card())
    model, card = load_checkpoint(path)
    assert TrainConfig.from_dict(card["train"]) == config
    x, y = result.task.sample(30, seed=99)
    assert torch.allclose(model(x), result.model.eval()(x))
    assert card["metrics"]["test"] == pytest.approx(result.test_metrics)


def test_loading_never_unpickles(saved, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("checkpoints must not unpickle")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    model, _ = load_checkpoint(saved[1])
    assert isinstance(model, SequenceModel)


def test_save_rejects_a_model_without_a_config(tmp_path):
    with pytest.raises(ValueError, match="SequenceModel"):
        save_checkpoint(tmp_path / "x", torch.nn.Linear(2, 2), {})


# ----------------------------------------------------------------- atomic writes


def test_overwrite_is_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    first = save_checkpoint(tmp_path / "m", make_model(), CARD)
    before = first.read_bytes(), checkpoint_paths(first)[1].read_text()

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    other = make_model(hidden_size=9, delay=0, cell="rnn")
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "m", other, CARD)
    assert (first.read_bytes(), checkpoint_paths(first)[1].read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]
    monkeypatch.undo()
    save_checkpoint(tmp_path / "m", other, CARD)
    loaded, _ = load_checkpoint(tmp_path / "m")
    assert loaded.config["core_args"]["hidden_size"] == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


# ----------------------------------------------------------------- damage


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


def test_missing_files(saved):
    _, path = saved
    with pytest.raises(CheckpointError, match="nothere.json"):
        load_checkpoint(path.with_name("nothere.safetensors"))
    path.unlink()
    with pytest.raises(CheckpointError, match="run.safetensors.*not found"):
        load_checkpoint(path)


def test_truncated_weights(saved):
    _, path = saved
    blob = path.read_bytes()
    for cut in (4, 100, len(blob) - 10):
        path.write_bytes(blob[:cut])
        with pytest.raises(CheckpointError, match="run.safetensors.*(corrupt|truncated)"):
            load_checkpoint(path)


def test_corrupt_card(saved):
    _, path = saved
    card_path = checkpoint_paths(path)[1]
    text = card_path.read_text()
    card_path.write_text(text[: len(text) // 2])
    with pytest.raises(CheckpointError, match="run.json.*not valid JSON"):
        load_checkpoint(path)
    card_path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CheckpointError, match="run.json"):
        load_checkpoint(path)
    card_path.write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="run.json.*'model'"):
        load_checkpoint(path)


def test_tampered_weights_fail_the_hash(saved):
    _, path = saved
    tensors = safetensors.torch.load(path.read_bytes())
    tensors["head.bias"][0] += 1.0  # same structure, one changed value
    path.write_bytes(safetensors.torch.save(tensors))
    with pytest.raises(CheckpointError, match="run.safetensors.*sha256 mismatch"):
        load_checkpoint(path)
    rewrite_card(path, sha256=None)
    with pytest.raises(CheckpointError, match="run.json.*sha256"):
        load_checkpoint(path)


def test_unknown_model_name_and_bad_model_arguments(saved):
    _, path = saved
    card = read_card(path)
    rewrite_card(path, model=dict(card["model"], core="transformer"))
    with pytest.raises(CheckpointError, match="run.json.*unknown model 'transformer'"):
        load_checkpoint(path)
    rewrite_card(path, model=dict(card["model"], core_args={"hidden_size": 6, "delay": -1, "cell": "lstm"}))
    with pytest.raises(CheckpointError, match="run.json.*delay"):
        load_checkpoint(path)
    rewrite_card(path, model=dict(card["model"], colour="red"))
    with pytest.raises(CheckpointError, match="run.json.*colour"):
        load_checkpoint(path)


def test_missing_and_unexpected_tensors(saved):
    _, path = saved
    tensors = safetensors.torch.load(path.read_bytes())
    del tensors["head.bias"]
    tensors["extra.weight"] = torch.zeros(2)
    rewrite_weights(path, tensors)
    expected = r"run.safetensors.*missing \['head.bias'\].*unexpected \['extra.weight'\]"
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(path)


def test_shape_mismatch(saved):
    _, path = saved
    card = read_card(path)
    rewrite_card(path, model=dict(card["model"], core_args={"hidden_size": 7, "delay": 2, "cell": "lstm"}))
    expected = r"run.safetensors.*shape mismatch.*head.weight: file \(4, 6\) vs model \(4, 7\)"
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(path)


def test_non_finite_weights(saved):
    _, path = saved
    tensors = safetensors.torch.load(path.read_bytes())
    tensors["core.rnn.weight_hh_l0"][1, 2] = float("inf")
    rewrite_weights(path, tensors)
    with pytest.raises(CheckpointError, match=r"run.safetensors.*non-finite.*core.rnn.weight_hh_l0"):
        load_checkpoint(path)
