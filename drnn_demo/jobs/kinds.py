"""Run kinds: the functions a worker runs, by name.

``kind`` names a function ``fn(config, on_progress, should_stop, run_dir) -> result`` that the
worker calls. It is either a key of :data:`RUN_KINDS` (add a line there for a built-in kind) or
a dotted reference ``"package.module:function"`` that the worker imports (this is how tests
register fake kinds without touching the registry). Kinds are code references chosen by the
pages, never text typed by a user. ``on_progress`` takes a
:class:`drnn_demo.loop.Progress` (or any object or dict with ``step``, ``total_steps``,
``loss``, ``metrics``, ``elapsed``); ``should_stop()`` turns true when the run is cancelled or
its loss became non-finite. ``result`` is a dict: ``status`` (finished | early_stopped |
diverged | cancelled; default finished), ``message``, ``metrics``, ``checkpoint`` (path of a
``.safetensors`` file inside ``run_dir`` whose ``.json`` card sits beside it, or None). An
exception is a ``failed`` run whose traceback is in ``log.txt``. ``submit(..., files=...)``
puts input files (an uploaded checkpoint, say) into ``run_dir`` before the run is queued.

Nothing here imports torch: the manager (in the server process) imports this module to check
kind names, and only the worker calls the kinds.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

ProgressCallback = Callable[[Any], None]
RunKind = Callable[[dict, ProgressCallback, Callable[[], bool], Path], dict]


def run_train(config: dict, on_progress: ProgressCallback, should_stop: Callable[[], bool], run_dir: Path) -> dict:
    """The ``"train"`` kind: a :class:`drnn_demo.training.Trainer` run on a ``TrainConfig`` dict.

    The trainer's model (its best validation weights) is saved to ``run_dir/model.safetensors`` +
    ``model.json`` (card: :meth:`TrainResult.card` plus ``run_id``) whatever the status, so a
    diverged or cancelled run keeps its last good weights. The config's ``device`` ("auto" /
    "cpu" / "cuda") is the trainer's business. Final metrics: ``val_<name>`` and ``test_<name>``.
    """
    from ..checkpoints import save_checkpoint
    from ..training import TrainConfig, Trainer

    result = Trainer(TrainConfig.from_dict(config), on_progress, should_stop).run()
    metrics = {**{f"val_{k}": v for k, v in (result.val_metrics or {}).items()},
               **{f"test_{k}": v for k, v in (result.test_metrics or {}).items()}}
    checkpoint = None
    if result.model is not None:
        checkpoint = save_checkpoint(run_dir / "model.safetensors", result.model,
                                     result.card(run_id=run_dir.name))
    return {"status": result.status, "message": result.message, "metrics": metrics, "checkpoint": checkpoint}


# The other kinds are imported when called (in the worker), so that importing the manager, which checks
# kind names against this table, does not import torch or the modules behind them.
RUN_KINDS: dict[str, RunKind] = {
    "train": run_train,
    "memory": lambda *args: importlib.import_module("drnn_demo.recipes.memory").run_memory_job(*args),
    "lrn_sentiment": lambda *args: importlib.import_module("drnn_demo.recipes.sentiment").run_sentiment_job(*args),
    "reproduce_cell": lambda *args: importlib.import_module("drnn_demo.reproduce").run_cell_job(*args),
    "retest": lambda *args: importlib.import_module("drnn_demo.retest").run_retest_job(*args),
}


def resolve_kind(kind: str) -> RunKind:
    """The function behind ``kind``: a :data:`RUN_KINDS` key or ``"package.module:function"``."""
    if kind in RUN_KINDS:
        return RUN_KINDS[kind]
    module, sep, name = kind.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"kind must be one of {sorted(RUN_KINDS)} or 'package.module:function', got {kind!r}")
    fn = getattr(importlib.import_module(module), name)
    if not callable(fn):
        raise ValueError(f"kind {kind!r} is not callable")
    return fn


def check_kind_name(kind: str) -> None:
    """``ValueError`` unless ``kind`` is a :data:`RUN_KINDS` key or looks like ``"package.module:function"``
    (nothing is imported: that is the worker's business)."""
    if not isinstance(kind, str) or (kind not in RUN_KINDS and not all(kind.partition(":")[::2])):
        raise ValueError(f"kind must be one of {sorted(RUN_KINDS)} or 'package.module:function', got {kind!r}")

