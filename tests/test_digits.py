"""Sequential / permuted digits: the sequences are the real images pixel by pixel, the permutation
is fixed, the splits never overlap, and a small recurrent model learns the task."""

import math

import pytest
import torch
from sklearn.datasets import load_digits

from drnn_demo.models import SequenceModel
from drnn_demo.tasks.digits import Digits, split_indices


@pytest.fixture(scope="module")
def sklearn_digits():
    data = load_digits()
    return torch.from_numpy(data.images / 16.0).float(), torch.from_numpy(data.target).long()


def find_rows(x_seq: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Index of each row-major sequence in the (N, 8, 8) images (every sequence must be found)."""
    flat = images.reshape(len(images), 64)
    dist = torch.cdist(x_seq.squeeze(-1), flat)
    assert (dist.min(1).values == 0).all()
    return dist.argmin(1)


def test_sequences_are_the_images_row_by_row(sklearn_digits):
    images, labels = sklearn_digits
    task = Digits()
    x, y = task.sample(50, seed=3)
    assert x.shape == (50, 64, 1) and x.dtype == torch.float32 and y.shape == (50,) and y.dtype == torch.long
    assert 0 <= x.min() and x.max() <= 1
    rows = find_rows(x, images)
    # the matched image has the same label (images can repeat only with the same label)
    assert torch.equal(labels[rows], y)
    assert torch.equal(x[0, 8 * 2 + 5, 0], images[rows[0], 2, 5])  # step 8 r + c is pixel (r, c)


def test_same_seed_same_batch_and_seeds_differ():
    task = Digits()
    a, b = task.sample(20, 1), task.sample(20, 1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], task.sample(20, 2)[0])


def test_permuted_reads_every_image_in_one_fixed_order():
    plain, permuted = Digits(), Digits(permuted=True, permutation_seed=7)
    x, y = plain.sample(30, seed=5)
    xp, yp = permuted.sample(30, seed=5)  # same seed -> same images
    order = permuted.order
    assert sorted(order.tolist()) == list(range(64)) and not torch.equal(order, torch.arange(64))
    assert torch.equal(y, yp)
    assert torch.equal(xp, x[:, order])  # the same permutation for every image
    assert torch.equal(Digits(permuted=True, permutation_seed=7).order, order)  # fixed by the seed
    assert not torch.equal(Digits(permuted=True, permutation_seed=8).order, order)
    assert permuted.args == {"permuted": True, "permutation_seed": 7}


def test_splits_are_disjoint_cover_everything_and_sample_only_their_images(sklearn_digits):
    images, _ = sklearn_digits
    assert torch.unique(images.reshape(len(images), 64), dim=0).shape[0] == len(images)  # no duplicate images
    parts = split_indices()
    assert {k: v.numel() for k, v in parts.items()} == {"train": 1257, "val": 180, "test": 360}
    everything = torch.cat(list(parts.values()))
    assert everything.unique().numel() == len(images) == everything.numel()
    task = Digits()
    for split in ("val", "test"):
        x, _ = task.sample(10_000, seed=0, split=split)
        assert x.shape[0] == parts[split].numel()  # the whole set, each image once
        assert sorted(find_rows(x, images).tolist()) == sorted(parts[split].tolist())
    x_train, _ = task.sample(2000, seed=0, split="train")
    assert set(find_rows(x_train, images).tolist()) <= set(parts["train"].tolist())


def test_untrained_model_scores_chance():
    torch.manual_seed(0)
    task = Digits()
    model = SequenceModel("asrnn", {"hidden_size": 16}, input_size=1, output_size=10, readout="last")
    x, y = task.sample(360, 0, split="test")
    with torch.no_grad():
        pred = model(x)
    assert pred.shape == (360, 10)
    metrics = task.metrics(pred, y)
    assert metrics["accuracy"] < 0.3
    assert metrics["cross_entropy"] == pytest.approx(math.log(10), rel=0.1)
    assert task.per_position(pred, y).shape == (1,)


@pytest.mark.parametrize("kwargs,match", [
    (dict(permuted=1), "permuted"), (dict(permutation_seed=-1), "permutation_seed"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Digits(**kwargs)
    with pytest.raises(ValueError, match="split"):
        Digits().sample(3, 0, split="validation")



@pytest.mark.slow
def test_small_asrnn_learns_sequential_digits(one_thread):
    """Measured: ~88 % test accuracy after 150 steps (chance is 10 %)."""
    torch.manual_seed(0)
    task = Digits()
    model = SequenceModel("asrnn", {"hidden_size": 64, "init": "cayley"}, input_size=1, output_size=10,
                          readout="last")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(150):
        x, y = task.sample(64, seed=step)
        loss = task.loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    x, y = task.sample(360, 0, split="test")
    with torch.no_grad():
        accuracy = task.metrics(model(x), y)["accuracy"]
    assert accuracy > 0.75, accuracy


def test_registered_and_trainer_scores_on_held_out_splits():
    from drnn_demo.tasks import build_task
    from drnn_demo.training import TrainConfig, Trainer

    task = build_task("digits", permuted=True)
    assert isinstance(task, Digits) and task.readout == "last"
    x_val, _ = task.eval_set("val", 1000, seed=3)
    assert x_val.shape[0] == 180  # the whole validation split, not 1000 training draws
    config = TrainConfig(task="digits", model={"core": "asrnn", "core_args": {"hidden_size": 8}}, steps=2,
                         batch_size=4, eval_every=2, val_size=1000, test_size=1000, device="cpu")
    result = Trainer(config).run()
    assert result.status == "finished" and 0 <= result.test_metrics["accuracy"] <= 1
