"""The command line: help that documents every option, a real (tiny) training run that writes a
loadable checkpoint, model/task flags mapped onto the config, clear errors, and bench delegation."""

import dataclasses
import json
import subprocess
import sys

import pytest
import torch

from drnn_demo.checkpoints import load_checkpoint
from drnn_demo.cli import build_parser, config_from_args, main
from drnn_demo.training import TrainConfig

TINY = ["--steps", "12", "--eval-every", "6", "--batch-size", "8", "--val-size", "20", "--test-size", "30",
        "--threads", "1", "--quiet", "--device", "cpu"]


@pytest.fixture(autouse=True)
def restore_threads():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


def run_module(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "drnn_demo", *args], capture_output=True, text=True,
                          timeout=timeout)


def parse_train(*args):
    return build_parser().parse_args(["train", *args])


def test_help_documents_every_train_option():
    result = run_module("train", "--help")
    assert result.returncode == 0, result.stderr
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    for action in train._actions:
        for option in action.option_strings:
            assert option in result.stdout, f"{option} missing from --help"
        if action.option_strings and action.dest != "help":
            assert action.help, f"{action.option_strings} has no help text"
    for word in ("reversal", "sine", "copy_memory", "delayed", "stacked", "bidirectional", "example"):
        assert word in result.stdout


def test_every_train_setting_of_the_config_is_a_flag_with_its_default_and_docs():
    defaults = TrainConfig()
    assert config_from_args(parse_train()).to_dict() | {"model": None} == defaults.to_dict() | {"model": None}
    values = {"steps": 7, "batch_size": 3, "lr": 0.5, "clip": 0.0, "eval_every": 2, "patience": 0, "val_size": 11,
              "test_size": 13, "seed": 5, "device": "cpu", "log_every": 4, "lr_schedule": "cosine"}
    assert set(values) == {f.name for f in dataclasses.fields(TrainConfig)} - {"task", "task_args", "model"}
    flags = [part for name, value in values.items() for part in (f"--{name.replace('_', '-')}", str(value))]
    config = config_from_args(parse_train(*flags))
    assert {name: getattr(config, name) for name in values} == values
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    helps = {a.dest: a.help for a in train._actions}
    assert "validation" in helps["patience"] and "cosine" in helps["lr_schedule"] and "``" not in helps["lr"]


def test_top_level_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and "train" in out and "bench" in out
    assert main([]) == 2 and "train" in capsys.readouterr().err


def test_tiny_training_run_as_a_subprocess_writes_a_loadable_checkpoint(tmp_path):
    out = tmp_path / "rev"
    result = run_module("train", "--task", "reversal", "-T", "6", "-V", "3", "--model", "delayed", "--delay", "5",
                        "--cell", "gru", "--hidden-size", "16", "--seed", "2", "--out", str(out), *TINY)
    assert result.returncode == 0, result.stderr
    assert "test accuracy:" in result.stdout and f"checkpoint: {out}.safetensors" in result.stdout
    model, card = load_checkpoint(out)
    assert card["model"]["core_args"] == {"cell": "gru", "hidden_size": 16, "delay": 5}
    assert card["task"] == "reversal" and card["task_args"] == {"length": 6, "classes": 3} and card["seed"] == 2
    reported = float(result.stdout.split("test accuracy:")[1].split()[0])
    assert reported == pytest.approx(card["metrics"]["test"]["accuracy"], abs=1e-5)


def test_progress_goes_to_stderr_and_json_to_stdout(tmp_path, capsys):
    args = ["train", "--task", "sine", "-T", "10", "--task-arg", "acausal=2", "--task-arg", "scale=0.5",
            "--hidden-size", "8", "--out", str(tmp_path / "s"), "--json", *[a for a in TINY if a != "--quiet"]]
    assert main(args) == 0
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    assert payload["status"] == "finished" and payload["steps"] == 12
    assert set(payload["test_metrics"]) == {"mse"}
    assert "12/12" in captured.err, "the plain progress bar reports the last step"
    _, card = load_checkpoint(payload["checkpoint"])
    assert card["task_args"] == {"length": 10, "causal": 15, "acausal": 2, "scale": 0.5, "filter_seed": 0}
    assert card["train"]["task_args"] == {"length": 10, "acausal": 2, "scale": 0.5}, "as given on the command line"


@pytest.mark.parametrize("flags,core,expected", [
    (["--model", "stacked", "--layers", "3", "--hidden-size", "5"], "stacked",
     {"cell": "lstm", "hidden_sizes": [5, 5, 5]}),
    (["--model", "bidirectional", "--hidden-sizes", "6", "4", "--cell", "rnn", "--nonlinearity", "relu"],
     "bidirectional", {"cell": "rnn", "nonlinearity": "relu", "hidden_sizes": [6, 4]}),
    (["--model", "stacked"], "stacked", {"cell": "lstm", "hidden_sizes": [64, 64]}),
    (["--delay", "3"], "delayed", {"cell": "lstm", "hidden_size": 64, "delay": 3}),
])
def test_model_flags_map_onto_the_config(flags, core, expected):
    config = config_from_args(parse_train(*flags, "--lr", "0.01", "--lr-schedule", "cosine", "--patience", "0"))
    assert config.model == {"core": core, "core_args": expected}
    assert config.lr == 0.01 and config.lr_schedule == "cosine" and config.patience == 0


def test_stacked_and_bidirectional_train_end_to_end(tmp_path):
    for model in ("stacked", "bidirectional"):
        out = tmp_path / model
        code = main(["train", "--model", model, "--hidden-sizes", "6", "5", "-T", "5", "--out", str(out), *TINY])
        assert code == 0
        loaded, card = load_checkpoint(out)
        assert card["model"]["core"] == model and loaded.core.hidden_sizes == [6, 5]


@pytest.mark.parametrize("flags,message", [
    (["--model", "stacked", "--delay", "2"], "--delay applies to --model delayed"),
    (["--layers", "2"], "--layers/--hidden-sizes apply"),
    (["--model", "stacked", "--layers", "3", "--hidden-sizes", "4", "4"], "contradicts"),
    (["--task", "copy_memory", "-T", "30"], "--length does not apply to task 'copy_memory'"),
    (["-V", "3", "--task-arg", "classes=4"], "contradicts"),
    (["--task-arg", "colour=red"], "colour"),
    (["--delay", "-1"], "delay"),
    (["--device", "quantum"], "device"),
])
def test_inconsistent_flags_are_clear_errors(flags, message, capsys, tmp_path):
    assert main(["train", "--out", str(tmp_path / "x"), *TINY, *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


def test_malformed_task_arg_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--task-arg", "novalue"])
    assert exit_info.value.code == 2 and "key=value" in capsys.readouterr().err


def test_bench_delegates_to_the_benchmark_module(capsys):
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    assert "delayed_vs_lstm" in out
