"""The Memory & stability page in a real browser: the pretrained copy-memory charts render with no
exception box, a widget change redraws them and lands in the URL."""

import time

from browser_helpers import open_tab, screenshot, wait_idle

CHARTS = "[data-testid='stPlotlyChart']"


def test_memory_page_shows_its_charts_without_exceptions(server, page):
    base, _ = server
    page.goto(base)
    wait_idle(page)
    start = time.time()
    page.goto(f"{base}/memory")
    wait_idle(page)
    page.wait_for_selector("text=Gradient norm", timeout=60_000)
    print(f"\nmemory page rendered in {time.time() - start:.2f}s")
    page.wait_for_timeout(500)
    screenshot(page, "page-memory")
    assert page.locator(CHARTS).count() == 2  # the loss, and the open tab's gradients: the other tabs are not built
    body = page.inner_text("body")
    assert "baseline" in body
    for tab, title, charts in (("Connectivity", "Connectivity ‖∂y_t/∂x_s‖", 1),
                               ("asRNN saturation", "asRNN saturation levels at step", 2),
                               ("Orthogonality", "Orthogonality error of W_hh", 1)):
        open_tab(page, tab, title, 1 + charts, "mem_view", timeout=60_000)  # the loss curves stay above the tabs
    assert "Memory & stability" in page.locator("[data-testid='stSidebarNav']").inner_text()  # the app's navigation


def test_showing_initial_gradients_redraws_and_is_in_the_url(server, page):
    base, _ = server
    page.goto(f"{base}/memory")
    wait_idle(page)
    page.wait_for_selector("text=Gradient norm", timeout=60_000)
    group = page.locator("[data-testid='stButtonGroup']").filter(has_text="initial")
    group.get_by_text("both", exact=True).click()
    page.wait_for_selector("text=(at initialisation)", timeout=30_000)
    wait_idle(page)
    assert "mem_grad=both" in page.url
    assert page.locator("[data-testid='stException']").count() == 0
    screenshot(page, "memory-initial-gradients")
