"""AppTest: the LRN gates page predicts, draws the unfolded weights (checked against a slow loop over the
model's own gates), reacts to its widgets, says clearly what it does with empty, unknown and very long
input, points at the deciding keyword in the synthetic mode, sets the gates beside captum's attributions
with their test-set agreement, and trains an LRN in a background run that it then shows (and measures)."""

import time

import numpy as np
import torch
from apptest_helpers import figure_titled, figures, open_page

from drnn_demo.checkpoints import PRETRAINED_DIR, load_checkpoint
from drnn_demo.recipes.lrn_analysis import token_scores
from drnn_demo.recipes.sentiment import load_pretrained_sentiment
from drnn_demo.tasks.sentiment import encode

LRN = "views/lrn_gates.py"
DEFAULT = "The food was great and the service was friendly!"
SHARES = "share of the decision"  # above the tabs, always drawn
VIEW_TITLES = {"Weights": ("Weight w[t, k]",), "Decay": ("Decay of each token",),
               "Gates": ("Input gates and forget chains",), "tanh vs identity": ("tanh vs identity",),
               "Are gates attention?": ("Gate weights beside gradient attributions", "Do the gates rank the tokens")}
FIGURES = 2  # the shares and the open tab's (by default: Weights) heatmap


def show(at, view: str):
    """Open one of the page's tabs (as a click on it does: the page reruns with that tab open)."""
    at.session_state["lrn_view"] = view
    return at.run()


def titles(at) -> list[str]:
    return [f["layout"]["title"]["text"] for f in figures(at)]


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def heatmap_weights(fig: dict) -> np.ndarray:
    """The real weights the heatmap's hover shows (NaN above the diagonal): z, or beside log10 z."""
    trace = fig["data"][0]
    return np.array(trace["customdata"] if trace.get("customdata") is not None else trace["z"], dtype=float)


def reference_weights(text: str, unit: int | None = None) -> np.ndarray:
    """w[t, k] = i_k * prod_{j=k+1..t} f_j from the gates the model computes, by plain loops."""
    model, vocab, _ = load_pretrained_sentiment()
    ids = encode(text, vocab)
    assert model.core.batch_first
    with torch.no_grad():
        _, _, gates = model.core(model.embedding(ids).unsqueeze(0), return_gates=True)  # gates (1, B=1, T, H)
    i, f = gates.input[0, 0].double().numpy(), gates.forget[0, 0].double().numpy()  # (T, H)
    T, H = i.shape
    w = np.full((T, T), np.nan)
    for t in range(T):
        for k in range(t + 1):
            per_unit = i[k].copy()
            for j in range(k + 1, t + 1):
                per_unit *= f[j]
            w[t, k] = per_unit.mean() if unit is None else per_unit[unit]
    return w


def test_defaults_predict_and_draw_the_weights_of_the_model():
    at = open_page(LRN)
    assert not at.exception
    assert metric(at, "Prediction") == "positive"
    model, vocab, _ = load_pretrained_sentiment()
    with torch.no_grad():
        p = torch.softmax(model(encode(DEFAULT, vocab).unsqueeze(0))[0].double(), -1)
    assert metric(at, "P(positive)") == f"{float(p[1]):.3f}"
    assert len(figures(at)) == FIGURES
    shown = heatmap_weights(figure_titled(at, "Weight w[t, k]"))
    expected = reference_weights(DEFAULT)
    assert np.array_equal(np.isnan(shown), np.isnan(expected))  # only tokens already read have a weight
    assert np.allclose(shown[~np.isnan(shown)], expected[~np.isnan(expected)], rtol=1e-4, atol=1e-7)
    shares = figure_titled(at, "share of the decision")
    assert len(shares["data"][0]["y"]) == 10
    assert shares["layout"]["xaxis"]["ticktext"][3] == "great"
    compare = figure_titled(show(at, "tanh vs identity"), "tanh vs identity")
    errors = [t for t in compare["data"] if t.get("name") == "unfolding error"]
    identity, tanh = (max(t["customdata"][k][0] for k in range(10)) for t in errors)
    assert identity < 1e-12 < 1e-3 < tanh  # exact for the identity, an approximation for tanh


