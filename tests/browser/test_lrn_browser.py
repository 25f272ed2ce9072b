"""The LRN gates page in a real browser: the charts of each of its tabs render with no exception box (the gates
beside captum's attributions and their agreement among them), typing a sentence updates the prediction (and lands
in the URL), and a shared URL opens the synthetic keyword mode."""

import time

from browser_helpers import open_tab, screenshot, wait_idle

CHARTS = "[data-testid='stPlotlyChart']"
EXCEPTION = "[data-testid='stException']"


def prediction(page) -> str:
    metric = page.locator("[data-testid='stMetric']").filter(has_text="Prediction")
    return metric.locator("[data-testid='stMetricValue']").inner_text().strip()


def test_lrn_page_shows_its_charts_without_exceptions(server, page):
    base, _ = server
    start = time.time()
    page.goto(f"{base}/lrn")
    wait_idle(page)
    page.wait_for_selector("text=Weight w[t, k] of token k", timeout=90_000)
    print(f"\nLRN gates page rendered in {time.time() - start:.2f}s")
    assert page.locator(CHARTS).count() == 2  # the shares, and the open tab's heatmap: the other tabs are not built
    assert prediction(page) == "positive"
    screenshot(page, "page-lrn")
    for tab, title, charts in (("Decay", "Decay of each token's weight", 1), ("Gates", "Input gates and forget", 1),
                               ("tanh vs identity", "tanh vs identity: the same input", 1),
                               ("Are gates attention?", "Gate weights beside gradient attributions", 2)):
        open_tab(page, tab, title, 1 + charts, "lrn_view")  # the shares stay above the tabs
    attributions = page.locator(CHARTS).filter(has_text="Gate weights beside gradient attributions")
    attributions.scroll_into_view_if_needed()
    for row in ("gate weight", "integrated gradients", "gradient × input"):
        assert attributions.get_by_text(row).first.is_visible(), row  # the aligned bar rows are drawn
    assert attributions.locator("g.point path").count() >= 4 * 10  # 4 rows of bars, one per word
    table = page.locator("[data-testid='stDataFrame']").first
    table.scroll_into_view_if_needed()
    assert table.is_visible()
    assert "What the numbers say" in page.inner_text("body")
    screenshot(page, "lrn-attributions")


def test_typing_a_sentence_updates_the_prediction(server, page):
    base, _ = server
    page.goto(f"{base}/lrn")
    wait_idle(page)
    page.wait_for_selector(CHARTS, timeout=90_000)
    assert prediction(page) == "positive"
    box = page.get_by_label("Sentence (type your own; Ctrl+Enter to apply)")
    box.fill("I would not recommend this phone, it broke after a week.")
    start = time.time()
    box.press("Control+Enter")
    page.wait_for_function(
        "() => [...document.querySelectorAll(\"[data-testid='stMetricValue']\")].some(e => e.innerText === 'negative')",
        timeout=60_000)
    wait_idle(page)
    print(f"\ntyped sentence -> new prediction and figures: {time.time() - start:.2f}s")
    assert prediction(page) == "negative"
    assert "lrn_text=" in page.url and "phone" in page.url  # the sentence is in the URL, so it can be shared
    assert page.locator(EXCEPTION).count() == 0
    assert page.locator(CHARTS).count() == 2
    screenshot(page, "lrn-typed-sentence")


def test_a_shared_url_opens_the_keyword_mode(server, page):
    base, _ = server
    page.goto(f"{base}/lrn?lrn_mode=Last+keyword&lrn_seq=d1+K1.0+d2+K0.1+d3")
    wait_idle(page)
    page.wait_for_selector("text=Ground truth (last keyword)", timeout=90_000)
    page.wait_for_selector(CHARTS, timeout=60_000)
    assert page.locator(EXCEPTION).count() == 0
    strongest = page.locator("[data-testid='stMetric']").filter(has_text="Strongest token")
    assert "3: K0.1" in strongest.inner_text()  # the last keyword decides, and the weights point at it
    screenshot(page, "lrn-keyword")
