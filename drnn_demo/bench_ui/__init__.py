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

# The package: pages.py (what is measured), server.py (the two Streamlit servers and the background run),
# browser.py (Playwright on the system Chromium: the sessions and the timed passes), report.py (the samples,
# their medians and ratios, the printed tables and the JSON); this module is the command line.

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .browser import CHROMIUM, CHROMIUM_FLAGS, QUIET_MS, Session, cold_pass, slider_pass, visit
from .pages import APP_PAGES, BARE, BARE_PAGE, PageSpec
from .report import ColdResult, Move, SliderResult, build_report, format_report
from .server import Server, servers, training_run

__all__ = ["APP_PAGES", "BARE", "BARE_PAGE", "CHROMIUM", "ColdResult", "Move", "PageSpec", "Server", "Session",
           "SliderResult", "build_report", "cold_pass", "format_report", "main", "select_pages", "servers",
           "slider_pass", "training_run", "visit"]

ROOT = Path(__file__).resolve().parents[2]


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
