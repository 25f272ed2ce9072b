"""LRN gates: the input gate and the forget chain read as attention weights over the tokens.

Sentiment (real reviews) or the last-keyword task (synthetic, the deciding token is known): the
prediction, each token's share of it, w[t, k] as a heatmap (unit mean or one unit), the decay of
every token's weight, the gates per unit, tanh vs identity with the unfolding error, and a
background run that trains an LRN of the chosen hidden size.
"""

from pathlib import Path

import streamlit as st
import torch

from drnn_demo import viz
from drnn_demo.checkpoints import CheckpointError, load_checkpoint
from drnn_demo.pretrained import PRETRAINED_DIR
from drnn_demo.recipes.keyword import keyword_config
from drnn_demo.tasks.keyword import LastKeyword
from drnn_demo.tasks.sentiment import UNK, explain, tokenize
from drnn_demo.token_weights import token_weights
from views.ui import bound, chart, device, format_seconds, job_manager, seed

MODES = {"Sentiment": "sentiment", "Last keyword": "keyword"}  # shown (and in the URL) -> internal name
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
HIDDEN_SIZES = [4, 8, 16, 32, 64, 128]
jobs = job_manager()


# ---------------------------------------------------------------- models


@st.cache_resource(max_entries=16, show_spinner=False)
def load(path: str, mtime: float):
    """(model, card) of a checkpoint, cached by path and modification time."""
    model, card = load_checkpoint(path)
    return model.eval(), card


def load_path(path: Path):
    return load(str(path), path.stat().st_mtime)


def pretrained_path(mode: str, activation: str) -> Path:
    return PRETRAINED_DIR / f"{PRETRAINED[(mode, activation)]}.safetensors"


def run_matches(info, mode: str) -> bool:
    """A finished-enough run of this page's mode with a checkpoint."""
    if info.checkpoint is None:
        return False
    if mode == "sentiment":
        return info.kind == "lrn_sentiment"
    return info.kind == "train" and info.config.get("task") == "keyword" and \
        info.config.get("model", {}).get("core") == "lrn"


def run_info(run_id: str):
    try:
        return jobs.get(run_id)
    except KeyError:
        return None


def model_choices(mode: str) -> dict[str, str]:
    """Option key -> label: the pretrained models present, then this mode's runs (newest first)."""
    choices = {}
    for activation in ("identity", "tanh"):
        if pretrained_path(mode, activation).exists():
            choices[f"pretrained:{activation}"] = f"pretrained, g = {activation}"
    for info in jobs.runs():
        if run_matches(info, mode):
            choices[f"run:{info.id}"] = f"your run {info.label} ({info.id})"  # stable: it is the URL value
    return choices


def resolve(choice: str) -> tuple[Path | None, str]:
    """The checkpoint of a model choice and a sentence describing it."""
    kind, _, name = choice.partition(":")
    if kind == "pretrained":
        return pretrained_path(mode, name), f"the pretrained LRN (g = {name})"
    info = run_info(name)
    if info is None or info.checkpoint is None:
        return None, ""
    return info.checkpoint, f"your run {info.label}"


# ---------------------------------------------------------------- analysis (package calls only)


def analyse_ids(model, ids: torch.Tensor, names: list[str]) -> dict:
    """Probabilities, unfolded weights and each token's share of logit(1) - logit(0)."""
    with torch.no_grad():
        probabilities = torch.softmax(model(ids.unsqueeze(0))[0].double(), -1)
    tw = token_weights(model, ids, tokens=names)
    contributions = tw.logit_contributions(-1)
    return {"probabilities": probabilities, "tw": tw, "shares": (contributions[:, 1] - contributions[:, 0]),
            "bias": None, "margin": None}


def analyse_sentence(model, text: str, vocab: list[str]) -> dict:
    e = explain(model, text, vocab)
    return {"probabilities": e.probabilities, "tw": e.token_weights, "shares": e.shares, "bias": e.bias_share,
            "margin": e.margin}


