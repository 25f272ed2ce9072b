"""The model families the paper compares, and one Trainer-based ``run_cell`` for generated tasks.

Families (all LSTM, as in the paper's synthetic experiments), for hidden size ``H``:

- ``delayed``: one :class:`~drnn_demo.models.DelayedRNN` layer with delay ``d``: output ``t``
  has read ``x[0 .. t + d]``;
- ``stacked``: two unidirectional layers ``[H, H]`` (causal: ``d = 0``);
- ``bidirectional``: one bidirectional layer, ``H`` per direction (reads the whole sequence);
- ``stacked_bidirectional``: two bidirectional layers.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..loop import Progress
from ..training import TrainConfig, Trainer

FAMILIES = ("delayed", "stacked", "bidirectional", "stacked_bidirectional")


def model_config(family: str, hidden: int, delay: int = 0) -> dict:
    """The :class:`~drnn_demo.models.SequenceModel` keywords (``core``, ``core_args``) of a family."""
    if family == "delayed":
        return {"core": "delayed", "core_args": {"hidden_size": hidden, "delay": delay, "cell": "lstm"}}
    if family == "stacked":
        return {"core": "stacked", "core_args": {"hidden_sizes": [hidden, hidden], "cell": "lstm"}}
    if family == "bidirectional":
        return {"core": "bidirectional", "core_args": {"hidden_sizes": [hidden], "cell": "lstm"}}
    if family == "stacked_bidirectional":
        return {"core": "bidirectional", "core_args": {"hidden_sizes": [hidden, hidden], "cell": "lstm"}}
    raise ValueError(f"family must be one of {list(FAMILIES)}, got {family!r}")


def ladder(delays, hidden: int, baselines=("bidirectional", "stacked"), **settings) -> list[dict]:
    """Cells: a delayed model per delay, then the baselines (delay 0), all with ``settings``."""
    cells = [{"id": f"delayed_d{d}", "family": "delayed", "delay": d, "hidden": hidden, **settings} for d in delays]
    cells += [{"id": family, "family": family, "delay": 0, "hidden": hidden, **settings} for family in baselines]
    return cells


def as_fraction(on_progress: Callable[[float, str], None]) -> Callable[[Progress], None]:
    """A :class:`~drnn_demo.loop.Progress` callback that reports ``(fraction done, text)``, as ``run_cell`` does."""
    return lambda p: on_progress(p.step / p.total_steps, f"step {p.step}/{p.total_steps}, loss {p.loss:.4g}")


def train_cell(cell: dict, seed: int, on_progress: Callable[[float, str], None],
               should_stop: Callable[[], bool]) -> dict:
    """Train one cell of a generated-task experiment with the generic :class:`Trainer`.

    ``cell``: ``family``, ``delay``, ``hidden``, ``task``, ``task_args`` and ``train`` (the
    remaining :class:`TrainConfig` fields: steps, lr, ...). Returns ``test_<metric>`` and
    ``val_<metric>`` for every metric of the task, ``params``, ``seconds``, ``status``, ``steps``.
    """
    config = TrainConfig(task=cell["task"], task_args=dict(cell["task_args"]),
                         model=model_config(cell["family"], cell["hidden"], cell["delay"]),
                         seed=seed, device="auto", **cell["train"])
    start = time.perf_counter()
    result = Trainer(config, as_fraction(on_progress), should_stop).run()
    return {**{f"test_{k}": v for k, v in result.test_metrics.items()},
            **{f"val_{k}": v for k, v in result.val_metrics.items()},
            "params": sum(p.numel() for p in result.model.parameters() if p.requires_grad),
            "seconds": time.perf_counter() - start, "status": result.status, "steps": result.steps}
