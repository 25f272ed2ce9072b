"""LRN: the custom-Function fast path against a plain step-by-step loop of the equations (values,
gates and gradients), gradcheck in float64, parameter layout, and the torch.nn conventions. The
reference comparisons run on both paths of the recurrence: the compiled kernel and the torch-op
fallback (tests/test_kernels.py covers the kernels' own loading, dispatch and threads)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from drnn_demo.models import LRN, MODELS, SequenceModel, build_model, kernels
from drnn_demo.models.lrn import LRNRecurrence, lrn_recurrence

pytestmark = pytest.mark.usefixtures("float64")  # reference comparisons at 1e-10


def reference_direction(x, weight, bias, ln_weight, h0, activation, reverse):
    """One layer and direction of LRN, one step at a time, straight from the equations.
    x: (L, B, D) -> outputs, input gates, forget gates, each (L, B, H)."""
    hidden = weight.shape[0] // 3
    h, outputs, inputs, forgets = h0, {}, {}, {}
    order = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    for t in order:
        pre = x[t] @ weight.T
        if ln_weight is not None:  # RMS norm of the whole 3H pre-activation, then the bias
            pre = ln_weight * pre / torch.sqrt((pre * pre).mean(-1, keepdim=True) + 1e-8)
        p, q, r = (pre + bias).split(hidden, dim=-1)
        i = torch.sigmoid(p + h)
        f = torch.sigmoid(q - h)
        a = i * r + f * h
        h = torch.tanh(a) if activation == "tanh" else a
        outputs[t], inputs[t], forgets[t] = h, i, f
    stack = lambda d: torch.stack([d[t] for t in range(x.shape[0])])  # noqa: E731
    return stack(outputs), stack(inputs), stack(forgets)


def reference_lrn(model, x, hx=None):
    """The whole network, time first: output (L, B, dirs*H), h_n, and the gates of every layer/direction."""
    dirs = model.num_directions
    if hx is None:
        hx = torch.zeros(model.num_layers * dirs, x.shape[1], model.hidden_size)
    finals, inputs, forgets = [], [], []
    for layer in range(model.num_layers):
        outs = []
        for d, suffix in enumerate([f"_l{layer}", f"_l{layer}_reverse"][:dirs]):
            ln = getattr(model, "ln_weight" + suffix) if model.layer_norm else None
            out, i, f = reference_direction(
                x, getattr(model, "weight_ih" + suffix), getattr(model, "bias_ih" + suffix), ln,
                hx[layer * dirs + d], model.activation, reverse=d == 1,
            )
            outs.append(out)
            finals.append(out[0] if d == 1 else out[-1])
            inputs.append(i)
            forgets.append(f)
        x = torch.cat(outs, dim=-1)
    return x, torch.stack(finals), torch.stack(inputs), torch.stack(forgets)


def randomise(model, seed=0):
    """Random biases and norm gains, so that every parameter matters in the comparison."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.startswith("weight"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5 + (1.0 if name.startswith("ln") else 0.0))
    return model


