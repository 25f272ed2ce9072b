"""Runtime: inference time per batch of the delayed RNN against bidirectional and stacked LSTMs.

The paper's claim: a dRNN runs as fast as or faster than the bidirectional network it stands in
for. Each cell times its model and the reference (a bidirectional LSTM with the same hidden size)
interleaved on the same input, after a warm-up, and reports the medians and their ratio, so the
noise of a shared machine cancels. Two comparisons:

- equal hidden size ``H`` (``match="hidden"``): every model has ``H`` units per direction/layer;
- equal parameter count (``match="params"``): the baselines' hidden size is chosen so their
  parameter count is closest to the delayed model's.

On a GPU the clock is read after ``torch.cuda.synchronize()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from ..models import build_model
from ..resources import pick_device
from ..timing import time_interleaved
from . import check_budget
from .families import model_config

TITLE = "Runtime (inference)"
METRIC = "ratio"
METRIC_LABEL = "time per batch / bidirectional LSTM's"
HIGHER_IS_BETTER = False

SETTINGS = {
    "tiny": dict(delays=(0, 2), hidden=16, batch=4, length=10, features=8, repeats=3, warmup=1),
    "small": dict(delays=(0, 5, 10, 20), hidden=128, batch=64, length=100, features=64, repeats=9, warmup=2),
    "medium": dict(delays=(0, 5, 10, 20), hidden=256, batch=64, length=200, features=128, repeats=15, warmup=3),
    "full": dict(delays=(0, 5, 10, 20, 50), hidden=512, batch=128, length=500, features=256, repeats=25, warmup=5),
}


def lstm_params(input_size: int, hidden: int, layers: int = 1, directions: int = 1) -> int:
    """Parameters of torch's LSTM: ``4H(D + H) + 8H`` per layer and direction (later layers read
    ``directions * H`` features)."""
    total, features = 0, input_size
    for _ in range(layers):
        total += directions * (4 * hidden * (features + hidden) + 8 * hidden)
        features = directions * hidden
    return total


def matched_hidden(target: int, input_size: int, layers: int, directions: int) -> int:
    """The hidden size whose LSTM parameter count is closest to ``target`` (bisection: the count grows with H)."""
    lo, hi = 1, 1
    while lstm_params(input_size, hi, layers, directions) < target:
        hi *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if lstm_params(input_size, mid, layers, directions) < target else (lo, mid)
    return min((lo, hi), key=lambda h: abs(lstm_params(input_size, h, layers, directions) - target))


def cells(budget: str) -> list[dict]:
    s = SETTINGS[check_budget(budget)]
    shape = {k: s[k] for k in ("batch", "length", "features", "repeats", "warmup")}
    shape["reference_hidden"] = s["hidden"]
    delayed_params = lstm_params(s["features"], s["hidden"])
    out = [{"id": f"delayed_d{d}", "family": "delayed", "delay": d, "hidden": s["hidden"], "match": "hidden", **shape}
           for d in s["delays"]]
    for family, layers, directions in (("bidirectional", 1, 2), ("stacked", 2, 1)):
        out.append({"id": family, "family": family, "delay": 0, "hidden": s["hidden"], "match": "hidden", **shape})
        h = matched_hidden(delayed_params, s["features"], layers, directions)
        out.append({"id": f"{family}_equal_params", "family": family, "delay": 0, "hidden": h, "match": "params",
                    **shape})
    return out


def build(family: str, hidden: int, delay: int, features: int, device: torch.device) -> nn.Module:
    config = model_config(family, hidden, delay)
    return build_model(config["core"], input_size=features, batch_first=True, **config["core_args"]).to(device).eval()


def run_cell(cell: dict, seed: int, on_progress: Callable[[float, str], None],
             should_stop: Callable[[], bool]) -> dict:
    """Time the cell's model and the equal-hidden bidirectional LSTM side by side; ``ratio`` = model / reference."""
    start = time.perf_counter()
    device = pick_device("auto")
    torch.manual_seed(seed)
    model = build(cell["family"], cell["hidden"], cell["delay"], cell["features"], device)
    reference = build("bidirectional", cell["reference_hidden"], 0, cell["features"], device)
    x = torch.randn(cell["batch"], cell["length"], cell["features"], device=device)
    on_progress(0.0, "timing")

    def infer(module):
        def run():
            with torch.inference_mode():
                return module(x)
        return run

    medians = time_interleaved({"model": infer(model), "reference": infer(reference)}, cell["repeats"], cell["warmup"],
                               torch.cuda.synchronize if device.type == "cuda" else None)
    on_progress(1.0, "done")
    return {"ms_per_batch": 1e3 * medians["model"], "reference_ms": 1e3 * medians["reference"],
            "ratio": medians["model"] / medians["reference"],
            "params": sum(p.numel() for p in model.parameters()), "device": device.type,
            "threads": torch.get_num_threads(), "seconds": time.perf_counter() - start, "status": "finished"}

