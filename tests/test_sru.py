"""SRU: the fused recurrence against a plain loop of the equations (values and gradients),
gradcheck of the hand-written backward, dropout semantics, and state_dict compatibility with the
installed ``sru`` package 2.6 (same outputs and gradients after loading its weights). The
reference comparisons run on both paths: the compiled kernel and the torch-op fallback."""

import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from drnn_demo.models import SRU, SequenceModel, build_model, kernels
from drnn_demo.models.sru import SRUCell, sru_recurrence

pytestmark = pytest.mark.usefixtures("float64")  # reference comparisons at 1e-10


def reference_layer(cell: SRUCell, x, c0):
    """One SRU layer step by step, per direction, reading the weights in the package's layout."""
    L, B, _ = x.shape
    H, n_dir, k = cell.hidden_size, 2 if cell.bidirectional else 1, cell.num_matrices
    residual = x
    if cell.layer_norm is not None and not cell.normalize_after:
        x = cell.layer_norm(x)
    if cell.weight_proj is not None:
        x = x @ cell.weight_proj
    w = cell.weight.view(-1, n_dir, H, k)
    v = cell.weight_c.view(2, n_dir, H)
    b = cell.bias.view(2, n_dir, H)
    outputs, finals = [], []
    for d in range(n_dir):
        c = c0[:, d * H : (d + 1) * H]
        hs = [None] * L
        for t in range(L) if d == 0 else range(L - 1, -1, -1):
            u = [x[t] @ w[:, d, :, m] for m in range(k)]
            f = torch.sigmoid(u[1] + v[0, d] * c + b[0, d])
            r = torch.sigmoid(u[2] + v[1, d] * c + b[1, d])
            c = f * c + (1 - f) * u[0]
            if not cell.has_skip_term:
                skip = 0.0
            elif k == 4:
                skip = u[3]
            else:
                skip = residual[t, :, d * H : (d + 1) * H] * (cell.scale_x if cell.rescale else 1.0)
            hs[t] = r * c + (1 - r) * skip
        outputs.append(torch.stack(hs))
        finals.append(c)
    h = torch.cat(outputs, -1)
    if cell.layer_norm is not None and cell.normalize_after:
        h = cell.layer_norm(h)
    return h, torch.cat(finals, -1)


def reference_sru(model: SRU, x, c0=None):
    if model.batch_first:
        x = x.transpose(0, 1)
    if c0 is None:
        c0 = x.new_zeros(model.num_layers, x.shape[1], model.output_size)
    finals = []
    for i, cell in enumerate(model.rnn_lst):
        x, c = reference_layer(cell, x, c0[i])
        finals.append(c)
    return (x.transpose(0, 1) if model.batch_first else x), torch.stack(finals)