def test_typing_a_sentence_changes_the_prediction_and_the_figures():
    at = open_page(LRN)
    before = figure_titled(at, "share of the decision")
    at.text_area(key="lrn_text").input("Wasted two hours of my life.").run()
    assert not at.exception
    assert metric(at, "Prediction") == "negative"
    after = figure_titled(at, "share of the decision")
    assert after["layout"]["xaxis"]["ticktext"] == ["wasted", "two", "hours", "of", "my", "life"]
    assert before["data"][0]["y"] != after["data"][0]["y"]
    at.selectbox(key="lrn_pick").select("I love this place, the staff were so nice.").run()
    assert at.text_area(key="lrn_text").value == "I love this place, the staff were so nice."
    assert metric(at, "Prediction") == "positive"


def test_unit_and_log_scale_change_the_figures():
    at = open_page(LRN)
    mean_title = figure_titled(at, "Weight w[t, k]")["layout"]["title"]["text"]
    assert "mean over units" in mean_title and "log scale" in mean_title
    at.selectbox(key="lrn_unit").set_value(31).run()  # the last unit of H = 32
    assert not at.exception
    heat = figure_titled(at, "Weight w[t, k]")
    assert "unit 31" in heat["layout"]["title"]["text"]
    expected = reference_weights(DEFAULT, unit=31)
    shown = heatmap_weights(heat)
    assert np.allclose(shown[~np.isnan(shown)], expected[~np.isnan(expected)], rtol=1e-4, atol=1e-9)
    at.toggle(key="lrn_log").set_value(False).run()
    heat = figure_titled(at, "Weight w[t, k]")
    z = np.array(heat["data"][0]["z"], dtype=float)
    assert heat["data"][0]["colorbar"]["title"]["text"] == "w"
    assert np.allclose(z[~np.isnan(z)], shown[~np.isnan(shown)])  # linear colour: z is the weight itself
    gates = figure_titled(show(at, "Gates"), "Input gates and forget chains")  # Unit and Log carry over to the tab
    assert [(s["y0"], s["y1"]) for s in gates["layout"]["shapes"]] == [(30.5, 31.5)] * 2  # the unit outlined
    assert "(log10)" not in gates["layout"]["title"]["text"]
    decay = figure_titled(show(at, "Decay"), "Decay of each token")
    assert "unit 31" in decay["layout"]["title"]["text"] and decay["layout"]["yaxis"].get("type") != "log"


def test_empty_unknown_and_very_long_input_get_a_clear_message():
    at = open_page(LRN, query={"lrn_text": "   "})
    assert not at.exception
    assert any("Type a sentence" in i.value for i in at.info)
    assert not figures(at) and not at.metric

    at.text_area(key="lrn_text").input("qwzx blorfle snarkwidget").run()
    assert not at.exception
    assert any("None of these words is in the model's vocabulary" in w.value for w in at.warning)
    assert metric(at, "Words") == "3"

    at.text_area(key="lrn_text").input("great").run()  # one word: 1 x 1 weights, every figure still drawn
    assert not at.exception
    assert metric(at, "Words") == "1" and len(figures(at)) == FIGURES
    for view, expected in VIEW_TITLES.items():
        show(at, view)
        assert not at.exception and len(figures(at)) == 1 + len(expected), view
    show(at, "Weights")

    long_text = " ".join(["the service was slow but the food was great"] * 223)[: 2000 * 6]
    words = len(long_text.split())
    assert words >= 2000
    at.text_area(key="lrn_text").input(long_text).run()
    assert not at.exception
    assert any(f"{words:,} words" in w.value and "first 150" in w.value for w in at.warning)
    assert metric(at, "Words") == "150"
    assert len(figure_titled(at, "Weight w[t, k]")["data"][0]["z"]) == 150


