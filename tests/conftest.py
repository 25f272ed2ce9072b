"""Session-wide test settings and fixtures: runs never land in the project's runs/ directory, and
reruns of paper experiments never change the shipped results/."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from drnn_demo.models import kernels

# The app's JobManager reads this when it is first created (it is cached for the whole process).
os.environ.setdefault("DRNN_RUNS_DIR", tempfile.mkdtemp(prefix="drnn-test-runs-"))
# Paper-experiment reruns started by page tests write here, into a copy of the shipped results/.
if "DRNN_RESULTS_DIR" not in os.environ:
    _results = Path(tempfile.mkdtemp(prefix="drnn-test-results-")) / "results"
    shutil.copytree(Path(__file__).parents[1] / "results", _results)
    os.environ["DRNN_RESULTS_DIR"] = str(_results)


@pytest.fixture
def one_thread():
    """Train on one torch thread: on a shared 2-core machine two threads can be several times slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def float64():
    """Float64 as the default dtype, for reference comparisons at 1e-10 (modules opt in with usefixtures)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture(params=["cpp", "torch"])
def path(request):
    """LRN/SRU recurrence tests take this to run on the compiled kernel, then on the torch-op fallback."""
    if request.param == "cpp" and not kernels.available():
        pytest.skip(f"compiled kernels unavailable: {kernels.status()['error']}")
    with kernels.use_kernels(request.param == "cpp"):
        yield request.param
