"""asRNN / expRNN: the fused path against the step-by-step equations, orthogonality through
training, the linear limit, the closed-form inverse, initialisations, and the optimizer groups."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from drnn_demo.models import ASRNN, SequenceModel, build_model
from drnn_demo.models.asrnn import make_optimizer, orthogonal_param_groups, skew

pytestmark = pytest.mark.usefixtures("float64")  # reference comparisons at 1e-10


def reference(model: ASRNN, x, hx=None):
    """The equations step by step: z_t = W_xh x_t + b + W_hh h_{t-1}; h_t = W_f^{-1} tanh(W_f z_t)
    (asRNN, with W_f^{-1} from torch.linalg.inv) or modReLU(z_t) (expRNN)."""
    if model.batch_first:
        x = x.transpose(0, 1)
    a = skew(model.skew_hh)
    eye = torch.eye(model.hidden_size)
    w_hh = torch.linalg.matrix_exp(a) if model.parametrization == "expm" else torch.linalg.inv(eye + a) @ (eye - a)
    h = x.new_zeros(x.shape[1], model.hidden_size) if hx is None else hx[0]
    outputs = []
    for x_t in x:
        z = x_t @ model.weight_ih.T + h @ w_hh.T
        if model.nonlinearity == "asrnn":
            if model.bias_ih is not None:
                z = z + model.bias_ih
            a_f = skew(model.skew_f)
            u_f = torch.linalg.matrix_exp(a_f) if model.parametrization == "expm" \
                else torch.linalg.inv(eye + a_f) @ (eye - a_f)
            w_f = u_f @ torch.diag(model.s.abs() + model.eps)
            h = torch.tanh(z @ w_f.T) @ torch.linalg.inv(w_f).T
        else:
            h = torch.sign(z) * torch.relu(z.abs() + model.modrelu_bias)
        outputs.append(h)
    out = torch.stack(outputs)
    return (out.transpose(0, 1) if model.batch_first else out), out[-1:]


def trained_like(model: ASRNN, seed=0, scale=0.5):
    """Parameters away from their structured start (U_f != I, spread saturation levels)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model


@pytest.mark.parametrize("nonlinearity", ["asrnn", "modrelu"])
@pytest.mark.parametrize("parametrization", ["expm", "cayley"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_equals_reference_loop_values_and_gradients(nonlinearity, parametrization, batch_first):
    torch.manual_seed(0)
    model = trained_like(ASRNN(3, 6, nonlinearity=nonlinearity, parametrization=parametrization,
                               a=0.1, b=2.0, batch_first=batch_first))
    x = torch.randn((4, 7, 3) if batch_first else (7, 4, 3), requires_grad=True)
    hx = torch.randn(1, 4, 6, requires_grad=True)
    out, h_n = model(x, hx)
    ref, ref_n = reference(model, x, hx)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    torch.testing.assert_close(h_n, ref_n, rtol=0, atol=1e-10)
    weights = torch.randn_like(out)
    inputs = [x, hx, *model.parameters()]
    grads = torch.autograd.grad((out * weights).sum(), inputs)
    ref_grads = torch.autograd.grad((ref * weights).sum(), inputs)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-7, atol=1e-9)


@settings(max_examples=20, deadline=None)
@given(L=st.integers(1, 6), B=st.integers(1, 3), D=st.integers(1, 4), H=st.integers(1, 6),
       modrelu=st.booleans(), seed=st.integers(0, 99))
def test_any_shape_equals_reference_loop(L, B, D, H, modrelu, seed):
    torch.manual_seed(seed)
    model = trained_like(ASRNN(D, H, nonlinearity="modrelu" if modrelu else "asrnn", a=0.0, b=3.0), seed=seed)
    x = torch.randn(L, B, D)
    out, h_n = model(x)
    ref, ref_n = reference(model, x)
    assert out.shape == (L, B, H) and h_n.shape == (1, B, H)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("parametrization", ["expm", "cayley"])
@pytest.mark.parametrize("init", ["henaff", "cayley"])
def test_weight_hh_stays_orthogonal_through_optimisation(parametrization, init):
    torch.set_default_dtype(torch.float32)  # the precision a user trains in
    torch.manual_seed(0)
    model = SequenceModel("asrnn", {"hidden_size": 64, "parametrization": parametrization, "init": init,
                                    "a": 0.5, "b": 1.5}, input_size=4, output_size=3)
    optimizer = make_optimizer(model, lr=1e-2, orthogonal_lr=1e-2)
    start = model.core.weight_hh.detach().clone()
    x, y = torch.randn(16, 30, 4), torch.randint(0, 3, (16, 30))
    for _ in range(20):
        loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, 3), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    eye = torch.eye(64, dtype=torch.float64)
    for w in (model.core.weight_hh, model.core.basis_f):
        w = w.detach().double()
        assert torch.linalg.matrix_norm(w.T @ w - eye) <= 1e-5
    assert (model.core.weight_hh.detach() - start).abs().max() > 1e-2  # it did move


