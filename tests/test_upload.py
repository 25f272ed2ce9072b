"""Uploaded checkpoints (the zip the Training runs page offers): checked before use, with a clear
error for every bad archive, and nothing unpickled; a good one re-tests to its recorded metrics."""

import io
import json
import pickle
import zipfile

import pytest
import torch
from apptest_helpers import open_page
from test_faults import RunsCode
from test_training import tiny

from drnn_demo import checkpoints
from drnn_demo.checkpoints import CheckpointError, load_checkpoint_zip, save_checkpoint
from drnn_demo.retest import retest
from drnn_demo.training import Trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    result = Trainer(tiny(steps=20)).run()
    path = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "model", result.model, result.card())
    return result, path


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def files_of(path) -> dict[str, bytes]:
    return {"model.safetensors": path.read_bytes(), "model.json": path.with_suffix(".json").read_bytes()}


def test_a_good_upload_loads_and_retests_to_its_recorded_metrics(trained):
    result, path = trained
    model, card = load_checkpoint_zip(zipped(files_of(path)))
    x, _ = result.task.sample(5, seed=3)
    assert torch.allclose(model(x), result.model.eval()(x))
    assert retest(model, card) == pytest.approx(result.test_metrics)


def with_card(path, **changes) -> dict[str, bytes]:
    files = files_of(path)
    card = json.loads(files["model.json"])
    for key, value in changes.items():
        card["model"][key] = value
    files["model.json"] = json.dumps(card).encode()
    return files


@pytest.mark.parametrize("case, message", [
    ("not a zip", "not a zip archive"),
    ("extra member", "one .safetensors file and one .json card"),
    ("path in name", "not a plain file name"),
    ("truncated weights", "corrupt or truncated"),
    ("unknown model", "unknown model 'gpt'"),
    ("wrong shapes", "shape mismatch|sha256"),
    ("non-finite weights", "non-finite|sha256"),
])
def test_bad_uploads_are_refused_with_a_clear_error(trained, case, message):
    _, path = trained
    files = files_of(path)
    if case == "not a zip":
        data = b"PK? no, just bytes"
    elif case == "extra member":
        data = zipped({**files, "notes.txt": b"hi"})
    elif case == "path in name":
        data = zipped({"../model.safetensors": files["model.safetensors"], "model.json": files["model.json"]})
    elif case == "truncated weights":
        data = zipped({**files, "model.safetensors": files["model.safetensors"][:100]})
    elif case == "unknown model":
        data = zipped(with_card(path, core="gpt"))
    elif case == "wrong shapes":
        card = json.loads(files["model.json"])
        data = zipped(with_card(path, core_args={**card["model"]["core_args"], "hidden_size": 9}))
    else:
        tensors = checkpoints.load_safetensors_bytes(files["model.safetensors"])
        tensors = {k: v.clone().fill_(float("nan")) if i == 0 else v for i, (k, v) in enumerate(tensors.items())}
        data = zipped({**files, "model.safetensors": checkpoints.save_safetensors_bytes(tensors)})
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint_zip(data)


def test_too_large_uploads_are_refused_before_unpacking(trained, monkeypatch):
    _, path = trained
    monkeypatch.setattr(checkpoints, "MAX_UPLOAD_BYTES", 1000)
    with pytest.raises(CheckpointError, match="the limit is 0 MB|unpacks to"):
        load_checkpoint_zip(zipped(files_of(path)))
    bomb = zipped({"model.safetensors": b"\0" * 50_000, "model.json": b"{}"})  # compresses below the limit
    assert len(bomb) < 1000
    with pytest.raises(CheckpointError, match="unpacks to"):
        load_checkpoint_zip(bomb)


def test_a_pickle_inside_the_archive_runs_nothing(trained, tmp_path):
    _, path = trained
    marker = tmp_path / "pwned"
    data = zipped({**files_of(path), "model.safetensors": pickle.dumps(RunsCode(marker))})
    with pytest.raises(CheckpointError):
        load_checkpoint_zip(data)
    assert not marker.exists()


def test_the_runs_page_checks_an_upload(trained):
    """(Its re-test in a background run: test_hostile_checkpoints.py.)"""
    result, path = trained
    at = open_page("views/training_runs.py")
    at.file_uploader(key="upload").set_value(("good.zip", zipped(files_of(path)), "application/zip")).run()
    assert not at.exception
    assert any("a valid checkpoint of a **delayed** model" in s.value for s in at.success)
    at.file_uploader(key="upload").set_value(("bad.zip", b"garbage", "application/zip")).run()
    assert not at.exception and any("not a zip archive" in e.value for e in at.error)
