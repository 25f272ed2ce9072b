"""Your data: upload a text file (classification or tagging), see it checked and previewed, train any cell on it.

The checks, the storage and the task are drnn_demo.tasks.user_data; the run config is drnn_demo.recipes.user_data;
the run is the generic "train" kind of drnn_demo.jobs. UI only.
"""

import streamlit as st

from drnn_demo.recipes.user_data import CELLS, user_data_config
from drnn_demo.tasks import user_data as ud
from views.ui import device, follow_runs, job_manager, seed

LIMIT_MB = ud.MAX_UPLOAD_BYTES // 2**20
FORMATS = {"Auto": "auto", "CSV": "csv", "TSV": "tsv", "CoNLL-U": "conllu", "Token/tag": "tokens"}
HIDDEN_SIZES = [8, 16, 32, 64, 128]
jobs = job_manager()

st.title("Your data")
st.markdown(
    "Train the lab's cells on a data set of yours. **Classification**: a CSV or TSV with a header row naming the "
    "columns `text` and `label`, one example per row; the model reads the words of a text and predicts its label "
    "from its final output. **Tagging**: a CoNLL-U file (words and their UPOS tags) or a two-column `token tag` "
    "file with a blank line between sentences; the model predicts a tag for every token. Each example goes to "
    "train, validation or test (about 80/10/10) by a hash of its text, so every run is tested on the same examples.")

fmt_label = st.segmented_control("Format", list(FORMATS), default="Auto", required=True, key="ud_format",
                                 help="Auto: from the file's name (.csv, .tsv, .conllu), else from its first line")
upload = st.file_uploader(
    f"A UTF-8 text file, at most {LIMIT_MB} MB", type=["csv", "tsv", "tab", "txt", "conllu", "conll"], key="ud_upload",
    max_upload_size=LIMIT_MB,
    help=f"Checked before anything is kept: at most {LIMIT_MB} MB, UTF-8 text (not binary), the columns, at most "
         f"{ud.MAX_EXAMPLES:,} examples of at most {ud.MAX_TOKENS:,} tokens each, at least two classes with at least "
         f"{ud.MIN_PER_CLASS} examples each (tagging: two tags with {ud.MIN_PER_CLASS} tokens), at most "
         f"{ud.MAX_CLASSES} classes, and every split non-empty. A problem is reported with its line; nothing is kept.")

if upload is not None:
    attempt = (upload.file_id, FORMATS[fmt_label])
    if st.session_state.get("ud_attempt") != attempt:  # check and store once per upload (and format)
        st.session_state.ud_attempt = attempt
        try:
            info = ud.store_dataset(upload.getvalue(), name=upload.name, fmt=FORMATS[fmt_label])
            st.session_state.ud_result = {"id": info.id}
            st.session_state.ud_pick = info.id
        except ud.UserDataError as err:
            st.session_state.ud_result = {"error": str(err)}
    result = st.session_state.get("ud_result", {})
    if "error" in result:
        st.error(f"**{upload.name}** was not kept: {result['error']}.", icon=":material/block:")
    elif result.get("id") not in {ident for ident, _, _ in ud.list_datasets()}:
        st.info(f"**{upload.name}** was stored, then deleted. Remove it above and upload it again to store it again.")
    else:
        st.success(f"**{upload.name}** is valid and stored as data set `{result['id']}`. It is selected below.",
                   icon=":material/task_alt:")

# ---------------------------------------------------------------- stored data sets

stored = ud.list_datasets()
usable = {ident: info for ident, info, _ in stored if info is not None}
damaged = [(ident, problem) for ident, info, problem in stored if info is None]
st.subheader("Stored data sets")
if not stored:
    st.info(f"No data set stored yet. Upload one above; it is kept in `{ud.datasets_dir()}`.", icon=":material/upload:")
for _, problem in damaged:
    st.warning(f"{problem}. It cannot be trained on.", icon=":material/error:")

linked = st.query_params.get("ud_set")
if linked in usable and st.session_state.get("ud_linked") != linked:
    st.session_state.ud_linked = st.session_state.ud_pick = linked
if st.session_state.get("ud_pick") not in usable:
    st.session_state.pop("ud_pick", None)


def set_label(ident: str) -> str:
    info = usable[ident]
    unit = "rows" if info.problem == "classification" else "sentences"
    return f"{info.name} · {info.problem} · {info.examples:,} {unit} · {ident}"


info = None
if usable:
    pick = st.selectbox("Data set", list(usable), format_func=set_label, key="ud_pick")
    info = usable[pick]
    st.query_params["ud_set"] = pick