@st.cache_resource(max_entries=32, show_spinner=False)
def analysed(path: str, mtime: float, mode: str, item_key: tuple) -> dict:
    """The analysis of a checkpoint on one input, cached by path, modification time and the input (a text, or
    token ids and names). Shared between reruns and sessions: read only."""
    model, card = load(path, mtime)
    if mode == "sentiment":
        return analyse_sentence(model, item_key[0], card["vocab"])
    return analyse_ids(model, torch.tensor(item_key[0], dtype=torch.long), list(item_key[1]))


def analyse(path: Path, item: dict) -> dict:
    key = (item["text"],) if mode == "sentiment" else (tuple(item["ids"].tolist()), tuple(item["names"]))
    return analysed(str(path), path.stat().st_mtime, mode, key)


def comparison_record(label: str, result: dict, labels: list[str]) -> dict:
    tw, p = result["tw"], result["probabilities"]
    best = int(p.argmax())
    return {"label": label, "tokens": tw.tokens, "shares": result["shares"].numpy(), "error": tw.error.numpy(),
            "scale": tw.hidden.abs().amax(-1).numpy(), "prediction": labels[best], "probability": float(p[best])}


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
    known = set(vocab)
    unknown = [w for w in words if w not in known]
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
    names_all = task.token_names(range(task.vocab_size))
    index = {n.lower(): i for i, n in enumerate(names_all)}
    left, right = st.columns([1, 2])
    example = bound(left.slider, "Test sequence", 0, KEYWORD_EXAMPLES - 1, 0, key="lrn_example",
                    help=f"drawn from the task with the sidebar seed ({seed()})")
    own = bound(right.text_input, "…or type your own sequence", key="lrn_seq", max_chars=MAX_CHARS,
                placeholder="e.g. d3 K0.1 d7 d7 K1.0 d2",
                help=f"tokens separated by spaces: distractors d0…d{task.distractors - 1}, keywords "
                     f"Kc.j (class c of {task.classes}, j < {task.keywords_per_class})")
    if own.strip():
        parts = own.replace(",", " ").split()
        bad = [p for p in parts if p.lower() not in index]
        if bad:
            st.error(f"Unknown tokens: {', '.join(dict.fromkeys(bad))}. Use d0…d{task.distractors - 1} for "
                     f"distractors and K0.0…K{task.classes - 1}.{task.keywords_per_class - 1} for keywords.",
                     icon=":material/error:")
            return None
        if len(parts) > MAX_TOKENS:
            st.warning(f"The sequence has {len(parts):,} tokens; this page analyses the **first {MAX_TOKENS}**.",
                       icon=":material/content_cut:")
            parts = parts[:MAX_TOKENS]
        ids = torch.tensor([index[p.lower()] for p in parts], dtype=torch.long)
        source = "your sequence"
    else:
        x, _ = task.sample(KEYWORD_EXAMPLES, seed())
        ids = x[int(example)]
        source = f"test sequence {example}"
    names = task.token_names(ids)
    x = ids.unsqueeze(0)
    last = int(task.evidence(x)[0])
    if last < 0:
        st.warning("This sequence has no keyword, so it has no label (the task always places at least one); the "
                   "model's answer is a guess.", icon=":material/help:")
        label, decisive = None, []
    else:
        label = int(task.keyword_class(ids[last]))
        decisive = task.decisive(x, torch.tensor([label]))[0].nonzero().flatten().tolist()
    return {"ids": ids, "names": names, "label": label, "decisive": decisive, "last": last, "source": source}


