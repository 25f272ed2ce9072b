"""UI latency as ratios to a bare Streamlit page: ``python -m drnn_demo.bench ui`` (or ``make bench-ui``).

It starts two ``streamlit run`` servers with this Python and the test suite's flags (127.0.0.1, headless, no
file watcher, no usage stats; runs in a temporary ``DRNN_RUNS_DIR``): the app, and a bare reference page (two
sliders, a 200-point line chart, a 96x48 heatmap, a metric; :data:`BARE_PAGE`, written to the temporary
directory). Playwright drives the system Chromium against both, interleaved (bare, app, bare, app, ...), so
machine noise hits both alike, and prints medians and their ratios to the bare page measured alongside.

What is measured (all clocks are the page's ``performance.now()``):

- **cold first chart**: a new browser context (a new session on a warm server) opens the page's URL; the
  time from navigation start until the first plotly chart has drawn its plot area. *settled* is the time of
  the last DOM change in the main block once the page has been quiet for 0.6 s and its script has stopped.
  *first visit* is the very first visit of each page since the server started (imports, caches): one sample.
- **slider**: ArrowRight / ArrowLeft (alternating, so the value stays in range) on the focused slider thumb.
  A MutationObserver in the page records the time of every DOM mutation inside the main block; once the
  app's script state is ``notRunning`` and no mutation came for 0.6 s, latency = last mutation - key press.
  The same move is split by a wrapper around the page's WebSocket: *send* = key press -> rerun request
  (the widget's debounce), *server* = rerun request -> last message handled by the page (the script's
  rerun, the transfer, and the page drawing the deltas that arrive meanwhile: Streamlit streams them),
  *render* = last message -> last mutation; *busy* = the page's main thread in long tasks (>= 50 ms)
  after the press, i.e. the browser's own share; *kB* = bytes received for the move (Streamlit's message
  cache sends a reference for a message of the last two reruns, so a repeated value is cheap). *first* is
  the first press of each slider (a value the server may not have cached yet); medians are over all
  presses. A fragment rerun (``st.fragment``) is measured like any other: it is what the person waits for.
- ``--while-training`` repeats the slider pass while one background training run (submitted through the
  app's own :class:`~drnn_demo.jobs.JobManager` on the app's runs directory, so the worker starts exactly
  as a run started from a page does) trains a reversal LSTM, and reports each slider's median relative
  to the idle pass of the same run.

This is a benchmark, not a test: nothing here asserts a time. The machine is shared, so read the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-quic", "--no-first-run"]
SERVER_FLAGS = ["--server.headless", "true", "--server.fileWatcherType", "none", "--browser.gatherUsageStats",
                "false", "--server.address", "127.0.0.1"]
VIEWPORT = {"width": 1400, "height": 1000}
QUIET_MS = 600  # a move is over once the page has not changed for this long (and its script stopped)
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


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


# The bare reference page (a Streamlit script, kept as data: the package never imports streamlit) and the
# script installed in every page before its own scripts run (window.__bench holds the clocks read here).
ASSETS = Path(__file__).resolve().parent / "data" / "bench_ui"
BARE_PAGE = (ASSETS / "bare_page.py.txt").read_text(encoding="utf-8")
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


# ---------------------------------------------------------------- servers


def _free_ports(n: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    base: str
    log: Path
    ready: float = 0.0  # seconds until /_stcore/health answered

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def start_server(name: str, script: Path, port: int, env: dict, log: Path) -> Server:
    """``python -m streamlit run script`` (this Python) on 127.0.0.1:port, from the script's directory."""
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", script.name, "--server.port", str(port),
                                 *SERVER_FLAGS], cwd=script.parent, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    return Server(name, proc, f"http://127.0.0.1:{port}", log)


def wait_healthy(servers: list[Server], timeout: float = 120) -> None:
    start = time.monotonic()
    pending = list(servers)
    while pending:
        for server in list(pending):
            if server.proc.poll() is not None:
                raise RuntimeError(f"the {server.name} server exited ({server.proc.returncode}):\n{server.log_tail()}")
            try:
                if urllib.request.urlopen(server.base + "/_stcore/health", timeout=2).read() == b"ok":
                    server.ready = time.monotonic() - start
                    pending.remove(server)
            except OSError:
                pass
        if pending:
            if time.monotonic() - start > timeout:
                raise RuntimeError(f"the {pending[0].name} server never became healthy:\n{pending[0].log_tail()}")
            time.sleep(0.2)