def test_stale_links_fall_back_to_what_exists():
    at = open_page(LRN, query={"lrn_unit": "unit 40", "lrn_model_sentiment": "your run gone (20000101-000000-000000)"})
    assert not at.exception
    assert at.selectbox(key="lrn_unit").value == -1  # H = 32 has no unit 40: the mean is shown
    assert at.selectbox(key="lrn_model_sentiment").value == "pretrained:identity"
    at.selectbox(key="lrn_unit").set_value(31).run()
    at.segmented_control(key="lrn_mode").set_value("Last keyword").run()  # H = 16 there
    assert not at.exception
    assert at.selectbox(key="lrn_unit").value == -1 and len(figures(at)) == FIGURES


def test_slider_extremes_and_the_synthetic_mode():
    at = open_page(LRN, query={"lrn_mode": "Last keyword"})
    assert not at.exception
    assert metric(at, "Ground truth (last keyword)").startswith("class")
    for value in (49, 0):
        at.slider(key="lrn_example").set_value(value).run()
        assert not at.exception and len(figures(at)) == FIGURES
    for size in (4, 128):
        at.select_slider(key="lrn_hidden").set_value(size).run()
        assert any(b.label == f"Train H = {size}, g = identity" for b in at.button)

    # the label is the class of the LAST keyword: K1.0 early, K0.1 last -> class 0, decided at position 4
    at.text_input(key="lrn_seq").input("d1 K1.0 d2 d3 K0.1 d4 d5 d6").run()
    assert not at.exception
    assert metric(at, "Ground truth (last keyword)") == "class 0"
    assert metric(at, "Prediction") == "class 0"
    assert metric(at, "Strongest token") == "4: K0.1"
    shares = figure_titled(at, "share of the decision")
    assert "K0.1" in shares["layout"]["xaxis"]["ticktext"][4] and "b style" in shares["layout"]["xaxis"]["ticktext"][4]

    at.text_input(key="lrn_seq").input("d1 x9 K7.0").run()
    assert not at.exception
    assert any("Unknown tokens: x9, K7.0" in e.value for e in at.error)
    at.text_input(key="lrn_seq").input("d1 d2 d3").run()
    assert not at.exception
    assert any("no keyword" in w.value for w in at.warning)
    assert metric(at, "Ground truth (last keyword)") == "–"


def test_training_in_the_background_then_shows_the_new_model():
    at = open_page(LRN)
    at.select_slider(key="lrn_hidden").set_value(4).run()
    at.number_input(key="lrn_epochs").set_value(1).run()
    at.button(key="lrn_train").click().run()
    assert not at.exception
    run_id = at.session_state["lrn_run"]
    deadline = time.time() + 240
    while "lrn_done" not in at.session_state and time.time() < deadline:
        time.sleep(1)
        at.run()
    assert "lrn_done" in at.session_state, "the run did not finish in time"
    at.run()  # the fragment's rerun selects the new model
    assert not at.exception
    assert at.success and "test accuracy" in at.success[0].value
    assert at.selectbox(key="lrn_model_sentiment").value == f"run:{run_id}"
    assert any("H = 4, g = identity" in c.value for c in at.caption)
    show(at, "Are gates attention?")
    at.button(key="lrn_agree_button").click().run()  # your run has no stored agreement: measured on request
    assert not at.exception
    columns = list(at.dataframe[0].value.columns)
    assert columns[1].startswith("this model (") and len(columns) == 6  # measure, yours, the four shipped
    assert at.dataframe[0].value.iloc[0, 1] == "277"  # every sentiment test sentence
    assert metric(at, "Prediction") in ("positive", "negative")
    assert len(figure_titled(show(at, "Gates"), "Input gates and forget chains")["data"][0]["z"]) == 4  # a row a unit

    # the Training runs page links back with the run's params plus run=<id>: a fresh session shows that run
    again = open_page(LRN, query={"lrn_mode": "Sentiment", "run": run_id})
    assert not again.exception
    assert again.selectbox(key="lrn_model_sentiment").value == f"run:{run_id}"


