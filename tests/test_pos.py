"""POS tagging: the shipped CoNLL-U files parse to the right sentences, the tagger's delayed outputs
read exactly d words ahead, padding changes nothing, unknown words and characters map to <unk>."""

import gzip

import pytest
import torch

from drnn_demo.models.pos_tagger import POSTagger
from drnn_demo.tasks.pos import DATA_DIR, FILES, UNK, Vocabulary, evaluate, read_conllu, sentences


def count_by_lines(path):
    """Sentences and words counted from the raw lines: '# sent_id' comments, and token lines whose id is a
    plain number (not a multi-word range '3-4' or an empty node '8.1')."""
    sentence_count = words = 0
    text = gzip.decompress(path.read_bytes()).decode("utf-8") if path.suffix == ".gz" else path.read_text("utf-8")
    for line in text.splitlines():
        if line.startswith("# sent_id"):
            sentence_count += 1
        elif line and not line.startswith("#") and line.split("\t")[0].isdigit():
            words += 1
    return sentence_count, words


@pytest.mark.parametrize("name", sorted(FILES))
def test_parsing_keeps_every_sentence_and_word(name):
    parsed = read_conllu(name)
    assert (len(parsed), sum(len(w) for w, _ in parsed)) == count_by_lines(DATA_DIR / FILES[name])
    assert all(len(w) == len(t) > 0 for w, t in parsed)


def test_splits_train_on_dev_and_evaluate_on_test():
    train, val, test = sentences("train"), sentences("val"), sentences("test")
    assert len(train) + len(val) == len(read_conllu("dev")) and len(val) == 200
    assert test == read_conllu("test")
    assert not set(train) & set(val)


def test_the_ewt_source_trains_on_the_full_train_split_and_selects_on_dev():
    train, val, test = (sentences(split, source="ewt") for split in ("train", "val", "test"))
    assert (len(train), sum(len(w) for w, _ in train)) == (12_544, 204_577)
    assert val == read_conllu("dev") and test == read_conllu("test")
    with pytest.raises(ValueError, match="source"):
        sentences("train", source="web")


@pytest.fixture(scope="module")
def vocab():
    return Vocabulary.from_training()


def test_unknown_words_and_characters_map_to_unk(vocab):
    word_ids, char_ids, lengths, tags = vocab.batch([(("the", "Zqxjvw", "ü"), ("DET", "NOUN", "X"))])
    assert word_ids[0, 0] > UNK and word_ids[0, 1] == UNK and word_ids[0, 2] == UNK
    assert char_ids[0, 1, 0] > UNK and char_ids[0, 2, 0] == UNK  # 'Z' was seen, 'ü' not
    assert lengths.tolist() == [3] and (tags >= 0).all()
    assert "NOUN" in vocab.tags and len(vocab.tags) == 17


def tagger(vocab, rnn, delay=0):
    torch.manual_seed(0)
    return POSTagger(len(vocab.words), len(vocab.chars), len(vocab.tags), rnn, delay, hidden=8).eval()


@pytest.mark.parametrize("delay", [0, 2])
def test_the_tag_of_word_t_reads_exactly_the_words_up_to_t_plus_d(vocab, delay):
    model = tagger(vocab, "delayed", delay)
    words, tags = sentences("train")[5]
    assert len(words) >= 8
    base = model(*vocab.batch([(words, tags)])[:3])[0]
    for s in range(len(words)):
        changed = list(words)
        changed[s] = "xylophone" if words[s] != "xylophone" else "banana"
        out = model(*vocab.batch([(tuple(changed), tags)])[:3])[0]
        moved = (out - base).abs().amax(-1) > 1e-6
        assert moved.tolist() == [s <= t + delay for t in range(len(words))], s


@pytest.mark.parametrize("rnn", ["delayed", "bidirectional"])
def test_padding_changes_nothing(vocab, rnn):
    model = tagger(vocab, rnn, delay=2)
    data = list(sentences("val")[:12])
    alone = [model(*vocab.batch([s])[:3])[0] for s in data]
    word_ids, char_ids, lengths, _ = vocab.batch(data)
    together = model(word_ids, char_ids, lengths)
    for i, out in enumerate(alone):
        assert torch.allclose(together[i, : len(data[i][0])], out, atol=1e-5)
    batched = evaluate(model, vocab, data, batch_size=12)["accuracy"]
    one_by_one = evaluate(model, vocab, data, batch_size=1)["accuracy"]
    assert batched == pytest.approx(one_by_one)
