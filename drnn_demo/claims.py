"""What the stored results show: per-cell means with 95 % intervals, the plot series, and the paper's claims.

Rows are those of :mod:`drnn_demo.reproduce` (``{"cell": {...}, "seed": s, "result": {...}}``, read by
:func:`~drnn_demo.reproduce.load_results`); only finished runs count.

- :func:`values_by_cell`: ``{cell id: [result[key] of every seed]}``.
- :func:`summaries`: each cell's mean of the experiment's ``METRIC`` over its seeds, with a 95 % interval
  (:func:`drnn_demo.stats.mean_interval`).
- :func:`series`: what an experiment's plot draws (the delayed models by delay, the baselines, the theory line).
- :func:`claims`: each claim of the paper's abstract, the paper's number beside ours and a verdict.
"""

from __future__ import annotations

import math

from .experiments import experiment
from .stats import Interval, difference_interval, mean_interval


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

