"""The CLI refuses what it cannot do before training: every bad argument (negative, zero, absurd,
not an integer, an output path that cannot be written) exits 2 with one line on stderr that names
the argument and its limit, no traceback, no checkpoint, and no training step."""

import os
import subprocess
import sys

import pytest
import torch

from drnn_demo.cli import MAX_CLASSES, MAX_SEED, MAX_STEPS, MAX_THREADS, main
from drnn_demo.models.common import MAX_HIDDEN, MAX_LAYERS, MAX_LENGTH
from drnn_demo.resources import MAX_EVAL_SIZE, MAX_STEP_FLOATS

# Small enough that a run which wrongly starts training stops at once (the optimizer is a trap below).
BASE = ["--steps", "1", "--batch-size", "4", "--hidden-size", "8", "--val-size", "10", "--test-size", "10",
        "--quiet", "--device", "cpu"]


@pytest.fixture(autouse=True)
def restore_threads():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def no_training(monkeypatch):
    """Building the optimizer is the start of training: a refused run never gets there."""

    def trap(*args, **kwargs):
        raise AssertionError("training started: the argument was not refused before the first step")

    monkeypatch.setattr(torch.optim, "Adam", trap)


def run_main(argv, capsys) -> tuple[int, str]:
    """``main(argv)``'s exit code (argparse's SystemExit included) and its stderr."""
    try:
        code = main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    return code, capsys.readouterr().err


