"""Streaming: a delayed RNN answers d steps late and never changes its mind; a bidirectional network in restart
mode answers at once and keeps revising. Tokens arrive one by one; press play or drag "now". Task "your run"
streams a tagger trained on Your data (views/streaming_sections.py picks it)."""

import numpy as np
import streamlit as st
import torch

from drnn_demo import streaming, viz
from drnn_demo.analysis import connectivity, incremental
from drnn_demo.checkpoints import CheckpointError
from drnn_demo.streaming_pos import MAX_TYPED_WORDS, tokenize
from drnn_demo.streaming_user import (
    NotStreamable,
    held_out_sentences,
    model_in_view,
    typed_tokens,
    user_model_set,
)
from drnn_demo.tasks.pos import sentences
from drnn_demo.tasks.user_data import UserDataError
from views import streaming_sections as sections
from views.ui import bound, chart, job_manager

TASKS = {"POS": "pos", "reversal": "reversal", "sine": "sine", "your run": "user"}  # as the control and URL name them
DELAYS = {"pos": (0, 1, 2, 3, 4), **streaming.TASK_DELAYS}
DEFAULT_DELAY = {"pos": 2, "reversal": 9, "sine": 5}
DEFAULT_SENTENCE = 204  # "The plan was all set and could have succeeded .": restart mode revises 3 labels
SHOWN_SEQUENCES = 50  # reversal / sine test sequences to pick from
PLAY_SECONDS = 0.8
TASK_TEXT = {
    "pos": "Universal POS tags of an English sentence (UD English EWT test file, or your own). The taggers share one "
           "word + character encoder; the sentence RNN is a delayed LSTM (d = 0..4) or a bidirectional LSTM.",
    "reversal": "Emit 20 random tokens in reverse order: output t must be x[19−t], so every delay short of 19 loses "
                "part of the sequence, and a restarted bidirectional network has the wrong end until the last token.",
    "sine": "Filter a random signal with 15 past and 5 future taps: from d = 5 on, a delayed model has read every "
            "tap it needs.",
}


@st.cache_resource(max_entries=8, show_spinner="Loading the models…")
def models(which: tuple) -> streaming.ModelSet:
    """``which``: ``(task,)`` for the pretrained sets, ``("user", checkpoint, mtime_ns)`` for a run of yours."""
    return user_model_set(which[1]) if which[0] == "user" else streaming.model_set(which[0])


@st.cache_data(max_entries=4, show_spinner=False)
def run_sentences(which: tuple) -> list:
    return held_out_sentences(models(which))


@st.cache_data(max_entries=64, show_spinner="Streaming the sequence…")
def sequence(which: tuple, source: str, index: int, text: str) -> dict:
    """The tokens, inputs (T, D) or token ids (T,), targets (or None) of the sequence in view."""
    ms, task = models(which), which[0]
    if task in ("pos", "user"):
        if source == "typed":
            words, tags = (tokenize(text) if task == "pos" else typed_tokens(text)), None
        else:
            words, tags = (sentences("test") if task == "pos" else run_sentences(which))[index]
        x = ms.taggers.vectors(words) if task == "pos" else ms.taggers.ids(words)
        return {"tokens": list(words), "x": x.numpy(), "target": None if tags is None
                else [ms.labels.index(t) for t in tags]}
    x, y = streaming.task_test_sequences(task, SHOWN_SEQUENCES)
    tokens = [str(int(v)) for v in x[index].argmax(-1)] if task == "reversal" else [f"{v:.2f}" for v in x[index, :, 0]]
    return {"tokens": tokens, "x": x[index].numpy(), "target": y[index].reshape(-1).numpy().tolist()}


@st.cache_data(max_entries=64, show_spinner=False)
def view_of(which: tuple, source: str, index: int, text: str, delay: int | None) -> streaming.StreamView:
    return streaming.stream_view(models(which), torch.from_numpy(sequence(which, source, index, text)["x"]), delay)


@st.cache_data(max_entries=32, show_spinner="Computing ‖∂y_t/∂x_s‖…")
def connectivity_of(which: tuple, model_key: str, x: np.ndarray) -> np.ndarray:
    ms = models(which)
    model = ms.bidirectional if model_key == "bidirectional" else ms.delayed[int(model_key)]
    return connectivity(model, torch.from_numpy(x)).numpy()


