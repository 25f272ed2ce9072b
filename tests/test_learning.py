"""What the lab must show, trained for real (slow): a delay buys exactly the look-ahead a task needs.

- Reversal (T=20, V=4): a delayed LSTM with d = T-1 learns it (>= 99 % test accuracy); at d = 0
  the same model and budget stay at the theoretical bound (62.5 %), which no causal model beats.
- Sine filtering (c=15, a=5): a delayed LSTM with d = a reaches test MSE <= 1e-3; at d = 0 the
  same model stays above its irreducible floor and several times worse.

The four runs are independent, so they train two at a time, each a ``python -m drnn_demo train``
process on one torch thread (the CLI a user runs; a subprocess, because multiprocessing's spawn
would re-run whatever ``__main__`` AppTest left behind). On the two cores of CI that halves the
wall time. Measured (seed 0, torch 2.13 CPU): reversal d=19 0.9962, d=0 0.6256 (bound 0.625);
sine d=5 MSE 4.4e-4, d=0 1.37e-3 (floor 9.0e-4).
"""

import json
import subprocess
import sys

import pytest

from drnn_demo.tasks import build_task, reversal_best_accuracy

pytestmark = pytest.mark.slow


REVERSAL = ["--task", "reversal", "-T", "20", "-V", "4", "--model", "delayed", "--cell", "lstm",
            "--hidden-size", "128", "--steps", "2000", "--batch-size", "64", "--lr", "0.02",
            "--lr-schedule", "cosine", "--eval-every", "250", "--patience", "0"]
SINE = ["--task", "sine", "--model", "delayed", "--cell", "lstm", "--hidden-size", "64", "--steps", "1500",
        "--batch-size", "32", "--lr", "0.01", "--lr-schedule", "cosine", "--eval-every", "250", "--patience", "0"]
RUNS = {  # longest first, so the pair finishes sooner
    "reversal_d19": REVERSAL + ["--delay", "19"],
    "sine_d5": SINE + ["--delay", "5"],
    "reversal_d0": REVERSAL + ["--delay", "0"],
    "sine_d0": SINE + ["--delay", "0"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Train all four, two at a time; returns name -> the CLI's JSON result."""
    out = tmp_path_factory.mktemp("learning")
    pending, running, results = list(RUNS.items()), {}, {}
    while pending or running:
        while pending and len(running) < 2:
            name, args = pending.pop(0)
            cmd = [sys.executable, "-m", "drnn_demo", "train", *args, "--seed", "0", "--device", "cpu",
                   "--threads", "1", "--quiet", "--json", "--out", str(out / name)]
            running[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        name, proc = next(iter(running.items()))
        stdout, stderr = proc.communicate(timeout=900)
        del running[name]
        assert proc.returncode == 0, f"{name}: exit {proc.returncode}\n{stderr[-3000:]}"
        results[name] = json.loads(stdout.strip().splitlines()[-1])
    return results


def _result(runs, name):
    result = runs[name]
    print(f"{name}: {result['message']}")
    assert result["status"] == "finished", result["message"]
    return {"test": result["test_metrics"]}


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