@st.fragment
def weight_views(tw, hidden: int, marks: list[int], top_tokens: list[int]) -> None:
    """The weights, their decay and the gates: Unit and Log scale only change the view, so they rerun only this."""
    controls = st.columns([1.2, 1, 2], vertical_alignment="bottom")
    unit_choice = bound(controls[0].selectbox, "Unit", list(range(-1, hidden)), key="lrn_unit",
                        format_func=lambda u: "mean over units" if u < 0 else f"unit {u}",
                        help="the weights of one hidden unit, or their mean over all units")
    unit = None if unit_choice < 0 else int(unit_choice)
    log_scale = bound(controls[1].toggle, "Log scale", value=True, key="lrn_log",
                      help="colour the weights and gates by log10: old tokens fade by decades")
    weights = (tw.mean if unit is None else tw.weights(unit=unit)).numpy()
    chart(viz.lrn_weight_heatmap(weights, tw.tokens, unit=unit, log=log_scale, marks=marks),
          key="lrn_heatmap")
    st.caption("Row t is the state after token t; column k is an input token. A bright column that stays "
               "bright down the rows is a token the network keeps; a short bright diagonal fades at once.")

    chart(viz.lrn_decay_curves(weights, tw.tokens, highlight=top_tokens, log=log_scale, unit=unit),
          key="lrn_decay")
    st.caption(f"Each line follows one token's weight through the later states. In colour: the {TOP_TOKENS} "
               "tokens with the largest share of the decision; in grey, all the others.")

    chart(viz.lrn_gate_heatmaps(tw.input_gate.numpy(), tw.log_forget_chain(-1).exp().numpy(), tw.tokens,
                                unit=unit, log=log_scale), key="lrn_gates")
    st.caption("The final-state weight of token k in a unit is the product of the two: what entered (input gate) "
               "times what survived the later forget gates (forget chain).")


# ---------------------------------------------------------------- page

st.title("LRN gates")
st.markdown(
    r"A Lightweight Recurrent Network (Zhang & Sennrich, 2019) computes $i_t = \sigma(p_t + h_{t-1})$, "
    r"$f_t = \sigma(q_t - h_{t-1})$, $h_t = g(i_t \odot r_t + f_t \odot h_{t-1})$ from $[p_t; q_t; r_t] = W x_t + b$. "
    r"Unfolded, $h_t = \sum_{k \le t} w[t,k] \odot r_k$ with $w[t,k] = i_k \odot \prod_{j=k+1}^{t} f_j$: the "
    "input gate decides how much of token k enters, the forget chain how fast it fades. For g = identity this is "
    "exact, so the weights are attention weights over the tokens; for g = tanh it is an approximation, and the page "
    "shows how far off it is."
)
mode_label = bound(
    st.segmented_control, "Data", list(MODES), default="Sentiment", required=True, key="lrn_mode",
    help="Sentiment: one-sentence reviews (real data). Last keyword: synthetic sequences whose label is set by the "
         "last keyword among distractors, so the token the weights should point at is known.")
mode = MODES[mode_label]
model_key = f"lrn_model_{mode}"
choices = model_choices(mode)
requested = st.session_state.pop("lrn_select", None) or st.query_params.get("run")
if "run" in st.query_params:
    del st.query_params["run"]
if requested and f"run:{requested}" in choices:
    st.session_state[model_key] = f"run:{requested}"
if not choices:
    st.error("No LRN checkpoints found: run `python -m drnn_demo pretrain --group lrn`, or train one below.")
    choice = None
else:
    choice = bound(st.columns([2, 2.2])[0].selectbox, "Model", list(choices), format_func=choices.get,
                   key=model_key)

path, described = resolve(choice) if choice else (None, "")
model = card = None
if choice and path is None:
    st.warning("That run has no checkpoint (any more). Pick another model.")
elif path is not None:
    try:
        model, card = load_path(path)
    except (OSError, CheckpointError) as e:
        st.error(f"Could not load {path.name}: {e}")

