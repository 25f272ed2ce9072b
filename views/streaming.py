"""Streaming: a delayed RNN answers d steps late and never changes its mind; a bidirectional network in restart
mode answers at once and keeps revising. Tokens arrive one by one; press play or drag "now"."""

import numpy as np
import streamlit as st
import torch

from drnn_demo import streaming, viz
from drnn_demo.analysis import connectivity, incremental
from drnn_demo.checkpoints import CheckpointError
from drnn_demo.fileio import JSONFileError, read_json
from drnn_demo.streaming_pos import MAX_TYPED_WORDS, tokenize
from drnn_demo.tasks.pos import sentences
from views.ui import bound, chart

TASKS = {"POS": "pos", "reversal": "reversal", "sine": "sine"}  # as the control (and the URL) names them
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


@st.cache_resource(show_spinner="Loading the pretrained models…")
def models(task: str) -> streaming.ModelSet:
    return streaming.model_set(task)


@st.cache_data(max_entries=1, show_spinner=False)
def results(mtime: float) -> dict:
    return read_json(streaming.RESULTS_PATH, max_bytes=8 * 2**20)


@st.cache_data(max_entries=64, show_spinner="Streaming the sequence…")
def sequence(task: str, source: str, index: int, text: str) -> dict:
    """The tokens, inputs (T, D), targets (or None) of the sequence in view."""
    ms = models(task)
    if task == "pos":
        words, tags = (tokenize(text), None) if source == "typed" else sentences("test")[index]
        return {"tokens": list(words), "x": ms.taggers.vectors(words).numpy(), "target": None if tags is None
                else [ms.labels.index(t) for t in tags]}
    x, y = streaming.task_test_sequences(task, SHOWN_SEQUENCES)
    tokens = [str(int(v)) for v in x[index].argmax(-1)] if task == "reversal" else [f"{v:.2f}" for v in x[index, :, 0]]
    return {"tokens": tokens, "x": x[index].numpy(), "target": y[index].reshape(-1).numpy().tolist()}


@st.cache_data(max_entries=64, show_spinner=False)
def view_of(task: str, source: str, index: int, text: str, delay: int) -> streaming.StreamView:
    return streaming.stream_view(models(task), torch.from_numpy(sequence(task, source, index, text)["x"]), delay)


@st.cache_data(max_entries=32, show_spinner="Computing ‖∂y_t/∂x_s‖…")
def connectivity_of(task: str, which: str, x: np.ndarray) -> np.ndarray:
    ms = models(task)
    model = ms.bidirectional if which == "bidirectional" else ms.delayed[int(which)]
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
task = TASKS[bound(controls[0].segmented_control, "Task", list(TASKS), default="POS", required=True, key="task")]
delay = bound(controls[2].select_slider, "Delay d", DELAYS[task], value=DEFAULT_DELAY[task], key=f"d_{task}",
              help="output t is shown at step t + d")
st.caption(TASK_TEXT[task])
try:
    ms = models(task)
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
        try:
            if not tokenize(text):
                st.warning("Type at least one word.")
                st.stop()
        except ValueError as err:
            st.error(str(err))
            st.stop()
    else:
        index = bound(picker.number_input, "EWT test sentence", 0, len(sentences("test")) - 1, DEFAULT_SENTENCE,
                      key="sent", help="its index in the test file")
else:
    index = bound(picker.number_input, "Test sequence", 0, SHOWN_SEQUENCES - 1, 0, key="seq")

seq = sequence(task, source, index, text)
view = view_of(task, source, index, text, delay)
T = view.length
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
    word = seq["tokens"][now]
    shown = ("all outputs shown: the input has ended" if now == T - 1 else
             f"outputs up to token {now - delay} shown" if now >= delay else "no output yet")
    st.caption(f"Step {now} of {T - 1}: token {now} ({word!r}) has arrived. Delayed d = {delay}: {shown}.")
    if ms.kind == "regression":
        chart(viz.stream_values(now, seq["x"][:, 0], np.asarray(seq["target"]), view.delayed, view.delayed_at,
                                view.causal, view.causal_at, view.restart, delay), key="st_values")
        return
    flips = view.flips(now)
    restart_now = [ms.labels[int(v)] if t <= now else None for t, v in enumerate(view.restart[now])]
    earlier = [[ms.labels[int(v)] for _, v in f[:-1]] for f in flips]
    lines = [(f"delayed d={delay}", labels_at(view.delayed, view.shown(now)), [[]] * T),
             ("causal d=0", labels_at(view.causal, view.shown(now, "causal")), [[]] * T),
             ("bidirectional, restart", restart_now, earlier)]
    if seq["target"] is not None:
        lines.append(("target", [ms.labels[g] if t <= now else None for t, g in enumerate(seq["target"])], [[]] * T))
    st.html(viz.now_table_html(seq["tokens"], now, lines))
    revised = sum(max(0, len(f) - 1) for f in flips)
    st.caption(f"Struck through: labels the restarted bidirectional network showed and then replaced — {revised} "
               f"revision{'s' * (revised != 1)} so far. The delayed and causal rows never change once shown.")
    cols = st.columns(2)
    with cols[0]:
        chart(viz.incremental_chart(incremental.delayed_history(view.delayed, delay), ms.labels, seq["tokens"], now,
                                    f"Delayed d={delay}: each label once, d steps late"), key="st_chart_d")
    with cols[1]:
        chart(viz.incremental_chart(view.restart, ms.labels, seq["tokens"], now,
                                    "Bidirectional, restart: revised labels in red"), key="st_chart_bi")
    st.caption("Incremental charts: row = step, column = token, text = the label shown then. Blue: shown for the "
               "first time; pale: unchanged; red: replaced at that step.")