if info is not None:
    classification = info.problem == "classification"
    cols = st.columns(5)
    cols[0].metric("Examples", f"{info.examples:,}")
    for col, split in zip(cols[1:4], ("train", "val", "test"), strict=True):
        col.metric(f"{split.capitalize()} split", f"{info.split_sizes[split]:,}")
    cols[4].metric("Classes" if classification else "Tags", len(info.labels))
    st.caption(f"Read as {ud.FORMAT_NAMES[info.fmt]}: {info.tokens:,} tokens, the longest example has "
               f"{info.longest:,}. " + ("Counts are rows per class." if classification else
                                         "Counts are tokens per tag."))
    left, right = st.columns([1, 2])
    total = sum(info.counts.values())
    left.dataframe([{"class" if classification else "tag": label, "count": n, "share": f"{n / total:.1%}"}
                    for label, n in sorted(info.counts.items(), key=lambda kv: -kv[1])], hide_index=True,
                   height=min(400, 38 + 35 * len(info.counts)))
    right.dataframe(info.preview, hide_index=True)
    right.caption("The first examples: their line in the file, their split, and the words the model reads.")
    majority = max(info.counts.values()) / total
    st.caption(f"Always guessing the most frequent {'class' if classification else 'tag'} scores **{majority:.1%}**: "
               "a model must beat that to have learned anything.")
    with st.popover("Delete this data set", icon=":material/delete:"):
        st.caption("Runs trained on it keep their checkpoints but cannot be re-tested.")
        if st.button("Yes, delete it", key="ud_delete", type="primary"):
            ud.delete_dataset(info.id)
            st.session_state.pop("ud_pick", None)
            st.query_params.pop("ud_set", None)
            st.rerun()

# ---------------------------------------------------------------- train in the background


def where_it_opens(config: dict) -> str:
    if ud.opens_on_lrn_gates(config):
        return "An LRN two-class classifier opens on **LRN gates** (Data: Sentiment, Model: your run)."
    if ud.opens_on_streaming(config):
        return "A delayed or bidirectional tagger opens on **Streaming** (Task: your run), token by token."
    if (config.get("model") or {}).get("readout") == "steps":
        return "A tagger's curves, test accuracy and checkpoint are on **Training runs**. Only delayed and " \
               "bidirectional LSTM taggers open on Streaming."
    return "Its curves, test accuracy and checkpoint are on **Training runs**. Only LRN classifiers of two classes " \
           "open on LRN gates."


@st.fragment
def train_block(info) -> None:
    """The settings change only this block."""
    st.subheader("Train in the background")
    cols = st.columns([1.6, 1.4, 1, 1])
    cell = cols[0].selectbox("Cell", list(CELLS), format_func=CELLS.get, key="ud_cell",
                             help="LSTM, delayed LSTM and bidirectional LSTM are one layer; LRN, SRU and asRNN are the "
                                  "lab's other cells. A classifier reads the final output.")
    hidden = cols[1].select_slider("Hidden size", HIDDEN_SIZES, value=32, key="ud_hidden")
    steps = cols[2].number_input("Steps", 50, 20_000, 500, step=50, key="ud_steps",
                                 help="batches of 32 examples, drawn from the train split")
    lr = cols[3].select_slider("Learning rate", [1e-3, 3e-3, 1e-2], value=3e-3, key="ud_lr",
                               format_func=lambda v: f"{v:g}", help="Adam, cosine decay to 0")
    delay, activation = 0, "identity"
    if cell == "delayed":
        delay = st.slider("Delay d", 0, 20, 2, key="ud_delay",
                          help="output t is read after x[t+d]: look-ahead of d tokens (for tagging)")
    if cell == "lrn":
        activation = st.segmented_control("LRN activation g", ["identity", "tanh"], default="identity",
                                          required=True, key="ud_g",
                                          help="identity: the gate weights unfold exactly (the LRN gates page)")
    running = bool(st.session_state.get("ud_run"))
    if st.button(f"Train {CELLS[cell]} on {info.name}", type="primary", icon=":material/play_arrow:", key="ud_train",
                 disabled=running, help="one run at a time from this page; more on Training runs"):
        try:
            config = user_data_config(info.id, cell, int(hidden), int(delay), activation, steps=int(steps),
                                      lr=float(lr), seed=seed(), device=device())
        except ud.UserDataError as err:
            st.error(str(err))
            return
        label = f"{CELLS[cell].split(' (')[0]}{f' d={delay}' if cell == 'delayed' else ''} h={hidden} on {info.name}"
        st.session_state.ud_run = jobs.submit("train", config, label=label, page="views/your_data.py",
                                              params={"ud_set": info.id})
        st.session_state.pop("ud_done", None)
        st.rerun(scope="fragment")  # redraw the block with the button disabled while the run is followed
    st.caption(f"Runs on the sidebar's device ({device()}) with seed {seed()}; progress shows here and on Training "
               "runs. The best validation weights are kept and scored on the test split.")
    for done in follow_runs("ud_run", "ud_done"):
        st.markdown(where_it_opens(done.config))
        links = st.columns(3)
        if done.checkpoint is not None and ud.opens_on_lrn_gates(done.config):
            links[0].page_link("views/lrn_gates.py", label="Open on LRN gates", icon=":material/grid_on:",
                               query_params={"lrn_mode": "Sentiment", "run": done.id})
        if done.checkpoint is not None and done.status in ("finished", "early_stopped") and \
                ud.opens_on_streaming(done.config):
            links[0].page_link("views/streaming.py", label="Open on Streaming", icon=":material/stream:",
                               query_params={"task": "your run", "run": done.id})
        links[1].page_link("views/training_runs.py", label="All training runs", icon=":material/directions_run:")


requested = st.query_params.get("run")
if requested:  # "Open in its page" from Training runs: show how that run ended and where it opens
    del st.query_params["run"]
    st.session_state.ud_done = requested
if info is not None:
    train_block(info)
