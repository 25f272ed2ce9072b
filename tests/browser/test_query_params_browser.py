"""A link with values a page cannot use, in a real browser: one toast names the parameter, the address bar is
rewritten to the values in use, and moving a widget afterwards neither repeats the toast nor loses the URL."""

from urllib.parse import parse_qs, urlparse

from browser_helpers import screenshot, wait_idle

TOAST = "[data-testid='stToast']"


def query(page) -> dict:
    return parse_qs(urlparse(page.url).query)


def test_a_bad_link_value_is_said_once_and_the_address_bar_shows_the_value_in_use(server, page):
    base, _ = server
    page.goto(f"{base}/equivalence?eq_layers=99&eq_cell=gru&eq_h1=5")
    wait_idle(page)
    page.wait_for_selector(TOAST, timeout=30_000)
    screenshot(page, "query-params-notice")
    toasts = page.locator(TOAST).all_inner_texts()
    assert len(toasts) == 1 and "Ignored eq_layers=99 from the link (outside 1–6); showing eq_layers=3." in toasts[0]
    assert query(page) == {"eq_cell": ["gru"], "eq_h1": ["5"]}  # the bad value is gone: 3 is the default

    slider = page.locator("[data-testid='stSlider']").filter(has_text="Layers k").get_by_role("slider")
    slider.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => new URLSearchParams(location.search).get('eq_layers') === '4'", timeout=30_000)
    wait_idle(page)
    assert query(page) == {"eq_cell": ["gru"], "eq_h1": ["5"], "eq_layers": ["4"]}
    assert page.locator(TOAST).count() <= 1  # no second notice (the first may still be showing)


def test_a_long_link_is_answered_by_the_page(server, page):
    """12 KB: below the server's 16 KiB limit on a request's line and headers (see the README)."""
    base, _ = server
    response = page.goto(f"{base}/delayed?cell={'x' * 12_000}&hidden=32")
    assert response.status == 200
    wait_idle(page)
    page.wait_for_selector(TOAST, timeout=30_000)
    (toast,) = page.locator(TOAST).all_inner_texts()
    assert "Ignored cell=xxxx" in toast and "(12,000 characters)" in toast and "showing cell=lstm" in toast
    assert query(page) == {"hidden": ["32"]}
    assert page.locator("[data-testid='stException']").count() == 0