def toggle_play(T: int) -> None:
    st.session_state.playing = not st.session_state.get("playing", False)
    if st.session_state.playing and st.session_state.get("now", 0) >= T - 1:
        st.session_state.now = 0  # play from the start again


st.title("Streaming")
st.markdown("Tokens arrive one per step. A **delayed RNN** shows the output of token t at step t + d and never "
            "changes it; a **bidirectional** network has no such schedule: in *restart mode* it is re-run on the "
            "whole prefix at every step, answers at once and revises earlier answers as the right context arrives. "
            "A causal network (d = 0) is the reference.")
controls = st.columns([1.6, 1.4, 1])
task = TASKS[bound(controls[0].segmented_control, "Task", list(TASKS), default="POS", required=True, wrap=True,
                   key="task")]
absent = ""
if task == "user":
    info = sections.pick_run(job_manager())
    if info is None:
        st.stop()
    try:
        which = ("user", str(info.checkpoint), info.checkpoint.stat().st_mtime_ns)
        ms = models(which)
    except (OSError, CheckpointError, NotStreamable) as err:
        st.error(f"The checkpoint of your run {info.label} cannot be streamed: {err}", icon=":material/error:")
        st.stop()
    delay = model_in_view(ms)[1]
    absent = sections.run_caption(info, ms, delay)
else:
    which = (task,)
    st.query_params.pop("run", None)  # a run of yours is not in view
    delay = bound(controls[2].select_slider, "Delay d", DELAYS[task], value=DEFAULT_DELAY[task], key=f"d_{task}",
                  help="output t is shown at step t + d")
    st.caption(TASK_TEXT[task])
    try:
        ms = models(which)
    except CheckpointError as err:
        st.error(f"The pretrained models for this task are missing or damaged: {err}. Run `python -m drnn_demo "
                 "pretrain`.")
        st.stop()

source, text, index = "test", "", 0
picker, play_column = st.columns([3, 1], vertical_alignment="bottom")
if task == "pos":
    with controls[1]:
        source = {"EWT test": "test", "your own": "typed"}[
            bound(st.segmented_control, "Sentence", ["EWT test", "your own"], default="EWT test", required=True,
                  key="src")]
    if source == "typed":
        text = bound(picker.text_input, "Your sentence", "The old man the boats .", max_chars=300, key="text",
                     help=f"words and punctuation, at most {MAX_TYPED_WORDS} of them")
        sections.stop_unless_words(tokenize, text)
    else:
        index = bound(picker.number_input, "EWT test sentence", 0, len(sentences("test")) - 1, DEFAULT_SENTENCE,
                      key="sent", help="its index in the test file")
elif task == "user":
    try:
        test = run_sentences(which)
    except UserDataError as err:
        test = None
        st.info(f"Its test sentences are gone ({err}); type a sentence of your own.")
    source, text, index = sections.user_sentence(controls[1], picker, test)
else:
    index = bound(picker.number_input, "Test sequence", 0, SHOWN_SEQUENCES - 1, 0, key="seq")

seq = sequence(which, source, index, text)
view = view_of(which, source, index, text, delay)
T = view.length
if task == "user" and ms.taggers.unknown(seq["tokens"]):
    st.caption("Not in the run's vocabulary, read as `<unk>`: " + ", ".join(
        f"`{w[:30]}`" for w in dict.fromkeys(ms.taggers.unknown(seq["tokens"]))) + ".")
if st.session_state.get("now", 0) > T - 1:
    st.session_state.now = T - 1  # a shorter sequence than before
playing = st.session_state.get("playing", False)
play_column.button("Pause" if playing else "Play", icon=":material/pause:" if playing else ":material/play_arrow:",
          on_click=toggle_play, args=(T,), key="play", help=f"advance one token every {PLAY_SECONDS:g} s")


def labels_at(values: np.ndarray, shown: np.ndarray) -> list:
    return [ms.labels[int(v)] if s else None for v, s in zip(values, shown, strict=True)]


