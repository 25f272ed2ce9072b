"""`python -m drnn_demo.bench ui` runs end to end and prints its ratio tables. Timings are never asserted:
this checks that the benchmark works, not how fast the app is (that is what the benchmark is for)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from drnn_demo import bench_ui

ROOT = Path(__file__).parents[1]


def _require_browser():
    missing = None
    if not Path(bench_ui.CHROMIUM).exists():
        missing = f"Chromium not found at {bench_ui.CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "playwright is not installed"
    if missing:
        if os.environ.get("DRNN_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests are mandatory here: {missing}")
        pytest.skip(missing)


@pytest.mark.browser
def test_the_ui_benchmark_runs_end_to_end_and_prints_ratios(tmp_path):
    _require_browser()
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


def test_the_report_formats_ratios_and_the_slowest_slider():
    """The tables from made-up samples (no browser): ratios to the bare presses made alongside, the summary."""

    def move(ms: float, slider: str) -> bench_ui.Move:
        return bench_ui.Move(latency=ms, send=10.0, server=ms / 2, render=ms / 4, kb=1.0, busy=5.0, slider=slider,
                             key="x")

    fast = bench_ui.SliderResult("equivalence", "Unit shown", [move(300, "Unit shown")] * 3,
                                 [move(100, "Frequency")] * 3)
    slow = bench_ui.SliderResult("delayed", "Delay d", [move(900, "Delay d")] * 3, [move(150, "Phase")] * 3)
    cold = bench_ui.ColdResult("home", (5000.0, 6000.0), [(2000.0, 2500.0)] * 3, [(1000.0, 1000.0)] * 3)
    report = bench_ui.build_report({"repeats": 3, "streamlit": "x", "chromium": "y"}, [fast, slow], [cold],
                                   (900.0, 900.0))
    assert report["sliders"][0]["ratio"] == pytest.approx(3.0)
    assert report["summary"]["slowest_slider"] == "delayed / Delay d"
    assert report["summary"]["slowest_slider_ratio"] == pytest.approx(6.0)
    assert report["summary"]["median_slider_ratio"] == pytest.approx(4.5)
    assert report["cold"][0]["ratio"] == pytest.approx(2.0)
    text = bench_ui.format_report(report)
    assert "ratio" in text and "6.00" in text and "first chart ms" in text
