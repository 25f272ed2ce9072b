"""Monkey test: every page of app.py takes 200 random widget changes (fixed seed) without an exception.

Each change picks a widget on the current page at random and gives it a random value: a slider or
number input at a limit or anywhere between, any option of a select box, segmented control, radio
or select slider, a random subset of a multiselect, empty / odd / very long text, a flipped
checkbox or toggle, a button press (at most two presses of buttons that start background runs per
page, so the machine is not flooded). After every change the page must show no exception.
"""

import random
import re
import string
from pathlib import Path

import pytest
from apptest_helpers import open_page
from streamlit.testing.v1 import element_tree

from drnn_demo.jobs import JobManager

CHANGES = 200
APP = Path(__file__).parents[1] / "app.py"
PAGES = re.findall(r'st\.Page\("(views/\w+\.py)"', APP.read_text())
RUN_BUTTONS = re.compile(r"^(Train|Rerun)")
TEXTS = ["", " ", "the", "not bad at all", "!!! ???", "ünïcödé words ✓", "good " * 400,
         "".join(random.Random(0).choices(string.printable, k=3000))]


class Label(str):
    """An option chosen by its label, which is what the browser sends for a select widget."""


@pytest.fixture(autouse=True)
def labels_as_sent_by_the_browser(monkeypatch):
    """Let AppTest take options by label even when the page formats them with ``dict.get`` (which
    returns None, not an error, for a label, so AppTest's own label fallback does not apply)."""
    original = element_tree._format_value_for_widget
    monkeypatch.setattr(element_tree, "_format_value_for_widget",
                        lambda fmt, value: str(value) if isinstance(value, Label) else original(fmt, value))


def widgets(at):
    kinds = ["slider", "select_slider", "selectbox", "multiselect", "number_input", "text_input", "text_area",
             "checkbox", "toggle", "radio", "segmented_control", "pills", "button"]
    found = []
    for kind in kinds:
        for w in getattr(at, kind):
            if not getattr(w, "disabled", False):
                found.append((kind, w))
    return found


def random_value(kind, w, rng: random.Random):
    if kind == "slider":
        lo, hi = w.min, w.max
        if isinstance(lo, int) and isinstance(hi, int):
            return rng.choice([lo, hi, rng.randint(lo, hi)])
        return rng.choice([lo, hi, lo + (hi - lo) * rng.random()])
    if kind == "number_input":
        lo = w.min if w.min is not None else -10
        hi = w.max if w.max is not None else 10**6
        if isinstance(w.value, int):
            lo, hi = int(lo), int(hi)
            return rng.choice([lo, hi, rng.randint(lo, min(hi, lo + 1000))])
        return rng.choice([lo, hi, lo + (min(hi, lo + 1000) - lo) * rng.random()])
    if kind in ("select_slider", "selectbox", "radio", "segmented_control", "pills"):
        return Label(rng.choice(list(w.options)))
    if kind == "multiselect":
        return [Label(o) for o in rng.sample(list(w.options), rng.randint(0, len(w.options)))]
    if kind in ("text_input", "text_area"):
        return rng.choice(TEXTS)
    if kind in ("checkbox", "toggle"):
        return not w.value
    raise AssertionError(kind)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_two_hundred_random_widget_changes_never_raise(page):
    rng = random.Random(f"monkey:{page}")
    at = open_page(page)
    assert not at.exception, page
    run_presses = 0
    history = []
    for _ in range(5 * CHANGES):
        if len(history) >= CHANGES:
            break
        choices = widgets(at)
        if not choices:
            break
        kind, w = rng.choice(choices)
        if kind == "button":
            if RUN_BUTTONS.match(w.label or ""):
                if run_presses >= 2:
                    continue
                run_presses += 1
            history.append(f"click {w.label!r}")
            w.click().run()
        else:
            value = random_value(kind, w, rng)
            history.append(f"{kind} {w.key or w.label!r} = {str(value)[:40]!r}")
            w.set_value(value).run()
        assert not at.exception, f"{page}: {at.exception[0].value}\nafter: " + "\n".join(history[-5:])
    assert len(history) == CHANGES, history[-3:]


@pytest.fixture(autouse=True)
def cancel_started_runs():
    """Runs the monkey started must not keep training through the rest of the suite."""
    yield
    jobs = JobManager()
    for info in jobs.runs():
        if info.active:
            jobs.cancel(info.id)