def test_tiny_saturation_is_the_linear_orthogonal_rnn():
    torch.manual_seed(0)
    model = trained_like(ASRNN(3, 8, a=0.0, b=0.0, eps=1e-6))
    with torch.no_grad():
        model.s.zero_()
    x = torch.randn(20, 2, 3)
    out, _ = model(x)
    w_hh = model.weight_hh
    h, linear = torch.zeros(2, 8), []
    for x_t in x:
        h = x_t @ model.weight_ih.T + model.bias_ih + h @ w_hh.T
        linear.append(h)
    linear = torch.stack(linear)
    assert linear.abs().max() > 1  # not a trivially small signal
    torch.testing.assert_close(out, linear, rtol=0, atol=1e-8)
    # ... and large saturation does saturate: |W_f h_t| = |tanh(.)| < 1
    with torch.no_grad():
        model.s.fill_(5.0)
    m = model.matrices()
    out, _ = model(x)
    assert (out @ m["W_f"].T).abs().max() <= 1 + 1e-12
    assert not torch.allclose(out, linear, atol=1e-2)


def test_closed_form_inverse_of_w_f_equals_linalg_inv():
    torch.manual_seed(0)
    model = trained_like(ASRNN(3, 10, a=0.01, b=3.0))
    m = model.matrices()
    torch.testing.assert_close(m["W_f_inv"], torch.linalg.inv(m["W_f"]), rtol=0, atol=1e-10)
    torch.testing.assert_close(m["W_f"], m["U_f"] @ torch.diag(model.s.abs() + model.eps))
    torch.testing.assert_close(m["saturation"], model.s.detach().abs() + model.eps)


@pytest.mark.parametrize("nonlinearity", ["asrnn", "modrelu"])
def test_gradients_reach_every_parameter(nonlinearity):
    torch.manual_seed(0)
    model = SequenceModel(nonlinearity if nonlinearity == "asrnn" else "exprnn",
                          {"hidden_size": 6, "a": 0.1, "b": 1.0}, input_size=2, output_size=3)
    x = torch.randn(4, 12, 2)
    model(x).pow(2).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        grad = p.grad.triu(1) if name.endswith(("skew_hh", "skew_f")) else p.grad
        assert grad.abs().sum() > 0, name


def test_henaff_and_cayley_initialisations():
    torch.manual_seed(0)
    model = ASRNN(2, 7, init="henaff")
    a = skew(model.skew_hh).detach()
    angles = torch.diagonal(a, 1)[::2].detach()
    assert (angles.abs() <= math.pi).all() and angles.abs().max() > 0.5
    off_block = a.clone()
    for i in range(0, 6, 2):
        off_block[i, i + 1] = off_block[i + 1, i] = 0
    assert off_block.abs().max() == 0  # 2 x 2 blocks only; the odd last unit has none
    w = model.weight_hh.detach()
    torch.testing.assert_close(w[:2, :2], torch.tensor([[math.cos(angles[0]), math.sin(angles[0])],
                                                        [-math.sin(angles[0]), math.cos(angles[0])]]))
    assert w[6, 6] == pytest.approx(1.0)
    cayley = torch.diagonal(skew(ASRNN(2, 8, init="cayley").skew_hh), 1)[::2]
    assert (cayley <= 0).all() and (cayley >= -1).all()  # -tan(u/2), u in [0, pi/2]
    fresh = ASRNN(2, 8, a=0.3, b=0.6)
    torch.testing.assert_close(fresh.basis_f, torch.eye(8))
    assert ((fresh.s >= 0.3) & (fresh.s <= 0.6)).all()


