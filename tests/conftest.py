"""Session-wide test settings and fixtures: runs never land in the project's runs/ directory."""

import os
import tempfile

import pytest
import torch

# The app's JobManager reads this when it is first created (it is cached for the whole process).
os.environ.setdefault("DRNN_RUNS_DIR", tempfile.mkdtemp(prefix="drnn-test-runs-"))


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
