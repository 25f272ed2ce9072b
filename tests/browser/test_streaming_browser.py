"""The Streaming page in a real browser: press play and the tokens arrive one by one, the delayed RNN's outputs
appear d steps behind the input (and then stay), the restarted bidirectional network's revisions are struck through,
the playback stops by itself at the end, and the connectivity heatmap of the model in view draws."""

import time

from browser_helpers import screenshot, wait_idle

CHARTS = "[data-testid='stPlotlyChart']"
EXCEPTION = "[data-testid='stException']"
SNAPSHOT = """() => {
  const table = document.querySelector('table.stream-table');
  if (!table) return null;
  const rows = {};
  table.querySelectorAll('tr[data-name]').forEach(tr => {
    rows[tr.dataset.name] = {cells: tr.querySelectorAll('td').length - 1,
                             pending: tr.querySelectorAll('.pending').length,
                             labels: [...tr.querySelectorAll('.label')].map(e => e.innerText),
                             revised: tr.querySelectorAll('s.revised').length};
  });
  const play = [...document.querySelectorAll('button')].find(b => /Play|Pause/.test(b.innerText));
  return {now: Number(table.dataset.now), rows, button: play ? play.innerText : null};
}"""


def test_play_streams_the_delayed_outputs_d_steps_behind_and_shows_revisions(server, page):
    base, _ = server
    page.goto(f"{base}/streaming?task=reversal&d_reversal=3")
    wait_idle(page)
    page.wait_for_selector("table.stream-table", timeout=90_000)
    first = page.evaluate(SNAPSHOT)
    assert first["now"] == 0 and first["rows"]["delayed d=3"]["pending"] == 20
    page.get_by_role("button", name="Play").click()
    seen, start = {}, time.time()
    while time.time() - start < 60:
        snap = page.evaluate(SNAPSHOT)
        if snap is not None:
            seen.setdefault(snap["now"], snap)
            if snap["now"] == 19 and "Play" in (snap["button"] or ""):
                break
        page.wait_for_timeout(150)
    assert page.locator(EXCEPTION).count() == 0, page.inner_text("body")[:2000]
    assert len(seen) >= 10, sorted(seen)  # it advanced step by step, not in one jump
    delayed_labels = {}
    for now, snap in sorted(seen.items()):
        delayed = snap["rows"]["delayed d=3"]
        expected = 20 if now == 19 else max(0, now - 2)  # output t shows at step t + 3; the end flushes the rest
        assert delayed["cells"] - delayed["pending"] == expected, (now, delayed)
        assert snap["rows"]["bidirectional, restart"]["pending"] == 19 - now  # restart answers every arrived token
        assert delayed["revised"] == 0 and snap["rows"]["causal d=0"]["revised"] == 0
        for t, label in enumerate(delayed["labels"]):  # a delayed label, once shown, never changes
            assert delayed_labels.setdefault(t, label) == label
    assert max(s["rows"]["bidirectional, restart"]["revised"] for s in seen.values()) > 0  # struck-through revisions
    last = page.evaluate(SNAPSHOT)
    assert last["now"] == 19 and "Play" in last["button"]  # it stopped by itself at the end of the input
    assert "now=19" in page.url
    screenshot(page, "streaming-played")


def test_streaming_pos_page_draws_the_connectivity_heatmap(server, page):
    base, _ = server
    start = time.time()
    page.goto(f"{base}/streaming")
    wait_idle(page)
    heatmap = page.locator(CHARTS).filter(has_text="‖∂y_t/∂x_s‖ of the delayed RNN, d = 2")
    heatmap.wait_for(timeout=90_000)
    print(f"\nStreaming page rendered in {time.time() - start:.2f}s")
    heatmap.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    assert heatmap.locator(".heatmaplayer image, .hm image").count() >= 1  # the heatmap itself is drawn
    assert heatmap.get_by_text("s = t + 2").first.is_visible()  # the t + d boundary's legend entry
    body = page.inner_text("body")
    assert page.locator(EXCEPTION).count() == 0, body[:2000]
    assert "Traceback" not in body and "Incremental metrics" in body
    screenshot(page, "page-streaming")
