"""The last-keyword task: labels and evidence against a plain loop, and (slow) an identity LRN
whose unfolded weights point at the deciding keyword."""

import pytest
import torch

from drnn_demo.tasks import TASKS, build_task
from drnn_demo.tasks.keyword import LastKeyword, pointing_accuracy
from drnn_demo.training import TrainConfig, Trainer, derived_seed


def loop_label_and_evidence(task, row):
    """By hand: scan the tokens, remember the class and position of the last keyword."""
    label, position, classes_seen = None, None, []
    for t, token in enumerate(row.tolist()):
        if token >= task.distractors:
            label, position = (token - task.distractors) // task.keywords_per_class, t
            classes_seen.append((t, label))
    decisive = set()
    for t, c in reversed(classes_seen):
        if c != label:
            break
        decisive.add(t)
    return label, position, decisive, len(classes_seen)


@pytest.mark.parametrize("args", [{}, dict(length=12, classes=3, keywords_per_class=1, distractors=5, max_keywords=6)])
def test_samples_label_the_last_keyword(args):
    task = build_task("keyword", **args)
    x, y = task.sample(300, seed=3)
    assert x.shape == (300, task.length) and y.shape == (300,)
    assert x.dtype == torch.long and int(x.max()) < task.vocab_size
    evidence, decisive = task.evidence(x), task.decisive(x, y)
    counts = []
    for n in range(300):
        label, position, dec, count = loop_label_and_evidence(task, x[n])
        assert int(y[n]) == label and int(evidence[n]) == position
        assert set(torch.nonzero(decisive[n]).flatten().tolist()) == dec
        counts.append(count)
    assert min(counts) == 1 and max(counts) == task.max_keywords  # 1..max_keywords keywords per sequence
    assert set(y.tolist()) == set(range(task.classes))
    x2, y2 = task.sample(300, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(task.sample(300, seed=4)[0], x)


def test_registry_names_and_errors():
    assert TASKS["keyword"] is LastKeyword
    task = LastKeyword(distractors=3, keywords_per_class=2)
    assert task.token_names([0, 2, 3, 4, 5, 6]) == ["d0", "d2", "K0.0", "K0.1", "K1.0", "K1.1"]
    with pytest.raises(ValueError, match="classes"):
        LastKeyword(classes=1)
    with pytest.raises(ValueError, match="max_keywords"):
        LastKeyword(length=3, max_keywords=4)
    with pytest.raises(ValueError):
        build_task("keyword", nope=1)



@pytest.mark.slow
def test_identity_lrn_weights_point_at_the_deciding_keyword(one_thread):
    """The synthetic ground truth of the LRN gates page: after training, the token with the largest
    share of the logit margin (and of ||w r||) is decisive evidence nearly always."""
    model = {"core": "lrn", "core_args": {"hidden_size": 16, "activation": "identity"}, "input_size": 16}
    config = TrainConfig(task="keyword", model=model,
                         steps=600, lr=1e-2, lr_schedule="cosine", batch_size=64, eval_every=100, patience=0,
                         val_size=300, test_size=500, device="cpu", seed=0)
    result = Trainer(config).run()
    assert result.test_metrics["accuracy"] > 0.99
    task = result.task
    x, y = task.sample(500, derived_seed(0, "test"))
    pointing = pointing_accuracy(result.model, task, x, y)
    assert pointing["logit"] > 0.9 and pointing["contribution"] > 0.85
    # chance: the decisive positions are a small fraction of all positions
    assert float(task.decisive(x, y).double().mean()) < 0.1
