"""The compiled LRN/SRU kernels (drnn_demo.models.kernels): which path a tensor takes (CUDA and
every other device take torch ops), values and gradients against the step-by-step reference loops
of test_lrn.py / test_sru.py in float64 and float32 at sizes with several thread columns,
gradcheck, identical results on 1 and 2 threads, loading from the cache without compiling, and
the fallback with one warning when the build fails."""

import os
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from test_lrn import reference_direction
from test_sru import perturb, reference_sru

from drnn_demo.models import LRN, SRU, kernels
from drnn_demo.models.lrn import lrn_recurrence
from drnn_demo.models.sru import sru_recurrence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def compiled():
    """The kernels loaded (compiled on first use if the cache has none)."""
    if not kernels.available():
        pytest.skip(f"compiled kernels unavailable here: {kernels.status()['error']}")
    return kernels.ops()


# --------------------------------------------------------------------------------- dispatch


@pytest.mark.parametrize("device", ["cuda", "cuda:1", "meta", "mps"])
def test_non_cpu_devices_take_the_torch_path(device):
    assert kernels.backend(device, torch.float32) == "torch"


def test_cpu_float_tensors_take_the_kernel_and_other_dtypes_torch(compiled):
    assert kernels.backend(torch.zeros(2)) == "cpp"
    assert kernels.backend(torch.zeros(2, dtype=torch.float64)) == "cpp"
    assert kernels.backend("cpu", torch.float32) == "cpp"
    for dtype in (torch.float16, torch.bfloat16):
        assert kernels.backend(torch.zeros(2, dtype=dtype)) == "torch"
    with kernels.use_kernels(False):
        assert kernels.backend(torch.zeros(2)) == "torch"
    assert kernels.backend(torch.zeros(2)) == "cpp"


