"""The ``"retest"`` run kind: re-measure an uploaded checkpoint in a worker process, not the server.

The Training runs page checks an uploaded zip (:func:`drnn_demo.checkpoints.load_checkpoint_zip`)
and its test plan (:func:`drnn_demo.training.retest_plan`), then submits this kind with the two
files written into the new run's directory (``model.safetensors`` + ``model.json``)::

    jobs.submit("retest", {}, label="re-test upload.zip", files={"model.safetensors": weights,
                                                                "model.json": card_bytes})

The worker loads the checkpoint again with every check, re-tests it on the test set its run
used, and reports ``test_<metric>`` (measured now) beside ``recorded_test_<metric>`` (the card's).
The run's checkpoint is the uploaded model, so it can be downloaded and opened like any run's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .checkpoints import load_checkpoint
from .training import retest

WEIGHTS_FILE, CARD_FILE = "model.safetensors", "model.json"


def run_retest_job(config: dict, on_progress: Callable, should_stop: Callable[[], bool], run_dir: Path) -> dict:
    """Load ``run_dir/model.*`` and re-test it; ``config`` is unused (the card says everything)."""
    model, card = load_checkpoint(run_dir / WEIGHTS_FILE)
    measured = retest(model, card, on_progress, should_stop)
    if measured is None:
        return {"status": "cancelled", "message": "re-test cancelled", "checkpoint": run_dir / WEIGHTS_FILE}
    recorded = (card.get("metrics") or {}).get("test") or {}
    metrics = {f"test_{k}": v for k, v in measured.items()}
    metrics.update({f"recorded_test_{k}": v for k, v in recorded.items() if isinstance(v, int | float)})
    summary = ", ".join(f"{k} {v:.4g} (card: {recorded[k]:.4g})" if isinstance(recorded.get(k), int | float)
                        else f"{k} {v:.4g}" for k, v in measured.items())
    return {"status": "finished", "message": f"re-tested on {card['train']['test_size']:,} test sequences: {summary}",
            "metrics": metrics, "checkpoint": run_dir / WEIGHTS_FILE}
