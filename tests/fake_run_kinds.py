"""Run kinds for tests/test_jobs.py, imported by the worker process as ``fake_run_kinds:<name>``.

They do not import torch (a worker starts in a fraction of a second) and follow the kind contract
of :mod:`drnn_demo.jobs`: ``fn(config, on_progress, should_stop, run_dir) -> result dict``.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Progress:
    """The same fields as drnn_demo.loop.Progress (the worker reads them by name)."""

    step: int
    total_steps: int
    loss: float
    metrics: dict = field(default_factory=dict)
    elapsed: float | None = None


def _save_fake_checkpoint(run_dir: Path, step: int) -> Path:
    path = run_dir / "model.safetensors"
    path.write_bytes(b"fake weights at step %d" % step)
    path.with_suffix(".json").write_text(json.dumps({"step": step}))
    return path


def counting(config, on_progress, should_stop, run_dir):
    """``steps`` steps of ``sleep`` seconds each, loss 1/(step+1); saves a checkpoint."""
    steps, sleep = config.get("steps", 10), config.get("sleep", 0.01)
    for step in range(1, steps + 1):
        if should_stop():
            return {"status": "cancelled", "message": f"stopped at step {step}"}
        time.sleep(sleep)
        on_progress(Progress(step, steps, 1.0 / (step + 1), {"accuracy": step / steps}))
    return {"status": "finished", "message": f"{steps} steps", "metrics": {"test_accuracy": 1.0},
            "checkpoint": _save_fake_checkpoint(Path(run_dir), steps)}


def until_cancelled(config, on_progress, should_stop, run_dir):
    """Reports progress forever; stops only when asked."""
    step = 0
    (Path(run_dir) / "pid.txt").write_text(str(os.getpid()))
    while not should_stop():
        step += 1
        on_progress({"step": step, "total_steps": 10**9, "loss": 0.5, "metrics": {}})
        time.sleep(0.02)
    return {"status": "cancelled", "message": f"cancelled at step {step}"}


def deaf(config, on_progress, should_stop, run_dir):
    """Ignores should_stop (a hung kernel): only a kill ends it."""
    on_progress(Progress(1, 100, 1.0))
    while True:
        time.sleep(0.05)


def boom(config, on_progress, should_stop, run_dir):
    """Reports three steps, then raises."""
    for step in range(1, 4):
        on_progress(Progress(step, 10, 1.0))
    raise ValueError("boom at step 3")


def nan_loss(config, on_progress, should_stop, run_dir):
    """The loss turns NaN at step ``nan_at`` (default 5); keeps going while it may."""
    nan_at = config.get("nan_at", 5)
    for step in range(1, 1000):
        if should_stop():
            return {"status": "cancelled", "message": "stopped"}
        on_progress(Progress(step, 1000, math.nan if step >= nan_at else 1.0 / step))
        time.sleep(0.005)
    return {"status": "finished"}


def fast(config, on_progress, should_stop, run_dir):
    """Many progress points as fast as possible (for the atomic-write and downsampling tests)."""
    steps = config.get("steps", 3000)
    for step in range(1, steps + 1):
        on_progress(Progress(step, steps, 1.0 / step, {"accuracy": step / steps}))
        if step % 100 == 0:
            time.sleep(0.001)
    return {"status": "finished"}


def nice_level(config, on_progress, should_stop, run_dir):
    """The worker's OS niceness and scheduling policy (-1 where the OS has none), as its message."""
    policy = os.sched_getscheduler(0) if hasattr(os, "sched_getscheduler") else -1
    return {"status": "finished", "message": f"{os.nice(0)} {policy}"}
