"""Hostile checkpoints: a card that asks for a huge model, a deep or mistyped card, a re-test on a
huge test set. Each is refused with its reason before anything it asks for is allocated (measured
in a fresh process: < 100 MB of peak memory and < 1 s per load), and a valid upload is re-tested
in a background run, never in the server process."""

import io
import json
import os
import subprocess
import sys
import textwrap
import time
import zipfile

import pytest
from apptest_helpers import open_page
from test_training import tiny

from drnn_demo import retest, training
from drnn_demo.checkpoints import CheckpointError, load_checkpoint, load_checkpoint_zip, save_checkpoint
from drnn_demo.jobs import JobManager
from drnn_demo.models.common import MAX_INPUT_SIZE, MAX_LAYERS, MAX_PARAMETERS
from drnn_demo.retest import retest_plan
from drnn_demo.training import Trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    result = Trainer(tiny(steps=20)).run()
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "model", result.model, result.card())
    return result, path


def zipped(weights: bytes, card: dict | str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model.safetensors", weights)
        archive.writestr("model.json", card if isinstance(card, str) else json.dumps(card))
    return buffer.getvalue()


def hostile_cards(card: dict) -> dict[str, tuple[dict | str, str]]:
    """name -> (card, the reason it must be refused with)."""
    def model(**changes):
        new = json.loads(json.dumps(card))
        new["model"].update(changes)
        return new

    args = card["model"]["core_args"]
    return {
        "huge hidden size": (model(core_args={**args, "hidden_size": 16384}),
                             f"parameters; the limit is {MAX_PARAMETERS:,}"),
        "large hidden size, tiny file": (model(core_args={**args, "hidden_size": 4000}), "shape mismatch"),
        "huge input size": (model(input_size=10**7), f"at most {MAX_INPUT_SIZE:,}"),
        "input size within the limit, tiny file": (model(input_size=MAX_INPUT_SIZE), "shape mismatch"),
        "100,000 layers": (model(core="stacked", core_args={"hidden_sizes": [8] * 100_000, "cell": "lstm"}),
                           f"at most {MAX_LAYERS}"),
        "100,000 LRN layers": (model(core="lrn", core_args={"hidden_size": 8, "num_layers": 100_000}),
                               f"at most {MAX_LAYERS}"),
        "huge vocabulary": (model(vocab_size=10**9), "vocab_size must be at most"),
        "huge output": (model(output_size=10**9), "output_size must be at most"),
        "a string for a size": (model(input_size="4"), "input_size must be a positive integer"),
        "a list for core_args": (model(core_args=[1, 2]), "core_args"),
        "100,000-deep JSON card": ('{"model": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested more than"),
    }


def test_hostile_cards_are_refused_with_their_reason(trained):
    _, path = trained
    weights, card = path.read_bytes(), json.loads(path.with_suffix(".json").read_text())
    for name, (bad, reason) in hostile_cards(card).items():
        with pytest.raises(CheckpointError, match=reason.replace("(", r"\(").replace(")", r"\)")):
            load_checkpoint_zip(zipped(weights, bad))
        # the same card as a file beside the weights
        path.with_suffix(".json").write_text(bad if isinstance(bad, str) else json.dumps(bad))
        try:
            with pytest.raises(CheckpointError, match=reason.replace("(", r"\(").replace(")", r"\)")):
                load_checkpoint(path)
        finally:
            path.with_suffix(".json").write_text(json.dumps(card))
        assert name


def test_a_safetensors_header_that_lies_is_refused_before_reading_tensors(trained):
    _, path = trained
    weights, card = path.read_bytes(), json.loads(path.with_suffix(".json").read_text())
    n = int.from_bytes(weights[:8], "little")
    header = json.loads(weights[8 : 8 + n])
    name = next(k for k in header if k != "__metadata__")
    header[name]["data_offsets"] = [0, 10**12]
    text = json.dumps(header).encode()
    forged = len(text).to_bytes(8, "little") + text + weights[8 + n :]
    with pytest.raises(CheckpointError, match="data_offsets"):
        load_checkpoint_zip(zipped(forged, card))
    huge_length = (10**15).to_bytes(8, "little") + weights[8:]
    with pytest.raises(CheckpointError, match="header claims"):
        load_checkpoint_zip(zipped(huge_length, card))


MEASURE = textwrap.dedent("""
    import json, resource, sys, time
    from drnn_demo.checkpoints import CheckpointError, load_checkpoint_zip
    cases = json.load(open(sys.argv[1]))
    load_checkpoint_zip(bytes.fromhex(cases.pop("good")))  # warm: imports and first allocations
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {}
    for name, data in cases.items():
        start = time.perf_counter()
        try:
            load_checkpoint_zip(bytes.fromhex(data))
            error = None
        except CheckpointError as err:
            error = str(err)
        out[name] = {"seconds": time.perf_counter() - start, "error": error,
                     "peak_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024}
    print(json.dumps(out))
""")


def test_refusing_a_hostile_upload_costs_under_a_second_and_100_mb(trained, tmp_path):
    _, path = trained
    weights, card = path.read_bytes(), json.loads(path.with_suffix(".json").read_text())
    cases = {name: zipped(weights, bad).hex() for name, (bad, _) in hostile_cards(card).items()}
    cases["good"] = zipped(weights, card).hex()
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    done = subprocess.run([sys.executable, "-c", MEASURE, str(tmp_path / "cases.json")], capture_output=True,
                          text=True, timeout=300, check=True)
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    for name, m in measured.items():
        assert m["error"], f"{name}: not refused"
        assert m["seconds"] < 1.0, f"{name}: {m['seconds']:.2f} s"
        assert m["peak_growth_mb"] < 100, f"{name}: peak memory grew by {m['peak_growth_mb']:.0f} MB"


@pytest.mark.parametrize("change, reason", [
    ({"test_size": 2_000_000}, "test_size must be at most 100,000"),
    ({"test_size": 2000, "task_args": {"length": 20_000}}, "test_size x length"),
    ({"task_args": {"length": 10**9}}, "a memory limit"),
    ({"test_size": "2000"}, "test_size must be a positive integer"),
    ({"task_args": {"nonsense": 1}}, "has no argument"),
])
def test_a_retest_beyond_the_trainers_limits_is_refused(trained, change, reason):
    _, path = trained
    card = json.loads(path.with_suffix(".json").read_text())
    change = dict(change)
    card["train"]["task_args"].update(change.pop("task_args", {}))
    card["train"].update(change)
    with pytest.raises(ValueError, match=reason):
        retest_plan(card)


def retest_runs() -> set[str]:
    return {r.id for r in JobManager(os.environ["DRNN_RUNS_DIR"]).runs() if r.kind == "retest"}


def test_the_runs_page_retests_an_upload_in_a_background_run(trained, monkeypatch):
    result, path = trained

    def not_here(*args, **kwargs):
        raise AssertionError("the server process evaluated an uploaded model")

    monkeypatch.setattr(retest, "retest", not_here)
    monkeypatch.setattr(retest, "predict", not_here)
    monkeypatch.setattr(training, "predict", not_here)
    before = retest_runs()
    at = open_page("views/training_runs.py")
    good = zipped(path.read_bytes(), json.loads(path.with_suffix(".json").read_text()))
    at.file_uploader(key="upload").set_value(("good.zip", good, "application/zip")).run()
    assert not at.exception
    assert any("a valid checkpoint of a **delayed** model" in s.value for s in at.success)
    assert len(retest_runs() - before) == 1
    deadline = time.time() + 120
    while not at.dataframe and time.time() < deadline:
        time.sleep(1)
        at.run()
    table = at.dataframe[-1].value
    assert list(table["recorded in the card"]) == pytest.approx(list(table["measured now"]))
    assert list(table["measured now"]) == pytest.approx([result.test_metrics[m] for m in table["metric"]])
    at.run()  # the same upload in the same session is not queued again
    assert len(retest_runs() - before) == 1

    card = json.loads(path.with_suffix(".json").read_text())
    card["train"]["test_size"] = 2_000_000
    at.file_uploader(key="upload").set_value(("big.zip", zipped(path.read_bytes(), card), "application/zip")).run()
    assert not at.exception and any("Not re-tested" in c.value and "test_size" in c.value for c in at.caption)
    assert len(retest_runs() - before) == 1
