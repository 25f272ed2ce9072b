"""`python -m drnn_demo.bench ui` runs end to end and prints its ratio tables. Timings are never asserted:
this checks that the benchmark works, not how fast the app is (that is what the benchmark is for)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_the_ui_benchmark_runs_end_to_end_and_prints_ratios(browser_available, tmp_path):
    out = tmp_path / "bench-ui.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "drnn_demo.bench", "ui", "--repeats", "1", "--pages", "equivalence",
                           "--sliders", "Unit shown", "--json", str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    slider_head = next(line for line in lines if line.startswith("page") and "slider" in line)
    assert all(h in slider_head for h in ("median ms", "bare ms", "ratio", "server ms", "render ms"))
    assert any(line.startswith("equivalence") and "Unit shown" in line for line in lines)
    assert any(line.startswith("page") and "first chart ms" in line and "ratio" in line for line in lines)
    assert any(line.startswith("overall median slider ratio") for line in lines)

    report = json.loads(out.read_text())
    (row,) = report["sliders"]
    assert (row["page"], row["slider"]) == ("equivalence", "Unit shown")
    assert len(row["moves"]) == len(row["bare_moves"]) == 1
    assert isinstance(row["ratio"], float) and isinstance(row["median_ms"], float)
    (cold,) = report["cold"]
    assert cold["page"] == "equivalence" and isinstance(cold["ratio"], float)