def assert_refused(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    for word in words:
        assert word in lines[0], f"{word!r} missing from {lines[0]!r}"


STACKED = ["--model", "stacked"]
BAD_ARGUMENTS = [
    # (extra flags, words the one line must contain: the argument and its limit)
    (STACKED + ["--layers", "100000"], ["--layers", f"{MAX_LAYERS:,}"]),
    (STACKED + ["--layers", "0"], ["--layers", f"{MAX_LAYERS:,}"]),
    (STACKED + ["--layers", "-3"], ["--layers", f"{MAX_LAYERS:,}"]),
    (STACKED + ["--hidden-sizes", "8", "0"], ["--hidden-sizes", f"{MAX_HIDDEN:,}"]),
    (STACKED + ["--hidden-sizes", *["4"] * (MAX_LAYERS + 1)], ["--hidden-sizes", f"{MAX_LAYERS}"]),
    (["--hidden-size", "0"], ["--hidden-size", f"{MAX_HIDDEN:,}"]),
    (["--hidden-size", "1000000000"], ["--hidden-size", f"{MAX_HIDDEN:,}"]),
    (["--delay", "-1"], ["--delay", f"{MAX_LENGTH:,}"]),
    (["--delay", str(10**9)], ["--delay", f"{MAX_LENGTH:,}"]),
    (["--delay", str(MAX_LENGTH), "--batch-size", "64", "--hidden-size", "64"],
     ["--delay", "--batch-size", f"{MAX_STEP_FLOATS:,}"]),
    (["--steps", "0"], ["--steps", f"{MAX_STEPS:,}"]),
    (["--steps", "-5"], ["--steps", f"{MAX_STEPS:,}"]),
    (["--steps", str(10**12)], ["--steps", f"{MAX_STEPS:,}"]),
    (["--batch-size", "0"], ["--batch-size"]),
    (["--batch-size", str(10**12)], ["--batch-size"]),
    (["--batch-size", "100000", "-T", "1000"], ["--batch-size", f"{MAX_STEP_FLOATS:,}"]),
    (["--val-size", "0"], ["--val-size", f"{MAX_EVAL_SIZE:,}"]),
    (["--val-size", str(10**7)], ["--val-size", f"{MAX_EVAL_SIZE:,}"]),
    (["--test-size", "2000000"], ["--test-size", f"{MAX_EVAL_SIZE:,}"]),
    (["--test-size", "-1"], ["--test-size", f"{MAX_EVAL_SIZE:,}"]),
    (["-T", str(MAX_LENGTH), "--batch-size", "1", "--hidden-size", "1", "--val-size", "1",
      "--test-size", str(MAX_EVAL_SIZE)], ["--test-size"]),
    (["--threads", "0"], ["--threads", f"{MAX_THREADS:,}"]),
    (["--threads", "-1"], ["--threads", f"{MAX_THREADS:,}"]),
    (["--threads", "10000"], ["--threads", f"{MAX_THREADS:,}"]),
    (["--length", "0"], ["--length", f"{MAX_LENGTH:,}"]),
    (["--length", str(10**9)], ["--length", f"{MAX_LENGTH:,}"]),
    (["--classes", "0"], ["--classes", f"{MAX_CLASSES:,}"]),
    (["--classes", str(10**9)], ["--classes", f"{MAX_CLASSES:,}"]),
    (["--eval-every", "0"], ["--eval-every", f"{MAX_STEPS:,}"]),
    (["--patience", "-1"], ["--patience", f"{MAX_STEPS:,}"]),
    (["--seed", "-1"], ["--seed", f"{MAX_SEED:,}"]),
    (["--seed", str(2**64)], ["--seed", f"{MAX_SEED:,}"]),
    (["--task-arg", "colour=red"], ["--task-arg", "colour"]),
    (["--task-arg", "length=0"], ["--task-arg", "length"]),
    (["--device", "quantum"], ["--device", "quantum"]),
    # not integers: argparse's refusal, on one line
    (STACKED + ["--layers", "2.5"], ["--layers", "invalid int value"]),
    (["--steps", "abc"], ["--steps", "invalid int value"]),
    (["--delay", "1e3"], ["--delay", "invalid int value"]),
    (["--threads", "two"], ["--threads", "invalid int value"]),
    (["--hidden-size", ""], ["--hidden-size", "invalid int value"]),
    (["--test-size", "1" * 5000], ["--test-size", "invalid int value"]),
]


@pytest.mark.parametrize("flags,words", BAD_ARGUMENTS, ids=lambda v: " ".join(v)[:40] if isinstance(v, list) else v)
def test_bad_argument_is_refused_in_one_line_before_training(flags, words, tmp_path, capsys, no_training):
    out = tmp_path / "runs" / "x"
    code, err = run_main(["train", "--out", str(out), *BASE, *flags], capsys)
    assert_refused(code, err, *words)
    assert not any(tmp_path.iterdir()), "a refused run writes nothing, not even a directory"


def _file_parent(tmp_path):
    (tmp_path / "plain").write_text("a regular file")
    return tmp_path / "plain" / "sub" / "ckpt", "not a directory"


def _directory_in_the_way(tmp_path):
    (tmp_path / "ckpt.safetensors").mkdir()
    return tmp_path / "ckpt", "is a directory"


@pytest.mark.parametrize("make_out", [
    lambda tmp_path: ("/proc/drnn-hostile-test/deeper/ckpt", "cannot write to /proc/drnn-hostile-test"),
    lambda tmp_path: ("/proc/self/ckpt", "cannot write to /proc/self"),
    lambda tmp_path: ("/", "cannot write to"),
    _file_parent,
    _directory_in_the_way,
], ids=["cannot-create", "not-writable", "no-name", "file-parent", "directory-in-the-way"])
def test_unwritable_out_is_refused_before_training(make_out, tmp_path, capsys, no_training):
    out, reason = make_out(tmp_path)
    code, err = run_main(["train", "--out", str(out), *BASE], capsys)
    assert_refused(code, err, "--out", reason)
    assert not (tmp_path / "plain" / "sub").exists()
    assert not (tmp_path / "ckpt.json").exists() and not list(tmp_path.glob(".drnn-write-test-*"))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes to read-only directories")
def test_read_only_out_directory_is_refused_before_training(tmp_path, capsys, no_training):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, err = run_main(["train", "--out", str(locked / "ckpt"), *BASE], capsys)
    finally:
        locked.chmod(0o700)
    assert_refused(code, err, "--out", f"cannot write to {locked}")
    assert not any(locked.iterdir())


@pytest.mark.parametrize("command", [["pretrain"], ["reproduce", "reversal"]])
@pytest.mark.parametrize("threads", ["0", "10000"])
def test_threads_of_the_other_commands_are_refused(command, threads, capsys, monkeypatch):
    import drnn_demo.pretrained
    import drnn_demo.reproduce

    def trap(*args, **kwargs):
        raise AssertionError("started: --threads was not refused")

    monkeypatch.setattr(drnn_demo.pretrained, "pretrain_all", trap)
    monkeypatch.setattr(drnn_demo.reproduce, "run_experiment", trap)
    code, err = run_main([*command, "--threads", threads], capsys)
    assert_refused(code, err, "--threads", f"{MAX_THREADS:,}")


@pytest.mark.parametrize("flags,word", [
    (["--model", "stacked", "--layers", "100000"], "--layers"),
    (["--threads", "0"], "--threads"),
    (["--delay", "x"], "--delay"),
    (["--out", "/proc/drnn-hostile-test/ckpt"], "--out"),
])
def test_bad_argument_end_to_end_exits_2_without_a_traceback(flags, word, tmp_path):
    out = tmp_path / "x"
    result = subprocess.run([sys.executable, "-m", "drnn_demo", "train", "--out", str(out), *BASE, *flags],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert_refused(result.returncode, result.stderr, word)
    assert result.stdout == ""
    assert not any(tmp_path.iterdir()), "no checkpoint, no runs/ directory"
