"""The UI benchmark's browser driver: Playwright sessions on the system Chromium, and the timed passes.

A :class:`Session` is a new browser context (a new Streamlit session) with :data:`INSTRUMENT` installed
before the page's own scripts (a MutationObserver on the main block, a wrapper around the page's WebSocket,
a long-task observer; their clocks, the page's ``performance.now()``, are kept in ``window.__bench``).
:meth:`Session.open` times a cold load, :meth:`Session.press` one slider move (a
:class:`~drnn_demo.bench_ui.report.Move`). :func:`slider_pass` and :func:`cold_pass` interleave the app's
pages with the bare page (bare, app, bare, app, ...) so that machine noise hits both alike.
"""

from __future__ import annotations

import json
import shutil

from .pages import ASSETS, BARE, PageSpec
from .report import ColdResult, Move, SliderResult
from .server import Server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-quic", "--no-first-run"]
VIEWPORT = {"width": 1400, "height": 1000}
QUIET_MS = 600  # a move is over once the page has not changed for this long (and its script stopped)
INSTRUMENT = (ASSETS / "instrument.js").read_text(encoding="utf-8")

# True once the move is over: the script has run and stopped (with ``changes``: the state attribute changed, or a
# message came after the rerun request; a fast rerun can flip running -> notRunning within one render, leaving the
# attribute unchanged), every plotly chart element has drawn (plotly's code is loaded on demand, which can take
# longer than QUIET_MS without a DOM change), and the main block has been quiet for QUIET_MS.
SETTLED = """([quiet, changes]) => {
  const b = window.__bench, app = document.querySelector("[data-testid='stApp']");
  const charts = Array.from(document.querySelectorAll("[data-testid='stMain'] [data-testid='stPlotlyChart']"));
  const ran = b.stateChanges >= changes || (b.sent !== null && b.wsLast > b.sent);
  return !!app && app.getAttribute("data-test-script-state") === "notRunning" && ran
    && charts.every((c) => c.querySelector(".js-plotly-plot .main-svg")) && performance.now() - b.last >= quiet;
}"""


class Session:
    """A browser context (a new Streamlit session) on one page, instrumented by :data:`INSTRUMENT`."""

    def __init__(self, browser, url: str, timeout_ms: float):
        self.context = browser.new_context(viewport=VIEWPORT)
        self.context.add_init_script(INSTRUMENT)
        self.page = self.context.new_page()
        self.url = url
        self.timeout = timeout_ms
        self.presses: dict[str, int] = {}

    def close(self) -> None:
        self.context.close()

    def _bench(self) -> dict:
        return self.page.evaluate("() => window.__bench")

    def settle(self, changes: int = 0) -> None:
        self.page.wait_for_function(SETTLED, arg=[QUIET_MS, changes], polling=50, timeout=self.timeout)

    def open(self) -> tuple[float, float]:
        """Navigate; return (first chart drawn, settled) in ms from navigation start."""
        self.page.goto(self.url, wait_until="commit", timeout=self.timeout)
        self.page.wait_for_function("() => window.__bench.firstChart !== null", polling=50, timeout=self.timeout)
        self.settle()
        b = self._bench()
        return b["firstChart"], b["last"]

    def press(self, label: str) -> Move:
        """Move one slider by one step (right, then left, then right, ...) and time it."""
        count = self.presses.get(label, 0)
        self.presses[label] = count + 1
        key = "ArrowRight" if count % 2 == 0 else "ArrowLeft"
        thumb = self.page.locator(f"[data-testid='stMain'] [role='slider'][aria-label={json.dumps(label)}], "
                                  f"[data-testid='stMain'] input[type='range'][aria-label={json.dumps(label)}]")
        self.page.bring_to_front()
        thumb.focus(timeout=self.timeout)
        self.settle()
        before = self.page.evaluate("() => { const b = window.__bench; b.stateChanges = 0; b.press = null;"
                                    " if (b.busy !== null) b.busy = 0; return b.wsBytes; }")
        thumb.press(key, timeout=self.timeout)
        try:
            self.settle(changes=1)
        except Exception as err:  # playwright's TimeoutError: say which move never finished
            raise RuntimeError(f"{self.url}: {key} on {label!r} never gave a finished, quiet page "
                               f"within {self.timeout / 1000:.0f} s") from err
        b = self._bench()
        if b["press"] is None:
            raise RuntimeError(f"{self.url}: the key press on {label!r} was not seen")
        sent = b["sent"]
        return Move(latency=b["last"] - b["press"], send=None if sent is None else sent - b["press"],
                    server=None if sent is None else b["wsLast"] - sent,
                    render=None if sent is None else max(0.0, b["last"] - b["wsLast"]),
                    kb=(b["wsBytes"] - before) / 1e3, busy=b["busy"], slider=label, key=key)

    def restore(self, label: str) -> None:
        """After an odd number of presses the slider is one step right: one more (untimed) press puts it back."""
        if self.presses.get(label, 0) % 2:
            self.press(label)


def slider_pass(browser, app: Server, bare: Server, pages: list[PageSpec], repeats: int, timeout: float,
                log=print) -> list[SliderResult]:
    """Every slider of every page ``repeats`` times, each app press right after a press on the bare page."""
    results = []
    reference = Session(browser, bare.base + "/", timeout)
    try:
        reference.open()
        turn = 0
        for spec in pages:
            if not spec.sliders:
                continue
            session = Session(browser, f"{app.base}/{spec.path}", timeout)
            try:
                session.open()
                for label in spec.sliders:
                    # The bare page's sliders take turns, one per app slider, moved the same way (right, left, ...),
                    # so both pages show the same pattern of new and recent values (Streamlit's message cache keeps
                    # the messages of the last two reruns).
                    reference_label = BARE.sliders[turn % len(BARE.sliders)]
                    turn += 1
                    result = SliderResult(spec.name, label)
                    for _ in range(repeats):
                        result.bare.append(reference.press(reference_label))
                        result.moves.append(session.press(label))
                    session.restore(label)
                    reference.restore(reference_label)
                    s = result.summary()
                    log(f"  {spec.name:<12} {label:<24} median {s['median_ms']:7.0f} ms  bare {s['bare_ms']:6.0f} ms"
                        f"  ratio {s['ratio']:5.2f}")
                    results.append(result)
            finally:
                session.close()
    finally:
        reference.close()
    return results


def visit(browser, url: str, timeout: float) -> tuple[float, float]:
    session = Session(browser, url, timeout)
    try:
        return session.open()
    finally:
        session.close()


def cold_pass(browser, app: Server, bare: Server, pages: list[PageSpec], repeats: int, timeout: float,
              log=print) -> tuple[list[ColdResult], tuple[float, float]]:
    """First visits (server cold), then ``repeats`` rounds of new sessions, bare and app alternately."""
    bare_first = visit(browser, bare.base + "/", timeout)
    results = [ColdResult(spec.name) for spec in pages]
    for spec, result in zip(pages, results, strict=True):
        result.first_visit = visit(browser, f"{app.base}/{spec.path}", timeout)
        log(f"  first visit {spec.name:<12} first chart {result.first_visit[0]:7.0f} ms")
    for _ in range(repeats):
        for spec, result in zip(pages, results, strict=True):
            result.bare.append(visit(browser, bare.base + "/", timeout))
            result.visits.append(visit(browser, f"{app.base}/{spec.path}", timeout))
    for result in results:
        s = result.summary()
        log(f"  cold {result.page:<12} first chart {s['first_chart_ms']:7.0f} ms  bare {s['bare_first_chart_ms']:6.0f}"
            f" ms  ratio {s['ratio']:5.2f}")
    return results, bare_first
