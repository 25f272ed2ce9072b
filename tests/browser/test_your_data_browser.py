"""Your data in a real browser (issue #16): a hand-made two-class CSV uploaded through the file uploader is previewed
with its class counts, an LRN trained on it in the background shows its progress and then its outcome, and "Open on
LRN gates" opens that run there: its label in Model, the gate heatmaps drawn, a typed sentence predicted by it. A CSV
of one class shows its one message and stores nothing. The server has a runs directory of its own."""

import random
import re
import time

import pytest
from app_server import start_app, stop_app
from browser_helpers import screenshot, wait_idle
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

CHARTS = "[data-testid='stPlotlyChart']"
CELLS = "[role='gridcell']"  # the data grid's accessible copy of its cells (the grid itself is a canvas)
EXCEPTION = "[data-testid='stException']"
UPLOAD_INPUT = "[data-testid='stFileUploader'] input[type='file']"
SUBJECTS = ["the chair", "my phone", "this film", "the hotel", "our dinner", "that song"]
FILLERS = ["today", "really", "a lot", "so much", "again", "at home", "this week", "honestly"]
STEPS = 150  # the page's LRN (H = 32, lr 3e-3, seed 0) scores test accuracy 1.0 on feelings_csv() after 150 steps
LONG = 180_000  # ms: the machine may be shared; the run itself takes a few seconds

SHOWN = """([label, words]) => {  // the run is over and shows one prediction, of a sentence of that many words
  const app = document.querySelector("[data-testid='stApp']");
  const value = name => [...document.querySelectorAll("[data-testid='stMetric']")]
    .filter(m => m.querySelector("[data-testid='stMetricLabel']").innerText.trim() === name)
    .map(m => m.querySelector("[data-testid='stMetricValue']").innerText.trim());
  return app.dataset.testScriptState === "notRunning" && value("Prediction").join() === label
    && value("Words").join() === String(words);
}"""


