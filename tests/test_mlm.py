"""The masked character LM task: real Shakespeare windows, 20 % masked, real look-ahead never scored,
disjoint splits, and bits per character over the masked characters only."""

import math

import pytest
import torch
import torch.nn.functional as F

from drnn_demo.tasks import IGNORE_INDEX, build_task
from drnn_demo.tasks.mlm import TEXT_PATH, split_bounds


@pytest.fixture(scope="module")
def text():
    return TEXT_PATH.read_text(encoding="utf-8")


def originals(task, x, y):
    """The windows as text, masked characters put back."""
    return [task.decode(torch.where(yy != IGNORE_INDEX, yy, xx)) for xx, yy in zip(x, y, strict=True)]


def test_windows_are_real_text_with_a_fifth_masked_and_an_unscored_lookahead(text):
    task = build_task("mlm", length=50, lookahead=6)
    x, y = task.sample(64, seed=1)
    assert x.shape == y.shape == (64, 56)
    scored = y != IGNORE_INDEX
    assert (scored.sum(1) == 10).all()  # exactly 20 % of the 50 scored characters
    assert not scored[:, 50:].any()  # the look-ahead is never scored
    assert (x[scored] == task.mask_id).all() and (x[~scored] != task.mask_id).all()
    lo, hi = split_bounds("train")
    for window in originals(task, x, y):
        at = text.find(window, lo)
        assert lo <= at and at + len(window) <= hi, window  # a real stretch of the training text
    assert task.vocab_size == len(set(text)) + 1


def test_splits_are_disjoint_and_eval_sets_come_from_them(text):
    task = build_task("mlm", length=30, lookahead=4)
    bounds = [split_bounds(s) for s in ("train", "val", "test")]
    assert bounds[0][0] == 0 and bounds[0][1] == bounds[1][0] and bounds[1][1] == bounds[2][0]
    assert bounds[2][1] == len(text)
    for split, (lo, hi) in zip(("val", "test"), bounds[1:], strict=True):
        x, y = task.eval_set(split, 20, seed=0)
        for window in originals(task, x, y):
            at = text.find(window, lo)
            assert lo <= at and at + len(window) <= hi


def test_sampling_is_seeded():
    task = build_task("mlm", length=20, lookahead=2)
    assert all(torch.equal(a, b) for a, b in zip(task.sample(8, 5), task.sample(8, 5), strict=True))
    assert not torch.equal(task.sample(8, 5)[0], task.sample(8, 6)[0])


def test_bits_per_character_count_the_masked_characters_only():
    task = build_task("mlm", length=20, lookahead=5)
    x, y = task.sample(4, seed=0)
    logits = torch.randn(4, 25, task.output_size, generator=torch.Generator().manual_seed(0))
    scored = y != IGNORE_INDEX
    per_char = F.cross_entropy(logits[scored], y[scored], reduction="none")
    expected = float(per_char.sum()) / int(scored.sum()) / math.log(2)  # the denominator: masked characters
    assert task.metrics(logits, y)["bpc"] == pytest.approx(expected)
    counting_lookahead = float(per_char.sum()) / (int(scored.sum()) + 4 * 5) / math.log(2)
    assert task.metrics(logits, y)["bpc"] > counting_lookahead  # the seed code's smaller, wrong number


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="mask_rate"):
        build_task("mlm", mask_rate=0)
    with pytest.raises(ValueError, match="length"):
        build_task("mlm", length=0)
    with pytest.raises(ValueError, match="at most 10,000"):
        build_task("mlm", length=20_000)
