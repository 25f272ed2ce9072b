r"""Compiled CPU kernels for the element-wise recurrences of LRN and SRU (forward and backward).

``recurrences.cpp`` (shipped next to this file) registers four torch operators in the namespace
``drnn_demo_kernels``: ``lrn_forward``, ``lrn_backward``, ``sru_forward`` and ``sru_backward``.
The recurrences are split into independent columns (a batch row times a block of at most 64
hidden units), run in parallel on torch's thread pool (``torch.set_num_threads`` applies), and
each column runs the whole loop over time in C++: one pass over its memory per step, no Python
and no thread barrier per step. The equations are in :class:`drnn_demo.models.lrn.LRNRecurrence`
and :class:`drnn_demo.models.sru.SRURecurrence`, whose torch-op loops are the fallback.

The extension is compiled on first use with ``torch.utils.cpp_extension.load`` (g++ and ninja)
into ``<torch extensions dir>/drnn_demo_kernels_<hash>/`` (``$TORCH_EXTENSIONS_DIR`` or
``~/.cache/torch_extensions``), where the hash covers the source, the flags and the torch and
Python versions; later processes load the cached library without compiling. If the build fails
(no compiler, no ninja, read-only cache) one ``RuntimeWarning`` says why and every recurrence
takes the torch-op path. ``DRNN_DEMO_KERNELS=0`` disables the kernels (torch ops everywhere).

Which path a tensor takes: :func:`backend` — ``"cpp"`` for float32/float64 CPU tensors when the
kernels are available and enabled, ``"torch"`` otherwise (CUDA and every other device, other
dtypes).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import sys
import threading
import warnings
from pathlib import Path

import torch

NAMESPACE = "drnn_demo_kernels"
SOURCE = Path(__file__).with_name("recurrences.cpp")
# -ffast-math lets gcc vectorise exp (glibc's libmvec); it is a compile flag only, so the linker
# does not add crtfastmath (which would flush denormals to zero in the whole process).
CFLAGS = ("-O3", "-ffast-math", "-fopenmp", "-DNDEBUG")
LDFLAGS = ("-fopenmp",)
# Wider vectors where torch itself detected them at run time (part of the library's hash, so a
# cache shared by different CPUs keeps one build per instruction set).
ISA_FLAGS = {"AVX2": ("-mavx2", "-mfma"), "AVX512": ("-mavx2", "-mfma")}
DTYPES = (torch.float32, torch.float64)
ENV_SWITCH = "DRNN_DEMO_KERNELS"

_lock = threading.Lock()
_state: dict = {"tried": False, "ops": None, "error": None, "built": False}
_enabled = [True]


def compile_flags() -> list[str]:
    """The compiler flags: :data:`CFLAGS` plus the vector extensions of this CPU (see :data:`ISA_FLAGS`)."""
    return [*CFLAGS, *ISA_FLAGS.get(torch.backends.cpu.get_cpu_capability(), ())]


def library_name() -> str:
    """``drnn_demo_kernels_<hash>``: a new name (a new build) whenever the source, flags or versions change."""
    digest = hashlib.sha256()
    for part in (SOURCE.read_bytes(), repr((compile_flags(), LDFLAGS)).encode(), torch.__version__.encode(),
                 sys.version.encode(), platform.machine().encode()):
        digest.update(part)
    return f"{NAMESPACE}_{digest.hexdigest()[:12]}"


def build_directory() -> Path:
    """Where the library is built and cached: ``$TORCH_EXTENSIONS_DIR`` or torch's default root, then the name."""
    from torch.utils.cpp_extension import get_default_build_root

    return Path(os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root()) / library_name()


def _load():
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "off", "false", "no", "torch"):
        raise _Disabled(f"disabled by {ENV_SWITCH}={os.environ[ENV_SWITCH]}")
    name, directory = library_name(), build_directory()
    library = directory / f"{name}.so"
    if library.is_file():
        try:
            torch.ops.load_library(str(library))
            return getattr(torch.ops, NAMESPACE)
        except OSError:  # e.g. half-written by a concurrent build: let cpp_extension (with its lock) redo it
            pass
    from torch.utils import cpp_extension

    print(f"drnn_demo: compiling the LRN/SRU CPU kernels once (a minute at most) into {directory}",
          file=sys.stderr, flush=True)
    directory.mkdir(parents=True, exist_ok=True)
    cpp_extension.load(name, [str(SOURCE)], extra_cflags=compile_flags(), extra_ldflags=list(LDFLAGS),
                       build_directory=str(directory), is_python_module=False, verbose=False)
    _state["built"] = True
    return getattr(torch.ops, NAMESPACE)


class _Disabled(Exception):
    pass


