"""Helpers shared by the browser tests."""

from pathlib import Path

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