def perturb(model, scale=0.3, seed=0):
    """Move every parameter off its structured initialisation (e.g. zero biases)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model


CONFIGS = [
    dict(),
    dict(num_layers=1, rescale=True, highway_bias=-2.0),
    dict(bidirectional=True),
    dict(bidirectional=True, rescale=True, num_layers=3),
    dict(layer_norm=True),
    dict(layer_norm=True, normalize_after=True),
    dict(projection_size=2, rescale=True),
    dict(has_skip_term=False),
]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("input_size", [3, 4, 8])  # 4 = H (k=3), 8 = 2H (k=3 when bidirectional), 3 (k=4)
def test_equals_reference_loop_values_and_gradients(config, input_size, path):
    torch.manual_seed(0)
    model = perturb(SRU(input_size, 4, **config))
    x = torch.randn(6, 3, input_size, requires_grad=True)
    c0 = torch.randn(model.num_layers, 3, model.output_size, requires_grad=True)
    out, c_n = model(x, c0)
    ref, ref_c = reference_sru(model, x, c0)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(c_n, ref_c, rtol=0, atol=1e-12)
    weights = torch.randn_like(out)
    inputs = [x, c0, *model.parameters()]
    grads = torch.autograd.grad((out * weights).sum() + c_n.sum(), inputs)
    ref_grads = torch.autograd.grad((ref * weights).sum() + ref_c.sum(), inputs)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=0, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(L=st.integers(1, 7), B=st.integers(1, 3), D=st.integers(1, 6), H=st.integers(1, 5),
       bidirectional=st.booleans(), layers=st.integers(1, 2), batch_first=st.booleans(), seed=st.integers(0, 99))
def test_any_shape_equals_reference_loop(L, B, D, H, bidirectional, layers, batch_first, seed):
    torch.manual_seed(seed)
    model = perturb(SRU(D, H, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first), seed=seed)
    x = torch.randn((B, L, D) if batch_first else (L, B, D))
    ref, ref_c = reference_sru(model, x)
    for compiled in (True, False):  # both paths (hypothesis does not mix with function-scoped fixtures)
        with kernels.use_kernels(compiled):
            out, c_n = model(x)
        assert out.shape == ((B, L, model.output_size) if batch_first else (L, B, model.output_size))
        assert c_n.shape == (layers, B, model.output_size)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
        torch.testing.assert_close(c_n, ref_c, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k,skip,mask,scale", [(3, True, False, 1.0), (3, True, False, 1.7), (3, False, False, 1.0),
                                               (4, False, False, 1.0), (3, True, True, 1.3), (4, False, True, 1.0),
                                               (3, False, True, 1.0)])
def test_recurrence_backward_passes_gradcheck(k, skip, mask, scale, path):
    torch.manual_seed(1)
    L, B, N = 5, 2, 3
    u = torch.randn(L, B, k, N, requires_grad=True)
    skip_t = torch.randn(L, B, N, requires_grad=True) if skip else None
    weight_c = torch.randn(2 * N, requires_grad=True)
    bias = torch.randn(2 * N, requires_grad=True)
    c0 = torch.randn(B, N, requires_grad=True)
    mask_t = torch.bernoulli(torch.full((B, N), 0.5)) * 2 if mask else None

    def fn(u, skip_t, weight_c, bias, c0):
        return sru_recurrence(u, skip_t, weight_c, bias, c0, mask_t, scale)

    assert torch.autograd.gradcheck(fn, (u, skip_t, weight_c, bias, c0))


def test_dropout_mask_is_drawn_once_per_sequence_and_only_in_training(path):
    torch.manual_seed(0)
    model = perturb(SRU(4, 6, num_layers=2, dropout=0.5, has_skip_term=False))
    x = torch.randn(9, 5, 4)
    model.train()
    hidden, _ = model.rnn_lst[0](x)  # the first layer has dropout (the last never does)
    dropped = hidden == 0
    assert 0 < dropped.double().mean() < 1
    assert torch.equal(dropped, dropped[:1].expand_as(dropped))  # the same units are dropped at every step
    assert model.rnn_lst[1].dropout == 0
    model.eval()
    out, c_n = model(x)
    ref, ref_c = reference_sru(model, x)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


def test_bidirectional_final_state_of_backward_direction_is_after_step_zero():
    torch.manual_seed(0)
    model = perturb(SRU(3, 4, num_layers=1, bidirectional=True))
    x = torch.randn(6, 2, 3)
    _, c_n = model(x)
    _, c_first = model(x[:1])  # the backward direction's state after only step 0 ...
    _, c_tail = model(x[1:])   # ... differs from the one after steps 5..1, so this checks the order
    assert not torch.allclose(c_first[0, :, 4:], c_tail[0, :, 4:])
    _, ref_c = reference_sru(model, x)
    torch.testing.assert_close(c_n, ref_c, rtol=0, atol=1e-12)


def test_skip_scale_is_the_rescale_constant():
    model = SRU(5, 5, num_layers=1, rescale=True, highway_bias=-1.5)
    assert model.rnn_lst[0].scale_x.item() == pytest.approx(math.sqrt(1 + 2 * math.exp(-1.5)))
    assert SRU(5, 5, num_layers=1).rnn_lst[0].scale_x.item() == 1.0
    assert model.rnn_lst[0].bias[5:].eq(-1.5).all()  # highway_bias initialises the reset-gate bias


def test_registry_and_sequence_model():
    model = build_model("sru", input_size=3, hidden_size=8, num_layers=1, batch_first=True)
    assert isinstance(model, SRU) and model.output_size == 8
    seq = SequenceModel("sru", {"hidden_size": 8, "bidirectional": True}, input_size=3, output_size=5)
    assert seq(torch.randn(2, 7, 3)).shape == (2, 7, 5)


@pytest.mark.parametrize("kwargs,match", [
    (dict(input_size=0, hidden_size=4), "input_size"),
    (dict(input_size=3, hidden_size=-1), "hidden_size"),
    (dict(input_size=3, hidden_size=4, num_layers=0), "num_layers"),
    (dict(input_size=3, hidden_size=4, dropout=1.0), "dropout"),
    (dict(input_size=3, hidden_size=4, projection_size=-2), "projection_size"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SRU(**kwargs)


def test_bad_inputs():
    model = SRU(3, 4)
    with pytest.raises(ValueError, match="input_size"):
        model(torch.randn(5, 2, 4))
    with pytest.raises(ValueError, match="c0"):
        model(torch.randn(5, 2, 3), torch.zeros(1, 2, 4))


# --------------------------------------------------------------------------- the sru package


@pytest.fixture(scope="module")
def sru_package():
    """The installed ``sru`` 2.6 (it compiles a small C++ extension on first import)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import sru
    except Exception as err:  # not installed, or no C++ compiler for its extension
        pytest.skip(f"the sru package is not importable here: {err}")
    assert sru.__version__.startswith("2.6")
    return sru


