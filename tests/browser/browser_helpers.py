"""Helpers shared by the browser tests."""

from pathlib import Path

from playwright.sync_api import expect

ROOT = Path(__file__).parents[2]
ARTIFACTS = ROOT / "test-artifacts"
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


def wait_idle(page, timeout=240_000):
    """Wait until the app's script run is over (the Streamlit e2e suite's way, not a sleep)."""
    page.wait_for_selector(IDLE, timeout=timeout)


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def open_tab(page, tab: str, title: str, charts: int, url_key: str, timeout: float = 90_000) -> None:
    """Click a page's tab; wait for its chart titled ``title``; check that exactly ``charts`` charts are drawn (the
    closed tabs are not built), that the tab is in the URL as ``url_key=``, and that no exception box is shown."""
    page.get_by_role("tab", name=tab, exact=True).click()
    page.wait_for_selector(f"text={title}", timeout=timeout)
    wait_idle(page)
    expect(page.locator("[data-testid='stPlotlyChart']")).to_have_count(charts)
    assert f"{url_key}=" in page.url  # the open tab is in the URL, so a shared link opens it
    body = page.inner_text("body")
    assert page.locator("[data-testid='stException']").count() == 0, (tab, body[:2000])
    assert "Traceback" not in body