class _Spy:
    """Stands in for the operator namespace and records the calls."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append(name)


def test_a_torch_backend_means_no_compiled_code_forward_or_backward(monkeypatch):
    """What a CUDA tensor gets (``backend`` says "torch"): the torch ops, forward and backward."""
    assert kernels.backend(torch.empty(2, device="meta")) == "torch"
    spy = _Spy()
    monkeypatch.setattr(kernels, "ops", lambda: spy)
    monkeypatch.setattr(kernels, "backend", lambda *args: "torch")
    torch.manual_seed(0)
    lrn, sru = LRN(3, 4), SRU(3, 4, num_layers=1)
    x = torch.randn(5, 2, 3, requires_grad=True)
    (lrn(x)[0].sum() + sru(x)[0].sum()).backward()
    assert spy.calls == []
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_cpu_tensors_call_the_kernel_forward_and_backward(compiled, monkeypatch):
    calls = []
    real = kernels.ops()

    class Recording:
        def __getattr__(self, name):
            calls.append(name)
            return getattr(real, name)

    monkeypatch.setattr(kernels, "ops", lambda: Recording())
    LRN(3, 4)(torch.randn(5, 2, 3))[0].sum().backward()
    SRU(3, 4, num_layers=1)(torch.randn(5, 2, 3))[0].sum().backward()
    assert calls == ["lrn_forward", "lrn_backward", "sru_forward", "sru_backward"]


# --------------------------------------------------------------------------------- numerics

# Tolerances of the compiled path against the float64 reference loop. In float32 the torch-op
# fallback is off by up to ~3e-5 here as well (float32 matmuls and a few dozen steps of rounding).
TOLERANCE = {torch.float64: dict(atol=1e-12, rtol=0), torch.float32: dict(atol=1e-4, rtol=1e-4)}
GRAD_TOLERANCE = {torch.float64: 1e-10, torch.float32: 2e-4}  # relative to the gradient's largest entry


def assert_grad_close(a, b, dtype):
    assert (a.double() - b).abs().max() <= GRAD_TOLERANCE[dtype] * max(1.0, b.abs().max().item())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("activation", ["tanh", "identity"])
@pytest.mark.parametrize("reverse", [False, True])
def test_lrn_kernel_equals_reference_loop(compiled, dtype, activation, reverse):
    """H = 150: two full 64-unit columns and a partial one per batch row; B = 3."""
    gen = torch.Generator().manual_seed(11)
    L, B, H = 16, 3, 150
    proj64 = torch.randn(L, B, 3 * H, generator=gen, dtype=torch.float64) * 1.5
    h064 = torch.randn(B, H, generator=gen, dtype=torch.float64)
    g = torch.randn(L, B, H, generator=gen, dtype=torch.float64)
    proj64.requires_grad_(), h064.requires_grad_()
    eye = torch.eye(3 * H, dtype=torch.float64)
    ref, ref_i, ref_f = reference_direction(proj64, eye, torch.zeros(3 * H, dtype=torch.float64), None, h064,
                                            activation, reverse)
    ref_grads = torch.autograd.grad((ref * g).sum(), (proj64, h064))
    proj, h0 = proj64.detach().to(dtype).requires_grad_(), h064.detach().to(dtype).requires_grad_()
    assert kernels.backend(proj) == "cpp"
    out, i, f = lrn_recurrence(proj, h0, activation, reverse)
    grads = torch.autograd.grad((out * g.to(dtype)).sum(), (proj, h0))
    assert out.dtype == dtype
    for a, b in ((out, ref), (i, ref_i), (f, ref_f)):
        torch.testing.assert_close(a.double(), b, **TOLERANCE[dtype])
    for a, b in zip(grads, ref_grads, strict=True):
        assert_grad_close(a, b, dtype)


SRU_CONFIGS = [
    dict(input_size=150, hidden_size=150),  # k = 3, skip = x
    dict(input_size=20, hidden_size=150),  # k = 4, skip = U_3
    dict(input_size=150, hidden_size=150, has_skip_term=False),
    dict(input_size=150, hidden_size=75, bidirectional=True, rescale=True, highway_bias=-1.0),
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("config", SRU_CONFIGS)
def test_sru_kernel_equals_reference_loop(compiled, dtype, config):
    torch.manual_seed(12)
    model = perturb(SRU(num_layers=1, **config).double(), seed=12)
    x64 = torch.randn(12, 3, config["input_size"], dtype=torch.float64, requires_grad=True)
    c064 = torch.randn(1, 3, model.output_size, dtype=torch.float64, requires_grad=True)
    ref, ref_c = reference_sru(model, x64, c064)
    g = torch.randn_like(ref)
    ref_grads = torch.autograd.grad((ref * g).sum() + ref_c.sum(), [x64, c064, *model.parameters()])
    model = model.to(dtype)
    x, c0 = x64.detach().to(dtype).requires_grad_(), c064.detach().to(dtype).requires_grad_()
    out, c_n = model(x, c0)
    grads = torch.autograd.grad((out * g.to(dtype)).sum() + c_n.sum(), [x, c0, *model.parameters()])
    torch.testing.assert_close(out.double(), ref, **TOLERANCE[dtype])
    torch.testing.assert_close(c_n.double(), ref_c, **TOLERANCE[dtype])
    for a, b in zip(grads, ref_grads, strict=True):  # includes weight_c and bias: the kernel's partial sums
        assert_grad_close(a, b, dtype)


@pytest.mark.parametrize("k,skip,mask", [(3, True, True), (4, False, True), (3, False, False)])
def test_sru_kernel_gradcheck_with_several_columns(compiled, k, skip, mask):
    torch.manual_seed(13)
    L, B, N = 3, 1, 66  # two columns, the second partial
    dt = dict(dtype=torch.float64)
    u = torch.randn(L, B, k, N, **dt, requires_grad=True)
    skip_t = torch.randn(L, B, N, **dt, requires_grad=True) if skip else None
    weight_c, bias = torch.randn(2 * N, **dt, requires_grad=True), torch.randn(2 * N, **dt, requires_grad=True)
    c0 = torch.randn(B, N, **dt, requires_grad=True)
    mask_t = torch.bernoulli(torch.full((B, N), 0.5, **dt)) * 2 if mask else None
    assert kernels.backend(u) == "cpp"
    # fast mode (random projections of the Jacobian): the full one at these sizes runs in test_sru.py
    assert torch.autograd.gradcheck(lambda *a: sru_recurrence(*a, mask_t, 1.3), (u, skip_t, weight_c, bias, c0),
                                    fast_mode=True)


@pytest.mark.parametrize("reverse", [False, True])
def test_lrn_kernel_gradcheck_with_several_columns(compiled, reverse):
    torch.manual_seed(14)
    proj = torch.randn(3, 1, 3 * 66, dtype=torch.float64, requires_grad=True)  # two columns, one partial
    h0 = torch.randn(1, 66, dtype=torch.float64, requires_grad=True)
    assert kernels.backend(proj) == "cpp"
    assert torch.autograd.gradcheck(lambda p, h: lrn_recurrence(p, h, "tanh", reverse)[0], (proj, h0),
                                    fast_mode=True)


def test_results_do_not_depend_on_the_thread_count(compiled):
    """Every column computes alone, so 1 and 2 threads give bit-identical outputs. The gradients pass through
    torch's own matmuls and sums too, whose reduction order follows the thread count on some CPUs (AVX-512):
    they agree to float32 round-off."""
    torch.manual_seed(15)
    lrn, sru = LRN(32, 256), SRU(32, 256, num_layers=1)
    x = torch.randn(64, 16, 32)
    previous = torch.get_num_threads()
    outputs, gradients = [], []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            outs, grads = [], []
            for model in (lrn, sru):
                model.zero_grad()
                out = model(x)[0]
                out.square().sum().backward()
                outs.append(out.detach())
                grads += [p.grad.clone() for p in model.parameters()]
            outputs.append(outs)
            gradients.append(grads)
    finally:
        torch.set_num_threads(previous)
    for a, b in zip(*outputs, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(*gradients, strict=True):
        assert torch.linalg.vector_norm(a - b) <= 1e-5 * torch.linalg.vector_norm(a)


def test_kernel_rejects_bad_buffers_with_a_clear_error(compiled):
    proj = torch.randn(3, 2, 12)
    states, gates = torch.empty(4, 2, 4), torch.empty(3, 2, 2, 4)
    with pytest.raises(RuntimeError, match="h0 must have shape"):
        compiled.lrn_forward(proj, torch.zeros(2, 5), states, gates, True, False)
    with pytest.raises(RuntimeError, match="proj must be contiguous"):
        compiled.lrn_forward(torch.randn(3, 2, 24)[..., ::2], torch.zeros(2, 4), states, gates, True, False)
    with pytest.raises(RuntimeError, match="dtype"):
        compiled.lrn_forward(proj, torch.zeros(2, 4, dtype=torch.float64), states, gates, True, False)


def test_loading_keeps_denormals():
    """-ffast-math is a compile flag only: loading the library must not switch on flush-to-zero."""
    kernels.available()
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # a float32 denormal
    assert (tiny * 0.5).item() > 0


# --------------------------------------------------------------------------- loading, fallback


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env={**os.environ, **env})


def test_a_second_process_loads_the_cached_library_without_compiling(compiled):
    result = _run("""
        import time
        start = time.perf_counter()
        from drnn_demo.models import kernels
        assert kernels.available(), kernels.status()
        print(kernels._state["built"], round(time.perf_counter() - start, 2))
    """)
    assert result.returncode == 0, result.stderr
    built, seconds = result.stdout.split()
    assert built == "False" and "compiling" not in result.stderr
    assert float(seconds) < 20  # the import of torch and drnn_demo included; a compile takes far longer


def test_a_failed_build_warns_once_and_falls_back_to_torch_ops(tmp_path):
    """No cached library and no working compiler: import works, one warning, the torch-op path."""
    result = _run("""
        import warnings
        import torch
        from drnn_demo.models import LRN, SRU, kernels
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert kernels.backend(torch.zeros(1)) == "torch"
            out = LRN(3, 4)(torch.randn(5, 2, 3))[0]
            out.sum().backward()
            SRU(3, 4)(torch.randn(5, 2, 3))[0].sum().backward()
        mine = [w for w in caught if "compiled LRN/SRU kernels are unavailable" in str(w.message)]
        assert len(mine) == 1, [str(w.message) for w in caught]
        assert kernels.status()["error"]
        print("ok", torch.isfinite(out).all().item())
    """, TORCH_EXTENSIONS_DIR=str(tmp_path), CXX=str(tmp_path / "no-such-compiler"),
        PATH=os.path.dirname(sys.executable) + ":/nonexistent")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok", "True"]


def test_the_environment_switch_disables_the_kernels_without_a_warning(monkeypatch):
    for key, value in (("tried", False), ("ops", None), ("error", None)):  # as in a fresh process
        monkeypatch.setitem(kernels._state, key, value)
    monkeypatch.setenv("DRNN_DEMO_KERNELS", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernels.backend(torch.zeros(1)) == "torch"
    assert kernels.status()["error"] == "disabled by DRNN_DEMO_KERNELS=0"
    out = LRN(3, 4)(torch.randn(4, 2, 3))[0]  # the torch-op path
    assert torch.isfinite(out).all()


def test_the_cpp_source_ships_with_the_package():
    """pyproject's package-data must carry the .cpp, or an installed copy could never build."""
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        data = tomllib.load(f)["tool"]["setuptools"]["package-data"]
    assert "models/kernels/*.cpp" in data.get("drnn_demo", [])
    assert kernels.SOURCE.is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert kernels.library_name().startswith("drnn_demo_kernels_")


def test_bench_reports_every_thread_count_side_by_side():
    from drnn_demo import bench

    seen = []
    comparison = bench.Comparison("toy", lambda: {"base": lambda: seen.append(torch.get_num_threads()),
                                                  "other": lambda: None}, "")
    previous = torch.get_num_threads()
    rows = bench.measure(comparison, repeats=1, warmup=0, threads=[2, 1])
    assert torch.get_num_threads() == previous
    assert seen == [2, 1]  # each count really set while timing
    assert [(r["case"], r["threads"]) for r in rows] == [("base", 2), ("other", 2), ("base", 1), ("other", 1)]
    table = bench.format_table(rows).splitlines()
    assert "2 threads ms" in table[0] and "1 thread ms" in table[0]
    assert len(table) == 3 and table[1].count("|") == 2  # one line per case, both counts on it
    assert bench.thread_counts([1, 1, 2]) == [1, 2]
    with pytest.raises(ValueError, match="threads"):
        bench.thread_counts([0])