if model is not None:
    core_args = card["model"]["core_args"]
    hidden, activation = int(core_args["hidden_size"]), core_args.get("activation", "tanh")
    metrics = card.get("metrics", {})
    if mode == "sentiment":
        labels = list(card.get("labels", ["negative", "positive"]))
        test = metrics.get("test", {}).get("accuracy")
        base = (card.get("baseline") or {}).get("test_accuracy")
        st.caption(f"Showing {described}: H = {hidden}, g = {activation}"
                   + (f", test accuracy **{test:.3f}**" if test is not None else "")
                   + (f" (bag-of-words logistic regression: {base:.3f})" if base is not None else "")
                   + ". Trained on 2,420 one-sentence reviews (Amazon, IMDb, Yelp; CC BY 4.0).")
        item = sentiment_input(card["vocab"])
        task = None
    else:
        task = LastKeyword(**card.get("task_args", {}))
        labels = [f"class {c}" for c in range(task.classes)]
        pointing = card.get("pointing")
        st.caption(f"Showing {described}: H = {hidden}, g = {activation}. **Last keyword**: {task.length} tokens, "
                   f"mostly distractors d0…d{task.distractors - 1}; 1–{task.max_keywords} keywords Kc.j of class c; "
                   "the "
                   "label is the class of the **last** keyword. The deciding tokens (red labels) are known exactly."
                   + (f" On 1,000 test sequences the token with the largest share of the decision is a deciding one "
                      f"{pointing['logit']:.1%} of the time (largest ‖w·r‖: {pointing['contribution']:.1%}; largest "
                      f"unit-mean weight: {pointing['weight']:.1%})." if pointing else ""))
        item = keyword_input(task)
    if task is not None and task.classes != 2:
        st.error("This page explains two-class models only.")
        item = None

    if item is not None:
        result = analyse(path, item)
        tw, probabilities, shares = result["tw"], result["probabilities"], result["shares"]
        best = int(probabilities.argmax())
        marks = item.get("decisive", [])
        cols = st.columns(4)
        cols[0].metric("Prediction", labels[best])
        cols[1].metric(f"P({labels[best]})", f"{float(probabilities[best]):.3f}")
        top_tokens = shares.abs().argsort(descending=True)[:TOP_TOKENS].tolist()
        strongest = int(shares.abs().argmax()) if mode == "sentiment" else int(
            (shares if best == 1 else -shares).argmax())
        if mode == "keyword":
            truth = "–" if item["label"] is None else labels[item["label"]]
            cols[2].metric("Ground truth (last keyword)", truth)
            hit = strongest in marks
            cols[3].metric("Strongest token", f"{strongest}: {tw.tokens[strongest]}",
                           delta=("a deciding token" if hit else "not a deciding token") if marks else None,
                           delta_color="normal" if hit else "inverse", delta_arrow="off")
        else:
            cols[2].metric("Words", len(tw.tokens))
            cols[3].metric("Strongest word", f"{tw.tokens[strongest]}", delta=f"{float(shares[strongest]):+.2f}",
                           delta_arrow="off", delta_color="off")

        chart(viz.lrn_token_shares(tw.tokens, shares.numpy(), labels, marks=marks, bias=result["bias"],
                                   margin=result["margin"]), key="lrn_shares")
        st.caption("Each bar is what one token adds to the margin between the two logits, through the unfolded "
                   "weights: `W_head (w[T−1, k] ⊙ r_k)`."
                   + (" For g = identity the bars and the bias add up to the model's margin exactly." if
                      activation == "identity" else " For g = tanh the bars describe the linear unfolding, which is "
                                                    "only an approximation (see the comparison below).")
                   + (" Red token labels: the deciding keywords." if marks else ""))

        weight_views(tw, hidden, marks, top_tokens)

        # ---------------------------------------------------------------- tanh vs identity
        st.subheader("tanh vs identity")
        pair = [(a, pretrained_path(mode, a)) for a in ("identity", "tanh")]
        missing = [a for a, p in pair if not p.exists()]
        if missing:
            st.info(f"No pretrained {' and '.join(missing)} model for this data: run "
                    "`python -m drnn_demo pretrain --group lrn`.")
        else:
            records = [comparison_record(f"pretrained, g = {a}", analyse(p, item), labels) for a, p in pair]
            chart(viz.lrn_activation_comparison(records, marks=marks), key="lrn_compare")
            st.caption("Both pretrained models on the same input. The error is `max_u |h_t − Σ_k w[t, k] r_k|` "
                       "with the gates the network actually computed: float64 round-off for the identity, the size of "
                       "the tanh's bend for tanh (dotted: the scale of the states, for reference).")

# ---------------------------------------------------------------- train in the background


