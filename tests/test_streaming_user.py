"""A tagger trained on your data, streamed (drnn_demo.streaming_user): a delayed run stepped token by token equals its
full forward output, d steps late; a bidirectional run's restart mode equals re-running every prefix; the test
sentences are the ones the trainer scored, read with the same ids; damaged or foreign checkpoints are refused."""

import json
import shutil
from types import SimpleNamespace

import pytest
import torch
from test_user_data import reviews_csv, small_conllu

from drnn_demo import streaming
from drnn_demo.checkpoints import CheckpointError
from drnn_demo.jobs import run_train
from drnn_demo.models import SequenceModel
from drnn_demo.recipes.user_data import CELLS, user_data_config
from drnn_demo.streaming_user import (
    MAX_TYPED_TOKENS,
    NotStreamable,
    held_out_sentences,
    model_in_view,
    run_problem,
    typed_tokens,
    user_model_set,
)
from drnn_demo.tasks import build_task
from drnn_demo.tasks import user_data as ud


def train_run(run_dir, dataset: str, cell: str, delay: int = 0, steps: int = 40):
    """A Your data run trained in this process, as the worker does it: returns its checkpoint."""
    run_dir.mkdir(parents=True)
    config = user_data_config(dataset, cell, hidden_size=8, delay=delay, steps=steps, lr=1e-2, device="cpu")
    result = run_train(config, lambda progress: None, lambda: False, run_dir)
    assert result["status"] == "finished", result
    return result["checkpoint"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Runs of a tiny tagging set (delayed d=2, bidirectional, LRN) and of a classification set."""
    root = tmp_path_factory.mktemp("streaming_user")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRNN_RUNS_DIR", str(root))
        tags = ud.store_dataset(small_conllu(), name="small.conllu")
        reviews = ud.store_dataset(reviews_csv(60), name="reviews.csv")
        runs = {"delayed": train_run(root / "delayed", tags.id, "delayed", delay=2),
                "bidirectional": train_run(root / "bi", tags.id, "bidirectional"),
                "lrn": train_run(root / "lrn", tags.id, "lrn", steps=3),
                "classifier": train_run(root / "classifier", reviews.id, "lstm", steps=3)}
        yield SimpleNamespace(root=root, tags=tags, reviews=reviews, **runs)
    torch.set_num_threads(threads)


def test_a_delayed_run_streams_exactly_its_full_forward_output_d_steps_late(trained):
    ms = user_model_set(trained.delayed)
    model, delay = model_in_view(ms)
    assert delay == 2 and ms.bidirectional is None and ms.labels == trained.tags.labels
    for words, _ in held_out_sentences(ms):
        ids = ms.taggers.ids(words)
        outputs, shown_at = streaming.stream_delayed(model, ids)
        with torch.no_grad():
            full = model(ids[None])[0]
        torch.testing.assert_close(outputs, full, rtol=1e-5, atol=1e-6)
        T = len(words)
        assert shown_at.tolist() == [min(t + 2, T - 1) for t in range(T)]
        view = streaming.stream_view(ms, ids, delay)
        assert view.delayed.tolist() == full.argmax(-1).tolist() and view.length == T
        assert view.causal is None and view.restart is None and view.flips(T - 1) == []  # rows the run cannot give


def test_a_delayed_run_at_d0_is_its_own_causal_row_once():
    model = SequenceModel("delayed", {"hidden_size": 4, "delay": 0}, input_size=3, output_size=2, vocab_size=5).eval()
    ms = streaming.ModelSet("user", {0: model}, None, ("A", "B"))
    view = streaming.stream_view(ms, torch.tensor([2, 3, 4]), 0)
    assert view.causal is None and view.delayed_at.tolist() == [0, 1, 2]


def test_a_bidirectional_run_restarts_on_every_prefix(trained):
    ms = user_model_set(trained.bidirectional)
    model, delay = model_in_view(ms)
    assert delay is None and ms.delayed == {}
    words, _ = max(held_out_sentences(ms), key=lambda s: len(s[0]))
    ids = ms.taggers.ids(words)
    fast, slow = streaming.restart_outputs(model, ids), streaming.restart_outputs_loop(model, ids)
    torch.testing.assert_close(fast.nan_to_num(0), slow.nan_to_num(0), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        full = model(ids[None])[0]
    torch.testing.assert_close(fast[-1], full, rtol=1e-5, atol=1e-6)  # the last restart is the ordinary output
    view = streaming.stream_view(ms, ids, None)
    assert view.delayed is None and view.causal is None and view.length == len(words)
    assert view.restart[-1].tolist() == full.argmax(-1).tolist()


def test_the_test_sentences_are_the_ones_the_trainer_scored_with_its_ids(trained):
    ms = user_model_set(trained.delayed)
    card = json.loads(trained.delayed.with_suffix(".json").read_text())
    task = build_task(card["task"], **card["task_args"])
    sentences = held_out_sentences(ms)
    assert len(sentences) == trained.tags.split_sizes["test"] == len(task._encoded["test"])
    for (words, tags), (ids, targets) in zip(sentences, task._encoded["test"], strict=True):
        assert torch.equal(ms.taggers.ids(words), ids)
        assert [task.labels[t] for t in targets] == list(tags)


def test_typed_sentences_are_read_as_the_data_set_was(trained):
    ms = user_model_set(trained.delayed)
    words = typed_tokens("The  BIG dog\truns zebra .")
    assert words == ["the", "big", "dog", "runs", "zebra", "."]
    ids = ms.taggers.ids(words)
    assert ids[4] == 1 and (ids[[0, 1, 2, 3, 5]] > 1).all()  # "zebra" is not in the vocabulary: <unk>
    assert ms.taggers.unknown(words) == ["zebra"]
    assert typed_tokens("  ") == []
    with pytest.raises(ValueError, match=f"at most {MAX_TYPED_TOKENS} are streamed"):
        typed_tokens("a " * (MAX_TYPED_TOKENS + 1))
    with pytest.raises(ValueError, match="the limit is 200"):
        typed_tokens("x" * 201)


def copy_checkpoint(source, target_dir):
    target_dir.mkdir()
    for suffix in (".safetensors", ".json"):
        shutil.copy(source.with_suffix(suffix), target_dir / f"model{suffix}")
    return target_dir / "model.safetensors"


@pytest.mark.parametrize("damage, message", [
    ("weights", "sha256 mismatch"),
    ("vocab", "does not fit the model's embedding"),
    ("labels", "the card names 5 tags, the model has 6 outputs"),
    ("labels_type", "'labels' must be a list of distinct strings"),
])
def test_a_damaged_checkpoint_is_refused_with_one_message(trained, tmp_path, damage, message):
    path = copy_checkpoint(trained.delayed, tmp_path / "run")
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    if damage == "weights":
        blob = bytearray(path.read_bytes())
        blob[-1] ^= 0xFF
        path.write_bytes(bytes(blob))
    elif damage == "vocab":
        card["vocab"] = card["vocab"][:-1]
    elif damage == "labels":
        card["labels"] = card["labels"][:-1]
    else:
        card["labels"] = [7] * len(card["labels"])
    card_path.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=message):
        user_model_set(path)


def test_runs_that_are_not_streamable_taggers_are_refused(trained):
    with pytest.raises(NotStreamable, match="its lrn core cannot be streamed"):
        user_model_set(trained.lrn)
    with pytest.raises(NotStreamable, match="not a tagger of your data"):
        user_model_set(trained.classifier)


def test_the_test_sentences_of_a_deleted_data_set_are_gone_with_a_message(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("DRNN_RUNS_DIR", str(tmp_path))  # a runs directory without the data set
    ms = user_model_set(trained.delayed)
    with pytest.raises(ud.UserDataError, match=f"no data set {trained.tags.id} is stored"):
        held_out_sentences(ms)


def info(**kw):
    base = {"id": "r1", "label": "tagger", "kind": "train", "status": "finished", "message": "", "checkpoint": "x",
            "config": {"task": "user_data", "model": {"core": "delayed", "readout": "steps",
                                                      "core_args": {"hidden_size": 8, "delay": 2}}}}
    return SimpleNamespace(**{**base, **kw})


@pytest.mark.parametrize("changes, message", [
    ({}, None),
    ({"status": "early_stopped"}, None),
    ({"status": "corrupt", "message": "run.json: bad"}, "is damaged: run.json: bad"),
    ({"status": "running"}, "is still running: it opens here once it has finished"),
    ({"status": "queued"}, "is still queued"),
    ({"status": "failed", "message": "see its log"}, "ended failed (see its log); only finished runs open here"),
    ({"checkpoint": None}, "has no usable checkpoint"),
    ({"kind": "memory"}, "is a memory run, not a tagger of your data"),
    ({"config": {"task": "reversal", "model": {"core": "delayed", "core_args": {}}}}, "is a reversal run"),
    ({"config": {"task": "user_data", "model": {"core": "lrn", "readout": "last", "core_args": {}}}},
     "is a classifier of your data"),
    ({"config": {"task": "user_data", "model": {"core": "sru", "readout": "steps", "core_args": {}}}},
     "is a tagger with a sru core"),
    ({"config": {"task": "user_data", "model": []}}, "not a tagger of your data"),
])
def test_run_problem_says_why_a_run_does_not_stream(changes, message):
    said = run_problem(info(**changes))
    assert said is None if message is None else message in said


@pytest.mark.parametrize("cell", list(CELLS))
def test_the_taggers_that_open_on_streaming_are_the_delayed_and_bidirectional_ones(trained, cell, monkeypatch):
    monkeypatch.setenv("DRNN_RUNS_DIR", str(trained.root))
    tagger = user_data_config(trained.tags.id, cell, hidden_size=8, delay=3)
    assert ud.opens_on_streaming(tagger) == (cell in ("lstm", "delayed", "bidirectional"))
    assert not ud.opens_on_streaming(user_data_config(trained.reviews.id, cell, hidden_size=8))
    for hostile in ({}, {"model": None}, {"task": "user_data", "model": {"readout": "steps", "core": "delayed"}},
                    {"task": "user_data", "model": {"readout": "steps", "core": "delayed", "core_args": []}}):
        assert not ud.opens_on_streaming(hostile)