def test_each_tab_builds_only_its_own_figures_and_lives_in_the_url():
    at = open_page(LRN)
    assert titles(at)[0].startswith("Each token's share") and len(titles(at)) == FIGURES  # Weights is open
    for view, expected in VIEW_TITLES.items():
        show(at, view)
        assert not at.exception, view
        built = titles(at)[1:]  # after the shares
        assert len(built) == len(expected) and all(e in t for e, t in zip(expected, built, strict=True)), (view, built)
    linked = open_page(LRN, query={"lrn_view": "Decay"})  # a shared link opens its tab
    assert [t for t in titles(linked) if "Decay of each token" in t] and len(titles(linked)) == 2
    stale = open_page(LRN, query={"lrn_view": "Attention"})
    assert not stale.exception and any("Weight w[t, k]" in t for t in titles(stale))
    assert any("Ignored `lrn_view=Attention`" in t.value for t in stale.toast)


def test_unknown_words_are_counted_and_marked():
    at = open_page(LRN)
    at.text_area(key="lrn_text").input("a zzyzx movie").run()
    assert not at.exception
    assert any("knows **2 of the 3 words**" in w.value and "zzyzx" in w.value for w in at.warning)
    ticks = figure_titled(at, "share of the decision")["layout"]["xaxis"]["ticktext"]
    assert "zzyzx (&lt;unk&gt;)" in ticks[1]


def test_gates_beside_captum_attributions_and_the_agreement_table():
    at = open_page(LRN, query={"lrn_view": "Are gates attention?"})
    assert not at.exception
    fig = figure_titled(at, "Gate weights beside gradient attributions")
    bars = [np.array(t["y"], dtype=float) for t in fig["data"] if t["type"] == "bar"]
    assert len(bars) == 4 and all(len(b) == 10 for b in bars)  # gate weight, share, IG, gradient x input per word
    model, vocab, _ = load_pretrained_sentiment()
    scores, grads = token_scores(model, encode(DEFAULT, vocab))
    for shown, method in zip(bars, ("gates", "share", "ig", "grad_input"), strict=True):
        assert np.allclose(shown, scores[method][0], rtol=1e-6, atol=1e-9), method
    assert "“positive”" in fig["layout"]["title"]["text"] and int(grads.target[0]) == 1
    assert any("This input, Spearman ρ" in c.value for c in at.caption)
    table = at.dataframe[0].value
    assert list(table.columns) == ["measure", "sentiment, g = identity", "sentiment, g = tanh",
                                   "keyword, g = identity", "keyword, g = tanh"]
    assert table.iloc[0].tolist()[1:] == ["277", "277", "1000", "1000"]
    said = next(m.value for m in at.markdown if "What the numbers say" in m.value)
    assert "0.60 for g = identity" in said and "16.3% of the test sequences" in said  # the stored numbers, in words
    agreement = figure_titled(at, "Do the gates rank the tokens")
    assert {t["name"] for t in agreement["data"]} == {"sentiment, g = identity", "sentiment, g = tanh",
                                                       "keyword, g = identity", "keyword, g = tanh"}

    at.text_area(key="lrn_text").input("great").run()  # one word: no rank correlation, said so
    assert not at.exception
    assert any("gate weight ↔ integrated gradients undefined" in c.value for c in at.caption)

    at.segmented_control(key="lrn_mode").set_value("Last keyword").run()
    at.text_input(key="lrn_seq").input("d1 K1.0 d2 d3 K0.1 d4 d5 d6").run()
    assert not at.exception
    fig = figure_titled(at, "Gate weights beside gradient attributions")
    ig = np.array([t for t in fig["data"] if t["type"] == "bar"][2]["y"], dtype=float)
    assert int(ig.argmax()) == 4  # integrated gradients point at the last keyword, K0.1
    model, _ = load_checkpoint(PRETRAINED_DIR / "lrn_keyword.safetensors")
    assert np.allclose(ig, token_scores(model, torch.tensor([1, 22, 2, 3, 21, 4, 5, 6]))[0]["ig"][0], atol=1e-9)
