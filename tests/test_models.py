"""DelayedRNN and StackedRNN: shapes, delay semantics, argument errors, and the fused kernels
checked against plain step-by-step loops of the equations."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from drnn_demo.models import DelayedRNN, StackedRNN, build_model

pytestmark = pytest.mark.usefixtures("float64")  # reference comparisons at 1e-10


def reference_cell(cell, nonlinearity, x_t, state, w_ih, w_hh, b_ih, b_hh):
    """One step of torch's equations, written out."""
    if cell == "rnn":
        f = torch.tanh if nonlinearity == "tanh" else torch.relu
        return f(x_t @ w_ih.T + b_ih + state @ w_hh.T + b_hh)
    if cell == "gru":
        gi, gh = x_t @ w_ih.T + b_ih, state @ w_hh.T + b_hh
        (ir, iz, in_), (hr, hz, hn) = gi.chunk(3, -1), gh.chunk(3, -1)
        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
        n = torch.tanh(in_ + r * hn)
        return (1 - z) * n + z * state
    h, c = state
    i, f, g, o = (x_t @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def reference_layer(cell, nonlinearity, x, rnn, suffix="_l0"):
    """Run one torch layer's weights over x (L, B, D) step by step; returns (L, B, H)."""
    w = {n: getattr(rnn, n + suffix) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    zeros = x.new_zeros(x.shape[1], rnn.hidden_size)
    state = (zeros, zeros) if cell == "lstm" else zeros
    outputs = []
    for x_t in x:
        state = reference_cell(cell, nonlinearity, x_t, state, *w.values())
        outputs.append(state[0] if cell == "lstm" else state)
    return torch.stack(outputs)


CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("gru", "tanh"), ("lstm", "tanh")]


@pytest.mark.parametrize("cell,nonlinearity", CELLS)
@pytest.mark.parametrize("batch_first", [False, True])
def test_delayed_equals_reference_loop_shifted(cell, nonlinearity, batch_first):
    torch.manual_seed(0)
    model = DelayedRNN(3, 5, delay=2, cell=cell, nonlinearity=nonlinearity, batch_first=batch_first)
    x = torch.randn(7, 4, 3)
    out, _ = model(x.transpose(0, 1) if batch_first else x)
    out = out.transpose(0, 1) if batch_first else out
    padded = torch.cat([x, torch.zeros(2, 4, 3)])
    expected = reference_layer(cell, nonlinearity, padded, model.rnn)[2:]
    assert out.shape == (7, 4, 5)
    assert torch.allclose(out, expected, atol=1e-10)


@pytest.mark.parametrize("cell,nonlinearity", CELLS)
def test_stacked_equals_reference_loop(cell, nonlinearity):
    torch.manual_seed(1)
    model = StackedRNN(3, [4, 6, 2], cell=cell, nonlinearity=nonlinearity)
    x = torch.randn(9, 2, 3)
    out, finals = model(x)
    h = x
    for layer in model.layers:
        h = reference_layer(cell, nonlinearity, h, layer)
    assert out.shape == (9, 2, 2) and len(finals) == 3
    assert torch.allclose(out, h, atol=1e-10)


def test_bidirectional_concatenates_both_directions_per_layer():
    torch.manual_seed(2)
    model = StackedRNN(3, [4, 5], cell="lstm", bidirectional=True, batch_first=True)
    x = torch.randn(2, 6, 3)
    out, _ = model(x)
    h = x.transpose(0, 1)
    for layer in model.layers:
        forward = reference_layer("lstm", "tanh", h, layer)
        backward = reference_layer("lstm", "tanh", h.flip(0), layer, suffix="_l0_reverse").flip(0)
        h = torch.cat([forward, backward], -1)
    assert model.output_size == 10
    assert torch.allclose(out, h.transpose(0, 1), atol=1e-10)


@settings(max_examples=30, deadline=None)
@given(
    delay=st.integers(0, 6), length=st.integers(1, 10), source=st.integers(0, 9),
    cell=st.sampled_from(["rnn", "gru", "lstm"]), seed=st.integers(0, 2**16),
)
def test_output_t_depends_on_x_s_iff_s_le_t_plus_delay(delay, length, source, cell, seed):
    source = source % length
    torch.manual_seed(seed)
    model = DelayedRNN(2, 4, delay=delay, cell=cell)
    x = torch.randn(length, 1, 2)
    x_perturbed = x.clone()
    x_perturbed[source] += torch.randn(2)
    with torch.no_grad():
        change = (model(x)[0] - model(x_perturbed)[0]).abs().amax(dim=(1, 2))
    for t in range(length):
        if source <= t + delay:
            assert change[t] > 1e-12, (t, source, delay)
        else:
            assert change[t] == 0, (t, source, delay)


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        (dict(input_size=3, hidden_size=4, delay=-1), "delay"),
        (dict(input_size=3, hidden_size=0), "hidden_size"),
        (dict(input_size=-2, hidden_size=4), "input_size"),
        (dict(input_size=3, hidden_size=4, cell="transformer"), "cell"),
        (dict(input_size=3, hidden_size=4, nonlinearity="sigmoid"), "nonlinearity"),
        (dict(input_size=3, hidden_size=4, cell="lstm", nonlinearity="relu"), "nonlinearity"),
        (dict(input_size=3, hidden_size=4, delay=1.5), "delay"),
        (dict(input_size=3, hidden_size=4, block_sizes=[2, 3]), "block_sizes"),
    ],
)
def test_delayed_rejects_bad_arguments_by_name(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        DelayedRNN(**kwargs)


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        (dict(input_size=3, hidden_sizes=[]), "hidden_sizes"),
        (dict(input_size=3, hidden_sizes=4), "hidden_sizes"),
        (dict(input_size=3, hidden_sizes=[4, 0]), "hidden_sizes"),
        (dict(input_size=3, hidden_sizes=[4], cell="rnn", nonlinearity="gelu"), "nonlinearity"),
    ],
)
def test_stacked_rejects_bad_arguments_by_name(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        StackedRNN(**kwargs)


@pytest.mark.parametrize("model", [DelayedRNN(3, 4, delay=1), StackedRNN(3, [4, 4])])
def test_forward_rejects_wrong_rank_or_feature_size(model):
    with pytest.raises(ValueError, match="3-D"):
        model(torch.randn(5, 3))
    with pytest.raises(ValueError, match="input_size=3"):
        model(torch.randn(5, 2, 7))


def test_registry_builds_each_baseline_and_rejects_unknown_names():
    assert isinstance(build_model("delayed", input_size=2, hidden_size=3, delay=1), DelayedRNN)
    bi = build_model("bidirectional", input_size=2, hidden_sizes=[3])
    assert bi.bidirectional and bi.output_size == 6
    with pytest.raises(ValueError, match="model must be one of"):
        build_model("nope", input_size=2)
