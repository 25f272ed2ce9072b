"""Faults a user or the machine can cause: resource limits refused up front with the limit named,
a diverging background run that keeps its last good weights, and a checkpoint that is really a
pickle crafted to run code (refused; nothing runs). The other faults (killed workers, torn state
files, truncated / tampered / mismatched checkpoints) are tested in test_jobs.py and test_checkpoints.py."""

import pickle

import pytest
import torch
from test_training import NanAfter, tiny

from drnn_demo.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from drnn_demo.cli import main as cli_main
from drnn_demo.jobs import run_train
from drnn_demo.models import SequenceModel, build_model
from drnn_demo.models.common import MAX_HIDDEN, MAX_LENGTH
from drnn_demo.resources import MAX_STEP_FLOATS
from drnn_demo.tasks import TASKS, build_task
from drnn_demo.training import TrainConfig, Trainer


@pytest.mark.parametrize("name, kwargs", [
    ("delayed", {"hidden_size": MAX_HIDDEN + 1}),
    ("stacked", {"hidden_sizes": [8, MAX_HIDDEN * 4]}),
    ("lrn", {"hidden_size": 10**6}),
    ("sru", {"hidden_size": 10**6}),
    ("asrnn", {"hidden_size": 10**6}),
])
def test_huge_hidden_sizes_are_refused_before_allocation(name, kwargs):
    with pytest.raises(ValueError, match=f"at most {MAX_HIDDEN:,} \\(a memory limit\\)"):
        build_model(name, input_size=3, **kwargs)


@pytest.mark.parametrize("task, args", [("reversal", {"length": 10**9}), ("sine", {"length": MAX_LENGTH + 1}),
                                        ("copy_memory", {"gap": 10**8})])
def test_huge_sequences_are_refused(task, args):
    with pytest.raises(ValueError, match="a memory limit"):
        build_task(task, **args)


def test_a_training_step_too_big_for_memory_is_refused_naming_the_limit(capsys):
    config = TrainConfig(task="reversal", task_args={"length": 5000}, batch_size=4096, steps=1,
                         model={"core": "delayed", "core_args": {"hidden_size": 1024}})
    with pytest.raises(ValueError, match=f"{MAX_STEP_FLOATS:,}") as err:
        Trainer(config).run()
    assert "4,096 x 5,000 x 1,024" in str(err.value)
    code = cli_main(["train", "--task", "reversal", "--task-arg", "length=5000", "--batch-size", "4096",
                     "--hidden-size", "1024", "--steps", "1", "--quiet"])
    assert code == 2 and "memory limit" in capsys.readouterr().err


def test_a_diverging_background_run_keeps_its_last_good_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setitem(TASKS, "nan_after", NanAfter)
    out = run_train(tiny(task="nan_after", steps=100).to_dict(), lambda p: None, lambda: False, tmp_path)
    assert out["status"] == "diverged" and "diverged at step 14" in out["message"]
    model, card = load_checkpoint(out["checkpoint"])
    assert card["best_step"] == 10 and all(torch.isfinite(p).all() for p in model.parameters())
    x, _ = NanAfter(length=6, classes=3).sample(4, seed=1)
    assert torch.isfinite(model(x)).all()


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling this would create the marker file
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("pickled_as", ["pickle", "torch.save"])
def test_a_pickle_crafted_to_run_code_is_refused_and_nothing_runs(tmp_path, pickled_as):
    model = SequenceModel("delayed", {"hidden_size": 3}, input_size=2, output_size=2)
    weights = save_checkpoint(tmp_path / "model", model, {"task": "reversal"})
    marker = tmp_path / "pwned"
    payload = {"weights": RunsCode(marker), "model": model.state_dict()}
    if pickled_as == "pickle":
        weights.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, weights)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(weights)
    assert not marker.exists()
