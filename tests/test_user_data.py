"""Your own data (drnn_demo.tasks.user_data): uploads checked line by line with one clear message and nothing
stored when refused; a stored set re-checked on load; hand-made sets trained in the background beat chance."""

import json
import random
import re

import pytest
import torch
from job_helpers import wait_until

from drnn_demo.checkpoints import load_checkpoint
from drnn_demo.jobs import JobManager, default_runs_dir
from drnn_demo.recipes.user_data import CELLS, cell_model, user_data_config
from drnn_demo.resources import MAX_EVAL_FLOATS
from drnn_demo.tasks import IGNORE_INDEX, build_task, task_arguments
from drnn_demo.tasks import sentiment as S
from drnn_demo.tasks import user_data as ud
from drnn_demo.training import TrainConfig, Trainer

GOOD, BAD = ["good", "great", "lovely", "excellent"], ["bad", "awful", "poor", "terrible"]
FILLER = "the film was quite a show with some actors and music in it for me".split()
LEXICON = {"DET": ["the", "a", "this"], "ADJ": ["big", "red", "old", "small"], "NOUN": ["dog", "cat", "car", "tree"],
           "VERB": ["runs", "sleeps", "stops", "waits"], "ADV": ["now", "here", "slowly"]}


def reviews_csv(rows: int = 160, seed: int = 0) -> bytes:
    """Two classes: a sentence of filler words with one "good" or one "bad" word somewhere in it."""
    rng = random.Random(seed)
    lines = ["text,label"]
    for i in range(rows):
        label = "good" if i % 2 else "bad"
        words = rng.sample(FILLER, 6)
        words.insert(rng.randrange(7), rng.choice(GOOD if label == "good" else BAD))
        lines.append(f'"{" ".join(words)}, take {i}",{label}')
    return ("\n".join(lines) + "\n").encode()


def small_conllu(sentences: int = 90, seed: int = 0) -> bytes:
    """DET (ADJ) NOUN VERB (ADV) PUNCT sentences, with a comment per sentence and one multi-word range."""
    rng = random.Random(seed)
    out = []
    for s in range(sentences):
        tags = ["DET", *(["ADJ"] if rng.random() < 0.5 else []), "NOUN", "VERB", *(["ADV"] if s % 3 else []), "PUNCT"]
        words = [rng.choice(LEXICON[t]) if t != "PUNCT" else "." for t in tags]
        out += [f"# sent_id = s{s}", f"# text = {' '.join(words)}"]
        if s == 0:
            out.append("1-2\tthe big\t_\t_\t_\t_\t_\t_\t_\t_")
        out += [f"{i}\t{w}\t{w}\t{t}\t_\t_\t0\tdep\t_\t_" for i, (w, t) in enumerate(zip(words, tags, strict=True), 1)]
        out.append("")
    return "\n".join(out).encode()


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """A private runs directory (the workers inherit it), its datasets/ beside the runs."""
    root = tmp_path / "runs"
    monkeypatch.setenv("DRNN_RUNS_DIR", str(root))
    return root


def stored_files(runs) -> set:
    directory = runs / "datasets"
    return {(p.name, p.read_bytes()) for p in directory.iterdir()} if directory.exists() else set()


# ----------------------------------------------------------------- refused uploads


def one_long_line() -> bytes:
    return reviews_csv().replace(b"\n", b"\n" + b'"' + b"good " * 10_000 + b'",good\n', 1)