@contextlib.contextmanager
def servers(app: Path, workdir: Path) -> Iterator[tuple[Server, Server, Path]]:
    """The app and the bare page, started together with the same Python; yields (app, bare, runs dir)."""
    runs = workdir / "runs"
    runs.mkdir()
    bare_script = workdir / "bare" / "bare_page.py"
    bare_script.parent.mkdir()
    bare_script.write_text(BARE_PAGE)
    env = dict(os.environ, DRNN_RUNS_DIR=str(runs),
               PYTHONPATH=os.pathsep.join(filter(None, [str(app.parent), os.environ.get("PYTHONPATH")])))
    app_port, bare_port = _free_ports(2)
    started = []
    try:
        started.append(start_server("app", app, app_port, env, workdir / "app.log"))
        started.append(start_server("bare", bare_script, bare_port, env, workdir / "bare.log"))
        wait_healthy(started)
        yield started[0], started[1], runs
    finally:
        for server in started:
            server.stop()


# ---------------------------------------------------------------- one browser session


@dataclass
class Move:
    """One slider press, in ms: key press -> last DOM change (``latency``), its split and the bytes received."""

    latency: float
    send: float | None  # key press -> rerun request sent (the widget's own debounce)
    server: float | None  # rerun request sent -> last message received (the script's rerun, plus transfer)
    render: float | None  # last message received -> last DOM change (0 when the last change came first)
    kb: float
    busy: float | None  # the page's main thread in long tasks (>= 50 ms) after the press: its own drawing work
    slider: str
    key: str

    def as_dict(self) -> dict:
        return {"slider": self.slider, "key": self.key, "latency_ms": self.latency, "send_ms": self.send,
                "server_ms": self.server, "render_ms": self.render, "busy_ms": self.busy, "kb": self.kb}


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


# ---------------------------------------------------------------- the passes


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


@dataclass
class SliderResult:
    page: str
    slider: str
    moves: list[Move] = field(default_factory=list)
    bare: list[Move] = field(default_factory=list)  # the bare page's presses made alternately with these

    def summary(self) -> dict:
        median = _median(m.latency for m in self.moves)
        bare = _median(m.latency for m in self.bare)
        return {"page": self.page, "slider": self.slider, "median_ms": median, "bare_ms": bare,
                "ratio": _ratio(median, bare), "first_ms": self.moves[0].latency if self.moves else None,
                "send_ms": _median(m.send for m in self.moves), "server_ms": _median(m.server for m in self.moves),
                "render_ms": _median(m.render for m in self.moves), "busy_ms": _median(m.busy for m in self.moves),
                "kb": _median(m.kb for m in self.moves),
                "first_kb": self.moves[0].kb if self.moves else None, "moves": [m.as_dict() for m in self.moves],
                "bare_moves": [m.as_dict() for m in self.bare]}


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


@dataclass
class ColdResult:
    page: str
    first_visit: tuple[float, float] | None = None
    visits: list[tuple[float, float]] = field(default_factory=list)
    bare: list[tuple[float, float]] = field(default_factory=list)

    def summary(self) -> dict:
        chart, settled = _median(v[0] for v in self.visits), _median(v[1] for v in self.visits)
        bare_chart, bare_settled = _median(v[0] for v in self.bare), _median(v[1] for v in self.bare)
        return {"page": self.page, "first_chart_ms": chart, "bare_first_chart_ms": bare_chart,
                "ratio": _ratio(chart, bare_chart), "settled_ms": settled, "bare_settled_ms": bare_settled,
                "settled_ratio": _ratio(settled, bare_settled),
                "first_visit_chart_ms": self.first_visit[0] if self.first_visit else None,
                "first_visit_settled_ms": self.first_visit[1] if self.first_visit else None,
                "visits": self.visits, "bare_visits": self.bare}


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


