"""Every option of a segmented control is in view on a 1000 px wide window (sidebar open): a control in a narrow
column wraps its options onto more rows instead of hiding them behind a horizontal scroll that shows no scroll
bar (Delayed outputs' "sine", "gru" and "rnn" were cut off)."""

import pytest
from browser_helpers import wait_idle

PAGES = ["delayed", "equivalence", "memory", "streaming"]

# Per segmented control in the main block: its label, and the scroll boxes inside it that hide part of it.
HIDDEN = """() => Array.from(document.querySelectorAll("[data-testid='stMain'] [data-testid='stButtonGroup']")).map(
  (group) => [group.parentElement.innerText.split("\\n")[0],
              [group, ...group.querySelectorAll("*")].filter((e) => e.scrollWidth > e.clientWidth + 1).length])"""


@pytest.mark.parametrize("path", PAGES)
def test_every_option_of_a_choice_is_in_view(server, page, path):
    base, _ = server
    page.set_viewport_size({"width": 1000, "height": 900})
    page.goto(f"{base}/{path}")
    wait_idle(page)
    page.wait_for_selector("[data-testid='stMain'] [data-testid='stButtonGroup'] button", timeout=90_000)
    page.wait_for_timeout(500)
    groups = page.evaluate(HIDDEN)
    assert groups, f"/{path}: no segmented control found"
    assert [label for label, hidden in groups if hidden] == [], f"/{path}: options cut off in {groups}"
