"""LRN gates: the input gate and the forget chain read as attention weights over the tokens.

Sentiment (real reviews) or the last-keyword task (synthetic, the deciding token is known): the
prediction and each token's share of it, then one of five tabs (only the open one is built, so a
move redraws two charts, not seven): w[t, k] as a heatmap (unit mean or one unit), the decay of
every token's weight, the gates per unit, tanh vs identity with the unfolding error, "Are gates
attention?" (the gates beside captum's attributions, and their agreement on the test sets); and a
background run that trains an LRN of the chosen hidden size. The sections live in views/lrn_sections.py
and views/lrn_attributions.py; the analyses in drnn_demo.recipes.lrn_analysis.
"""

from pathlib import Path

import streamlit as st

from drnn_demo.checkpoints import CheckpointError
from drnn_demo.recipes.keyword import keyword_config
from drnn_demo.tasks.keyword import LastKeyword
from drnn_demo.tasks.user_data import opens_on_lrn_gates
from views import lrn_sections as sections
from views.lrn_attributions import attribution_section
from views.lrn_sections import (
    HIDDEN_SIZES,
    MAX_CHARS,  # noqa: F401 (the tests read the page's limit)
    TOP_TOKENS,
    load_path,
    pretrained_path,
)
from views.ui import bound, device, format_seconds, job_manager, seed, view_tabs

MODES = {"Sentiment": "sentiment", "Last keyword": "keyword"}  # shown (and in the URL) -> internal name
jobs = job_manager()


# ---------------------------------------------------------------- models


def run_matches(info, mode: str) -> bool:
    """A finished-enough run of this page's mode with a checkpoint."""
    if info.checkpoint is None:
        return False
    if mode == "sentiment":  # the sentiment LRNs, and LRN two-class classifiers of your data (views/your_data.py)
        return info.kind == "lrn_sentiment" or (info.kind == "train" and opens_on_lrn_gates(info.config))
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


# ---------------------------------------------------------------- page

st.title("LRN gates")
st.markdown(
    "A Lightweight Recurrent Network (Zhang & Sennrich, 2019) computes iₜ = σ(pₜ + hₜ₋₁), fₜ = σ(qₜ − hₜ₋₁), "
    "hₜ = g(iₜ ⊙ rₜ + fₜ ⊙ hₜ₋₁) from [pₜ; qₜ; rₜ] = W xₜ + b. Unfolded, **hₜ = Σₖ w[t,k] ⊙ rₖ** over k ≤ t, with "
    "**w[t,k] = iₖ ⊙ fₖ₊₁ ⊙ … ⊙ fₜ**: the "
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
    task = None if mode == "sentiment" else LastKeyword(**card.get("task_args", {}))
    sections.model_caption(described, card, mode, task)
    if mode == "sentiment":
        labels = list(card.get("labels", ["negative", "positive"]))
        item = sections.sentiment_input(card["vocab"])
    else:
        labels = [f"class {c}" for c in range(task.classes)]
        item = sections.keyword_input(task)
    if task is not None and task.classes != 2:
        st.error("This page explains two-class models only.")
        item = None

    if item is not None:
        result = sections.analyse(path, mode, item)
        marks = item.get("decisive", [])
        sections.prediction_metrics(mode, labels, result, item)
        sections.shares_chart(result, labels, marks, activation)
        view, tab = view_tabs(list(sections.VIEWS), key="lrn_view")
        with tab:
            if view in sections.WEIGHT_VIEWS:
                top_tokens = result["shares"].abs().argsort(descending=True)[:TOP_TOKENS].tolist()
                sections.weight_view(view, result["tw"], hidden, marks, top_tokens)
            elif view == sections.COMPARISON:
                theirs = ["negative", "positive"] if card.get("task") == "user_data" else labels  # not your classes
                sections.activation_comparison(mode, item, theirs, marks)
            else:
                attribution_section(path, mode, item, result, labels, marks, card)

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
                    required=True, wrap=True, key="lrn_train_g")
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
