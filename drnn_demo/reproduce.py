"""Run the paper's experiments cell by cell, keep the results, and say what they show.

``python -m drnn_demo reproduce reversal --budget small`` trains every cell of the experiment's
grid (:mod:`drnn_demo.experiments`) that has no result yet, writing after each cell

- ``results/<experiment>_<budget>.json``: ``[{"cell": {...}, "seed": s, "result": {...}}, ...]``
- ``results/<experiment>_<budget>.csv``: the same rows flattened, one per cell,

both atomically (write, then rename), so an interrupted run resumes where it stopped. Every cell
is trained once per seed of its budget (:data:`drnn_demo.experiments.SEEDS`); a (cell, seed)
pair counts as done when the file holds a row with the same cell settings and seed. ``--force``
reruns pairs, ``--only ID`` picks cells (and reruns them), ``--shard I/N`` takes every N-th pair
so that N processes can share one grid. :func:`claims` sets each claim of the paper's abstract
beside what the stored results show.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import math
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from .experiments import EXPERIMENTS, SEEDS, check_budget, experiment
from .jobs import write_json_atomic

SHIPPED_RESULTS = Path(__file__).resolve().parents[1] / "results"


def results_dir() -> Path:
    """Where results are kept: ``$DRNN_RESULTS_DIR`` if set, else the shipped ``results/``."""
    return Path(os.environ.get("DRNN_RESULTS_DIR") or SHIPPED_RESULTS)


def results_path(name: str, budget: str, directory: Path | None = None) -> Path:
    """``<directory>/<name>_<budget>.json`` (default directory: :func:`results_dir`)."""
    experiment(name), check_budget(budget)
    return Path(directory or results_dir()) / f"{name}_{budget}.json"


def load_results(name: str, budget: str, directory: Path | None = None) -> list[dict]:
    """The stored rows of one experiment and budget, in grid order; [] when none. A malformed file
    raises ``ValueError`` naming it."""
    path = results_path(name, budget, directory)
    if not path.exists():
        return []
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a results file ({e})") from e
    if not isinstance(rows, list) or not all(isinstance(r, dict) and {"cell", "result"} <= set(r) for r in rows):
        raise ValueError(f"{path}: not a results file (expected a list of {{cell, seed, result}} rows)")
    return rows


def flat_row(row: dict) -> dict:
    """One CSV row: the cell's settings (nested ones as JSON), the seed, the result's numbers."""
    flat = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row["cell"].items()}
    flat["seed"] = row.get("seed")
    flat.update({k: v for k, v in row["result"].items() if not isinstance(v, dict | list)})
    return flat


def _write_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, rows)
    flats = [flat_row(r) for r in rows]
    columns = list(dict.fromkeys(k for f in flats for k in f))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns)
    writer.writeheader()
    writer.writerows(flats)
    tmp = path.with_name(f".{path.stem}.csv.{os.getpid()}.tmp")
    tmp.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(tmp, path.with_suffix(".csv"))


@contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path``'s results (two background reruns may finish at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def record(name: str, budget: str, cell: dict, seed: int, result: dict, directory: Path | None = None) -> None:
    """Store one (cell, seed) result, replacing an older row of the same cell id and seed; rows are
    kept in grid order, then by seed."""
    path = results_path(name, budget, directory)
    with _locked(path):
        rows = [r for r in load_results(name, budget, directory)
                if (r["cell"].get("id"), r.get("seed")) != (cell["id"], seed)]
        rows.append({"cell": cell, "seed": seed, "result": result})
        order = {c["id"]: i for i, c in enumerate(experiment(name).cells(budget))}
        rows.sort(key=lambda r: (order.get(r["cell"].get("id"), len(order)), r.get("seed") or 0))
        _write_rows(path, rows)


def find_cell(name: str, budget: str, cell_id: str) -> dict:
    """The cell ``cell_id`` of an experiment's grid; ``ValueError`` naming the ids otherwise."""
    grid = experiment(name).cells(budget)
    for cell in grid:
        if cell["id"] == cell_id:
            return cell
    raise ValueError(f"experiment {name!r} ({budget}) has no cell {cell_id!r}; its cells are {[c['id'] for c in grid]}")


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``0 <= I < N``; ``ValueError`` otherwise."""
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = -1
    if not sep or not 0 <= i < n:
        raise ValueError(f"shard must be I/N with 0 <= I < N (e.g. 0/2), got {text!r}")
    return i, n


def run_experiment(
    name: str, budget: str = "small", seeds: list[int] | None = None, only: list[str] | None = None,
    force: bool = False, directory: Path | None = None, log: Callable[[str], None] = print,
    on_progress: Callable[[float, str], None] | None = None, should_stop: Callable[[], bool] = lambda: False,
    shard: tuple[int, int] | None = None,
) -> list[dict]:
    """Run the (cell, seed) pairs of ``name`` that are not done yet (or ``only`` these cell ids, or
    all with ``force``). ``seeds``: default the budget's :data:`~drnn_demo.experiments.SEEDS`;
    ``shard=(i, n)``: only every ``n``-th pair, starting at ``i``.

    ``on_progress(fraction, text)`` covers the whole experiment. Returns the stored rows.
    """
    module = experiment(name)
    grid = module.cells(check_budget(budget))
    if only:
        for cell_id in only:
            find_cell(name, budget, cell_id)
        grid = [c for c in grid if c["id"] in only]
    seeds = list(SEEDS[budget] if seeds is None else seeds)
    pairs = [(cell, seed) for cell in grid for seed in seeds]
    if shard is not None:
        pairs = pairs[shard[0] :: shard[1]]
    done = {(json.dumps(r["cell"], sort_keys=True), r.get("seed")) for r in load_results(name, budget, directory)
            if r["result"].get("status") in ("finished", "early_stopped")}
    for i, (cell, seed) in enumerate(pairs):
        if should_stop():
            log("stopped")
            break
        what = f"[{i + 1}/{len(pairs)}] {cell['id']} seed {seed}"
        if (json.dumps(cell, sort_keys=True), seed) in done and not force and not only:
            log(f"{what}: done, skipped")
            continue
        log(what)

        def progress(fraction: float, text: str, i=i, cell_id=cell["id"]) -> None:
            if on_progress is not None:
                on_progress((i + min(max(fraction, 0.0), 1.0)) / len(pairs), f"{cell_id}: {text}")

        start = time.perf_counter()
        result = module.run_cell(cell, seed, progress, should_stop)
        record(name, budget, cell, seed, result, directory)
        log(f"    {module.METRIC} = {format_value(result.get(module.METRIC))} ({result.get('status')}, "
            f"{time.perf_counter() - start:.0f} s)")
    return load_results(name, budget, directory)


def format_value(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def table(name: str, rows: list[dict]) -> str:
    """A plain-text table of the stored rows: cell, family, delay, hidden, metric, params, seconds."""
    module = experiment(name)
    header = ["cell", "family", "delay", "hidden", module.METRIC, "params", "seconds"]
    lines = [header]
    for r in rows:
        c, res = r["cell"], r["result"]
        lines.append([c["id"], c["family"], str(c["delay"]), str(c.get("hidden", "")),
                      format_value(res.get(module.METRIC)), str(res.get("params", "")),
                      format_value(float(res.get("seconds", math.nan)))])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)) for line in lines)


def series(name: str, rows: list[dict]) -> dict:
    """What the plot of one experiment draws: ``points`` (delayed models: delay, value, label),
    ``baselines`` (the other families: name, value) and ``bound`` ((delays, values) of the theory
    line, or None)."""
    module = experiment(name)
    points, baselines, delayed_cell = [], [], None
    for r in rows:
        cell, value = r["cell"], r["result"].get(module.METRIC)
        if value is None:
            continue
        if cell["family"] == "delayed":
            points.append({"delay": cell["delay"], "value": float(value), "label": cell["id"]})
            delayed_cell = cell
        else:
            baselines.append({"name": cell["id"].replace("_", " "), "value": float(value)})
    bound = None
    if delayed_cell is not None and hasattr(module, "bound"):
        delays = list(range(max(p["delay"] for p in points) + 1))
        bound = (delays, [module.bound({**delayed_cell, "delay": d}) for d in delays])
    return {"points": points, "baselines": baselines, "bound": bound}


# ----------------------------------------------------------------------------- claims


def _metric(rows: list[dict], name: str) -> dict[str, float]:
    """{cell id: value of the experiment's METRIC} for the finished rows."""
    metric = experiment(name).METRIC
    return {r["cell"]["id"]: float(r["result"][metric]) for r in rows
            if r["result"].get(metric) is not None and r["result"].get("status") != "cancelled"}


def _best_delayed(values: dict[str, float], higher: bool) -> tuple[str, float] | None:
    delayed = {k: v for k, v in values.items() if k.startswith("delayed_d")}
    if not delayed:
        return None
    return (max if higher else min)(delayed.items(), key=lambda kv: kv[1])


def claims(results: dict[str, list[dict]]) -> list[dict]:
    """Each claim of the paper's abstract beside what ``results`` ({experiment: rows}) show.

    Returns ``[{"claim", "evidence", "verdict"}]`` with verdict "agrees", "disagrees", "partly"
    or "not measured yet"; the evidence is a sentence built from the measured numbers.
    """
    out = []

    # 1. dRNN mimics bidirectional networks on acausal tasks (reversal, sine).
    parts, verdicts = [], []
    for name, tolerance in (("reversal", 0.01), ("sine", None)):
        values = _metric(results.get(name, []), name)
        best = _best_delayed(values, experiment(name).HIGHER_IS_BETTER)
        if best is None or "bidirectional" not in values:
            continue
        bi = values["bidirectional"]
        if name == "reversal":
            close = best[1] >= bi - tolerance
            parts.append(f"reversal: best dRNN ({best[0].replace('delayed_', '')}) {best[1]:.3f} accuracy vs "
                         f"bidirectional {bi:.3f}")
        else:
            close = best[1] <= 2 * bi + 1e-4
            parts.append(f"sine: best dRNN ({best[0].replace('delayed_', '')}) MSE {best[1]:.2e} vs bidirectional "
                         f"{bi:.2e}")
        verdicts.append(close)
    out.append(_claim("A delayed RNN mimics a bidirectional network on acausal tasks.", parts, verdicts))

    # 2. ... and outperforms them on others (any experiment where the best dRNN beats bidirectional).
    parts, verdicts = [], []
    for name in ("reversal", "sine", "mlm", "pos"):
        values = _metric(results.get(name, []), name)
        higher = experiment(name).HIGHER_IS_BETTER
        best = _best_delayed(values, higher)
        if best is None or "bidirectional" not in values:
            continue
        bi = values["bidirectional"]
        # one seed per cell: count a win only beyond the noise (1 point of accuracy, 10 % of a loss)
        better = best[1] > bi + 0.01 if higher else best[1] < 0.9 * bi
        worse = best[1] < bi - 0.01 if higher else best[1] > 1.1 * bi
        word = "clearly beats" if better else "is clearly worse than" if worse else "ties with"
        parts.append(f"{name}: best dRNN {format_value(best[1])} {word} bidirectional {format_value(bi)}")
        verdicts.append(better)
    out.append(_claim("It outperforms bidirectional networks on other tasks.", parts, verdicts, any_agrees=True))

    # 3. Within 0.3 % of the bidirectional accuracy on a real language task (POS tagging).
    values = _metric(results.get("pos", []), "pos")
    best = _best_delayed(values, True)
    parts, verdicts = [], []
    if best is not None and "bidirectional" in values:
        gap = values["bidirectional"] - best[1]
        parts.append(f"POS tagging: best dRNN ({best[0].replace('delayed_', '')}) {best[1]:.2%} vs bidirectional "
                     f"{values['bidirectional']:.2%}, a gap of {gap * 100:+.2f} points")
        verdicts.append(gap <= 0.003)
    out.append(_claim("Within 0.3 % of the bidirectional accuracy on a real language task (POS tagging).",
                      parts, verdicts))

    # 4. Equal or faster runtime than bidirectional networks.
    values = _metric(results.get("runtime", []), "runtime")
    delayed = {k: v for k, v in values.items() if k.startswith("delayed_d")}
    parts, verdicts = [], []
    if delayed:
        worst = max(delayed.items(), key=lambda kv: kv[1])
        parts.append("inference time / bidirectional LSTM's at equal hidden size: "
                     + ", ".join(f"{k.replace('delayed_', '')} {v:.2f}" for k, v in delayed.items()))
        if "bidirectional_equal_params" in values:
            equal = values["bidirectional_equal_params"]
            parts.append(f"a bidirectional LSTM with as many parameters as the dRNN runs at {equal:.2f}")
        verdicts.append(worst[1] <= 1.05)
    out.append(_claim("Equal or faster runtime than a bidirectional network.", parts, verdicts))
    return out


def _claim(claim: str, parts: list[str], verdicts: list[bool], any_agrees: bool = False) -> dict:
    if not verdicts:
        verdict = "not measured yet"
    elif all(verdicts) or (any_agrees and any(verdicts)):
        verdict = "agrees"
    elif any(verdicts):
        verdict = "partly"
    else:
        verdict = "disagrees"
    return {"claim": claim, "evidence": "; ".join(parts) if parts else "no results yet", "verdict": verdict}


def all_results(budget: str = "small", directory: Path | None = None) -> dict[str, list[dict]]:
    """{experiment: stored rows} for every experiment (empty lists where nothing is stored)."""
    return {name: load_results(name, budget, directory) for name in EXPERIMENTS}


# ----------------------------------------------------------------------------- background runs


def run_cell_job(config: dict, on_progress: Callable, should_stop: Callable[[], bool], run_dir: Path) -> dict:
    """The ``"reproduce_cell"`` run kind of :mod:`drnn_demo.jobs`: rerun one cell and record its result.

    ``config``: ``experiment``, ``budget``, ``cell`` (an id of the grid), ``seed``, optional ``directory``.
    """
    name, budget = config["experiment"], config.get("budget", "small")
    cell = find_cell(name, budget, config["cell"])
    seed = int(config.get("seed", 0))
    directory = Path(config["directory"]) if config.get("directory") else None

    def progress(fraction: float, text: str) -> None:
        on_progress({"step": round(1000 * fraction), "total_steps": 1000, "message": text})

    result = experiment(name).run_cell(cell, seed, progress, should_stop)
    status = result.get("status", "finished")
    if status != "cancelled":
        record(name, budget, cell, seed, result, directory)
    metric = experiment(name).METRIC
    return {"status": status if status in ("finished", "cancelled", "diverged") else "finished",
            "message": f"{name} / {cell['id']}: {metric} = {format_value(result.get(metric))}",
            "metrics": {k: v for k, v in result.items() if isinstance(v, int | float)}}
