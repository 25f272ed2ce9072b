"""Means with intervals over seeds, and the interval of a difference: what a verdict rests on.

With ``n`` seeds of a cell, :func:`mean_interval` gives the mean and its two-sided ``level``
Student-t interval, ``mean ± t_{n-1} · s / sqrt(n)``. :func:`difference_interval` gives the
Welch interval of ``mean(a) - mean(b)`` for two cells with unequal variances:

.. math::
    \\bar a - \\bar b \\pm t_\\nu \\sqrt{s_a^2/n_a + s_b^2/n_b},\\qquad
    \\nu = \\frac{(s_a^2/n_a + s_b^2/n_b)^2}{(s_a^2/n_a)^2/(n_a-1) + (s_b^2/n_b)^2/(n_b-1)}

(the Welch-Satterthwaite degrees of freedom). A single seed has no interval: ``low`` and
``high`` are None, and a verdict built on it says "inconclusive".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as _scipy_stats

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean (or a difference of means) over ``n`` seeds and its two-sided interval at ``level``
    (``low`` / ``high`` None when there are too few seeds)."""

    mean: float
    low: float | None
    high: float | None
    n: int
    level: float = LEVEL

    @property
    def known(self) -> bool:
        return self.low is not None and self.high is not None

    def text(self, fmt: str = ".4g", scale: float = 1.0) -> str:
        """``"0.951 [0.948, 0.954]"``, or just ``"0.951"`` without an interval."""
        mean = format(self.mean * scale, fmt)
        if not self.known:
            return mean
        return f"{mean} [{format(self.low * scale, fmt)}, {format(self.high * scale, fmt)}]"


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def mean_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """The mean of ``values`` (non-finite ones dropped) with its Student-t interval; ``ValueError``
    when no value is left."""
    xs = _finite(values)
    if not xs:
        raise ValueError("no finite values to average")
    n, mean = len(xs), sum(xs) / len(xs)
    if n < 2:
        return Interval(mean, None, None, n, level)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(_scipy_stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, level)


def difference_interval(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Interval:
    """``mean(a) - mean(b)`` with its Welch interval (``n`` is the smaller sample's size)."""
    xa, xb = _finite(a), _finite(b)
    if not xa or not xb:
        raise ValueError("both samples need a finite value")
    ma, mb = sum(xa) / len(xa), sum(xb) / len(xb)
    n = min(len(xa), len(xb))
    if n < 2:
        return Interval(ma - mb, None, None, n, level)
    va = sum((x - ma) ** 2 for x in xa) / (len(xa) - 1) / len(xa)
    vb = sum((x - mb) ** 2 for x in xb) / (len(xb) - 1) / len(xb)
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(ma - mb, ma - mb, ma - mb, n, level)
    dof = (va + vb) ** 2 / (va**2 / (len(xa) - 1) + vb**2 / (len(xb) - 1))
    half = float(_scipy_stats.t.ppf(0.5 + level / 2, dof)) * se
    return Interval(ma - mb, ma - mb - half, ma - mb + half, n, level)
