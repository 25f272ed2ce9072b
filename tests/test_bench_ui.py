"""The UI benchmark's report from made-up samples (its end-to-end run in Chromium:
tests/browser/test_bench_ui_browser.py)."""

import pytest

from drnn_demo import bench_ui


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
