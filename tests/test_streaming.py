"""Streaming: a delayed RNN stepped one token at a time equals the model on the whole sequence, restart mode's
packed fast path equals re-running every prefix, and the shipped POS taggers reload and re-measure their cards."""

from pathlib import Path

import numpy as np
import pytest
import torch

from drnn_demo import streaming
from drnn_demo.analysis import incremental
from drnn_demo.checkpoints import PRETRAINED_DIR
from drnn_demo.models import SequenceModel


def delayed_model(delay, cell="lstm", vocab=None, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    model = SequenceModel("delayed", {"hidden_size": 7, "delay": delay, "cell": cell}, input_size=5, output_size=3,
                          vocab_size=vocab)
    return model.to(dtype).eval()


def bi_model(layers=1, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return SequenceModel("bidirectional", {"hidden_sizes": [6] * layers, "cell": "lstm"}, input_size=5,
                         output_size=3).to(dtype).eval()


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("delay", [0, 1, 4, 12])
def test_streamed_outputs_equal_the_full_sequence_outputs(cell, delay):
    model = delayed_model(delay, cell)
    x = torch.randn(9, 5, dtype=torch.float64)
    outputs, shown_at = streaming.stream_delayed(model, x)
    with torch.no_grad():
        full = model(x[None])[0]
    torch.testing.assert_close(outputs, full, rtol=1e-12, atol=1e-12)
    assert shown_at.tolist() == [min(t + delay, 8) for t in range(9)]  # d steps late; the rest flushed at the end


def test_a_stream_answers_nothing_for_d_steps_then_one_output_per_token():
    model = delayed_model(3, vocab=4)
    stream = streaming.DelayedStream(model)
    got = [stream.push(torch.tensor(t)) for t in [0, 3, 1, 2, 2]]  # token ids go through the embedding
    assert [g is None for g in got] == [True, True, True, False, False]
    rest = stream.finish()
    assert rest.shape == (3, 3)
    with torch.no_grad():
        full = model(torch.tensor([[0, 3, 1, 2, 2]]))[0]
    torch.testing.assert_close(torch.cat([torch.stack(got[3:]), rest]), full)


@pytest.mark.parametrize("layers", [1, 2])
def test_restart_fast_path_equals_rerunning_every_prefix(layers):
    model = bi_model(layers)
    x = torch.randn(11, 5, dtype=torch.float64)
    fast, slow = streaming.restart_outputs(model, x), streaming.restart_outputs_loop(model, x)
    assert torch.equal(torch.isnan(fast), torch.isnan(slow))
    torch.testing.assert_close(fast.nan_to_num(0), slow.nan_to_num(0), rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(fast[-1], model(x[None])[0])  # the last restart is the ordinary output
    assert torch.isnan(fast[2, 3:]).all() and not torch.isnan(fast[2, :3]).any()


def test_restart_mode_revises_earlier_tokens_and_the_delayed_stream_never_does():
    models = streaming.ModelSet("toy", {0: delayed_model(0), 2: delayed_model(2, seed=1)}, bi_model(), ("a", "b", "c"))
    x = torch.randn(12, 5, dtype=torch.float64)
    view = streaming.stream_view(models, x, 2)
    assert (view.delayed_at == np.minimum(np.arange(12) + 2, 11)).all()
    final = view.restart[-1]
    assert (view.restart[np.triu_indices(12, 1)] == incremental.NO_LABEL).all()
    with torch.no_grad():
        assert (final == models.bidirectional(x[None])[0].argmax(-1).numpy()).all()
    history = incremental.delayed_history(view.delayed, 2)
    assert incremental.edit_overhead(history) == 0
    flips = view.flips(11)
    assert all(f[0][0] == t for t, f in enumerate(flips))  # every token is first labelled on its arrival
    assert sum(len(f) - 1 for f in flips) == incremental.revisions(view.restart)


def test_evaluate_streaming_rows():
    models = streaming.ModelSet("toy", {0: delayed_model(0), 2: delayed_model(2, seed=1)}, bi_model(), ("a", "b", "c"))
    xs = [torch.randn(n, 5, dtype=torch.float64) for n in (3, 7, 7, 1)]
    golds = [np.random.default_rng(n).integers(0, 3, size=len(x)) for n, x in enumerate(xs)]
    rows = streaming.evaluate_streaming(models, xs, golds, lags=(0, 1))
    assert [r["model"] for r in rows] == ["delayed d=0", "delayed d=2", "bidirectional, restart"]
    for r in rows[:2]:
        assert r["edit_overhead"] == 0 and r["relative_correctness"] == 1 and r["latency"] == r["delay"]
    charts = [streaming.restart_chart(streaming.restart_outputs(models.bidirectional, x)) for x in xs]
    assert rows[2]["edit_overhead"] == pytest.approx(np.mean([incremental.edit_overhead(c) for c in charts]))


def test_compute_per_token_counts_cell_steps():
    models = streaming.ModelSet("toy", {0: delayed_model(0), 2: delayed_model(2)}, bi_model(), ("a", "b", "c"))
    out = streaming.compute_per_token(models, [torch.randn(6, 5, dtype=torch.float64)], delay=2, repeats=1)
    row = out["sequences"][0]
    assert row["delayed_cell_steps"] == 8 and row["restart_cell_steps"] == 42
    assert row["delayed"] > 0 and row["restart"] > 0 and out["median_ratio"] == pytest.approx(row["ratio"])


def test_models_that_cannot_stream_are_refused():
    with pytest.raises(ValueError, match="DelayedRNN core"):
        streaming.stream_delayed(bi_model(), torch.randn(3, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="bidirectional"):
        streaming.restart_outputs(delayed_model(1), torch.randn(3, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="one sequence"):
        streaming.stream_delayed(delayed_model(1), torch.randn(2, 3, 5, dtype=torch.float64))


POS_FILES = sorted(Path(PRETRAINED_DIR).glob("pos_*.safetensors"))


@pytest.fixture(scope="module")
def pos():
    return streaming.pos_model_set()


def test_pos_taggers_are_shipped_small_and_complete():
    from drnn_demo.streaming_pos import ENCODER_NAME, tagger_names

    assert {p.stem for p in POS_FILES} == {ENCODER_NAME, *tagger_names()}, "run `python -m drnn_demo pretrain`"
    assert all(p.stat().st_size < 2**20 for p in POS_FILES)
    assert sum(p.stat().st_size for p in POS_FILES) < 1.5 * 2**20


def test_pos_taggers_reload_and_re_measure_their_cards(pos):
    from drnn_demo.streaming_pos import accuracy, encode_sentences, predict_tags, tag_ids
    from drnn_demo.tasks.pos import sentences

    test = sentences("test")
    vectors, gold = encode_sentences(pos.taggers.encoder, pos.taggers.vocab, test), tag_ids(pos.taggers.vocab, test)
    for d, model in pos.delayed.items():
        claimed = pos.test[f"pos_delayed_d{d}"]
        assert accuracy(predict_tags(model, vectors), gold)["accuracy"] == pytest.approx(claimed, abs=1e-9)
    bi = accuracy(predict_tags(pos.bidirectional, vectors), gold)["accuracy"]
    assert bi == pytest.approx(pos.test["pos_bidirectional"], abs=1e-9)
    assert bi > 0.9 and pos.test["pos_delayed_d2"] > pos.test["pos_delayed_d0"]  # look-ahead helps a tagger


def test_a_pos_sentence_streams_exactly(pos):
    x = pos.taggers.vectors("The old man the boats .".split())
    view = streaming.stream_view(pos, x, 3)
    with torch.no_grad():
        assert (view.delayed == pos.delayed[3](x[None])[0].argmax(-1).numpy()).all()
        assert (view.restart[-1] == pos.bidirectional(x[None])[0].argmax(-1).numpy()).all()


def test_the_now_table_escapes_what_a_person_typed_and_counts_old_revisions():
    from drnn_demo import viz

    html = viz.now_table_html(["<b>x</b>", "y"], 0, [("restart", ["A", None], [["B", "C", "D"], []])])
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert html.count("class='revised'") == 2 and "1+" in html  # the last two struck through, the older one counted
    assert html.count("class='pending'") == 1


def test_the_incremental_chart_marks_first_labels_and_revisions():
    from drnn_demo import viz

    chart = incremental.chart([[0], [1, 1], [1, 0, 2]])
    fig = viz.incremental_chart(chart, ["A", "B", "C"], ["w0", "w1", "w2"], now=2, title="t")
    z = np.array(fig.data[0].z, dtype=float)
    assert np.isnan(z[0, 1]) and z[0, 0] == 1 and z[1, 0] == 2 and z[1, 1] == 1 and z[2, 0] == 0 and z[2, 1] == 2
