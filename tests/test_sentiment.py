"""Sentiment: the shipped data and its license note, the fixed hash split, the vocabulary, the task
object, the length-bucketed evaluation, per-word explanations, and (slow) training + baseline and
the pretrained checkpoint."""

import csv
import hashlib
import re
from pathlib import Path

import pytest
import torch

from drnn_demo.models import SequenceModel
from drnn_demo.recipes.sentiment import load_pretrained_sentiment, train_sentiment
from drnn_demo.tasks import TASKS, build_task
from drnn_demo.tasks import sentiment as S

DATA_DIR = Path(S.DATA_PATH).parent
PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained" / "lrn_sentiment.safetensors"


def test_shipped_data_and_license_note():
    with open(S.DATA_PATH, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert len(rows) == 2997 and {r["label"] for r in rows} == {"0", "1"}
    assert {r["source"] for r in rows} == {"amazon", "imdb", "yelp"}
    note = (DATA_DIR / "README.md").read_text()
    for needle in ("CC BY 4.0", "Kotzias", "KDD 2015", "UCI", "MD5"):
        assert needle in note
    assert len(S.load_sentences()) == 2997


def test_split_is_the_documented_hash_and_disjoint():
    sentences = S.load_sentences()
    for s in sentences[:200]:
        bucket = int(hashlib.md5(s.text.encode()).hexdigest()[:8], 16) % 10
        assert s.split == {0: "test", 1: "val"}.get(bucket, "train")
    texts = {split: {s.text for s in sentences if s.split == split} for split in S.SPLITS}
    assert not (texts["train"] & texts["val"]) and not (texts["train"] & texts["test"])
    assert not (texts["val"] & texts["test"])
    sizes = {split: sum(s.split == split for s in sentences) for split in S.SPLITS}
    assert 0.07 < sizes["test"] / 2997 < 0.13 and 0.07 < sizes["val"] / 2997 < 0.13
    for split in S.SPLITS:  # both labels in every split
        assert {s.label for s in sentences if s.split == split} == {0, 1}


def test_tokenizer_vocab_and_encoding():
    assert S.tokenize("Don't buy it!!  5 stars?") == ["don't", "buy", "it", "!", "!", "5", "stars", "?"]
    vocab = S.build_vocab(min_count=2)
    assert vocab[:2] == [S.PAD, S.UNK] and len(set(vocab)) == len(vocab)
    train_counts = {}
    for s in S.load_sentences():
        if s.split == "train":
            for w in S.tokenize(s.text):
                train_counts[w] = train_counts.get(w, 0) + 1
    assert set(vocab[2:]) == {w for w, c in train_counts.items() if c >= 2}  # train split only
    ids = S.encode("the zzzqqq movie", vocab)
    assert ids.tolist() == [vocab.index("the"), 1, vocab.index("movie")]
    assert S.encode("...", vocab).tolist() == [1]


def test_task_object_samples_from_its_split_left_padded():
    assert TASKS["sentiment"] is S.Sentiment
    task = build_task("sentiment", split="val")
    assert task.vocab_size == len(S.build_vocab(2)) and task.output_size == 2 and task.readout == "last"
    x, y = task.sample(64, seed=1)
    assert x.shape[0] == 64 and y.shape == (64,) and (x[:, -1] != 0).all()  # every last word is real
    val = {tuple(ids.tolist()): label for ids, label in task.encoded("val")}
    for row, label in zip(x, y, strict=True):
        ids = row[(row != 0).cumsum(0) > 0]  # strip the left padding
        assert val[tuple(ids.tolist())] == int(label)
    assert torch.equal(task.sample(64, seed=1)[0], x)
    sets = task.eval_sets()
    assert sets["test"][0].shape[0] == sum(s.split == "test" for s in S.load_sentences())
    with pytest.raises(ValueError, match="split"):
        S.Sentiment(split="dev")


def test_length_buckets_cover_every_sentence_once_and_evaluation_matches_a_loop():
    task = S.Sentiment()
    data = task.encoded("val")
    seen = []
    for x, y in S.length_batches(data, 16, torch.Generator().manual_seed(0)):
        assert x.shape[0] <= 16 and x.shape[0] == y.shape[0]
        seen += [tuple(r.tolist()) for r in x]
    assert sorted(seen) == sorted(tuple(ids.tolist()) for ids, _ in data)
    torch.manual_seed(0)
    model = SequenceModel("lrn", {"hidden_size": 8}, input_size=8, output_size=2, vocab_size=task.vocab_size,
                          readout="last")
    got = S.evaluate_sentences(model, data)
    with torch.no_grad():
        logits = [model(ids.unsqueeze(0))[0] for ids, _ in data]
    labels = torch.tensor([label for _, label in data])
    expected = float((torch.stack(logits).argmax(-1) == labels).double().mean())
    assert got["n"] == len(data) and abs(got["accuracy"] - expected) < 1e-12


def test_explanation_shares_add_up_to_the_margin_for_identity():
    torch.manual_seed(1)
    vocab = S.build_vocab(2)
    model = SequenceModel("lrn", {"hidden_size": 8, "activation": "identity"}, input_size=8, output_size=2,
                          vocab_size=len(vocab), readout="last")
    e = S.explain(model, "The food was great, but the zzzqqq service was slow!", vocab)
    assert e.words[6] == f"zzzqqq ({S.UNK})" and len(e.words) == len(e.ids) == len(e.shares)
    assert abs(float(e.shares.sum()) + e.bias_share - e.margin) < 1e-5 and e.error < 1e-5
    assert abs(float(e.probabilities.sum()) - 1) < 1e-12
    assert (e.weights >= 0).all() and (e.weights <= 1).all()


@pytest.mark.slow
def test_training_beats_chance_and_the_baseline_is_measured_on_the_same_split():
    result = train_sentiment(epochs=6, patience=0, seed=0)
    assert result.metrics["val"]["accuracy"] > 0.7 and result.metrics["test"]["accuracy"] > 0.65
    assert result.metrics["test"]["n"] == sum(s.split == "test" for s in S.load_sentences())
    assert result.baseline["test_accuracy"] > 0.7 and result.baseline["C"] in (0.1, 0.3, 1.0, 3.0, 10.0)
    card = result.card(name="x")
    assert card["vocab"] == result.vocab and card["train"]["model"]["core"] == "lrn"


@pytest.mark.skipif(not PRETRAINED.exists(), reason="no pretrained/lrn_sentiment (python -m drnn_demo pretrain)")
def test_pretrained_checkpoint_is_small_and_its_card_tells_the_truth():
    assert PRETRAINED.stat().st_size < 1_000_000
    model, vocab, card = load_pretrained_sentiment(PRETRAINED)
    assert model.core.activation == "identity" and not model.core.bidirectional
    task = S.Sentiment(**card["task_args"])
    assert vocab == task.vocab
    test = S.evaluate_sentences(model, task.encoded("test"))
    assert abs(test["accuracy"] - card["metrics"]["test"]["accuracy"]) < 1e-9
    assert test["accuracy"] > 0.7 and card["baseline"]["test_accuracy"] > 0.7
    e = S.explain(model, "Great phone, works perfectly.", vocab)
    assert e.probabilities[1] > 0.5 and e.error < 1e-5
    assert re.search("CC BY 4.0", card["data"])


def test_the_trainer_validates_and_tests_on_held_out_sentences_only():
    task = S.Sentiment()
    train = {tuple(ids.tolist()) for ids, _ in task.encoded("train")}
    for split in ("val", "test"):
        x, y = task.eval_set(split, 1000, seed=3)
        assert len(y) == len(task.encoded(split))  # the whole split
        rows = {tuple(r[r != 0].tolist()) for r in x}  # left padding removed (id 0 is <pad>)
        assert rows == {tuple(ids.tolist()) for ids, _ in task.encoded(split)}  # exactly the held-out sentences
        assert rows - train  # (and not the training ones)
        assert torch.equal(task.eval_set(split, 10, seed=4)[1], y)  # fixed: size and seed do not change it


def test_a_run_cancelled_before_its_first_epoch_ends_keeps_the_initial_weights_and_says_cancelled():
    torch.manual_seed(0)
    reference = SequenceModel("lrn", {"hidden_size": 8, "activation": "identity"}, input_size=8, output_size=2,
                              vocab_size=S.Sentiment(min_count=2).vocab_size, readout="last")
    polls = []
    result = train_sentiment(hidden_size=8, embedding_size=8, epochs=2, baseline=False,
                             should_stop=lambda: polls.append(1) or len(polls) > 5)
    assert result.status == "cancelled" and result.history == [] and result.best_epoch == 0
    for name, value in reference.state_dict().items():
        assert torch.equal(result.model.state_dict()[name], value), name