@contextlib.contextmanager
def training_run(runs: Path, log=print) -> Iterator[dict]:
    """One reversal LSTM training in the background (100,000 steps: it outlasts the pass), started by a
    JobManager on the app's runs directory exactly as a page starts one; cancelled on exit."""
    from .jobs import JobManager
    from .pretrained import BUDGET, REVERSAL
    from .training import TrainConfig

    jobs = JobManager(runs)
    config = TrainConfig(task="reversal", task_args=dict(REVERSAL),
                         model={"core": "delayed", "core_args": {"hidden_size": 64, "delay": 9, "cell": "lstm"}},
                         steps=100_000, eval_every=1000, patience=0, seed=0, device="cpu", lr=BUDGET["reversal"]["lr"])
    run_id = jobs.submit("train", config.to_dict(), label="bench-ui background run")
    info = {"run_id": run_id, "config": "reversal, delayed LSTM h=64 d=9, batch 64, 100,000 steps, 1 thread"}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # measure only once it trains (torch imported, first steps done)
            jobs.poll()
            run = jobs.get(run_id)
            if not run.active:
                raise RuntimeError(f"the background run ended before the pass: {run.status} {run.message}")
            if run.step and run.step > 0:
                break
            time.sleep(0.5)
        start_step, start = jobs.get(run_id).step or 0, time.monotonic()
        log(f"  background run {run_id} training (step {start_step})")
        yield info
        jobs.poll()
        run = jobs.get(run_id)
        info["steps_per_s"] = ((run.step or 0) - start_step) / max(time.monotonic() - start, 1e-9)
        info["status_at_end"] = run.status
    finally:
        jobs.cancel(run_id)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            jobs.poll()
            if not jobs.get(run_id).active:
                break
            time.sleep(0.3)


# ---------------------------------------------------------------- report


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


# (header, key, format): text columns are left-aligned, numbers right-aligned under their header.
SLIDER_COLUMNS = [("page", "page", "<12"), ("slider", "slider", "<24"), ("median ms", "median_ms", ".0f"),
                  ("bare ms", "bare_ms", ".0f"), ("ratio", "ratio", ".2f"), ("send ms", "send_ms", ".0f"),
                  ("server ms", "server_ms", ".0f"), ("render ms", "render_ms", ".0f"), ("busy ms", "busy_ms", ".0f"),
                  ("first ms", "first_ms", ".0f"), ("first kB", "first_kb", ".1f"), ("kB", "kb", ".1f")]
COLD_COLUMNS = [("page", "page", "<12"), ("first chart ms", "first_chart_ms", ".0f"),
                ("bare ms", "bare_first_chart_ms", ".0f"), ("ratio", "ratio", ".2f"),
                ("settled ms", "settled_ms", ".0f"),
                ("bare ms", "bare_settled_ms", ".0f"), ("ratio", "settled_ratio", ".2f"),
                ("first visit ms", "first_visit_chart_ms", ".0f")]
TRAINING_COLUMNS = [("page", "page", "<12"), ("slider", "slider", "<24"), ("idle ms", "idle_ms", ".0f"),
                    ("training ms", "training_ms", ".0f"), ("x idle", "vs_idle", ".2f"),
                    ("ratio to bare", "ratio_to_bare", ".2f")]


def _table(columns: list[tuple[str, str, str]], rows: list[dict]) -> list[str]:
    def cell(header: str, spec: str, value) -> str:
        if spec.startswith("<"):
            return format("" if value is None else str(value), spec)
        width = max(len(header), 6)
        return format(value, f">{width}") if isinstance(value, str) else format(_fmt(value, spec), f">{width}")

    head = " ".join(format(h, s) if s.startswith("<") else format(h, f">{max(len(h), 6)}") for h, _, s in columns)
    return [head, "-" * len(head)] + [" ".join(cell(h, s, row.get(k)) for h, k, s in columns) for row in rows]