PACKAGE_CONFIGS = [
    dict(),
    dict(num_layers=1, rescale=True, highway_bias=-1.0),
    dict(bidirectional=True),
    dict(bidirectional=True, rescale=True, num_layers=3),
    dict(layer_norm=True),
    dict(layer_norm=True, normalize_after=True),
    dict(projection_size=3, rescale=True),
    dict(has_skip_term=False),
]


@pytest.mark.parametrize("config", PACKAGE_CONFIGS)
@pytest.mark.parametrize("input_size", [5, 8, 16])
def test_state_dict_from_sru_package_gives_same_outputs_and_gradients(sru_package, config, input_size):
    torch.set_default_dtype(torch.float32)  # the package's CPU kernel is float32 only
    torch.manual_seed(0)
    theirs = perturb(sru_package.SRU(input_size, 8, **config))
    ours = SRU(input_size, 8, **config)
    missing = ours.load_state_dict(theirs.state_dict())  # strict: same names and shapes
    assert not missing.missing_keys and not missing.unexpected_keys
    x = torch.randn(9, 4, input_size)
    c0 = torch.randn(theirs.num_layers, 4, theirs.output_size)
    with torch.no_grad():
        ref, ref_c = theirs(x, c0)  # the package's C++ CPU kernel
        out, c_n = ours(x, c0)
    assert (out - ref).abs().max() <= 1e-5
    assert (c_n - ref_c).abs().max() <= 1e-5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_train, _ = theirs(x, c0)  # the package's autograd training path
    weights = torch.randn_like(ref_train)
    ref_grads = torch.autograd.grad((ref_train * weights).sum(), list(theirs.parameters()))
    grads = torch.autograd.grad((ours(x, c0)[0] * weights).sum(), list(ours.parameters()))
    for g, r in zip(grads, ref_grads, strict=True):
        assert (g - r).abs().max() <= 1e-4 * max(1.0, r.abs().max().item())


def test_default_initialisation_matches_the_package_statistics(sru_package):
    torch.set_default_dtype(torch.float32)
    torch.manual_seed(0)
    theirs = sru_package.SRU(64, 64, num_layers=1, rescale=True, highway_bias=-1.0)
    torch.manual_seed(0)
    ours = SRU(64, 64, num_layers=1, rescale=True, highway_bias=-1.0)
    for (name, a), (_, b) in zip(sorted(theirs.state_dict().items()), sorted(ours.state_dict().items()), strict=True):
        torch.testing.assert_close(a, b, msg=name)  # same RNG calls in the same order: identical values
