"""The interleaved timer that ``python -m drnn_demo.bench`` and the runtime experiment share.

Timing A, B, C, A, B, C, ... instead of all A then all B spreads a shared machine's noise over
every case alike, so the ratios of the medians are far steadier than the times themselves.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def time_interleaved(cases: dict[str, Callable[[], object]], repeats: int = 7, warmup: int = 2,
                     sync: Callable[[], None] | None = None) -> dict[str, float]:
    """Median seconds of each zero-argument callable: ``warmup`` calls each, then ``repeats`` rounds
    timed in turn (A, B, C, A, B, C, ...). ``sync`` (e.g. ``torch.cuda.synchronize``) runs before
    every clock reading, so GPU work is counted."""
    sync = sync or (lambda: None)
    for run in cases.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, run in cases.items():
            sync()
            start = time.perf_counter()
            run()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}
