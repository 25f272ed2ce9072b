"""In Chromium: the Training runs page over damaged and hostile runs lists the good run with its download,
each damaged run as corrupt with its reason, and no download carries a byte from outside a run."""

import zipfile

import pytest
from app_server import start_app, stop_app
from browser_helpers import screenshot, wait_idle
from test_app_runs_hostile import CORRUPT, GOOD, HOSTILE, build_hostile_runs


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory, browser):
    root = build_hostile_runs(tmp_path_factory.mktemp("hostile") / "runs")
    proc, base, _ = start_app(root, tmp_path_factory.mktemp("hostile-server") / "server.log")
    yield base
    stop_app(proc)


def test_the_runs_page_lists_corrupt_runs_and_downloads_only_inside_a_run(hostile_server, page, tmp_path):
    page.goto(f"{hostile_server}/runs")
    wait_idle(page)
    page.get_by_text(GOOD).first.wait_for(timeout=60_000)
    screenshot(page, "runs-hostile")
    body = page.inner_text("body")
    assert page.locator("[data-testid='stException']").count() == 0, body[:2000]
    assert "Traceback" not in body
    assert body.count("files are damaged") == len(CORRUPT)
    for run_id in [*CORRUPT, *HOSTILE]:
        assert run_id in body
    buttons = page.locator("[data-testid='stDownloadButton'] button", has_text="Download checkpoint")
    buttons.first.wait_for(timeout=60_000)  # the run cards draw one after another
    wait_idle(page)
    assert buttons.count() == 1, [b.inner_text() for b in buttons.all()]  # the good run's only
    with page.expect_download() as download:
        buttons.first.click()
    path = tmp_path / "checkpoint.zip"
    download.value.save_as(path)
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["model.json", "model.safetensors"]
        data = b"".join(archive.read(n) for n in archive.namelist())
    assert b"root:x:0:0" not in data
    exports = page.locator("[data-testid='stDownloadButton']", has_text="Export run")
    assert exports.count() == 1 + len(HOSTILE), [b.inner_text() for b in exports.all()]  # good run + the two hostile
    for i in range(exports.count()):  # a run's export reads only its run.json, state.json and progress.jsonl
        with page.expect_download() as download:
            exports.nth(i).get_by_role("button").first.click()
        download.value.save_as(tmp_path / f"run{i}.zip")
        with zipfile.ZipFile(tmp_path / f"run{i}.zip") as archive:
            assert b"root:x:0:0" not in b"".join(archive.read(n) for n in archive.namelist())
