"""Helpers shared by the background-run tests (tests/test_jobs*.py, tests/test_ray_launcher.py)."""

import time


def wait_until(jm, pred, timeout: float = 15.0, every: float = 0.02):
    """Poll the manager (as the page does) until ``pred()`` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        jm.poll()
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(every)
