"""The stacked -> delayed construction is exact for rnn and lstm, measured (and refused by default) for GRU,
invertible, and relaxing its zero blocks buys look-ahead."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drnn_demo.equivalence import (
    delayed_to_stacked,
    equivalence_report,
    future_influence,
    relax_zero_blocks,
    stacked_to_delayed,
)
from drnn_demo.models import DelayedRNN, StackedRNN


def random_stacked(sizes, cell, nonlinearity="tanh", batch_first=False, dtype=torch.float32, seed=0):
    """A stack with arbitrary nonzero biases, so a leaking bias would show."""
    torch.manual_seed(seed)
    stacked = StackedRNN(3, sizes, cell=cell, nonlinearity=nonlinearity, batch_first=batch_first).to(dtype)
    with torch.no_grad():
        for name, p in stacked.named_parameters():
            if "bias" in name:
                p.uniform_(-1, 1)
    return stacked


def random_input(length, batch_first, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(length, 2, 3, generator=gen, dtype=dtype)
    return x.transpose(0, 1) if batch_first else x


layer_sizes = st.lists(st.integers(1, 8), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=layer_sizes, length=st.integers(50, 70), seed=st.integers(0, 2**16),
    cell=st.sampled_from([("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh")]),
    batch_first=st.booleans(), dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_stacked_to_delayed_is_exact(sizes, length, seed, cell, batch_first, dtype):
    tolerance = 1e-5 if dtype == torch.float32 else 1e-10
    stacked = random_stacked(sizes, *cell, batch_first=batch_first, dtype=dtype, seed=seed)
    delayed = stacked_to_delayed(stacked)
    x = random_input(length, batch_first, dtype, seed)
    with torch.no_grad():
        expected, _ = stacked(x)
        got, _ = delayed(x)
    assert delayed.delay == len(sizes) - 1 and delayed.hidden_size == sum(sizes) and delayed.exact
    assert got.shape[:2] == expected.shape[:2]
    assert (got[..., -sizes[-1]:] - expected).abs().max() <= tolerance
    report = equivalence_report(stacked, x, eps_grid=())
    assert report.layer_error.shape == (len(sizes), length)
    assert report.max_error <= tolerance  # every layer, not only the top one


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_without_the_staggered_start_the_biases_leak_in(cell):
    stacked = random_stacked([4, 4, 4], cell)
    delayed = stacked_to_delayed(stacked)
    unstaggered = DelayedRNN(3, 12, delay=2, cell=cell)
    unstaggered.load_state_dict(delayed.state_dict())
    x = random_input(50, False, torch.float32, 0)
    with torch.no_grad():
        error = (unstaggered(x)[0][..., -4:] - stacked(x)[0]).abs().max()
    assert error > 1e-2


def test_gru_is_refused_by_default_and_its_error_is_measured_when_allowed():
    stacked = random_stacked([5, 5], "gru")
    with pytest.raises(ValueError, match="not exact"):
        stacked_to_delayed(stacked)
    assert stacked_to_delayed(stacked, allow_inexact=True).exact is False
    report = equivalence_report(stacked, random_input(50, False, torch.float32, 0), eps_grid=())
    assert not report.exact
    assert report.max_error > 1e-3
    assert report.layer_error[0].max() < 1e-5  # the first layer reads x directly: it is still exact


def test_single_layer_gru_is_exact_even_so():
    stacked = random_stacked([5], "gru")
    x = random_input(50, False, torch.float32, 1)
    assert equivalence_report(stacked, x, eps_grid=()).max_error < 1e-5


def test_bidirectional_is_refused():
    with pytest.raises(ValueError, match="bidirectional"):
        stacked_to_delayed(StackedRNN(3, [4], bidirectional=True))


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_round_trip_is_exact(cell):
    stacked = random_stacked([3, 5, 2], cell, dtype=torch.float64)
    back = delayed_to_stacked(stacked_to_delayed(stacked), [3, 5, 2])
    for a, b in zip(stacked.state_dict().values(), back.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_delayed_to_stacked_explains_what_is_wrong():
    delayed = stacked_to_delayed(random_stacked([3, 3], "rnn"))
    with pytest.raises(ValueError, match="block form"):
        delayed_to_stacked(DelayedRNN(3, 6, delay=1), [3, 3])
    with pytest.raises(ValueError, match="sum to"):
        delayed_to_stacked(delayed, [3, 4])
    with pytest.raises(ValueError, match="delay=2"):
        delayed_to_stacked(delayed, [2, 2, 2])


def test_relaxing_the_zero_blocks_grows_the_error_from_zero():
    stacked = random_stacked([4, 4, 4], "rnn", seed=3)
    report = equivalence_report(stacked, random_input(50, False, torch.float32, 3), eps=0.1)
    assert report.eps_errors[report.eps_grid == 0][0] < 1e-6
    assert np.all(np.diff(report.eps_errors) > 0)
    assert report.eps_errors[-1] > 0.1


def test_future_inputs_reach_block_l_up_to_l_steps_ahead_only_when_relaxed():
    sizes = [3, 3, 3, 3]
    delayed = stacked_to_delayed(random_stacked(sizes, "lstm", seed=4))
    exact = future_influence(delayed, sizes)
    relaxed = future_influence(relax_zero_blocks(delayed, sizes, eps=0.5), sizes)
    assert np.all(exact[:, 0] > 0) and np.all(exact[:, 1:] == 0)
    upper = np.triu(np.ones((4, 4), dtype=bool), k=1)  # look-ahead o > l is impossible
    assert np.all(relaxed[upper] == 0)
    assert np.all(relaxed[~upper] > 0)


def influence_by_jacobian(delayed, sizes, at=8, seed=0):
    """The slow, obvious reference: one full Jacobian per block, on the same input as future_influence."""
    k, off = len(sizes), np.cumsum([0, *sizes])
    x = torch.randn(at + k, 1, delayed.input_size, generator=torch.Generator().manual_seed(seed)).to(delayed.weight_ih)
    influence = np.zeros((k, k))
    for l in range(k):
        def block(inp, l=l):
            states, _ = delayed.states(inp.transpose(0, 1) if delayed.batch_first else inp)
            return states[at + l, 0, off[l] : off[l + 1]]
        jac = torch.autograd.functional.jacobian(block, x)  # (h_l, T, 1, D)
        influence[l] = [jac[:, at + o].norm().item() for o in range(k)]
    return influence


@pytest.mark.parametrize(("cell", "batch_first"), [("rnn", False), ("lstm", True), ("gru", False)])
def test_future_influence_matches_a_jacobian_per_block(cell, batch_first):
    sizes = [3, 1, 4, 2]
    delayed = stacked_to_delayed(random_stacked(sizes, cell, batch_first=batch_first, seed=5), allow_inexact=True)
    relaxed = relax_zero_blocks(delayed, sizes, eps=0.3)
    np.testing.assert_allclose(future_influence(relaxed, sizes, seed=2), influence_by_jacobian(relaxed, sizes, seed=2),
                               rtol=1e-5, atol=1e-7)


def test_report_carries_the_block_matrix_and_aligned_layers():
    sizes = [2, 3]
    stacked = random_stacked(sizes, "lstm")
    x = random_input(20, False, torch.float32, 0)
    report = equivalence_report(stacked, x, eps_grid=(0.0, 0.5))
    assert report.weight_hh.shape == (4 * 5, 5)
    assert report.block_edges == [0, 2, 5]
    assert [a.shape for a in report.stacked_layers] == [(20, 2), (20, 3)]
    assert np.allclose(report.stacked_layers[1], report.delayed_layers[1], atol=1e-6)
    # the zero block (row block 0, column block 1) of every gate chunk is exactly zero
    for g in range(4):
        assert np.all(report.weight_hh[g * 5 : g * 5 + 2, 2:5] == 0)
