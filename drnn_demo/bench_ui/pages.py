"""The pages the UI benchmark measures: the app's pages with their sliders, and the bare reference page.

:data:`APP_PAGES` are URL paths of ``app.py``'s navigation; :data:`BARE` is the bare Streamlit page every
number is set against (two sliders, a 200-point line chart, a 96x48 heatmap, a metric), whose script is
:data:`BARE_PAGE` (kept as data in ``drnn_demo/data/bench_ui/``: the package never imports streamlit).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The benchmark's assets: the bare page's script (BARE_PAGE) and the script installed in every page before its
# own scripts run (browser.INSTRUMENT: window.__bench holds the clocks read there).
ASSETS = Path(__file__).resolve().parents[1] / "data" / "bench_ui"
BARE_PAGE = (ASSETS / "bare_page.py.txt").read_text(encoding="utf-8")


@dataclass(frozen=True)
class PageSpec:
    """A page to measure: its name, URL path (with any query string) and the labels of its sliders."""

    name: str
    path: str
    sliders: tuple[str, ...] = ()


# URL paths from app.py's st.navigation. LRN's "Test sequence" exists in the last-keyword mode only.
APP_PAGES = (
    PageSpec("home", ""),
    PageSpec("equivalence", "equivalence", ("Layers k", "Sequence length", "Relax zero blocks: eps", "Unit shown")),
    PageSpec("delayed", "delayed", ("Delay d", "Hidden size", "Test sequence", "Output position t")),
    PageSpec("lrn", "lrn?lrn_mode=Last+keyword", ("Hidden size H", "Test sequence")),
    PageSpec("memory", "memory", ("Gap L",)),
)
BARE = PageSpec("bare", "", ("Frequency", "Phase"))
