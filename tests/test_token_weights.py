"""Token weights: the unfolded LRN weights against products written out by hand, exact reconstruction
for the identity activation, honest error for tanh, and no underflow on long sequences."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from drnn_demo.models import LRN, SequenceModel, StackedRNN
from drnn_demo.token_weights import final_token_attribution, final_token_weights, token_weights


def naive_weights(i, f):
    """w[t, k] = i_k * prod_{j=k+1..t} f_j by explicit products (left to right), (T, T, H)."""
    T, H = i.shape
    w = torch.zeros(T, T, H, dtype=torch.float64)
    for t in range(T):
        for k in range(t + 1):
            prod = i[k].clone()
            for j in range(k + 1, t + 1):
                prod = prod * f[j]
            w[t, k] = prod
    return w


def gates_by_hand(model, x, h0=None):
    """Single-layer forward LRN run step by step in float64: i, f, r, h as (T, H)."""
    W, b = model.weight_ih_l0.double(), model.bias_ih_l0.double()
    H = model.hidden_size
    h = torch.zeros(H, dtype=torch.float64) if h0 is None else h0.double()
    out = {k: [] for k in "ifrh"}
    for x_t in x.double():
        p, q, r = (W @ x_t + b).split(H)
        i, f = torch.sigmoid(p + h), torch.sigmoid(q - h)
        a = i * r + f * h
        h = torch.tanh(a) if model.activation == "tanh" else a
        for key, value in zip("ifrh", (i, f, r, h), strict=True):
            out[key].append(value)
    return {k: torch.stack(v) for k, v in out.items()}


@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_weights_equal_explicit_products_and_reconstruction(activation):
    torch.manual_seed(0)
    model = LRN(3, 5, activation=activation)
    x = torch.randn(9, 3) * 2
    tw = token_weights(model, x)
    ref = gates_by_hand(model, x)
    torch.testing.assert_close(tw.input_gate, ref["i"], atol=1e-12, rtol=0)
    torch.testing.assert_close(tw.hidden, ref["h"], atol=1e-12, rtol=0)
    w = naive_weights(ref["i"], ref["f"])
    torch.testing.assert_close(tw.weights(), w, atol=1e-14, rtol=1e-12)
    torch.testing.assert_close(tw.mean, w.mean(-1), atol=1e-14, rtol=1e-12)
    torch.testing.assert_close(tw.contribution, torch.linalg.vector_norm(w * ref["r"], dim=-1), atol=1e-13, rtol=0)
    linear = (w * ref["r"].unsqueeze(0)).sum(1)  # sum_k w[t,k] r_k
    torch.testing.assert_close(tw.reconstruction, linear, atol=1e-13, rtol=0)
    error = (ref["h"] - linear).abs().amax(-1)
    torch.testing.assert_close(tw.error, error, atol=1e-13, rtol=0)
    if activation == "identity":
        assert tw.exact and tw.max_error < 1e-12
    else:  # tanh: the unfolding is only approximate, and the report says by how much
        assert not tw.exact and tw.max_error > 1e-3


def test_identity_reconstructs_the_float32_model_output():
    """The issue's promise: for identity activation the weights rebuild h_t to 1e-5, here against
    the float32 states the model itself returns (the analysis runs in float64)."""
    torch.manual_seed(1)
    model = LRN(6, 16, activation="identity")
    x = torch.randn(200, 6)
    tw = token_weights(model, x)
    h = model(x.unsqueeze(1))[0][:, 0]
    assert (tw.reconstruction - h.double()).abs().max() <= 1e-5
    total = tw.token_contributions(-1).sum(0) + tw.log_forget_chain(-1)[0].exp() * tw.forget_gate[0] * tw.h0
    torch.testing.assert_close(total, tw.reconstruction[-1], atol=1e-12, rtol=0)


def test_initial_state_share_and_hx():
    torch.manual_seed(2)
    model = LRN(3, 4, activation="identity")
    x, h0 = torch.randn(12, 3), torch.randn(1, 4) * 3
    tw = token_weights(model, x, hx=h0)
    ref = gates_by_hand(model, x, h0[0])
    torch.testing.assert_close(tw.hidden, ref["h"], atol=1e-12, rtol=0)
    assert tw.max_error < 1e-12
    assert not torch.allclose(token_weights(model, x).hidden, tw.hidden)  # hx mattered


def test_long_sequences_do_not_underflow():
    """T = 2000 with strong forgetting: the early tokens' weights in the final state are far below
    the smallest float64 (a product of gates underflows to 0 and a ratio of cumprods is 0/0), yet
    their logs are finite and equal the sum of the log-gates."""
    torch.manual_seed(3)
    model = LRN(2, 3, activation="identity")
    with torch.no_grad():
        model.bias_ih_l0[3:6] = -1.5  # forget gates ~0.2: each step multiplies by ~0.2
    x = torch.randn(2000, 2) * 0.1
    tw = token_weights(model, x, chunk_elements=1 << 18)
    row = tw.log_weights(t=-1)  # (T, H)
    assert torch.isfinite(row).all() and torch.isfinite(tw.log_mean[-1]).all()
    expected = tw.log_input_gate[0] + tw.log_forget_gate[1:].sum(0)
    torch.testing.assert_close(row[0], expected, atol=1e-9, rtol=1e-12)
    assert row[0].max() < -2000  # far below exp(-745), the smallest float64
    cumprod = torch.cumprod(tw.forget_gate, 0)
    assert cumprod[-1].max() == 0 and torch.isnan(cumprod[-1] / cumprod[-2]).all()  # what log space avoids
    assert tw.max_error < 1e-10
    assert not torch.isnan(tw.mean).any() and (tw.mean >= 0).all() and (tw.mean <= 1).all()


def test_views_agree_with_the_full_tensor():
    torch.manual_seed(4)
    model = LRN(3, 6, activation="tanh")
    tw = token_weights(model, torch.randn(15, 3))
    full = tw.log_weights()
    torch.testing.assert_close(tw.log_weights(t=7), full[7])
    torch.testing.assert_close(tw.log_weights(unit=2), full[..., 2])
    torch.testing.assert_close(tw.log_weights(t=-1, unit=-1), full[-1, :, -1])
    torch.testing.assert_close(tw.decay(4), tw.mean[4:, 4], atol=1e-14, rtol=1e-12)
    torch.testing.assert_close(tw.decay(4, unit=1), full[4:, 4, 1].exp(), atol=1e-14, rtol=1e-12)
    chain = tw.log_forget_chain(t=9)
    torch.testing.assert_close(chain[3], tw.log_forget_gate[4:10].sum(0), atol=1e-12, rtol=0)
    assert (chain[9] == 0).all() and torch.isinf(chain[10:]).all()
    assert torch.isinf(full[2, 3:]).all() and (full[2, 3:] < 0).all()  # future tokens carry no weight
    # chunking is an implementation detail
    small = token_weights(model, torch.randn(15, 3).copy_(tw.value[:, :3]), chunk_elements=7)
    large = token_weights(model, torch.randn(15, 3).copy_(tw.value[:, :3]))
    torch.testing.assert_close(small.mean, large.mean, atol=0, rtol=0)
    torch.testing.assert_close(small.contribution, large.contribution, atol=1e-15, rtol=0)


def test_reverse_direction_and_upper_layers():
    torch.manual_seed(5)
    model = LRN(3, 4, num_layers=2, bidirectional=True, activation="identity")
    x = torch.randn(10, 3)
    out = model(x.unsqueeze(1))[0][:, 0].double()
    for layer in (0, 1):
        for direction in (0, 1):
            tw = token_weights(model, x, layer=layer, direction=direction)
            assert tw.max_error < 1e-12
            w = tw.weights()
            mask = torch.ones(10, 10, dtype=torch.bool).tril(-1) if direction == 1 else \
                torch.ones(10, 10, dtype=torch.bool).triu(1)
            assert (w[mask] == 0).all() and (w[~mask] > 0).all()
            if layer == 1:
                torch.testing.assert_close(tw.hidden, out[:, 4 * direction : 4 * direction + 4], atol=1e-6, rtol=0)
    rev = token_weights(model, x, layer=0, direction=1)
    torch.testing.assert_close(rev.decay(6), rev.mean[:7, 6].flip(0), atol=1e-14, rtol=1e-12)


def test_sequence_model_with_embedding_and_batched_final_weights():
    torch.manual_seed(6)
    model = SequenceModel("lrn", dict(hidden_size=8, activation="identity"), input_size=5, output_size=2,
                          vocab_size=20, readout="last")
    ids = torch.randint(0, 20, (4, 11))
    batched = final_token_weights(model, ids)
    assert batched.shape == (4, 11)
    for n in range(4):
        tw = token_weights(model, ids[n], tokens=[str(int(v)) for v in ids[n]])
        torch.testing.assert_close(batched[n], tw.mean[-1], atol=1e-14, rtol=1e-12)
        assert tw.tokens[0] == str(int(ids[n, 0]))
    torch.testing.assert_close(final_token_weights(model, ids, log=True).exp(), batched)


@settings(max_examples=20, deadline=None)
@given(length=st.integers(1, 25), hidden=st.integers(1, 6), scale=st.floats(0.1, 5.0), seed=st.integers(0, 99))
def test_identity_unfolding_is_exact_for_any_sizes(length, hidden, scale, seed):
    torch.manual_seed(seed)
    model = LRN(2, hidden, activation="identity")
    tw = token_weights(model, torch.randn(length, 2) * scale)
    assert tw.max_error <= 1e-10 * max(1.0, float(tw.hidden.abs().max()))
    assert (tw.mean.diagonal() > 0).all()
    assert math.isclose(tw.relative_error, tw.max_error / max(float(tw.hidden.abs().max()), 1e-300), rel_tol=1e-9)


def test_logit_contributions_sum_to_the_logits_and_batched_attribution_agrees():
    torch.manual_seed(7)
    model = SequenceModel("lrn", dict(hidden_size=6, activation="identity"), input_size=4, output_size=3,
                          vocab_size=15, readout="last")
    ids = torch.randint(0, 15, (5, 13))
    logits = model(ids).double()
    attribution = final_token_attribution(model, ids)
    assert attribution.logit.shape == (5, 13, 3)
    for n in range(5):
        tw = token_weights(model, ids[n])
        shares = tw.logit_contributions(-1)
        torch.testing.assert_close(shares.sum(0) + model.head.bias.double(), logits[n], atol=1e-5, rtol=0)
        torch.testing.assert_close(attribution.logit[n], shares, atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(attribution.weight[n], tw.mean[-1], atol=1e-14, rtol=1e-12)
        torch.testing.assert_close(attribution.contribution[n], tw.contribution[-1], atol=1e-12, rtol=1e-10)
    assert token_weights(LRN(3, 4), torch.randn(5, 3)).readout_weight is None
    with pytest.raises(ValueError, match="SequenceModel"):
        token_weights(LRN(3, 4), torch.randn(5, 3)).logit_contributions()
    assert final_token_attribution(LRN(3, 4, batch_first=True), torch.randn(2, 5, 3)).logit is None


def test_bad_arguments():
    model = LRN(3, 4)
    with pytest.raises(ValueError, match="LRN"):
        token_weights(StackedRNN(3, [4]), torch.randn(5, 3))
    with pytest.raises(ValueError, match="one non-empty sequence"):
        token_weights(model, torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="direction"):
        token_weights(model, torch.randn(5, 3), direction=1)
    with pytest.raises(ValueError, match="layer"):
        token_weights(model, torch.randn(5, 3), layer=1)
    with pytest.raises(ValueError, match="tokens"):
        token_weights(model, torch.randn(5, 3), tokens=["a"])
    tw = token_weights(model, torch.randn(5, 3))
    with pytest.raises(ValueError, match="position"):
        tw.log_weights(t=5)
    with pytest.raises(ValueError, match="unit"):
        tw.log_weights(unit=4)