def format_report(report: dict) -> str:
    meta = report["meta"]
    tree = f"; commit {meta['commit']} + {meta.get('modified_files', 0)} modified files" if meta.get("commit") else ""
    lines = [f"# UI benchmark: the drnn_demo app vs a bare Streamlit page, same Python and Chromium, one run "
             f"(N={meta['repeats']} per slider and per cold page; Streamlit {meta['streamlit']}, {meta['chromium']}"
             f"{tree})"]
    sliders = report["sliders"]
    if sliders:
        lines += ["", "## slider -> updated page: ms from the key press to the last change in the main block (page "
                  "then quiet 0.6 s, script stopped); median of N presses",
                  "## bare = the bare page's presses made alternately with them; send = key -> rerun request; server = "
                  "request -> last message handled (rerun + transfer + drawing meanwhile);",
                  "## render = last message -> last change; busy = page main thread in long tasks (the browser's "
                  "share); first = the first press (a new value); kB received: first press, median"]
        bare_rows = [{**b, "page": "bare", "bare_ms": b["median_ms"], "ratio": 1.0}
                     for b in report["bare_sliders"] if b["presses"]]
        lines += _table(SLIDER_COLUMNS, sliders + bare_rows)
    cold = report["cold"]
    if cold:
        lines += ["", "## cold page: a new session (new browser context) on a warm server, ms from navigation start to "
                  "the first plotly chart drawn, and to settled (last change, then quiet 0.6 s); median of N",
                  "## first visit = the page's first visit since the server started (one sample)"]
        bf = report.get("bare_first_visit")
        lines += _table(COLD_COLUMNS, cold + [{"page": "bare", "first_visit_chart_ms": bf[0] if bf else None}])
    training = report.get("training")
    if training:
        run = training["run"]
        lines += ["", f"## while training: {run['config']} ({_fmt(run.get('steps_per_s'), '.1f')} steps/s during the "
                  "pass); slider medians vs the idle pass above"]
        bare_rows = [{**b, "page": "bare"} for b in training["bare_sliders"] if b["training_ms"] is not None]
        lines += _table(TRAINING_COLUMNS, training["sliders"] + bare_rows)
    summary = report["summary"]
    lines += ["", "## summary"]
    if sliders:
        lines.append(f"overall median slider ratio: {_fmt(summary['median_slider_ratio'], '.2f')}; slowest slider: "
                     f"{summary['slowest_slider']} (ratio {_fmt(summary['slowest_slider_ratio'], '.2f')})")
    if cold:
        lines.append(f"overall median cold first-chart ratio: {_fmt(summary['median_cold_ratio'], '.2f')}; slowest "
                     f"page: {summary['slowest_cold']} (ratio {_fmt(summary['slowest_cold_ratio'], '.2f')})")
    if training:
        lines.append(f"while training: median slider slowdown x{_fmt(summary['median_training_vs_idle'], '.2f')} "
                     f"vs idle (bare page x{_fmt(summary['bare_training_vs_idle'], '.2f')}); median ratio to the bare "
                     f"page {_fmt(summary['median_training_ratio_to_bare'], '.2f')} (idle "
                     f"{_fmt(summary['median_slider_ratio'], '.2f')}; the idle pass came first, so other load on the "
                     "machine can differ between passes: the ratios to the bare page are the robust comparison)")
    return "\n".join(lines)


def _bare_rows(results: list[SliderResult]) -> list[dict]:
    rows = []
    for label in BARE.sliders:
        moves = [m for r in results for m in r.bare if m.slider == label]
        rows.append({"slider": label, "median_ms": _median(m.latency for m in moves),
                     "send_ms": _median(m.send for m in moves), "server_ms": _median(m.server for m in moves),
                     "render_ms": _median(m.render for m in moves), "busy_ms": _median(m.busy for m in moves),
                     "kb": _median(m.kb for m in moves),
                     "first_ms": moves[0].latency if moves else None, "first_kb": moves[0].kb if moves else None,
                     "presses": len(moves)})
    return rows


def build_report(meta: dict, sliders: list[SliderResult], cold: list[ColdResult], bare_first, training=None) -> dict:
    slider_rows = [r.summary() for r in sliders]
    cold_rows = [c.summary() for c in cold]
    ratios = [(s["ratio"], f"{s['page']} / {s['slider']}") for s in slider_rows if s["ratio"] is not None]
    cold_ratios = [(c["ratio"], c["page"]) for c in cold_rows if c["ratio"] is not None]
    summary = {
        "median_slider_ratio": _median(r for r, _ in ratios),
        "slowest_slider_ratio": max(ratios)[0] if ratios else None,
        "slowest_slider": max(ratios)[1] if ratios else None,
        "median_cold_ratio": _median(r for r, _ in cold_ratios),
        "slowest_cold_ratio": max(cold_ratios)[0] if cold_ratios else None,
        "slowest_cold": max(cold_ratios)[1] if cold_ratios else None,
    }
    report = {"meta": meta, "sliders": slider_rows, "bare_sliders": _bare_rows(sliders), "cold": cold_rows,
              "bare_first_visit": bare_first, "summary": summary}
    if training is not None:
        busy, run = training
        idle = {(s.page, s.slider): s for s in sliders}
        rows = []
        for s in busy:
            mine = s.summary()
            before = idle[(s.page, s.slider)].summary()
            rows.append({"page": s.page, "slider": s.slider, "idle_ms": before["median_ms"],
                         "training_ms": mine["median_ms"], "vs_idle": _ratio(mine["median_ms"], before["median_ms"]),
                         "ratio_to_bare": mine["ratio"], "moves": mine["moves"], "bare_moves": mine["bare_moves"]})
        idle_bare = {b["slider"]: b for b in report["bare_sliders"]}
        bare_rows = [{"slider": b["slider"], "idle_ms": idle_bare[b["slider"]]["median_ms"],
                      "training_ms": b["median_ms"], "vs_idle": _ratio(b["median_ms"],
                                                                       idle_bare[b["slider"]]["median_ms"])}
                     for b in _bare_rows(busy)]
        report["training"] = {"run": run, "sliders": rows, "bare_sliders": bare_rows}
        summary["median_training_vs_idle"] = _median(r["vs_idle"] for r in rows)
        summary["bare_training_vs_idle"] = _median(r["vs_idle"] for r in bare_rows)
        summary["median_training_ratio_to_bare"] = _median(r["ratio_to_bare"] for r in rows)
    return report