def _reason(err: Exception) -> str:
    """The telling line of a build failure (the compiler's complaint, not the command line)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    telling = [line for line in lines if not line.startswith("Error building extension")
               and ("error" in line.lower() or "not found" in line.lower())]
    return f"{type(err).__name__}: {(telling or lines or [''])[0][:300]}"


def ops():
    """The operator namespace ``torch.ops.drnn_demo_kernels`` (loading or building it on the first
    call), or None if the kernels cannot be had here (see :func:`status`)."""
    if _state["tried"]:
        return _state["ops"]
    with _lock:
        if not _state["tried"]:
            try:
                namespace = _load()
                namespace.lrn_forward  # noqa: B018 -- resolves the schema: fails if registration did not happen
                _state["ops"] = namespace
            except _Disabled as err:
                _state["error"] = str(err)
            except Exception as err:  # no compiler, no ninja, unwritable cache, ...
                _state["error"] = f"{type(err).__name__}: {err}"
                warnings.warn(f"drnn_demo: the compiled LRN/SRU kernels are unavailable ({_reason(err)}); using "
                              "the slower torch-op recurrences (kernels.status()['error'] has the full message)",
                              RuntimeWarning, stacklevel=2)
            _state["tried"] = True
    return _state["ops"]


def available() -> bool:
    """True if the compiled kernels are loaded (building them if needed)."""
    return ops() is not None


def status() -> dict:
    """``{"available", "enabled", "library", "error"}``: what :func:`ops` found (after trying)."""
    ops()
    return {"available": _state["ops"] is not None, "enabled": _enabled[0],
            "library": str(build_directory() / f"{library_name()}.so"), "error": _state["error"]}


def backend(tensor_or_device, dtype: torch.dtype | None = None) -> str:
    """``"cpp"`` if a recurrence on this tensor (or device and dtype) runs the compiled kernel,
    ``"torch"`` if it takes the torch-op path: every non-CPU device (CUDA tensors never reach
    the C++ code), dtypes other than float32/float64, kernels disabled or unavailable."""
    if isinstance(tensor_or_device, torch.Tensor):
        device, dtype = tensor_or_device.device, tensor_or_device.dtype
    else:
        device = torch.device(tensor_or_device)
        dtype = dtype or torch.get_default_dtype()
    if device.type != "cpu" or dtype not in DTYPES or not _enabled[0]:
        return "torch"
    return "cpp" if available() else "torch"


@contextlib.contextmanager
def use_kernels(enabled: bool):
    """Within the block, recurrences use the compiled kernels (True, if available) or torch ops (False)."""
    previous = _enabled[0]
    _enabled[0] = bool(enabled)
    try:
        yield
    finally:
        _enabled[0] = previous


# --------------------------------------------------------------------- the recurrences' entry points
# Only for CPU float32/float64 tensors (``backend(t) == "cpp"``); shapes and equations as in
# LRNRecurrence (lrn.py) and SRURecurrence (sru.py), whose autograd Functions call these.


def lrn_forward(proj, h0, states, gates, tanh: bool, reverse: bool) -> None:
    """Fill ``states (L+1, B, H)`` and ``gates (L, 2, B, H)`` from a contiguous ``proj (L, B, 3H)``."""
    ops().lrn_forward(proj, h0.to(proj.dtype).contiguous(), states, gates, tanh, reverse)


def lrn_backward(grad_output, proj, states, gates, tanh: bool, reverse: bool):
    """``(dL/dproj (L, B, 3H), dL/dh0 (B, H))`` from the buffers :func:`lrn_forward` filled."""
    grad_proj, grad_h0 = torch.empty_like(proj), proj.new_empty(proj.shape[1], proj.shape[2] // 3)
    ops().lrn_backward(grad_output.contiguous(), proj, states, gates, grad_proj, grad_h0, tanh, reverse)
    return grad_proj, grad_h0


def sru_forward(u, skip, weight_c, bias, c0, mask, skip_scale: float):
    """``(h (L, B, N), c_n (B, N), saved)``; ``saved`` is what :func:`sru_backward` needs (save it for backward)."""
    length, batch, k, n = u.shape
    prepare = lambda t: None if t is None else t.to(u.dtype).contiguous()  # noqa: E731
    u = u.contiguous()
    skip = None if k == 4 else prepare(skip)  # with k = 4 the skip is U_3
    weight_c, bias, c0, mask = (prepare(t) for t in (weight_c, bias, c0, mask))
    h, forget, reset, states = (u.new_empty(length, batch, n) for _ in range(4))
    ops().sru_forward(u, skip, weight_c, bias, c0, mask, float(skip_scale), h, forget, reset, states)
    c_n = (states[-1] if length else c0).clone()
    return h, c_n, (u, skip, weight_c, c0, mask, forget, reset, states)


def sru_backward(saved, skip_scale: float, grad_h, grad_c_n):
    """``(dL/du, dL/dskip or None, dL/dweight_c, dL/dbias, dL/dc0)`` from :func:`sru_forward`'s ``saved``."""
    u, skip, weight_c, c0, mask, forget, reset, states = saved
    length, batch, k, n = u.shape
    grad_u = torch.empty_like(u)
    grad_skip = None if skip is None else u.new_empty(length, batch, n)
    grad_c0, partial = c0.new_empty(batch, n), u.new_empty(batch, 4, n)
    ops().sru_backward(grad_h.contiguous(), grad_c_n.contiguous(), u, skip, weight_c, c0, mask, float(skip_scale),
                       forget, reset, states, grad_u, grad_skip, grad_c0, partial)
    sums = partial.sum(0)  # (4, N): per unit, dL/dv_f, dL/dv_r, dL/db_f, dL/db_r summed over batch and time
    return grad_u, grad_skip, sums[:2].reshape(-1), sums[2:].reshape(-1), grad_c0


def set_enabled(enabled: bool) -> None:
    """Switch the compiled kernels on or off for this process (torch ops when off)."""
    _enabled[0] = bool(enabled)
