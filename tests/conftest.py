"""Session-wide test settings: runs never land in the project's runs/ directory."""

import os
import tempfile

# The app's JobManager reads this when it is first created (it is cached for the whole process).
os.environ.setdefault("DRNN_RUNS_DIR", tempfile.mkdtemp(prefix="drnn-test-runs-"))