@st.fragment(run_every=1.0)
def run_progress(run_id: str) -> None:
    """Polls only while the run started here is queued or running."""
    jobs.poll()
    info = run_info(run_id)
    if info is not None and info.active:
        if info.status == "queued":
            text = f"{info.label}: queued, position {info.queue_position}"
        elif not info.step:
            text = f"{info.label}: starting (loading torch and the data) · {format_seconds(info.elapsed)}"
        else:
            epochs = info.config.get("epochs")
            where = (f"epoch {min(epochs, 1 + info.step * epochs // info.total_steps)} of {epochs}, "
                     if epochs and info.total_steps else "")
            text = (f"{info.label}: {where}step {info.step}/{info.total_steps or '?'} · "
                    f"loss {info.history[-1]['loss']:.3f}"
                    if info.history and info.history[-1].get("loss") is not None else f"{info.label}: step {info.step}")
            text += f" · ETA {format_seconds(info.eta)}"
        st.progress(min(info.fraction, 1.0), text=text)
        cancel_col = st.columns([1, 4])[0]
        if cancel_col.button("Cancel", key="lrn_cancel", icon=":material/stop:"):
            jobs.cancel(run_id)
        return
    st.session_state.pop("lrn_run", None)
    st.session_state.lrn_done = run_id
    if info is not None and info.checkpoint is not None:
        st.session_state.lrn_select = run_id
    st.rerun()


@st.fragment
def train_block(mode: str, mode_label: str) -> None:
    """Hidden size, activation and budget only change this block (the button's label), so they rerun only it."""
    st.subheader("Train an LRN")
    what = "the sentiment reviews" if mode == "sentiment" else "the last-keyword task"
    st.caption(f"A unidirectional LRN on {what}, in the background (device: {device()}, seed {seed()}). Progress shows "
               "here and on the Training runs page; when it ends, the page shows your model.")
    train_cols = st.columns([1.6, 1, 1, 1.4])
    train_hidden = bound(train_cols[0].select_slider, "Hidden size H", HIDDEN_SIZES, value=32, key="lrn_hidden")
    train_g = bound(train_cols[1].segmented_control, "Activation g", ["identity", "tanh"], default="identity",
                    required=True, key="lrn_train_g")
    if mode == "sentiment":
        budget = train_cols[2].number_input(
            "Epochs", 1, 100, 20, key="lrn_epochs",
            help="at most; stops early after 6 epochs without a better validation score")
    else:
        budget = train_cols[2].number_input("Steps", 50, 5000, 1000, step=50, key="lrn_steps")
    train_cols[3].write("")
    if train_cols[3].button(f"Train H = {train_hidden}, g = {train_g}", type="primary", icon=":material/play_arrow:",
                            key="lrn_train", disabled=bool(st.session_state.get("lrn_run")),
                            help="one run at a time from this page; more on the Training runs page"):
        if mode == "sentiment":
            config = {"hidden_size": int(train_hidden), "activation": train_g, "epochs": int(budget), "seed": seed()}
            kind, label = "lrn_sentiment", f"sentiment LRN H={train_hidden} g={train_g}"
        else:
            config = keyword_config(steps=int(budget), seed=seed(), activation=train_g)
            config["model"]["core_args"]["hidden_size"] = int(train_hidden)
            config["device"] = device()
            config["eval_every"] = max(10, int(budget) // 10)
            kind, label = "train", f"keyword LRN H={train_hidden} g={train_g}"
        st.session_state.lrn_run = jobs.submit(kind, config, label=label, page="views/lrn_gates.py",
                                               params={"lrn_mode": mode_label})
        st.session_state.pop("lrn_done", None)
    if st.session_state.get("lrn_run"):
        run_progress(st.session_state.lrn_run)  # a fragment of its own, polling once a second


train_block(mode, mode_label)
done = run_info(st.session_state.get("lrn_done", ""))
if done is not None:
    ok = done.status in ("finished", "early_stopped")
    status = done.status.replace("_", " ")
    said = done.message if done.message.lower().startswith(status) else f"{status}. {done.message}"
    (st.success if ok else st.warning)(f"{done.label}: {said}"
                                       + (" It is selected in **Model** above." if done.checkpoint else ""))
    st.page_link("views/training_runs.py", label="All training runs", icon=":material/directions_run:")
