"""A real `streamlit run` server on 127.0.0.1 and Playwright driving Debian's Chromium.

Skipped when Chromium or Playwright is missing, unless DRNN_REQUIRE_BROWSER=1 (set by .ci/run),
where a missing browser is a failure. Screenshots go to test-artifacts/.
"""

import os
import shutil
from pathlib import Path

import pytest
from app_server import start_app, stop_app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-quic", "--no-first-run"]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


def _require_browser():
    missing = None
    if not Path(CHROMIUM).exists():
        missing = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "playwright is not installed"
    if missing:
        if os.environ.get("DRNN_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests are mandatory here: {missing}")
        pytest.skip(missing)


@pytest.fixture
def browser_available():
    """Skip (or fail, where browser tests are mandatory) when Chromium or Playwright is missing."""
    _require_browser()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """Start the app; yields (base_url, seconds until /_stcore/health answered)."""
    _require_browser()
    try:
        proc, base, ready = start_app(tmp_path_factory.mktemp("runs"), tmp_path_factory.mktemp("server") / "server.log")
    except RuntimeError as err:
        pytest.fail(str(err))
    yield base, ready
    stop_app(proc)


@pytest.fixture(scope="session")
def browser():
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    yield pg
    context.close()
