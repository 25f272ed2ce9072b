r"""Incremental evaluation (Madureira & Schlangen, EMNLP 2020, after Baumann et al. 2011): how an output that is
produced while the input arrives changes before it settles.

An **output history** is the sequence of partial outputs ``P_0, P_1, ..., P_{N-1}``, one per time step ``now``
(usually one step per arriving token, ``N = T``): ``P_now`` holds the labels of the tokens ``0 .. |P_now|-1``
as shown at that step. Labels may only be added or replaced, never taken back (``|P_now|`` does not shrink), and
``P_{N-1}`` is the final output ``F`` (``n = |F|`` labels). It is stored as a *chart* ``C[now, t]`` (``N x n``
ints, ``-1`` = no label yet).

- An **edit** is one label added (token ``t`` gets its first label) or one label replaced (token ``t``'s label at
  ``now`` differs from the one at ``now - 1``). ``n`` edits are necessary (each final label added once); every
  other edit is a revision. **Edit overhead**

  .. math:: \mathrm{EO} = \frac{E - n}{E} \in [0, 1), \qquad E = n + \#\{(now, t): C[now-1, t] \ge 0,\
            C[now, t] \ne C[now-1, t]\}

  (0 for an output that never revises itself).
- **Correction time** of token ``t``: the steps from its first label to its final decision,

  .. math:: \mathrm{CT}_t = \mathrm{FD}_t - \mathrm{FO}_t, \quad \mathrm{FO}_t = \min\{now: C[now, t] \ge 0\},
            \quad \mathrm{FD}_t = \min\{now: C[now', t] = F_t\ \forall now' \ge now\}

  (0 when the first label is already the final one).
- **Relative correctness**: the fraction of time steps whose partial output is a prefix of the final one,

  .. math:: \mathrm{RC} = \frac{1}{N} \#\{now: P_{now} = F_{0..|P_{now}|-1}\}

  (the empty output is a prefix; 1 for an output that never revises itself).

These measure stability, not accuracy or latency: a delayed network that shows label ``t`` at step ``t + d`` and
never changes it has EO = 0, CT = 0 and RC = 1 by construction (:func:`delayed_history`), whatever ``d``; its
price is the latency ``d``, which :func:`lag_accuracy` and the accuracy-vs-latency chart show.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NO_LABEL = -1


def chart(history: Sequence[Sequence[int]]) -> np.ndarray:
    """The ``(N, n)`` chart of a history of partial outputs (lists of non-negative int labels); raises
    ``ValueError`` for an empty history, a negative label, or a partial output shorter than the one before."""
    history = [list(p) for p in history]
    if not history:
        raise ValueError("a history needs at least one time step")
    lengths = [len(p) for p in history]
    if any(b < a for a, b in zip(lengths, lengths[1:], strict=False)):
        step = next(i for i in range(1, len(lengths)) if lengths[i] < lengths[i - 1])
        raise ValueError(f"partial outputs may not shrink: step {step} has {lengths[step]} labels, step {step - 1} "
                         f"had {lengths[step - 1]}")
    c = np.full((len(history), lengths[-1]), NO_LABEL, dtype=np.int64)
    for now, partial in enumerate(history):
        c[now, : len(partial)] = partial
    if (c[np.arange(c.shape[1])[None] < np.array(lengths)[:, None]] < 0).any():
        raise ValueError("labels must be non-negative integers")
    return c


def _as_chart(history) -> np.ndarray:
    return history if isinstance(history, np.ndarray) and history.ndim == 2 else chart(history)


def revisions(history) -> int:
    """Labels replaced after they were first shown (``E - n``)."""
    c = _as_chart(history)
    before, after = c[:-1], c[1:]
    return int(((before >= 0) & (after != before)).sum())


def edit_overhead(history) -> float:
    """``EO = (E - n) / E``: the share of edits that were revisions (0 for an empty final output)."""
    c = _as_chart(history)
    n, r = c.shape[1], revisions(c)
    return r / (n + r) if n + r else 0.0


def correction_times(history) -> np.ndarray:
    """``(n,)`` ints: ``CT_t = FD_t - FO_t`` for each token of the final output."""
    c = _as_chart(history)
    N, n = c.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    first = (c >= 0).argmax(0)
    wrong = c != c[-1][None]  # steps whose label is not the final one (including "no label yet")
    last_wrong = np.where(wrong.any(0), N - 1 - wrong[::-1].argmax(0), -1)
    decided = np.maximum(last_wrong + 1, first)
    return decided - first


def relative_correctness(history) -> float:
    """``RC``: the fraction of time steps whose partial output is a prefix of the final output."""
    c = _as_chart(history)
    shown = c >= 0
    ok = ~(shown & (c != c[-1][None])).any(1)
    return float(ok.mean())


def metrics(history) -> dict:
    """EO, mean CT (steps), RC, and the counts behind them, of one history."""
    c = _as_chart(history)
    ct = correction_times(c)
    return {"edit_overhead": edit_overhead(c), "correction_time": float(ct.mean()) if ct.size else 0.0,
            "relative_correctness": relative_correctness(c), "revisions": revisions(c), "tokens": c.shape[1],
            "steps": c.shape[0]}


def delayed_history(labels: Sequence[int], delay: int) -> np.ndarray:
    """The chart of a delayed network's streamed output: at step ``now < T-1`` the labels of tokens
    ``0 .. now - d``; at the last step (the input has ended, the remaining ``d`` outputs are flushed) all ``T``."""
    if isinstance(delay, bool) or not isinstance(delay, (int, np.integer)) or delay < 0:
        raise ValueError(f"delay must be a non-negative integer, got {delay!r}")
    labels = np.asarray(labels, dtype=np.int64)
    T = len(labels)
    if T == 0:
        raise ValueError("labels must hold at least one token")
    c = np.tile(labels, (T, 1))
    now, t = np.arange(T)[:, None], np.arange(T)[None]
    c[(t > now - delay) & (now < T - 1)] = NO_LABEL
    return c


def lag_accuracy(history, gold: Sequence[int], lag: int) -> tuple[int, int]:
    """``(correct, tokens)``: token ``t``'s label as shown at step ``min(t + lag, N - 1)`` (one step per token)
    against ``gold``; a token with no label yet at that step counts as wrong. ``lag = N`` scores the final output."""
    c = _as_chart(history)
    gold = np.asarray(gold)
    if len(gold) != c.shape[1]:
        raise ValueError(f"gold has {len(gold)} labels, the final output {c.shape[1]}")
    t = np.arange(c.shape[1])
    shown = c[np.minimum(t + lag, c.shape[0] - 1), t]
    return int((shown == gold).sum()), len(gold)


def summarize(histories: Sequence, golds: Sequence[Sequence[int]], lags: Sequence[int] = (0,)) -> dict:
    """Over a test set: EO and RC averaged over sentences, CT averaged over tokens (and the share of tokens
    ever revised), the final output's accuracy, and ``lag_accuracy`` for each of ``lags`` (``"accuracy_lag<k>"``)."""
    charts = [_as_chart(h) for h in histories]
    if not charts or len(charts) != len(golds):
        raise ValueError(f"need one gold sequence per history, got {len(charts)} histories and {len(golds)}")
    ct = np.concatenate([correction_times(c) for c in charts])
    tokens = sum(c.shape[1] for c in charts)
    out = {"sentences": len(charts), "tokens": tokens,
           "edit_overhead": float(np.mean([edit_overhead(c) for c in charts])),
           "correction_time": float(ct.mean()), "revised_tokens": float((ct > 0).mean()),
           "relative_correctness": float(np.mean([relative_correctness(c) for c in charts])),
           "accuracy": sum(int((c[-1] == np.asarray(g)).sum()) for c, g in zip(charts, golds, strict=True)) / tokens}
    for lag in lags:
        out[f"accuracy_lag{lag}"] = sum(lag_accuracy(c, g, lag)[0] for c, g in zip(charts, golds, strict=True)) / tokens
    return out
