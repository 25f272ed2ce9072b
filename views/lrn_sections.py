"""The sections of the LRN gates page (views/lrn_gates.py): inputs, read-outs, the weight views, tanh vs
identity, "Are gates attention?" and the training block. Widgets and layout only; the analyses are
:mod:`drnn_demo.recipes.lrn_analysis` calls, cached here per (checkpoint, input)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
import torch

from drnn_demo import viz
from drnn_demo.analysis.attributions import RESULTS_PATH, correlations, read_results
from drnn_demo.checkpoints import load_checkpoint
from drnn_demo.pretrained import PRETRAINED_DIR
from drnn_demo.recipes import lrn_analysis as la
from drnn_demo.tasks.keyword import LastKeyword
from drnn_demo.tasks.sentiment import UNK, tokenize
from views.ui import bound, chart, seed

PRETRAINED = {("sentiment", "identity"): "lrn_sentiment", ("sentiment", "tanh"): "lrn_sentiment_tanh",
              ("keyword", "identity"): "lrn_keyword", ("keyword", "tanh"): "lrn_keyword_tanh"}
EXAMPLES = [
    "The food was great and the service was friendly!",
    "I would not recommend this phone, it broke after a week.",
    "Not bad at all, the battery lasts all day.",
    "The movie started well but the ending was a total disappointment.",
    "Wasted two hours of my life.",
    "I love this place, the staff were so nice.",
]
MAX_TOKENS = 150  # longer inputs are cut here (heatmaps of T x T cells; the reviews have at most 73 words)
MAX_CHARS = 20_000  # a typed (or linked) text is cut here, with a notice for a link; the URL itself is limited first
KEYWORD_EXAMPLES = 50  # test sequences to pick from (drawn with the sidebar seed)
TOP_TOKENS = 3
WEIGHT_VIEWS = ("Weights", "Decay", "Gates")  # the views of weight_view, with their Unit and Log scale controls
COMPARISON, ATTRIBUTIONS = "tanh vs identity", "Are gates attention?"
VIEWS = (*WEIGHT_VIEWS, COMPARISON, ATTRIBUTIONS)  # the page's tabs below the shares; only the open one is built
HIDDEN_SIZES = [4, 8, 16, 32, 64, 128]


def pretrained_path(mode: str, activation: str) -> Path:
    return PRETRAINED_DIR / f"{PRETRAINED[(mode, activation)]}.safetensors"


# ---------------------------------------------------------------- cached analyses


@st.cache_resource(max_entries=16, show_spinner=False)
def load(path: str, mtime: float):
    """(model, card) of a checkpoint, cached by path and modification time."""
    model, card = load_checkpoint(path)
    return model.eval(), card


def load_path(path: Path):
    return load(str(path), path.stat().st_mtime)


@st.cache_resource(max_entries=32, show_spinner=False)
def analysed(path: str, mtime: float, mode: str, item_key: tuple) -> dict:
    """The analysis of a checkpoint on one input, cached by path, modification time and the input (a text, or
    token ids and names). Shared between reruns and sessions: read only."""
    model, card = load(path, mtime)
    return la.analyse(model, mode, item_key, card.get("vocab"))


def item_key(mode: str, item: dict) -> tuple:
    return (item["text"],) if mode == "sentiment" else (tuple(item["ids"].tolist()), tuple(item["names"]))


def analyse(path: Path, mode: str, item: dict) -> dict:
    return analysed(str(path), path.stat().st_mtime, mode, item_key(mode, item))


@st.cache_resource(max_entries=32, show_spinner=False)
def attributed(path: str, mtime: float, mode: str, key: tuple) -> dict:
    """The four token scores (gate weight, share, IG, gradient × input) of one input, cached like :func:`analysed`."""
    model, _ = load(path, mtime)
    scores, grads = la.token_scores(model, analysed(path, mtime, mode, key)["ids"])
    return {"scores": {k: v[0] for k, v in scores.items()}, "target": int(grads.target[0]),
            "rho": {k: float(v[0]) for k, v in correlations(scores).items()}}


@st.cache_data(max_entries=16, show_spinner=False)
def measured_agreement(path: str, mtime: float) -> dict:
    """The test-set agreement of a checkpoint that has no stored row (a run of yours), computed once."""
    return la.checkpoint_agreement(path)


@st.cache_data(max_entries=4, show_spinner=False)
def stored_results(mtime: float) -> dict:
    """The stored agreement table, reread when the file changes (``mtime``)."""
    return read_results(RESULTS_PATH)


# ---------------------------------------------------------------- inputs


def set_example() -> None:
    pick = st.session_state.get("lrn_pick")
    if pick:
        st.session_state.lrn_text = pick


def sentiment_input(vocab: list[str]) -> dict | None:
    """The sentence to analyse (None when there is nothing to show), with messages for odd input."""
    left, right = st.columns([3, 1.2])
    right.selectbox("Pick an example", EXAMPLES, index=None, placeholder="Pick an example…", key="lrn_pick",
                    on_change=set_example)
    text = bound(left.text_area, "Sentence (type your own; Ctrl+Enter to apply)", value=EXAMPLES[0], key="lrn_text",
                 height=80, max_chars=MAX_CHARS)
    words = tokenize(text)
    if not words:
        st.info("Type a sentence (or pick an example) to see how the LRN weighs its words. "
                + ("The text has no words the model reads (letters, digits, ! or ?)." if text.strip() else ""),
                icon=":material/edit:")
        return None
    if len(words) > MAX_TOKENS:
        st.warning(f"The text has {len(words):,} words; this page analyses the **first {MAX_TOKENS}** (the prediction "
                   f"and every figure below are for those {MAX_TOKENS} words). The training reviews are one sentence "
                   "each, at most 73 words.", icon=":material/content_cut:")
        words = words[:MAX_TOKENS]
    unknown = la.unknown_words(words, vocab)
    if len(unknown) == len(words):
        st.warning(f"None of these words is in the model's vocabulary ({len(vocab) - 2:,} words seen at least twice in "
                   f"the training reviews): every word reads as `{UNK}`, so the prediction below says nothing about "
                   "your sentence.", icon=":material/help:")
    elif unknown:
        st.warning(f"The model knows **{len(words) - len(unknown)} of the {len(words)} words**. Not in its vocabulary, "
                   f"so read as `{UNK}` and marked “(<unk>)” in grey on the axes below: "
                   + ", ".join(f"*{w}*" for w in dict.fromkeys(unknown)), icon=":material/help:")
    return {"text": " ".join(words), "words": words}


def keyword_input(task: LastKeyword) -> dict | None:
    """A test sequence (or the user's own), with its ground truth."""
    left, right = st.columns([1, 2])
    example = bound(left.slider, "Test sequence", 0, KEYWORD_EXAMPLES - 1, 0, key="lrn_example",
                    help=f"drawn from the task with the sidebar seed ({seed()})")
    own = bound(right.text_input, "…or type your own sequence", key="lrn_seq", max_chars=MAX_CHARS,
                placeholder="e.g. d3 K0.1 d7 d7 K1.0 d2",
                help=f"tokens separated by spaces: distractors d0…d{task.distractors - 1}, keywords "
                     f"Kc.j (class c of {task.classes}, j < {task.keywords_per_class})")
    if own.strip():
        ids, bad = la.parse_sequence(own, task)
        if bad:
            st.error(f"Unknown tokens: {', '.join(bad)}. Use d0…d{task.distractors - 1} for "
                     f"distractors and K0.0…K{task.classes - 1}.{task.keywords_per_class - 1} for keywords.",
                     icon=":material/error:")
            return None
        if len(ids) > MAX_TOKENS:
            st.warning(f"The sequence has {len(ids):,} tokens; this page analyses the **first {MAX_TOKENS}**.",
                       icon=":material/content_cut:")
            ids = ids[:MAX_TOKENS]
        ids, source = torch.tensor(ids, dtype=torch.long), "your sequence"
    else:
        x, _ = task.sample(KEYWORD_EXAMPLES, seed())
        ids, source = x[int(example)], f"test sequence {example}"
    label, decisive, last = la.keyword_truth(task, ids)
    if label is None:
        st.warning("This sequence has no keyword, so it has no label (the task always places at least one); the "
                   "model's answer is a guess.", icon=":material/help:")
    return {"ids": ids, "names": task.token_names(ids), "label": label, "decisive": decisive, "last": last,
            "source": source}


# ---------------------------------------------------------------- read-outs


def model_caption(described: str, card: dict, mode: str, task: LastKeyword | None) -> None:
    core_args = card["model"]["core_args"]
    head = f"Showing {described}: H = {int(core_args['hidden_size'])}, g = {core_args.get('activation', 'tanh')}"
    if mode == "sentiment":
        test = card.get("metrics", {}).get("test", {}).get("accuracy")
        base = (card.get("baseline") or {}).get("test_accuracy")
        st.caption(head + (f", test accuracy **{test:.3f}**" if test is not None else "")
                   + (f" (bag-of-words logistic regression: {base:.3f})" if base is not None else "")
                   + (f". Trained on {card.get('data')}." if card.get("task") == "user_data" else  # views/your_data.py
                      ". Trained on 2,420 one-sentence reviews (Amazon, IMDb, Yelp; CC BY 4.0)."))
        return
    pointing = card.get("pointing")
    st.caption(head + f". **Last keyword**: {task.length} tokens, mostly distractors d0…d{task.distractors - 1}; "
               f"1–{task.max_keywords} keywords Kc.j of class c; the label is the class of the **last** keyword. The "
               "deciding tokens (red labels) are known exactly."
               + (f" On 1,000 test sequences the token with the largest share of the decision is a deciding one "
                  f"{pointing['logit']:.1%} of the time (largest ‖w·r‖: {pointing['contribution']:.1%}; largest "
                  f"unit-mean weight: {pointing['weight']:.1%})." if pointing else ""))


def prediction_metrics(mode: str, labels: list[str], result: dict, item: dict) -> None:
    """Prediction, its probability, and the ground truth / strongest token."""
    tw, probabilities, shares = result["tw"], result["probabilities"], result["shares"]
    best = int(probabilities.argmax())
    marks = item.get("decisive", [])
    cols = st.columns(4)
    cols[0].metric("Prediction", labels[best])
    cols[1].metric(f"P({labels[best]})", f"{float(probabilities[best]):.3f}")
    strongest = la.strongest_token(shares, best, signed=mode == "keyword")
    if mode == "keyword":
        cols[2].metric("Ground truth (last keyword)", "–" if item["label"] is None else labels[item["label"]])
        hit = strongest in marks
        cols[3].metric("Strongest token", f"{strongest}: {tw.tokens[strongest]}",
                       delta=("a deciding token" if hit else "not a deciding token") if marks else None,
                       delta_color="normal" if hit else "inverse", delta_arrow="off")
    else:
        cols[2].metric("Words", len(tw.tokens))
        cols[3].metric("Strongest word", f"{tw.tokens[strongest]}", delta=f"{float(shares[strongest]):+.2f}",
                       delta_arrow="off", delta_color="off")


def shares_chart(result: dict, labels: list[str], marks: list[int], activation: str) -> None:
    tw = result["tw"]
    chart(viz.lrn_token_shares(tw.tokens, result["shares"].numpy(), labels, marks=marks, bias=result["bias"],
                               margin=result["margin"]), key="lrn_shares")
    st.caption("Each bar is what one token adds to the margin between the two logits, through the unfolded "
               "weights: `W_head (w[T−1, k] ⊙ r_k)`."
               + (" For g = identity the bars and the bias add up to the model's margin exactly." if
                  activation == "identity" else " For g = tanh the bars describe the linear unfolding, which is "
                                                "only an approximation (see the comparison below).")
               + (" Red token labels: the deciding keywords." if marks else ""))


@st.fragment
def weight_view(view: str, tw, hidden: int, marks: list[int], top_tokens: list[int]) -> None:
    """One of the weight views (:data:`WEIGHT_VIEWS`: w[t, k], its decay, the gates) with its Unit and Log scale
    controls. They only change the view, so they rerun only this."""
    controls = st.columns([1.2, 1, 2], vertical_alignment="bottom")
    unit_choice = bound(controls[0].selectbox, "Unit", list(range(-1, hidden)), key="lrn_unit",
                        format_func=lambda u: "mean over units" if u < 0 else f"unit {u}",
                        help="the weights of one hidden unit, or their mean over all units")
    unit = None if unit_choice < 0 else int(unit_choice)
    log_scale = bound(controls[1].toggle, "Log scale", value=True, key="lrn_log",
                      help="colour the weights and gates by log10: old tokens fade by decades")
    if view == "Gates":
        chart(viz.lrn_gate_heatmaps(tw.input_gate.numpy(), tw.log_forget_chain(-1).exp().numpy(), tw.tokens,
                                    unit=unit, log=log_scale), key="lrn_gates")
        st.caption("The final-state weight of token k in a unit is the product of the two: what entered (input "
                   "gate) times what survived the later forget gates (forget chain).")
        return
    weights = (tw.mean if unit is None else tw.weights(unit=unit)).numpy()
    if view == "Decay":
        chart(viz.lrn_decay_curves(weights, tw.tokens, highlight=top_tokens, log=log_scale, unit=unit),
              key="lrn_decay")
        st.caption(f"Each line follows one token's weight through the later states. In colour: the {TOP_TOKENS} "
                   "tokens with the largest share of the decision; in grey, all the others.")
        return
    chart(viz.lrn_weight_heatmap(weights, tw.tokens, unit=unit, log=log_scale, marks=marks), key="lrn_heatmap")
    st.caption("Row t is the state after token t; column k is an input token. A bright column that stays "
               "bright down the rows is a token the network keeps; a short bright diagonal fades at once.")


def activation_comparison(mode: str, item: dict, labels: list[str], marks: list[int]) -> None:
    pair = [(a, pretrained_path(mode, a)) for a in ("identity", "tanh")]
    missing = [a for a, p in pair if not p.exists()]
    if missing:
        st.info(f"No pretrained {' and '.join(missing)} model for this data: run "
                "`python -m drnn_demo pretrain --group lrn`.")
        return
    records = [la.comparison_record(f"pretrained, g = {a}", analyse(p, mode, item), labels) for a, p in pair]
    chart(viz.lrn_activation_comparison(records, marks=marks), key="lrn_compare")
    st.caption("Both pretrained models on the same input. The error is `max_u |h_t − Σ_k w[t, k] r_k|` "
               "with the gates the network actually computed: float64 round-off for the identity, the size of "
               "the tanh's bend for tanh (dotted: the scale of the states, for reference).")
