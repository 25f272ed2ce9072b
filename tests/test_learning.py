"""What the lab must show, trained for real (slow): a delay buys exactly the look-ahead a task needs.

- Reversal (T=20, V=4): a delayed LSTM with d = T-1 learns it (>= 99 % test accuracy); at d = 0
  the same model and budget stay at the theoretical bound (62.5 %), which no causal model beats.
- Sine filtering (c=15, a=5): a delayed LSTM with d = a reaches test MSE <= 1e-3; at d = 0 the
  same model stays above its irreducible floor and several times worse.

The four runs are independent, so they train two at a time in worker processes (one torch
thread each): on the two cores of CI that halves the wall time, on a busy machine it costs
nothing. Every run is the public ``Trainer`` on a ``TrainConfig`` with a fixed seed; about three
CPU minutes in all. Measured (seed 0, torch 2.13 CPU): reversal d=19 0.9962, d=0 0.6256 (bound
0.625); sine d=5 MSE 4.4e-4, d=0 1.37e-3 (floor 9.0e-4).
"""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest

from drnn_demo.tasks import build_task, reversal_best_accuracy

pytestmark = pytest.mark.slow


def _lstm(hidden_size, delay):
    return {"core": "delayed", "core_args": {"hidden_size": hidden_size, "delay": delay, "cell": "lstm"}}


REVERSAL = dict(task="reversal", task_args={"length": 20, "classes": 4}, steps=2000, batch_size=64, lr=2e-2,
                lr_schedule="cosine", eval_every=250, patience=0, seed=0, device="cpu")
SINE = dict(task="sine", task_args={}, steps=1500, batch_size=32, lr=1e-2, lr_schedule="cosine",
            eval_every=250, patience=0, seed=0, device="cpu")
RUNS = {  # longest first, so the pool finishes sooner
    "reversal_d19": dict(REVERSAL, model=_lstm(128, 19)),
    "sine_d5": dict(SINE, model=_lstm(64, 5)),
    "reversal_d0": dict(REVERSAL, model=_lstm(128, 0)),
    "sine_d0": dict(SINE, model=_lstm(64, 0)),
}


def _train(config: dict) -> dict:
    import torch

    from drnn_demo.training import TrainConfig, Trainer

    torch.set_num_threads(1)
    result = Trainer(TrainConfig.from_dict(config)).run()
    return {"status": result.status, "test": result.test_metrics, "val": result.val_metrics,
            "elapsed": result.elapsed, "message": result.message}


@pytest.fixture(scope="module")
def runs():
    """Start all four runs at once; each test waits only for the runs it needs."""
    pool = ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"))
    futures = {name: pool.submit(_train, config) for name, config in RUNS.items()}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


def _result(runs, name):
    result = runs[name].result(timeout=900)
    print(f"{name}: {result['message']}")
    assert result["status"] == "finished", result["message"]
    return result


def test_delayed_lstm_learns_reversal_that_a_causal_one_cannot(runs):
    bound = reversal_best_accuracy(20, 4, 0)
    assert bound == pytest.approx(0.625)
    delayed = _result(runs, "reversal_d19")["test"]["accuracy"]
    causal = _result(runs, "reversal_d0")["test"]["accuracy"]
    assert delayed >= 0.99, f"delay 19: test accuracy {delayed:.4f}"
    # 2000 test sequences x 20 positions: the standard error of an accuracy near 0.6 is ~0.002
    assert causal <= bound + 0.01, f"delay 0: test accuracy {causal:.4f} above the bound {bound}"
    assert causal >= bound - 0.05, f"delay 0 ({causal:.4f}) did not learn what it can; the comparison would be unfair"


def test_delayed_lstm_solves_sine_filtering_below_the_causal_floor(runs):
    task = build_task("sine")
    floor = task.irreducible_mse(0)
    delayed = _result(runs, "sine_d5")["test"]["mse"]
    causal = _result(runs, "sine_d0")["test"]["mse"]
    assert task.irreducible_mse(5) == 0.0
    assert delayed <= 1e-3, f"delay 5: test MSE {delayed:.3g}"
    # no model can beat the floor (up to the test set's sampling noise, well under 5 %)
    assert causal >= 0.95 * floor, f"delay 0: test MSE {causal:.3g} below the irreducible {floor:.3g}"
    assert causal >= 2.5 * delayed, f"delay 0: {causal:.3g} vs delay 5: {delayed:.3g}"
    assert delayed < floor, "the delayed model must beat what any causal model can reach"
