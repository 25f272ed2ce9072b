"""Connectivity maps ||dy_t/dx_s||: the exact zero pattern of each architecture on random weights (float64), the
batched Jacobian against a slow loop with one backward pass per output component, the input forms, the limits,
and the figure."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from drnn_demo import viz
from drnn_demo.analysis import MAX_STEPS, connectivity
from drnn_demo.models import ASRNN, LRN, SRU, DelayedRNN, SequenceModel, StackedRNN
from drnn_demo.models.pos_tagger import POSTagger

pytestmark = pytest.mark.usefixtures("float64")
TOL = 1e-10


def reference(f, x: torch.Tensor) -> torch.Tensor:
    """The obvious loop: ``f`` maps one sequence of input vectors ``(T, D)`` to its outputs ``(T_out, O)``; for every
    output step ``t`` and feature ``o``, one backward pass gives ``dy_{t,o}/dx`` ``(T, D)``; square, sum, root."""
    x = x.detach().clone().requires_grad_(True)
    y = f(x)
    T_out, O = y.shape
    squares = torch.zeros(T_out, x.shape[0], dtype=x.dtype)
    for t in range(T_out):
        for o in range(O):
            (g,) = torch.autograd.grad(y[t, o], x, retain_graph=True, allow_unused=True)
            if g is not None:
                squares[t] += (g**2).sum(-1)
    return squares.sqrt()


def of_core(core):
    return lambda x: core(x[None])[0][0]


def steps(T: int):
    t, s = torch.meshgrid(torch.arange(T), torch.arange(T), indexing="ij")
    return t, s


def seeded(seed: int = 0):
    torch.manual_seed(seed)


# ---------------------------------------------------------------- the zero patterns, against the reference


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("delay", [0, 1, 3])
def test_delayed_rnn_reads_exactly_up_to_t_plus_d(cell, delay):
    seeded(delay)
    core = DelayedRNN(3, 6, delay=delay, cell=cell, batch_first=True)
    x = torch.randn(10, 3)
    c = connectivity(core, x)
    assert c.shape == (10, 10) and c.dtype == torch.float64
    t, s = steps(10)
    assert torch.all(c[s > t + delay] == 0)  # exactly: the output has not read those inputs
    assert torch.all(c[(s >= t) & (s <= t + delay)] > 0)  # the band up to the delay
    assert torch.all(c[s <= t + delay] > 0)  # and, with random weights, everything before it
    assert torch.allclose(c, reference(of_core(core), x), rtol=0, atol=TOL)


@settings(max_examples=25, deadline=None)
@given(T=st.integers(1, 9), delay=st.integers(0, 6), cell=st.sampled_from(["rnn", "gru", "lstm"]),
       hidden=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_delayed_band_holds_for_any_size(T, delay, cell, hidden, seed):
    seeded(seed)
    c = connectivity(DelayedRNN(2, hidden, delay=delay, cell=cell, batch_first=True), torch.randn(T, 2))
    t, s = steps(T)
    assert torch.all(c[s > t + delay] == 0)
    assert torch.all(c[(s >= t) & (s <= t + delay)] > 0)


def test_staggered_delayed_rnn_has_the_same_band():
    seeded(1)
    core = DelayedRNN(2, 6, delay=2, cell="lstm", batch_first=True, block_sizes=[2, 2, 2])
    x = torch.randn(8, 2)
    c = connectivity(core, x)
    t, s = steps(8)
    assert torch.all(c[s > t + 2] == 0) and torch.all(c[s <= t] > 0)
    assert torch.allclose(c, reference(of_core(core), x), rtol=0, atol=TOL)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("sizes", [[4, 5], [3, 4, 2]])
def test_stacked_rnn_is_lower_triangular(cell, sizes):
    seeded(len(sizes))
    core = StackedRNN(3, sizes, cell=cell, batch_first=True)
    x = torch.randn(9, 3)
    c = connectivity(core, x)
    t, s = steps(9)
    assert torch.all(c[s > t] == 0) and torch.all(c[s <= t] > 0)
    assert torch.allclose(c, reference(of_core(core), x), rtol=0, atol=TOL)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("sizes", [[5], [4, 3]])
def test_bidirectional_network_reads_everything(cell, sizes):
    seeded(7)
    core = StackedRNN(3, sizes, cell=cell, bidirectional=True, batch_first=True)
    x = torch.randn(9, 3)
    c = connectivity(core, x)
    assert torch.all(c > 0)
    assert torch.allclose(c, reference(of_core(core), x), rtol=0, atol=TOL)


@pytest.mark.parametrize("make", [
    lambda: SRU(3, 5, num_layers=2, batch_first=True),  # custom autograd functions: no vmap rule, batch axis works
    lambda: LRN(3, 5, batch_first=True),
    lambda: ASRNN(3, 5, batch_first=True),
    lambda: ASRNN(3, 5, nonlinearity="modrelu", batch_first=True),
], ids=["sru", "lrn", "asrnn", "exprnn"])
def test_other_causal_cells_are_lower_triangular(make):
    seeded(3)
    core = make()
    x = torch.randn(8, 3)
    c = connectivity(core, x)
    t, s = steps(8)
    assert torch.all(c[s > t] == 0) and torch.all(c[s <= t] > 0)
    assert torch.allclose(c, reference(of_core(core), x), rtol=0, atol=TOL)


@pytest.mark.parametrize("make", [lambda: SRU(3, 4, num_layers=1, bidirectional=True, batch_first=True),
                                  lambda: LRN(3, 4, bidirectional=True, batch_first=True)], ids=["sru", "lrn"])
def test_other_bidirectional_cells_are_dense(make):
    seeded(4)
    core = make()
    x = torch.randn(7, 3)
    c = connectivity(core, x)
    assert torch.all(c > 0)
    assert torch.allclose(c, reference(of_core(core), x), rtol=0, atol=TOL)


# ---------------------------------------------------------------- whole models: y is what the task scores


def test_sequence_model_differentiates_the_head_output_wrt_the_core_input():
    seeded(5)
    model = SequenceModel("delayed", {"hidden_size": 6, "delay": 2, "cell": "gru"}, input_size=3, output_size=4)
    x = torch.randn(8, 3)
    c = connectivity(model, x)
    assert torch.allclose(c, reference(lambda v: model(v[None])[0], x), rtol=0, atol=TOL)
    t, s = steps(8)
    assert torch.all(c[s > t + 2] == 0) and torch.all(c[s <= t + 2] > 0)


def test_token_model_reads_the_embedding_output():
    seeded(6)
    model = SequenceModel("bidirectional", {"hidden_sizes": [5], "cell": "lstm"}, input_size=4, output_size=3,
                          vocab_size=11)
    ids = torch.randint(0, 11, (9,))
    c = connectivity(model, ids)
    embedded = model.embedding(ids).detach()
    expected = reference(lambda e: model.head(model.core(e[None])[0])[0], embedded)
    assert torch.allclose(c, expected, rtol=0, atol=TOL) and torch.all(c > 0)
    assert torch.equal(connectivity(model, ids[None]), c)  # (1, T) as well
    assert torch.allclose(connectivity(model, embedded), c, rtol=0, atol=TOL)  # vectors are the embedding output


def test_last_readout_gives_one_row():
    seeded(8)
    model = SequenceModel("stacked", {"hidden_sizes": [6], "cell": "lstm"}, input_size=2, output_size=5,
                          readout="last")
    x = torch.randn(7, 2)
    c = connectivity(model, x)
    assert c.shape == (1, 7) and torch.all(c > 0)
    assert torch.allclose(c, reference(lambda v: model(v[None]), x), rtol=0, atol=TOL)


@pytest.mark.parametrize("sentence_rnn", ["delayed", "bidirectional"])
def test_pos_tagger_reads_word_vectors(sentence_rnn):
    seeded(9)
    tagger = POSTagger(words=20, chars=12, tags=5, sentence_rnn=sentence_rnn, delay=1, hidden=6, word_dim=4,
                       char_dim=3, char_hidden=2)
    T = 6
    word_ids = torch.randint(1, 20, (T,))
    char_ids = torch.randint(1, 12, (T, 4))
    char_ids[:, 3] = 0  # padded characters
    c = connectivity(tagger, (word_ids, char_ids))
    vectors = tagger.word_vectors(word_ids[None], char_ids[None])[0].detach()
    assert torch.allclose(connectivity(tagger, vectors), c, rtol=0, atol=TOL)
    lengths = torch.tensor([T])
    expected = reference(lambda v: tagger.head(tagger.sentence(v[None])[0])[0], vectors)
    assert torch.allclose(c, expected, rtol=0, atol=TOL)
    # the packed path of forward() agrees with the unpacked one used here (one full-length sentence)
    with torch.no_grad():
        assert torch.allclose(tagger(word_ids[None], char_ids[None], lengths)[0],
                              tagger.head(tagger.sentence(vectors[None])[0])[0], atol=1e-12)
    t, s = steps(T)
    if sentence_rnn == "delayed":
        assert torch.all(c[s > t + 1] == 0) and torch.all(c[s <= t + 1] > 0)
    else:
        assert torch.all(c > 0)


# ---------------------------------------------------------------- conventions and input forms


def test_time_first_core_and_batch_axis_forms_agree():
    seeded(10)
    first = DelayedRNN(3, 5, delay=1, cell="lstm", batch_first=False)
    batch = DelayedRNN(3, 5, delay=1, cell="lstm", batch_first=True)
    batch.load_state_dict(first.state_dict())
    x = torch.randn(7, 3)
    c = connectivity(batch, x)
    assert torch.allclose(connectivity(first, x), c, rtol=0, atol=TOL)
    assert torch.equal(connectivity(batch, x[None]), c)
    assert torch.allclose(connectivity(batch, x.numpy()), c, rtol=0, atol=TOL)


def test_torch_rnn_modules_work_as_cores():
    seeded(11)
    lstm = torch.nn.LSTM(3, 4)  # time first, as torch's default
    x = torch.randn(6, 3)
    c = connectivity(lstm, x)
    assert torch.allclose(c, reference(lambda v: lstm(v[:, None])[0][:, 0], x), rtol=0, atol=TOL)
    t, s = steps(6)
    assert torch.all(c[s > t] == 0)


@pytest.mark.parametrize("rows", [1, 3, 7, 1000])
def test_any_pass_size_gives_the_same_map(rows):
    seeded(12)
    model = SequenceModel("delayed", {"hidden_size": 5, "delay": 2, "cell": "lstm"}, input_size=3, output_size=3)
    x = torch.randn(8, 3)
    assert torch.allclose(connectivity(model, x, rows_per_pass=rows), connectivity(model, x), rtol=0, atol=1e-13)


def test_float32_models_give_float32_maps_and_training_mode_is_restored():
    seeded(13)
    model = SequenceModel("stacked", {"hidden_sizes": [4], "cell": "gru"}, input_size=2, output_size=2).float()
    model.train()
    c = connectivity(model, np.random.default_rng(0).normal(size=(5, 2)))
    assert c.dtype == torch.float32 and model.training
    assert not any(p.grad is not None for p in model.parameters())  # nothing accumulated in the weights


def test_limits_and_bad_inputs_are_refused_clearly():
    core = DelayedRNN(3, 4, batch_first=True)
    with pytest.raises(ValueError, match=f"limited to {MAX_STEPS} steps"):
        connectivity(core, torch.zeros(MAX_STEPS + 1, 3))
    token_model = SequenceModel("delayed", {"hidden_size": 4}, input_size=3, output_size=2, vocab_size=5)
    with pytest.raises(ValueError, match=f"limited to {MAX_STEPS} steps"):
        connectivity(token_model, torch.zeros(10**6, dtype=torch.long))
    with pytest.raises(ValueError, match="features per step"):
        connectivity(core, torch.zeros(5, 4))
    with pytest.raises(ValueError, match="one sequence"):
        connectivity(core, torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="at least one step"):
        connectivity(core, torch.zeros(0, 3))
    with pytest.raises(ValueError, match="float vectors"):
        connectivity(core, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="token ids or real numbers"):
        connectivity(core, torch.zeros(5, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="tensor or an array"):
        connectivity(core, object())
    with pytest.raises(ValueError, match="rows_per_pass"):
        connectivity(core, torch.zeros(5, 3), rows_per_pass=0)
    wide = SequenceModel("delayed", {"hidden_size": 2}, input_size=1, output_size=200)
    with pytest.raises(ValueError, match="Jacobian rows"):
        connectivity(wide, torch.zeros(400, 1))


# ---------------------------------------------------------------- the figure


def test_connectivity_map_marks_zeros_the_delay_line_and_the_real_values():
    seeded(14)
    c = connectivity(DelayedRNN(2, 4, delay=2, cell="lstm", batch_first=True), torch.randn(8, 2)).numpy()
    fig = viz.connectivity_map(c, delay=2, boxes=[{"rows": (6, 8), "cols": (0, 2), "label": "recall ← symbols"}])
    main, zeros, legend, line = fig.data
    assert "log scale" in fig.layout.title.text
    positive = c > 0
    assert np.allclose(np.asarray(main.z, dtype=float)[positive], np.log10(c[positive]), atol=1e-6)
    assert np.all(np.isnan(np.asarray(main.z, dtype=float)[~positive]))
    assert np.array_equal(np.asarray(main.customdata), c)  # the hover's real values
    assert np.array_equal(~np.isnan(np.asarray(zeros.z, dtype=float)), c == 0)
    assert "exactly 0" in zeros.hovertemplate and legend.name.startswith("exactly 0")
    assert line.name == "s = t + 2"
    xs, ys = np.asarray(line.x), np.asarray(line.y)
    assert np.all(xs[::2] == np.arange(5) + 2.5) and np.all(ys[::2] == np.arange(5) - 0.5)  # rows 0..4 have zeros
    assert fig.layout.yaxis.range[0] > fig.layout.yaxis.range[1]  # t = 0 at the top
    assert fig.layout.shapes[0].x0 == -0.5 and fig.layout.annotations[0].text == "recall ← symbols"


def test_connectivity_map_handles_dense_empty_and_single_row_maps():
    dense = viz.connectivity_map(np.full((4, 4), 0.5))
    assert len(dense.data) == 1  # no zeros, no line
    blank = viz.connectivity_map(np.zeros((3, 3)), delay=0)
    assert len(blank.data) == 4 and np.all(np.isnan(np.asarray(blank.data[0].z, dtype=float)))
    row = viz.connectivity_map(np.array([[0.0, 1e-3, 2.0]]), delay=0, title="digits")
    assert row.layout.title.text == "digits" and row.layout.height < 380
    tiny = viz.connectivity_map(np.array([[1e-30, 1.0]]))
    assert tiny.data[0].zmin == -10.0  # at most ten decades of colour; the hover keeps the real 1e-30
