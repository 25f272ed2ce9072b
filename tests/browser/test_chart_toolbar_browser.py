"""Plotly's toolbar (the modebar, shown while the pointer is over a chart) never covers a chart's legend, on any
page: a user hovering a chart to read its legend must be able to read it."""

import pytest
from browser_helpers import wait_idle

PAGES = ["", "delayed", "equivalence", "memory", "lrn", "streaming", "paper"]


def _overlap(a: dict, b: dict) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


@pytest.mark.parametrize("path", PAGES)
def test_the_toolbar_does_not_cover_a_legend(server, page, path):
    base, _ = server
    page.goto(f"{base}/{path}")
    wait_idle(page)
    page.wait_for_selector("[data-testid='stPlotlyChart'] .main-svg", timeout=90_000)
    page.wait_for_timeout(500)
    charts = page.locator("[data-testid='stPlotlyChart']")
    checked = 0
    for i in range(charts.count()):
        chart = charts.nth(i)
        legends = chart.locator("g.legend")
        if legends.count() == 0:
            continue
        chart.scroll_into_view_if_needed()
        chart.hover()
        bar = chart.locator(".modebar")
        bar.wait_for(state="visible", timeout=10_000)
        bar_box = bar.bounding_box()
        for j in range(legends.count()):
            box = legends.nth(j).bounding_box()
            if box and box["width"] > 0:
                titles = chart.locator("g.g-gtitle")
                title = titles.first.text_content() if titles.count() else f"#{i}"
                assert not _overlap(bar_box, box), f"/{path}: the toolbar covers the legend of chart {title!r}"
                checked += 1
    print(f"/{path}: {checked} legends clear of the toolbar")