def feelings_csv(rows: int = 96, seed: int = 0) -> str:
    """Two classes decided by one word: "i love ..." is happy, "i hate ..." is sad."""
    rng = random.Random(seed)
    lines = ["text,label"]
    for i in range(rows):
        label = "happy" if i % 2 else "sad"
        verb = "love" if label == "happy" else "hate"
        lines.append(f"i {verb} {rng.choice(SUBJECTS)} {rng.choice(FILLERS)} {i},{label}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def data_server(tmp_path_factory, browser):
    """(base URL, runs dir): the data sets and the runs of this module are its own."""
    runs = tmp_path_factory.mktemp("your-data") / "runs"
    proc, base, _ = start_app(runs, tmp_path_factory.mktemp("your-data-server") / "server.log")
    yield base, runs
    stop_app(proc)


def stored_sets(runs) -> list[str]:
    folder = runs / "datasets"
    return sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []


def upload(page, path) -> None:
    page.locator(UPLOAD_INPUT).set_input_files(str(path))


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox ``label`` (a click may land while the page still reruns: open it again)."""
    box, item = page.get_by_role("combobox", name=label), page.get_by_role("option", name=option, exact=True)
    for _ in range(5):
        wait_idle(page)
        box.click()
        try:
            item.wait_for(timeout=10_000)
            break
        except PlaywrightTimeoutError:
            page.keyboard.press("Escape")
    item.click()
    expect(box).to_have_value(option, timeout=LONG)
    wait_idle(page)


def metric(page, label: str):
    return page.locator("[data-testid='stMetric']").filter(has_text=label).locator("[data-testid='stMetricValue']")


def test_upload_train_and_open_the_run_on_lrn_gates(data_server, page, tmp_path):
    base, runs = data_server
    csv = tmp_path / "feelings.csv"
    rows = feelings_csv().splitlines()
    csv.write_text("\n".join(rows) + "\n")
    start = time.time()
    page.goto(f"{base}/data")
    wait_idle(page)
    expect(page.get_by_text("No data set stored yet")).to_be_visible(timeout=LONG)

    # 1. upload: stored, previewed with the class counts
    upload(page, csv)
    expect(page.get_by_text("is valid and stored as data set")).to_be_visible(timeout=LONG)
    wait_idle(page)
    ident = page.locator("[data-testid='stAlertContentSuccess'] code").inner_text()
    assert stored_sets(runs) == [f"{ident}.json"]
    picked = page.get_by_role("combobox", name="Data set")
    expect(picked).to_have_value(f"feelings.csv · classification · 96 rows · {ident}")
    expect(metric(page, "Examples")).to_have_text("96")
    expect(metric(page, "Classes")).to_have_text("2")
    counts, preview = (page.locator("[data-testid='stDataFrame']").nth(i) for i in (0, 1))
    expect(counts.locator(CELLS)).to_have_text(["happy", "48", "50.0%", "sad", "48", "50.0%"])
    first_text = rows[1].rsplit(",", 1)[0]
    expect(preview.locator(CELLS).filter(has_text=first_text).first).to_be_attached()
    expect(page.get_by_text("scores 50.0%")).to_be_visible()  # the majority baseline
    screenshot(page, "your-data-preview")

    # 2. an LRN, a few steps, in the background: its progress, then its outcome
    choose(page, "Cell", "LRN")
    steps = page.get_by_label("Steps", exact=True)
    steps.fill(str(STEPS))
    steps.press("Enter")
    wait_idle(page)
    expect(steps).to_have_value(str(STEPS))
    train = page.get_by_role("button", name="Train LRN on feelings.csv")
    train.click()
    expect(page.locator("[data-testid='stProgress']").first).to_be_visible(timeout=LONG)
    expect(train).to_be_disabled()  # one run at a time while it is followed
    outcome = page.locator("[data-testid='stAlertContentSuccess']").filter(has_text=f"finished {STEPS} steps")
    expect(outcome).to_be_visible(timeout=LONG)
    expect(page.get_by_text("opens on LRN gates")).to_be_visible()
    link = page.locator("[data-testid='stPageLink'] a").filter(has_text="Open on LRN gates")
    expect(link).to_be_visible()
    run_id = dict(q.split("=", 1) for q in link.get_attribute("href").split("?", 1)[1].split("&"))["run"]
    trained = time.time()
    screenshot(page, "your-data-trained")

    # 3. open it on LRN gates: that run in Model, the heatmaps drawn, a typed sentence predicted
    link.click()
    page.wait_for_url("**/lrn?*", timeout=LONG)
    wait_idle(page)
    model = page.get_by_role("combobox", name="Model")
    expect(model).to_have_value(f"your run LRN h=32 on feelings.csv ({run_id})", timeout=LONG)
    expect(page.get_by_text("Trained on your data set")).to_be_visible(timeout=LONG)
    expect(page.locator(".main-svg").first).to_be_visible(timeout=LONG)
    for tab, title in (("Weights", "Weight w[t, k] of token k"), ("Gates", "Input gates and forget chains, per unit")):
        page.get_by_role("tab", name=tab, exact=True).click()  # the heatmaps of two tabs
        expect(page.locator(CHARTS).filter(has_text=title).locator(".heatmaplayer .hm image").first).to_be_attached(
            timeout=LONG)
    page.get_by_role("tab", name="tanh vs identity", exact=True).click()
    comparison = page.locator(CHARTS).filter(has_text="tanh vs identity: the same input")
    for g in ("identity", "tanh"):  # the pretrained models' predictions carry their labels, not those of your data
        expect(comparison).to_contain_text(re.compile(rf"pretrained, g = {g}: (negative|positive) \("), timeout=LONG)
    opened = time.time()
    body = page.inner_text("body")
    assert page.locator(EXCEPTION).count() == 0, body[:2000]
    assert "Traceback" not in body
    box = page.get_by_label("Sentence (type your own; Ctrl+Enter to apply)")
    for sentence, label in [("i love my phone", "happy"), ("honestly i hate this hotel today", "sad")]:
        box.fill(sentence)
        box.press("Control+Enter")
        page.wait_for_function(SHOWN, arg=[label, len(sentence.split())], timeout=LONG)
    assert page.locator(EXCEPTION).count() == 0
    screenshot(page, "your-data-on-lrn-gates")
    print(f"\nYour data: open, upload, train {trained - start:.1f}s; LRN gates: open {opened - trained:.1f}s, "
          f"two typed sentences {time.time() - opened:.1f}s")


def test_a_csv_of_one_class_shows_its_message_and_stores_nothing(data_server, page, tmp_path):
    base, runs = data_server
    before = stored_sets(runs)
    bad = tmp_path / "one_class.csv"
    bad.write_text("text,label\n" + "".join(f"a fine film {i},good\n" for i in range(30)))
    page.goto(f"{base}/data")
    wait_idle(page)
    upload(page, bad)
    error = page.locator("[data-testid='stAlertContentError']")
    expect(error).to_have_count(1, timeout=LONG)
    expect(error).to_contain_text("one_class.csv was not kept")
    expect(error).to_contain_text("only one class")
    wait_idle(page)
    assert page.get_by_text("is valid and stored").count() == 0
    assert page.locator(EXCEPTION).count() == 0
    assert stored_sets(runs) == before
    screenshot(page, "your-data-one-class")