@st.fragment(run_every=PLAY_SECONDS if playing else None)
def stream_panel() -> None:
    """The stream at step "now"; while playing, each run advances "now" by one (this fragment only)."""
    if st.session_state.get("playing"):
        if st.session_state.get("now", 0) < T - 1:
            st.session_state.now = st.session_state.get("now", 0) + 1
        else:
            st.session_state.playing = False
            st.rerun()  # the whole page: stops the timer and turns the button back to Play
    if T > 1:
        now = bound(st.slider, "now: the last token that has arrived", 0, T - 1, 0, key="now")
    else:  # a one-token sequence: nothing to slide over
        now = st.session_state.now = 0
    said = f"Step {now} of {T - 1}: token {now} ({seq['tokens'][now]!r}) has arrived."
    if view.delayed is not None:
        shown = ("all outputs shown: the input has ended" if now == T - 1 else
                 f"outputs up to token {now - delay} shown" if now >= delay else "no output yet")
        said += f" Delayed d = {delay}: {shown}."
    st.caption(said)
    if ms.kind == "regression":
        chart(viz.stream_values(now, seq["x"][:, 0], np.asarray(seq["target"]), view.delayed, view.delayed_at,
                                view.causal, view.causal_at, view.restart, delay), key="st_values")
        return
    lines, charts = [], []
    if view.delayed is not None:
        lines.append((f"delayed d={delay}", labels_at(view.delayed, view.shown(now)), [[]] * T))
        charts.append((incremental.delayed_history(view.delayed, delay), f"Delayed d={delay}: each label once, d "
                       "steps late", "st_chart_d"))
    if view.causal is not None:
        lines.append(("causal d=0", labels_at(view.causal, view.shown(now, "causal")), [[]] * T))
    flips = view.flips(now)
    if view.restart is not None:
        lines.append(("bidirectional, restart", [ms.labels[int(v)] if t <= now else None
                                                 for t, v in enumerate(view.restart[now])],
                      [[ms.labels[int(v)] for _, v in f[:-1]] for f in flips]))
        charts.append((view.restart, "Bidirectional, restart: revised labels in red", "st_chart_bi"))
    if seq["target"] is not None:
        lines.append(("target", [ms.labels[g] if t <= now else None for t, g in enumerate(seq["target"])], [[]] * T))
    st.html(viz.now_table_html(seq["tokens"], now, lines))
    revised = sum(max(0, len(f) - 1) for f in flips)
    notes = [f"Struck through: labels the restarted bidirectional network showed and then replaced — {revised} "
             f"revision{'s' * (revised != 1)} so far." if view.restart is not None else "",
             "" if view.delayed is None else "The delayed row never changes once shown." if view.causal is None
             else "The delayed and causal rows never change once shown.", absent]
    st.caption(" ".join(n for n in notes if n))
    for column, (history, title, key) in zip(st.columns(len(charts)), charts, strict=True):
        with column:
            chart(viz.incremental_chart(history, ms.labels, seq["tokens"], now, title), key=key)
    st.caption("Incremental charts: row = step, column = token, text = the label shown then. Blue: shown for the "
               "first time; pale: unchanged; red: replaced at that step.")


stream_panel()

if task != "user":
    sections.test_set_section(task)

# ---------------------------------------------------------------- connectivity of the model in view
st.subheader("Connectivity: which inputs each output reads")
if task == "user":
    line = delay
else:
    conn = bound(st.segmented_control, "Map of", ["delayed", "causal", "bidirectional"], default="delayed",
                 required=True, key="conn", help="the delayed RNN at the delay chosen above, the causal one (d = 0), "
                 "or the bidirectional network on the whole sequence")
    line = {"delayed": delay, "causal": 0}.get(conn)
matrix = connectivity_of(which, "bidirectional" if line is None else str(line), seq["x"])
model_name = ("your " if task == "user" else "the ") + ("bidirectional network" if line is None else
                                                        f"delayed RNN, d = {line}")
chart(viz.token_connectivity_map(matrix, seq["tokens"], delay=line,
                                 title=f"‖∂y_t/∂x_s‖ of {model_name} on this sequence (log scale)"),
      key="st_connectivity")
st.caption("Row t is output t, column s input s; the colour is how strongly output t depends on input s (log scale, "
           "grey: exactly 0). A delayed RNN reads nothing right of the line s = t + d, which is why it never needs "
           "to revise; the bidirectional network reads every input, including the ones that have not arrived yet.")