CONFIGS = [
    dict(activation="tanh"),
    dict(activation="identity"),
    dict(activation="tanh", layer_norm=True),
    dict(activation="identity", bidirectional=True),
    dict(activation="tanh", num_layers=3, bidirectional=True, layer_norm=True),
    dict(activation="identity", num_layers=2),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("batch_first", [False, True])
def test_forward_and_gradients_equal_reference_loop(config, batch_first, path):
    torch.manual_seed(0)
    model = randomise(LRN(3, 5, batch_first=batch_first, **config))
    x = torch.randn(8, 4, 3, requires_grad=True)  # time first
    hx = torch.randn(model.num_layers * model.num_directions, 4, 5, requires_grad=True)
    out, h_n, gates = model(x.transpose(0, 1) if batch_first else x, hx, return_gates=True)
    ref_out, ref_h_n, ref_i, ref_f = reference_lrn(model, x, hx)
    if batch_first:
        out = out.transpose(0, 1)
        gates = type(gates)(gates.input.transpose(1, 2), gates.forget.transpose(1, 2))
    assert out.shape == (8, 4, model.output_size)
    assert h_n.shape == (model.num_layers * model.num_directions, 4, 5)
    torch.testing.assert_close(out, ref_out, atol=1e-12, rtol=0)
    torch.testing.assert_close(h_n, ref_h_n, atol=1e-12, rtol=0)
    torch.testing.assert_close(gates.input, ref_i, atol=1e-12, rtol=0)
    torch.testing.assert_close(gates.forget, ref_f, atol=1e-12, rtol=0)

    weights = torch.randn_like(out)  # a generic loss touching every output and every final state
    h_weights = torch.randn_like(h_n)
    params = [x, hx, *model.parameters()]
    fast = torch.autograd.grad((out * weights).sum() + (h_n * h_weights).sum(), params)
    slow = torch.autograd.grad((ref_out * weights).sum() + (ref_h_n * h_weights).sum(), params)
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("activation", ["tanh", "identity"])
@pytest.mark.parametrize("reverse", [False, True])
def test_recurrence_gradcheck(activation, reverse, path):
    torch.manual_seed(1)
    proj = torch.randn(6, 2, 9, requires_grad=True)
    h0 = torch.randn(2, 3, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p, h: lrn_recurrence(p, h, activation, reverse)[0], (proj, h0))


def test_module_gradcheck_through_layers_and_norm(path):
    torch.manual_seed(2)
    model = randomise(LRN(2, 3, num_layers=2, bidirectional=True, layer_norm=True))
    x = torch.randn(5, 2, 2, requires_grad=True)
    hx = torch.randn(4, 2, 3, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, hx: model(x, hx)[0], (x, hx))


@settings(max_examples=25, deadline=None)
@given(
    length=st.integers(1, 12), batch=st.integers(1, 4), hidden=st.integers(1, 6),
    activation=st.sampled_from(["tanh", "identity"]), reverse=st.booleans(), scale=st.floats(0.1, 4.0),
)
def test_recurrence_matches_reference_for_any_shape(length, batch, hidden, activation, reverse, scale):
    gen = torch.Generator().manual_seed(length * 100 + batch * 10 + hidden)
    proj = (scale * torch.randn(length, batch, 3 * hidden, generator=gen)).requires_grad_()
    h0 = torch.randn(batch, hidden, generator=gen).requires_grad_()
    eye = torch.eye(3 * hidden)
    ref_out, ref_i, ref_f = reference_direction(proj, eye, torch.zeros(3 * hidden), None, h0, activation, reverse)
    g = torch.randn(ref_out.shape, generator=gen)
    slow = torch.autograd.grad((ref_out * g).sum(), (proj, h0))
    for compiled in (True, False):  # both paths (hypothesis does not mix with function-scoped fixtures)
        with kernels.use_kernels(compiled):
            out, i, f = lrn_recurrence(proj, h0, activation, reverse)
            fast = torch.autograd.grad((out * g).sum(), (proj, h0))
        torch.testing.assert_close(out, ref_out, atol=1e-12, rtol=0)
        torch.testing.assert_close(i, ref_i, atol=1e-12, rtol=0)
        torch.testing.assert_close(f, ref_f, atol=1e-12, rtol=0)
        for a, b in zip(fast, slow, strict=True):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_float32_fast_path_matches_float64_reference(path):
    """The bench runs float32: the loop's tanh(a) = 2 sigmoid(2a) - 1 must stay accurate there."""
    torch.manual_seed(3)
    model = randomise(LRN(16, 32, num_layers=2))
    x = torch.randn(200, 3, 16)
    ref = reference_lrn(model, x)[0]
    out = model.float()(x.float())[0]
    assert (out.double() - ref).abs().max() < 1e-5


def test_parameter_names_shapes_and_chunk_order():
    model = LRN(3, 4, num_layers=2, bidirectional=True, layer_norm=True)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes == {
        "weight_ih_l0": (12, 3), "bias_ih_l0": (12,), "ln_weight_l0": (12,),
        "weight_ih_l0_reverse": (12, 3), "bias_ih_l0_reverse": (12,), "ln_weight_l0_reverse": (12,),
        "weight_ih_l1": (12, 8), "bias_ih_l1": (12,), "ln_weight_l1": (12,),
        "weight_ih_l1_reverse": (12, 8), "bias_ih_l1_reverse": (12,), "ln_weight_l1_reverse": (12,),
    }
    # p, q, r order: with a zero input the first step sees only the bias, so i = sigmoid(b_p), f = sigmoid(b_q)
    # and h_1 = tanh(sigmoid(b_p) * b_r)
    single = LRN(3, 2)
    with torch.no_grad():
        single.bias_ih_l0.copy_(torch.tensor([1.0, 2.0, -1.0, -2.0, 0.5, 0.25]))
    out, _, gates = single(torch.zeros(1, 1, 3), return_gates=True)
    b_p, b_q, b_r = torch.tensor([1.0, 2.0]), torch.tensor([-1.0, -2.0]), torch.tensor([0.5, 0.25])
    torch.testing.assert_close(gates.input[0, 0, 0], torch.sigmoid(b_p))
    torch.testing.assert_close(gates.forget[0, 0, 0], torch.sigmoid(b_q))
    torch.testing.assert_close(out[0, 0], torch.tanh(torch.sigmoid(b_p) * b_r))


def test_unidirectional_output_is_causal_and_reverse_is_anticausal():
    torch.manual_seed(4)
    x = torch.randn(7, 1, 3, requires_grad=True)
    for bidirectional in (False, True):
        model = LRN(3, 4, bidirectional=bidirectional)
        out = model(x)[0]
        grad = torch.autograd.grad(out[3, 0, :4].sum(), x, retain_graph=True)[0]  # forward direction, t = 3
        grad = grad[:, 0].abs().sum(-1)
        assert (grad[4:] == 0).all() and (grad[:4] > 0).all()
        if bidirectional:
            grad = torch.autograd.grad(out[3, 0, 4:].sum(), x)[0][:, 0].abs().sum(-1)  # reverse direction, t = 3
            assert (grad[:3] == 0).all() and (grad[3:] > 0).all()


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(5)
    model = LRN(3, 6, num_layers=2, dropout=0.5)
    x = torch.randn(5, 2, 3)
    model.eval()
    a, b = model(x)[0], model(x)[0]
    assert torch.equal(a, b)
    torch.testing.assert_close(a, reference_lrn(model, x)[0], atol=1e-12, rtol=0)
    model.train()
    assert not torch.equal(model(x)[0], a)
    single = LRN(3, 6, num_layers=1, dropout=0.5).train()  # no layer above: dropout has nothing to act on
    assert torch.equal(single(x)[0], single.eval()(x)[0])


def test_registry_and_sequence_model_wrap_lrn():
    assert MODELS["lrn"] is LRN
    core = build_model("lrn", input_size=4, hidden_size=6, bidirectional=True, batch_first=True)
    assert core.output_size == 12
    model = SequenceModel("lrn", dict(hidden_size=8, activation="identity"), input_size=5, output_size=2,
                          vocab_size=11, readout="last")
    tokens = torch.randint(0, 11, (3, 9))
    logits = model(tokens)
    assert logits.shape == (3, 2)
    h = model.core(model.embedding(tokens))[0][:, -1]
    torch.testing.assert_close(logits, model.head(h))


def test_state_dict_round_trip_rebuilds_the_same_function():
    torch.manual_seed(6)
    a = randomise(LRN(3, 4, num_layers=2, layer_norm=True, activation="identity"))
    b = LRN(3, 4, num_layers=2, layer_norm=True, activation="identity")
    b.load_state_dict(a.state_dict())
    x = torch.randn(6, 2, 3)
    assert torch.equal(a(x)[0], b(x)[0])


@pytest.mark.parametrize(
    "kwargs",
    [dict(hidden_size=0), dict(num_layers=0), dict(activation="relu"), dict(dropout=1.0), dict(dropout=-0.1),
     dict(input_size=2.5)],
)
def test_bad_arguments_raise_value_error(kwargs):
    args = dict(input_size=3, hidden_size=4) | kwargs
    with pytest.raises(ValueError):
        LRN(**args)


def test_bad_inputs_raise_value_error():
    model = LRN(3, 4, num_layers=2)
    with pytest.raises(ValueError, match="input_size"):
        model(torch.randn(5, 2, 4))
    with pytest.raises(ValueError, match="hx"):
        model(torch.randn(5, 2, 3), torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="activation"):
        lrn_recurrence(torch.randn(2, 1, 3), torch.zeros(1, 1), "relu")


def test_gates_are_not_differentiable_and_long_identity_runs_stay_finite(path):
    torch.manual_seed(7)
    proj = torch.randn(3000, 2, 12, requires_grad=True)
    out, i, f = LRNRecurrence.apply(proj, torch.zeros(2, 4), False, False)
    assert not i.requires_grad and not f.requires_grad
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(proj.grad).all()