stream_panel()

# ---------------------------------------------------------------- over the test set (results/streaming.json)
st.subheader("Over the test set")
shipped = None
if streaming.RESULTS_PATH.exists():
    try:
        shipped = results(streaming.RESULTS_PATH.stat().st_mtime)["tasks"].get(task)
    except (JSONFileError, KeyError, TypeError):
        shipped = None
if shipped is None:
    st.info(f"No measurements for this task yet: run `{streaming.COMMAND}` (writes results/streaming.json).")
else:
    rows = shipped["rows"]
    if shipped["kind"] == "classification":
        st.markdown(f"Incremental metrics (Madureira & Schlangen, 2020) over {shipped['sequences']:,} test "
                    f"{'sentences' if task == 'pos' else 'sequences'}. "
                    "**EO** edit overhead: the share of edits that replaced a label; **CT** correction time: steps "
                    "from a token's first label to its final one (mean); **RC** relative correctness: the share of "
                    "steps whose output is a prefix of the final output. Latency: steps from a token to its label.")
        table = [{"model": r["model"], "latency (steps)": r["latency"], "EO": r["edit_overhead"],
                  "CT (steps)": r["correction_time"], "tokens revised": r["revised_tokens"],
                  "RC": r["relative_correctness"], "accuracy (final)": r["accuracy"],
                  "accuracy as first shown": r["accuracy_lag0"] if r["delay"] is None else r["accuracy"]}
                 for r in rows]
        st.dataframe(table, hide_index=True, width="stretch",
                     column_config={k: st.column_config.NumberColumn(format="%.3f") for k in
                                    ("EO", "CT (steps)", "tokens revised", "RC", "accuracy (final)",
                                     "accuracy as first shown")})
        metric, lower = "accuracy", False
    else:
        st.markdown("Edit-based metrics need discrete labels; for this regression task the cost of answering early "
                    "is the error of what is shown. MSE over " f"{shipped['sequences']:,} test sequences:")
        metric, lower = "mse", True
    chart(viz.accuracy_vs_latency(rows, metric, lower_is_better=lower), key="st_latency")
    st.caption("Delayed RNNs: each label final when shown, d steps after its token. Restart mode read k steps after "
               "each token: what a reader of the bidirectional network's running output would have seen then (it may "
               "still change). Dashed: the bidirectional network's final output, which waits for the whole input.")
    compute = shipped["compute"]
    chart(viz.compute_per_token(compute["sequences"], compute["delay"]), key="st_compute")
    st.caption(f"Measured on {len(compute['sequences'])} test sequences (one CPU thread, the two timed interleaved; "
               f"`{streaming.COMMAND}`): per arriving token, restart mode took a median "
               f"**{compute['median_ratio']:.1f}×** the delayed RNN's time ("
               f"{compute['median_restart_per_token'] * 1e3:.2f} ms against "
               f"{compute['median_delayed_per_token'] * 1e3:.2f} ms). Both make one call into an LSTM per token, and "
               "at hidden size 64 a call's fixed cost weighs most (the times are noisy on a shared CPU); what grows "
               "with the length is the work inside it: T(T+1) cell steps per sequence for restart against T + d.")

# ---------------------------------------------------------------- connectivity of the model in view
st.subheader("Connectivity: which inputs each output reads")
which = bound(st.segmented_control, "Map of", ["delayed", "causal", "bidirectional"], default="delayed",
              required=True, key="conn", help="the delayed RNN at the delay chosen above, the causal one (d = 0), "
              "or the bidirectional network on the whole sequence")
line = {"delayed": delay, "causal": 0}.get(which)
matrix = connectivity_of(task, "bidirectional" if line is None else str(line), seq["x"])
model_name = "bidirectional network" if line is None else f"delayed RNN, d = {line}"
chart(viz.token_connectivity_map(matrix, seq["tokens"], delay=line,
                                 title=f"‖∂y_t/∂x_s‖ of the {model_name} on this sequence (log scale)"),
      key="st_connectivity")
st.caption("Row t is output t, column s input s; the colour is how strongly output t depends on input s (log scale, "
           "grey: exactly 0). A delayed RNN reads nothing right of the line s = t + d, which is why it never needs "
           "to revise; the bidirectional network reads every input, including the ones that have not arrived yet.")
