"""The UI benchmark's samples and report: medians, ratios to the bare page, the printed tables, the JSON.

A :class:`Move` is one slider press, a :class:`SliderResult` the presses of one slider with the bare page's
presses made alongside, a :class:`ColdResult` the cold loads of one page. :func:`build_report` turns them
into one JSON-able dict (every sample kept; each median set against the bare page's, ``ratio = app / bare``;
with ``--while-training`` each slider's median against its idle one); :func:`format_report` prints it.
Nothing here measures: made-up samples give the same tables (tests/test_bench_ui.py).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from .pages import BARE


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


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
