"""`python -m drnn_demo train --data FILE`: a good file is checked, stored and trained (any cell); a bad one is
refused with exit code 2 and its one-line message, before anything is stored or trained."""

import json
import subprocess
import sys

import pytest
from test_user_data import reviews_csv, small_conllu

from drnn_demo.checkpoints import load_checkpoint
from drnn_demo.cli import main
from drnn_demo.tasks import user_data as ud

TINY = ["--steps", "30", "--eval-every", "10", "--batch-size", "16", "--threads", "1", "--quiet", "--device", "cpu"]


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("DRNN_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def test_train_data_as_a_subprocess_stores_the_set_and_writes_a_checkpoint_that_reads_it(runs, tmp_path):
    data = tmp_path / "reviews.csv"
    data.write_bytes(reviews_csv())
    out = tmp_path / "model"
    result = subprocess.run([sys.executable, "-m", "drnn_demo", "train", "--data", str(data), "--model", "lrn",
                             "--hidden-size", "8", "--out", str(out), "--json", *TINY],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    (ident, info, _), = ud.list_datasets()
    assert f"data set {ident}: 160 rows (classification; bad 80, good 80)" in result.stderr
    reported = json.loads(result.stdout)
    model, card = load_checkpoint(out)
    assert card["task"] == "user_data" and card["task_args"]["dataset"] == ident and card["labels"] == ["bad", "good"]
    assert card["model"]["core"] == "lrn" and card["model"]["readout"] == "last" and card["model"]["output_size"] == 2
    assert reported["test_metrics"]["accuracy"] == card["metrics"]["test"]["accuracy"]


def test_train_data_tags_a_conllu_file_with_a_delayed_model(runs, tmp_path, capsys, one_thread):
    data = tmp_path / "small.conllu"
    data.write_bytes(small_conllu())
    assert main(["train", "--data", str(data), "--delay", "1", "--hidden-size", "8", "--out", str(tmp_path / "m"),
                 *TINY]) == 0
    _, card = load_checkpoint(tmp_path / "m")
    assert card["model"]["readout"] == "steps" and card["problem"] == "tagging" and "PUNCT" in card["labels"]
    assert "test accuracy:" in capsys.readouterr().out


@pytest.mark.parametrize("content, args, message", [
    (b"sentence,sentiment\nnice,good\n", [], "bad.csv: line 1: the header must name the columns text and label"),
    (b"text,label\n" + b"a fine film,good\n" * 30, [], "only one class ('good', 30 rows); at least two are needed"),
    (b"", [], "the file is empty"),
    (b"\x00\x01\x02binary", [], "line 1: binary content"),
    (reviews_csv(), ["--task", "reversal"], "--data trains on your file (task user_data); it does not go with --task"),
    (reviews_csv(), ["--length", "5"], "--length does not apply to task 'user_data'"),
    (reviews_csv(), ["--model", "lrn", "--delay", "2"], "--delay/--layers/--hidden-sizes do not apply to --model lrn"),
])
def test_a_bad_file_or_flag_exits_2_with_one_line_and_trains_nothing(runs, tmp_path, capsys, content, args, message):
    data = tmp_path / "bad.csv"
    data.write_bytes(content)
    out = tmp_path / "never"
    assert main(["train", "--data", str(data), "--out", str(out), *args, *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1], err
    assert not out.with_suffix(".safetensors").exists()
    if not args:  # a refused file leaves nothing behind
        assert ud.list_datasets() == []


def test_a_missing_file_is_one_clear_line(runs, tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nope.csv"), *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --data {tmp_path / 'nope.csv'}: cannot read") and err.count("\n") == 1, err
