"""Run the paper's experiments cell by cell and keep the results (what they show: :mod:`drnn_demo.claims`).

``python -m drnn_demo reproduce reversal --budget small`` trains every cell of the experiment's
grid (:mod:`drnn_demo.experiments`) that has no result yet, writing after each cell

- ``results/<experiment>_<budget>.json``: ``[{"cell": {...}, "seed": s, "result": {...}}, ...]``
- ``results/<experiment>_<budget>.csv``: the same rows flattened, one per cell,

both atomically (write, then rename), so an interrupted run resumes where it stopped. Every cell
is trained once per seed of its budget (:data:`drnn_demo.experiments.SEEDS`); a (cell, seed)
pair counts as done when the file holds a row with the same cell settings and seed. ``--force``
reruns pairs, ``--only ID`` picks cells (and reruns them), ``--shard I/N`` takes every N-th pair
so that N processes can share one grid; :func:`pending_pairs` says which pairs a run trains, for this
module's loop and for ``--backend ray`` (:mod:`drnn_demo.ray_backend`, the same pairs as Ray tasks,
recorded through the same :func:`record`). :func:`run_cell_job` is the ``"reproduce_cell"`` run kind
(one cell rerun in the background). :mod:`drnn_demo.claims` reads the stored rows: the means over seeds,
the plot series, and each claim of the paper's abstract beside what the results show.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

from .experiments import EXPERIMENTS, SEEDS, check_budget, experiment
from .fileio import locked, write_json_atomic

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


def record(name: str, budget: str, cell: dict, seed: int, result: dict, directory: Path | None = None) -> None:
    """Store one (cell, seed) result, replacing an older row of the same cell id and seed; rows are
    kept in grid order, then by seed."""
    path = results_path(name, budget, directory)
    with locked(path):
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


def pair_key(cell: dict, seed: int) -> tuple[str, int]:
    """What identifies a (cell, seed) pair in a results file: every setting of the cell, and the seed."""
    return json.dumps(cell, sort_keys=True), seed


def grid_pairs(name: str, budget: str = "small", seeds: list[int] | None = None, only: list[str] | None = None,
               shard: tuple[int, int] | None = None) -> list[tuple[dict, int]]:
    """The (cell, seed) pairs a run of ``name`` covers, done or not, in grid order then by seed: ``only``
    these cell ids (``ValueError`` for an unknown one), ``seeds`` (default the budget's
    :data:`~drnn_demo.experiments.SEEDS`), ``shard=(i, n)``: every ``n``-th pair starting at ``i``."""
    grid = experiment(name).cells(check_budget(budget))
    if only:
        for cell_id in only:
            find_cell(name, budget, cell_id)
        grid = [c for c in grid if c["id"] in only]
    seeds = list(SEEDS[budget] if seeds is None else seeds)
    pairs = [(cell, seed) for cell in grid for seed in seeds]
    if shard is not None:
        pairs = pairs[shard[0] :: shard[1]]
    return pairs


def pending_pairs(name: str, budget: str = "small", seeds: list[int] | None = None, only: list[str] | None = None,
                  force: bool = False, directory: Path | None = None,
                  shard: tuple[int, int] | None = None) -> list[tuple[dict, int]]:
    """The pairs of :func:`grid_pairs` that a run would train: those without a finished row in the results
    file, or all of them with ``force`` or ``only``. Every backend (this module's loop, the Ray one in
    :mod:`drnn_demo.ray_backend`) runs exactly these."""
    pairs = grid_pairs(name, budget, seeds, only, shard)
    if force or only:
        return pairs
    done = {pair_key(r["cell"], r.get("seed")) for r in load_results(name, budget, directory)
            if r["result"].get("status") in ("finished", "early_stopped")}
    return [(cell, seed) for cell, seed in pairs if pair_key(cell, seed) not in done]


def run_experiment(
    name: str, budget: str = "small", seeds: list[int] | None = None, only: list[str] | None = None,
    force: bool = False, directory: Path | None = None, log: Callable[[str], None] = print,
    on_progress: Callable[[float, str], None] | None = None, should_stop: Callable[[], bool] = lambda: False,
    shard: tuple[int, int] | None = None,
) -> list[dict]:
    """Run the (cell, seed) pairs of ``name`` that are not done yet (or ``only`` these cell ids, or
    all with ``force``). ``seeds``: default the budget's :data:`~drnn_demo.experiments.SEEDS`;
    ``shard=(i, n)``: only every ``n``-th pair, starting at ``i``. (:func:`pending_pairs` says which.)

    ``on_progress(fraction, text)`` covers the whole experiment. Returns the stored rows.
    """
    module = experiment(name)
    pairs = grid_pairs(name, budget, seeds, only, shard)
    todo = {pair_key(cell, seed) for cell, seed in pending_pairs(name, budget, seeds, only, force, directory, shard)}
    for i, (cell, seed) in enumerate(pairs):
        if should_stop():
            log("stopped")
            break
        what = f"[{i + 1}/{len(pairs)}] {cell['id']} seed {seed}"
        if pair_key(cell, seed) not in todo:
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