def test_cayley_parametrization_is_the_cayley_map():
    torch.manual_seed(0)
    model = trained_like(ASRNN(2, 5, parametrization="cayley"))
    a, eye = skew(model.skew_hh), torch.eye(5)
    torch.testing.assert_close(model.weight_hh, torch.linalg.inv(eye + a) @ (eye - a))


def test_optimizer_gives_orthogonal_parameters_their_own_learning_rate():
    torch.manual_seed(0)
    model = SequenceModel("asrnn", {"hidden_size": 6, "a": 0.2, "b": 0.4}, input_size=2, output_size=3)
    groups = orthogonal_param_groups(model, lr=1e-3)
    assert [g["lr"] for g in groups] == [1e-3, 1e-4]
    assert groups[1]["params"] == [model.core.skew_hh]
    assert len(orthogonal_param_groups(model, 1e-3, include_basis_f=True)[1]["params"]) == 2
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = make_optimizer(model, lr=1e-3, orthogonal_lr=1e-5, alpha=0.9)
    model(torch.randn(3, 5, 2)).sum().backward()
    optimizer.step()
    # RMSprop's first step moves each parameter by lr / sqrt(1 - alpha) where its gradient is not 0
    step_hh = (model.core.skew_hh.detach() - before["core.skew_hh"]).abs().max()
    step_ih = (model.core.weight_ih.detach() - before["core.weight_ih"]).abs().max()
    assert step_hh == pytest.approx(1e-5 / math.sqrt(0.1), rel=1e-3)
    assert step_ih == pytest.approx(1e-3 / math.sqrt(0.1), rel=1e-3)
    assert len(orthogonal_param_groups(torch.nn.LSTM(2, 3), 1e-3)) == 1


def test_registry_exprnn_and_matrices():
    model = build_model("exprnn", input_size=3, hidden_size=5, batch_first=True)
    assert model.nonlinearity == "modrelu" and model.bias_ih is None and model.output_size == 5
    m = model.matrices()
    assert set(m) == {"W_xh", "b", "W_hh", "modrelu_bias"}
    m = build_model("asrnn", input_size=3, hidden_size=5).matrices()
    assert set(m) == {"W_xh", "b", "W_hh", "U_f", "W_f", "W_f_inv", "saturation"}
    assert m["W_xh"].shape == (5, 3) and m["W_hh"].shape == (5, 5) and m["saturation"].shape == (5,)


@pytest.mark.parametrize("kwargs,match", [
    (dict(nonlinearity="relu"), "nonlinearity"),
    (dict(parametrization="svd"), "parametrization"),
    (dict(init="haar"), "init"),
    (dict(eps=0.0), "eps"),
    (dict(a=1.0, b=0.5), "a must be <= b"),
    (dict(a=float("nan")), "a must be a finite number"),
    (dict(hidden_size=0), "hidden_size"),
])
def test_bad_arguments(kwargs, match):
    args = dict(input_size=2, hidden_size=4) | kwargs
    with pytest.raises(ValueError, match=match):
        ASRNN(**args)


def test_bad_inputs():
    model = ASRNN(2, 4)
    with pytest.raises(ValueError, match="input_size"):
        model(torch.randn(3, 2, 5))
    with pytest.raises(ValueError, match="hx"):
        model(torch.randn(3, 2, 2), torch.zeros(2, 4))


def test_frozen_weights_give_the_same_outputs_and_gradients_step_by_step():
    torch.manual_seed(0)
    model = trained_like(ASRNN(3, 5, a=0.1, b=1.0))
    x = torch.randn(6, 2, 3)
    full, _ = model(x)
    grads = torch.autograd.grad(full.sum(), list(model.parameters()))
    with model.frozen_weights():
        h, steps = None, []
        for t in range(6):
            out, h = model(x[t : t + 1], h)
            steps.append(out)
        stepped = torch.cat(steps)
        stepped_grads = torch.autograd.grad(stepped.sum(), list(model.parameters()))
    assert model._frozen is None
    torch.testing.assert_close(stepped, full, rtol=0, atol=1e-12)
    for g, r in zip(stepped_grads, grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-12)
