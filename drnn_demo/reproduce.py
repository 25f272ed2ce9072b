"""Run the paper's experiments cell by cell, keep the results, and say what they show.

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
recorded through the same :func:`record`). :func:`claims` sets each claim of the paper's abstract
beside what the stored results show.
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
from .stats import Interval, difference_interval, mean_interval

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


def values_by_cell(rows: list[dict], key: str) -> dict[str, list[float]]:
    """``{cell id: [result[key] of every seed]}`` over the rows that finished (in grid order)."""
    out: dict[str, list[float]] = {}
    for r in rows:
        value = r["result"].get(key)
        if r["result"].get("status") in ("finished", "early_stopped") and isinstance(value, int | float) \
                and math.isfinite(value):
            out.setdefault(r["cell"]["id"], []).append(float(value))
    return out


def summaries(name: str, rows: list[dict]) -> dict[str, Interval]:
    """``{cell id: mean of the experiment's METRIC over its seeds, with a 95 % interval}``."""
    return {cell: mean_interval(v) for cell, v in values_by_cell(rows, experiment(name).METRIC).items()}


def series(name: str, rows: list[dict]) -> dict:
    """What the plot of one experiment draws: ``points`` (delayed models: delay, value = the mean
    over seeds, low / high of its 95 % interval or None, n seeds, label), ``baselines`` (the other
    families: name, value, low, high, n) and ``bound`` ((delays, values) of the theory line, or None)."""
    module = experiment(name)
    cells = {r["cell"]["id"]: r["cell"] for r in rows}
    points, baselines, delayed_cell = [], [], None
    for cell_id, s in summaries(name, rows).items():
        cell = cells[cell_id]
        entry = {"value": s.mean, "low": s.low, "high": s.high, "n": s.n}
        if cell["family"] == "delayed":
            points.append({"delay": cell["delay"], "label": cell_id, **entry})
            delayed_cell = cell
        else:
            baselines.append({"name": cell_id.replace("_", " "), **entry})
    bound = None
    if delayed_cell is not None and hasattr(module, "bound"):
        delays = list(range(max(p["delay"] for p in points) + 1))
        bound = (delays, [module.bound({**delayed_cell, "delay": d}) for d in delays])
    return {"points": points, "baselines": baselines, "bound": bound}


# ----------------------------------------------------------------------------- claims
#
# Every verdict comes from a 95 % interval over seeds (Welch's, for a difference of two cells) set
# against the margin the claim implies. "agrees" / "disagrees" when the interval lies wholly on one
# side of the margin, "inconclusive" when it straddles it or when a cell has one seed (no interval).
# The delayed model a claim compares is chosen on the validation metric, so the test numbers are not
# picked on themselves.


def _chosen_delayed(name: str, rows: list[dict]) -> str | None:
    """The delayed cell with the best mean validation metric (the test metric where none is stored)."""
    module = experiment(name)
    metric = module.METRIC
    val = values_by_cell(rows, metric.replace("test_", "val_", 1))
    by = val if val else values_by_cell(rows, metric)
    delayed = {k: sum(v) / len(v) for k, v in by.items() if k.startswith("delayed_d")}
    if not delayed:
        return None
    return (max if module.HIGHER_IS_BETTER else min)(delayed, key=delayed.get)


def _side(interval: Interval, margin: float, good_above: bool) -> str:
    """'agrees' when the interval lies above (``good_above``) or below the margin, 'disagrees' when on the
    other side, else 'inconclusive'."""
    if not interval.known:
        return "inconclusive"
    if (interval.low > margin) if good_above else (interval.high < margin):
        return "agrees"
    if (interval.high < margin) if good_above else (interval.low > margin):
        return "disagrees"
    return "inconclusive"


def _compare(name: str, rows: list[dict], log: bool = False) -> tuple[str, Interval] | None:
    """(chosen delayed cell, interval of its metric minus the bidirectional one's), or None. ``log``:
    the difference of natural logs (a ratio), for losses that span decades."""
    chosen = _chosen_delayed(name, rows)
    values = values_by_cell(rows, experiment(name).METRIC)
    if chosen is None or "bidirectional" not in values:
        return None
    a, b = values[chosen], values["bidirectional"]
    if log:
        a, b = [math.log(v) for v in a if v > 0], [math.log(v) for v in b if v > 0]
    return chosen, difference_interval(a, b)


def _exp(log_interval: Interval) -> Interval:
    """The interval of a ratio from that of a difference of logs."""
    low, high = log_interval.low, log_interval.high
    return Interval(math.exp(log_interval.mean), None if low is None else math.exp(low),
                    None if high is None else math.exp(high), log_interval.n)


def _short(cell_id: str) -> str:
    return cell_id.replace("delayed_", "")


def _seeds(rows: list[dict], *cells: str) -> str:
    counts = values_by_cell(rows, "seconds")
    return "/".join(str(len(counts.get(c, []))) for c in cells)


def claims(results: dict[str, list[dict]]) -> list[dict]:
    """Each claim of the paper's abstract beside what ``results`` ({experiment: rows}) show.

    Returns ``[{"claim", "paper", "evidence", "test", "verdict"}]``: the paper's own words or
    number, ours (means over seeds with 95 % intervals), the test that decides, and the verdict
    "agrees", "disagrees", "inconclusive" or "not measured yet".
    """
    out = []

    # 1. dRNN mimics bidirectional networks on acausal tasks (reversal; sine within a factor 2).
    parts, verdicts = [], []
    for name, log, margin, label in (("reversal", False, -0.01, "accuracy"), ("sine", True, math.log(2), "MSE")):
        rows = results.get(name, [])
        found = _compare(name, rows, log)
        if found is None:
            continue
        chosen, diff = found
        s = summaries(name, rows)
        verdict = _side(diff, margin, good_above=not log)
        if log:
            what = f"MSE ratio {_exp(diff).text('.3g')}"
        else:
            what = f"difference {diff.text('+.2f', 100)} points"
        seeds = _seeds(rows, chosen, "bidirectional")
        parts.append(f"{name}: dRNN ({_short(chosen)}) {label} {s[chosen].text('.4g')} vs bidirectional "
                     f"{s['bidirectional'].text('.4g')}, {what} ({verdict}; seeds {seeds})")
        verdicts.append(verdict)
    out.append(_claim(
        "A delayed RNN mimics a bidirectional network on acausal tasks.",
        "solves some acausal tasks as well as the bidirectional network (sequence reversal perfectly)",
        "95 % Welch interval of (dRNN - bidirectional) over seeds: reversal accuracy within 1 point "
        "(interval above -1 point), sine MSE within a factor 2 (interval of the ratio below 2); agrees on "
        "either task", parts, verdicts, any_agrees=True))

    # 2. ... and outperforms them on others.
    parts, verdicts = [], []
    for name in ("reversal", "sine", "mlm", "pos"):
        rows = results.get(name, [])
        log = name == "sine"
        found = _compare(name, rows, log)
        if found is None:
            continue
        chosen, diff = found
        higher = experiment(name).HIGHER_IS_BETTER
        verdict = _side(diff, 0.0, good_above=higher)
        word = {"agrees": "beats", "disagrees": "loses to", "inconclusive": "cannot be told from"}[verdict]
        s = summaries(name, rows)
        parts.append(f"{name}: dRNN ({_short(chosen)}) {s[chosen].text('.4g')} {word} bidirectional "
                     f"{s['bidirectional'].text('.4g')} (seeds {_seeds(rows, chosen, 'bidirectional')})")
        verdicts.append(verdict)
    out.append(_claim(
        "It outperforms bidirectional networks on other tasks.", "outperforms them on some acausal tasks",
        "95 % Welch interval of the difference (log of the MSE for sine) excludes 0 in the dRNN's favour on "
        "at least one task: agrees; excludes it against the dRNN on every task: disagrees",
        parts, verdicts, any_agrees=True))

    # 3. Within 0.3 % of the bidirectional accuracy on a real language task (POS tagging).
    rows = results.get("pos", [])
    found = _compare("pos", rows)
    parts, verdicts = [], []
    if found is not None:
        chosen, diff = found
        gap = Interval(-diff.mean, None if diff.high is None else -diff.high,
                       None if diff.low is None else -diff.low, diff.n)  # bidirectional - dRNN
        s = summaries("pos", rows)
        sentences = {r["result"].get("train_sentences") for r in rows if r["result"].get("train_sentences")}
        trained = f", trained on {', '.join(f'{n:,}' for n in sorted(sentences))} sentences" if sentences else ""
        parts.append(f"POS tagging: dRNN ({_short(chosen)}) {s[chosen].text('.2%')} vs bidirectional "
                     f"{s['bidirectional'].text('.2%')}, a gap of {gap.text('+.2f', 100)} points{trained} "
                     f"(seeds {_seeds(rows, chosen, 'bidirectional')})")
        verdicts.append(_side(gap, 0.003, good_above=False))
    out.append(_claim(
        "Within 0.3 % of the bidirectional accuracy on a real language task (POS tagging).",
        "within 0.3 % of the bidirectional network's accuracy",
        "95 % Welch interval of (bidirectional - dRNN) test accuracy: below 0.3 points agrees, above "
        "disagrees", parts, verdicts))

    # 4. Equal or faster runtime than bidirectional networks.
    rows = results.get("runtime", [])
    s = {k: v for k, v in summaries("runtime", rows).items() if k.startswith("delayed_d")}
    parts, verdicts = [], []
    if s:
        parts.append("inference time / bidirectional LSTM's at equal hidden size: "
                     + ", ".join(f"{_short(k)} {v.text('.2f')}" for k, v in s.items())
                     + f" (seeds {_seeds(rows, *s)})")
        equal = summaries("runtime", rows).get("bidirectional_equal_params")
        if equal is not None:
            parts.append(f"a bidirectional LSTM with as many parameters as the dRNN runs at {equal.text('.2f')}")
        each = [_side(v, 1.05, good_above=False) for v in s.values()]
        verdicts.append("disagrees" if "disagrees" in each else "inconclusive" if "inconclusive" in each
                        else "agrees")
    out.append(_claim(
        "Equal or faster runtime than a bidirectional network.", "equivalent or faster runtimes",
        "95 % interval of each delay's time ratio to the bidirectional LSTM: all below 1.05 agrees, any above "
        "1.05 disagrees", parts, verdicts))
    return out


def _claim(claim: str, paper: str, test: str, parts: list[str], verdicts: list[str],
           any_agrees: bool = False) -> dict:
    """One claim's row; ``verdicts`` per task combine as: every task agrees (or, with ``any_agrees``,
    one does) -> agrees; every task disagrees (or, without it, one does) -> disagrees; else
    inconclusive."""
    if not verdicts:
        verdict = "not measured yet"
    elif (any_agrees and "agrees" in verdicts) or all(v == "agrees" for v in verdicts):
        verdict = "agrees"
    elif all(v == "disagrees" for v in verdicts) or (not any_agrees and "disagrees" in verdicts):
        verdict = "disagrees"
    else:
        verdict = "inconclusive"
    return {"claim": claim, "paper": paper, "evidence": "; ".join(parts) if parts else "no results yet",
            "test": test, "verdict": verdict}


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