MALFORMED = [
    ("wrong columns", b"sentence,sentiment\nnice,good\n", "line 1: the header must name the columns text and label"),
    ("one class", b"text,label\n" + b"".join(b"nice film %d,good\n" % i for i in range(40)),
     "only one class ('good', 40 rows)"),
    ("empty", b"", "the file is empty"),
    ("blank", b" \n\n  \n", "the file is empty"),
    ("header only", b"text,label\n", "a header but no rows"),
    ("binary", b"PK\x03\x04\x14\x00\x00\x00" + bytes(range(256)) * 4, "line 1: binary content"),
    ("over the limit", b"text,label\n" + b"a fine film,good\n" * (ud.MAX_UPLOAD_BYTES // 17 + 1),
     "the limit is 5 MB"),
    ("10,000-token line", one_long_line(), "line 2: 10,000 tokens; the limit is 1,000 per text"),
    ("bad encoding", b"text,label\ncaf\xe9 au lait,good\n", "line 2: not UTF-8 (byte 0xe9)"),
    ("utf-16", "text,label\nnice,good\n".encode("utf-16"), "UTF-16"),
    ("too few of a class", reviews_csv().replace(b",bad\n", b",meh\n", 3).replace(b",meh\n", b",bad\n", 1),
     "class 'meh' has 2 rows; each class needs at least 5"),
    ("field count", b"text,label\na fine film,good,extra\n", "line 2: 3 fields, the header has 2"),
    ("empty label", b"text,label\na fine film,\n", "line 2: the label is empty"),
    ("no words", b"text,label\n...,good\n", "line 2: no words in the text"),
    ("tiny set", b"text,label\n" + b"".join(b"w%d,%s\n" % (i, b"ab"[i % 2:][:1]) for i in range(10)),
     "split is empty"),
]


@pytest.mark.parametrize("case, data, message", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_each_malformed_upload_gets_one_clear_message_and_nothing_is_stored(runs, case, data, message):
    ud.store_dataset(reviews_csv(), name="kept.csv")  # a stored set that must stay as it is
    before = stored_files(runs)
    with pytest.raises(ud.UserDataError) as err:
        ud.store_dataset(data, name="upload.csv")
    text = str(err.value)
    assert message in text and "\n" not in text, text
    assert stored_files(runs) == before


@pytest.mark.parametrize("data, fmt, message", [
    (b"1\tThe\tthe\tDET\t_\t_\t0\t_\t_\t_\n2\tdog\n", "conllu", "line 2: 2 tab-separated columns; CoNLL-U has 10"),
    (b"x\tThe\tthe\tDET\t_\t_\t0\t_\t_\t_\n", "conllu", "line 1: ID 'x' is not a CoNLL-U word id"),
    (b"1\tThe\tthe\t_\t_\t_\t0\t_\t_\t_\n", "conllu", "line 1: no UPOS tag"),
    (b"The DET\ndog NOUN extra\n", "tokens", "line 2: 3 columns; a token/tag file has two"),
    (b"The\tDET\ndog\tDET\n\n" * 20, "tokens", "only one tag ('DET', 40 tokens)"),
    (b"the DET\n" * 2000 + b"dog NOUN\n", "tokens", "sentence at line 1: 2,001 tokens; the limit is 1,000"),
])
def test_tagging_files_are_checked_line_by_line(runs, data, fmt, message):
    with pytest.raises(ud.UserDataError, match=re.escape(message)):
        ud.store_dataset(data, name="tags.txt", fmt=fmt)
    assert stored_files(runs) == set()


def test_the_size_limit_is_checked_before_a_file_is_read(runs, tmp_path):
    big = tmp_path / "big.csv"
    with open(big, "wb") as f:
        f.truncate(ud.MAX_UPLOAD_BYTES + 1)
    with pytest.raises(ud.UserDataError, match="big.csv has 5,242,881 bytes; the limit is 5 MB"):
        ud.store_dataset(big)


# ----------------------------------------------------------------- parsing, storage, loading


def test_formats_are_found_from_the_name_or_the_first_line():
    assert ud.detect_format("a,b", "x.TSV") == "tsv" and ud.detect_format("", "x.conllu") == "conllu"
    assert ud.detect_format("label\ttext\nhi\tyo") == "tsv" and ud.detect_format("text,label\n") == "csv"
    assert ud.detect_format(small_conllu().decode()) == "conllu" and ud.detect_format("The DET\ndog NOUN") == "tokens"


def test_a_valid_csv_is_stored_under_its_hash_with_class_counts_and_the_sentiment_split(runs):
    info = ud.store_dataset(reviews_csv(), name="reviews.csv")
    assert info.path == runs / "datasets" / f"{info.id}.json" and len(info.id) == 16
    assert info.problem == "classification" and info.labels == ("bad", "good")
    assert info.counts == {"bad": 80, "good": 80}
    ds, again = ud.load_dataset(info.id)
    assert [ud.split_of(t) for t in ds.texts] == list(ds.splits) and again.split_sizes == info.split_sizes
    assert sum(info.split_sizes.values()) == 160 and min(info.split_sizes.values()) > 0
    assert ud.store_dataset(reviews_csv(), name="again.csv").id == info.id  # same content, same id
    assert [ident for ident, _, _ in ud.list_datasets()] == [info.id]
    assert ud.datasets_dir() == default_runs_dir() / "datasets"


def test_extra_columns_quotes_and_tsv_are_read_as_a_person_expects(runs):
    rows = "".join(f'{i}\t"{w} film, {i}"\t{w}\n' for i, w in enumerate(["good", "bad"] * 40))
    ds = ud.parse_upload(f"id\tText\tLabel \n{rows}".encode(), "x.tsv")
    assert ds.tokens[0] == ("good", "film", "0") and ds.labels == ("bad", "good") and ds.lines[:2] == (2, 3)


def test_the_tokenizer_is_the_sentiment_one_on_ascii_and_keeps_other_scripts():
    texts = [s.text for s in S.load_sentences() if s.text.isascii()]
    assert len(texts) > 2900 and all(ud.tokenize(t) == S.tokenize(t) for t in texts)
    assert ud.tokenize("Très BIEN, l'été! Ελληνικά_κείμενα") == ["très", "bien", "l'été", "!", "ελληνικά", "κείμενα"]


def test_a_stored_set_is_checked_again_when_loaded(runs):
    info = ud.store_dataset(reviews_csv(), name="reviews.csv")
    record = json.loads(info.path.read_text())
    info.path.write_text(json.dumps({**record, "text": record["text"].replace("good", "bad")}))
    with pytest.raises(ud.UserDataError, match="damaged: its content no longer matches its id"):
        ud.load_dataset(info.id)
    info.path.write_text(info.path.read_text()[:100])
    with pytest.raises(ud.UserDataError, match=f"stored data set {info.id} is damaged"):
        build_task("user_data", dataset=info.id)
    one_class = "text,label\n" + "".join(f"film {i},good\n" for i in range(30))
    forged = ud.dataset_id(one_class, "csv")  # a hand-made file under its right name is still checked
    (runs / "datasets" / f"{forged}.json").write_text(json.dumps({**record, "id": forged, "text": one_class}))
    with pytest.raises(ud.UserDataError, match=f"stored data set {forged}: only one class"):
        ud.load_dataset(forged)
    assert {i: p for i, _, p in ud.list_datasets()}[forged].endswith("at least two are needed")
    link = runs / "datasets" / f"{'0' * 16}.json"
    link.symlink_to(info.path)
    with pytest.raises(ud.UserDataError, match="not a regular file"):
        ud.load_dataset("0" * 16)
    for bad in ("../etc/passwd", "", 5):
        with pytest.raises(ValueError):
            build_task("user_data", dataset=bad)


# ----------------------------------------------------------------- the task


def test_classification_batches_are_left_padded_and_eval_sets_are_the_whole_splits(runs):
    info = ud.store_dataset(reviews_csv(), name="reviews.csv")
    task = build_task("user_data", dataset=info.id)
    assert set(task.args) == set(task_arguments("user_data")) and task.readout == "last"
    assert task.card_entries()["labels"] == ["bad", "good"] and task.card_entries()["vocab"][:2] == ["<pad>", "<unk>"]
    x, y = task.sample(7, seed=3)
    assert torch.equal(task.sample(7, seed=3)[0], x) and x.dtype == torch.long and y.shape == (7,)
    for row, label in zip(x, y, strict=True):  # the sequence is the example's ids, after left padding
        ids = row[row != 0]
        assert bool((row[-len(ids):] == ids).all()) and int(label) in (0, 1)
    xt, yt = task.eval_set("test", 5, 0)
    assert len(yt) == info.split_sizes["test"] and torch.equal(xt, task.eval_set("test", 99, 1)[0])
    assert torch.equal(task.encode("Good good unseenword"), torch.tensor([task.index["good"]] * 2 + [1]))


def test_the_vocabulary_is_the_most_frequent_training_words_within_its_card_budget(runs, monkeypatch):
    info = ud.store_dataset(reviews_csv(), name="reviews.csv")
    task = build_task("user_data", dataset=info.id)
    ds, _ = ud.load_dataset(info.id)
    counts = {}
    for words, split in zip(ds.tokens, ds.splits, strict=True):
        for w in words if split == "train" else ():
            counts[w] = counts.get(w, 0) + 1
    assert set(task.vocab[2:]) == {w for w, c in counts.items() if c >= 2}
    assert [counts[w] for w in task.vocab[2:]] == sorted((counts[w] for w in task.vocab[2:]), reverse=True)
    monkeypatch.setattr(ud, "MAX_VOCAB_JSON", 60)
    budget, kept = 60, 0  # each word costs its JSON string plus ", "
    while budget >= len(json.dumps(task.vocab[2 + kept])) + 2:
        budget -= len(json.dumps(task.vocab[2 + kept])) + 2
        kept += 1
    assert 3 <= kept < 20 and build_task("user_data", dataset=info.id).vocab == task.vocab[:2 + kept]


def test_tagging_is_scored_per_token_and_padding_is_never_scored(runs):
    info = ud.store_dataset(small_conllu(), name="small.conllu")
    assert info.problem == "tagging" and info.fmt == "conllu" and set(info.labels) == set(LEXICON) | {"PUNCT"}
    task = build_task("user_data", dataset=info.id)
    x, y = task.eval_set("val", 1, 0)
    assert task.readout == "steps" and y.shape == x.shape and bool(((x == 0) == (y == IGNORE_INDEX)).all())
    pred = torch.randn(*x.shape, task.output_size)
    correct = total = 0  # the slow reference: every real token of every sentence, one at a time
    for b, (ids, target) in enumerate(task._encoded["val"]):
        for t in range(len(ids)):
            correct += int(pred[b, t].argmax()) == target[t]
            total += 1
    assert task.metrics(pred, y)["accuracy"] == pytest.approx(correct / total)


@pytest.mark.parametrize("cell", list(CELLS))
def test_every_cell_trains_on_user_data(runs, one_thread, cell):
    info = ud.store_dataset(reviews_csv(40), name="small.csv")
    config = user_data_config(info.id, cell, hidden_size=8, delay=2, steps=3, device="cpu")
    result = Trainer(TrainConfig.from_dict(config)).run()
    assert result.status == "finished" and 0 <= result.test_metrics["accuracy"] <= 1
    assert ud.opens_on_lrn_gates(config) == (cell == "lrn")
    assert cell_model(cell, 8)["core"] in ("delayed", "bidirectional", "lrn", "sru", "asrnn")


def test_the_split_memory_limit_is_the_trainers():
    assert ud.MAX_SPLIT_FLOATS == MAX_EVAL_FLOATS


# ----------------------------------------------------------------- end to end, in the background


def majority(info) -> float:
    return max(info.counts.values()) / sum(info.counts.values())


@pytest.mark.slow  # two worker processes start torch: about 20 s on a busy 2-core machine
def test_a_csv_and_a_conllu_train_in_the_background_and_beat_chance(runs):
    csv_info = ud.store_dataset(reviews_csv(), name="reviews.csv")
    tag_info = ud.store_dataset(small_conllu(), name="small.conllu")
    jm = JobManager(runs, max_concurrent=2)
    classifier = jm.submit("train", user_data_config(csv_info.id, "lrn", hidden_size=16, steps=150, lr=1e-2),
                           label="lrn on reviews")
    tagger = jm.submit("train", user_data_config(tag_info.id, "delayed", hidden_size=16, delay=1, steps=150, lr=1e-2),
                       label="tagger")
    wait_until(jm, lambda: not jm.active(), timeout=150, every=0.5)
    for run_id, info in ((classifier, csv_info), (tagger, tag_info)):
        run = jm.get(run_id)
        assert run.status == "finished", jm.log(run_id)
        model, card = load_checkpoint(run.checkpoint)
        task = build_task(card["task"], **card["task_args"])
        x, y = task.eval_set("test", 1, 0)
        accuracy = task.metrics(model.eval()(x), y)["accuracy"]
        assert accuracy == pytest.approx(run.metrics["test_accuracy"], abs=1e-6)
        assert accuracy > majority(info) + 0.2, (info.name, accuracy, majority(info))
        assert card["labels"] == list(info.labels) and card["vocab"] == task.vocab
    assert ud.opens_on_lrn_gates(jm.get(classifier).config) and not ud.opens_on_lrn_gates(jm.get(tagger).config)
