"""Sections of the Streaming page (views/streaming.py): picking a tagger run of yours (from a link or the list, and
why a run cannot be streamed), and the shipped measurements over the test set. Widgets and layout only; which runs
stream is :func:`drnn_demo.streaming_user.run_problem`."""

from __future__ import annotations

import streamlit as st

from drnn_demo import streaming, viz
from drnn_demo.fileio import JSONFileError, read_json
from drnn_demo.streaming_user import MAX_STREAMED_TOKENS, MAX_TYPED_TOKENS, run_problem, typed_tokens
from views.ui import bound, chart

ERROR_KEY = "st_run_error"  # session key: why the run a link asked for cannot be streamed (shown until another pick)
WRITTEN_KEY = "st_run_written"  # session key: the ?run= this page last wrote (any other value is a new link)


def _quoted(text: str) -> str:
    return "`" + " ".join(str(text)[:40].replace("`", "'").split()) + "`"


def why_not(jobs, run_id: str) -> str:
    """Why the run ``run_id`` (from a link) is not among the runs this page streams."""
    try:
        info = jobs.get(run_id)
    except KeyError:
        return (f"There is no run {_quoted(run_id)} in `{jobs.root}`: it was deleted, or the link comes from another "
                "machine.")
    return (run_problem(info) or f"The run {_quoted(run_id)} cannot be streamed") + "."


def pick_run(jobs):
    """The run selector: finished tagger runs of your data, newest first, in the URL as ``?run=<id>``. A link's run
    is selected, or one error says why it cannot be (shown until another run is picked). Returns the RunInfo in
    view, or None (after saying how to make one)."""
    runs = {info.id: info for info in jobs.runs() if run_problem(info) is None}
    linked = st.query_params.get("run")
    if st.session_state.get("u_run") not in runs:
        st.session_state.pop("u_run", None)  # deleted meanwhile
    if linked is not None and (linked != st.session_state.get(WRITTEN_KEY) or "u_run" not in st.session_state):
        # a link ("Open on Streaming"), a reload, or a return to the page
        if linked in runs:
            st.session_state.u_run = linked
            st.session_state.pop(ERROR_KEY, None)
        else:
            st.session_state[ERROR_KEY] = why_not(jobs, linked)
    if st.session_state.get(ERROR_KEY):
        st.error(st.session_state[ERROR_KEY], icon=":material/link_off:")
    if not runs:
        st.query_params.pop("run", None)
        st.info("No tagger of yours to stream yet. On **Your data**, upload a tagging set (CoNLL-U, or token/tag "
                "lines) and train a delayed or a bidirectional LSTM on it; when it has finished it opens here.",
                icon=":material/upload_file:")
        st.page_link("views/your_data.py", label="Your data", icon=":material/upload_file:")
        return None
    # Not views.ui.bound: a bound widget writes format_func(option) to the URL, and a link must name the run by its id
    pick = st.columns([2, 2.2])[0].selectbox(
        "Run", list(runs), key="u_run", format_func=lambda r: f"{runs[r].label} · {r}" if r in runs else r,
        on_change=lambda: st.session_state.pop(ERROR_KEY, None),
        help="finished tagger runs of your data with a delayed or bidirectional LSTM, newest first")
    st.query_params["run"] = st.session_state[WRITTEN_KEY] = pick
    return runs[pick]


def run_caption(info, ms, delay: int | None) -> str:
    """Says what the run is and what it scored; returns the sentence naming the rows it cannot give."""
    args = (ms.bidirectional if delay is None else ms.delayed[delay]).config["core_args"]
    hidden = args.get("hidden_size") or "/".join(str(h) for h in args.get("hidden_sizes", []))
    what = "a bidirectional LSTM" if delay is None else f"a delayed LSTM, d = {delay}"
    accuracy = next(iter(ms.test.values()), None)
    scored = f"; test accuracy **{accuracy:.1%}** (its run, on the test split)" if accuracy is not None else ""
    st.caption(f"Your run **{info.label}**: {what} (hidden {hidden}) on data set `{ms.taggers.dataset}`, "
               f"{len(ms.labels)} tags{scored}.")
    missing = "the delayed and causal rows" if delay is None else \
        ("the bidirectional row" if delay == 0 else "the causal and bidirectional rows")
    return (f"One run is one model, so {missing} are absent here. Train another cell on the same data on **Your "
            "data** to stream it beside this one.")


def stop_unless_words(split, text: str) -> None:
    """Stop the page with one message unless ``split(text)`` gives at least one word (it raises ValueError for a
    sentence it refuses, with the reason)."""
    try:
        if not split(text):
            st.warning("Type at least one word.")
            st.stop()
    except ValueError as err:
        st.error(str(err))
        st.stop()


def user_sentence(column, picker, test: list | None) -> tuple[str, str, int]:
    """``(source, text, index)``: one of the run's test sentences ``test`` (``[(words, tags)]``; None: its data set is
    gone), or a typed one. Stops the page, saying why, for an empty, too long or unusable sentence."""
    source, text, index = "test", "", 0
    if test is not None:
        with column:
            source = {"test split": "test", "your own": "typed"}[
                bound(st.segmented_control, "Sentence", ["test split", "your own"], default="test split",
                      required=True, key="u_src")]
    if source == "typed" or test is None:
        text = bound(picker.text_input, "Your sentence", "", max_chars=3000, key="u_text",
                     placeholder=" ".join(test[0][0]) if test else "the words of a sentence, separated by spaces",
                     help=f"tokens separated by spaces, as in your file (punctuation too), at most "
                          f"{MAX_TYPED_TOKENS}; read lower-cased, as your data set was")
        stop_unless_words(typed_tokens, text)
        return "typed", text, 0
    index = bound(picker.number_input, "Test sentence", 0, len(test) - 1, 0, key="u_sent",
                  help=f"its place among the {len(test):,} sentences of your data set's test split, the ones the "
                       "run was scored on")
    if len(test[index][0]) > MAX_STREAMED_TOKENS:
        st.warning(f"Test sentence {index} has {len(test[index][0]):,} tokens; this page streams at most "
                   f"{MAX_STREAMED_TOKENS}. Pick another.")
        st.stop()
    return source, text, index


@st.cache_data(max_entries=1, show_spinner=False)
def _results(mtime: float) -> dict:
    return read_json(streaming.RESULTS_PATH, max_bytes=8 * 2**20)


def test_set_section(task: str) -> None:
    """Incremental metrics, accuracy against latency and compute per token of the shipped models
    (results/streaming.json, written by ``python -m drnn_demo.streaming``)."""
    st.subheader("Over the test set")
    shipped = None
    if streaming.RESULTS_PATH.exists():
        try:
            shipped = _results(streaming.RESULTS_PATH.stat().st_mtime)["tasks"].get(task)
        except (JSONFileError, KeyError, TypeError):
            shipped = None
    if shipped is None:
        st.info(f"No measurements for this task yet: run `{streaming.COMMAND}` (writes results/streaming.json).")
        return
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