# ---------------------------------------------------------------- command line


def _chromium_version() -> str:
    try:
        out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "Chromium (version unknown)"
    return " ".join(out.split()[:2]) or "Chromium"


def _streamlit_version() -> str:
    out = subprocess.run([sys.executable, "-c", "import streamlit; print(streamlit.__version__)"], capture_output=True,
                         text=True, timeout=120)
    return out.stdout.strip() or "?"


def _git_state(root: Path) -> dict:
    """The commit measured and how many files differ from it (the tree may be edited while it runs)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=30).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": head or None, "modified_files": len(dirty)}


def select_pages(names: list[str] | None, sliders: list[str] | None) -> list[PageSpec]:
    known = {p.name: p for p in APP_PAGES}
    unknown = [n for n in names or [] if n not in known]
    if unknown:
        raise SystemExit(f"unknown page(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    chosen = [known[n] for n in names] if names else list(APP_PAGES)
    if sliders:
        chosen = [PageSpec(p.name, p.path, tuple(s for s in p.sliders if s in sliders)) for p in chosen]
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drnn_demo.bench ui", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--repeats", "-n", type=int, default=5,
                        help="presses per slider and new sessions per page (median reported; default %(default)s)")
    parser.add_argument("--pages", nargs="+", metavar="PAGE",
                        help=f"only these pages ({', '.join(p.name for p in APP_PAGES)})")
    parser.add_argument("--sliders", nargs="+", metavar="LABEL", help="only the sliders with these labels")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold page loads")
    parser.add_argument("--while-training", action="store_true",
                        help="repeat the slider pass while a background training run trains; report it vs idle")
    parser.add_argument("--json", metavar="PATH", help="also write every number (and every sample) to this JSON file")
    parser.add_argument("--app", default=str(ROOT / "app.py"), help="the app script (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=120,
                        help="seconds any one wait may take (default %(default)s)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    app_script = Path(args.app).resolve()
    if not app_script.exists():
        parser.error(f"no app script at {app_script}")
    if not Path(CHROMIUM).exists():
        print(f"Chromium not found at {CHROMIUM} (apt-get install chromium)", file=sys.stderr)
        return 2
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("playwright is not installed: pip install -r requirements-dev.txt (never `playwright install`: the "
              "benchmark drives the system Chromium)", file=sys.stderr)
        return 2
    pages = select_pages(args.pages, args.sliders)
    timeout_ms = args.timeout * 1000

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    meta = {"repeats": args.repeats, "python": sys.version.split()[0], "platform": platform.platform(),
            "cpus": os.cpu_count(), "streamlit": _streamlit_version(), "chromium": _chromium_version(),
            "quiet_ms": QUIET_MS, "pages": [p.path for p in pages], "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            **_git_state(app_script.parent)}
    with tempfile.TemporaryDirectory(prefix="drnn-bench-ui-") as tmp, servers(app_script, Path(tmp)) as (app, bare,
                                                                                                        runs):
        meta["server_ready_s"] = {"app": app.ready, "bare": bare.ready}
        log(f"servers ready: app {app.base} ({app.ready:.1f} s), bare {bare.base} ({bare.ready:.1f} s)")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
                try:
                    cold, bare_first = [], None
                    if not args.no_cold:
                        log("cold pages (first visits, then new sessions, bare and app alternately)")
                        cold, bare_first = cold_pass(browser, app, bare, pages, args.repeats, timeout_ms, log)
                    log("sliders (bare and app alternately)")
                    sliders = slider_pass(browser, app, bare, pages, args.repeats, timeout_ms, log)
                    training = None
                    if args.while_training and any(p.sliders for p in pages):
                        log("sliders while a background run trains")
                        with training_run(runs, log) as run:
                            busy = slider_pass(browser, app, bare, pages, args.repeats, timeout_ms, log)
                        training = (busy, run)
                finally:
                    browser.close()
        except Exception:
            for server in (app, bare):
                log(f"--- {server.name} server log (tail)\n{server.log_tail()}")
            raise
    report = build_report(meta, sliders, cold, bare_first, training)
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
