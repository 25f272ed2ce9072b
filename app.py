"""drnn_demo: the router. Shared sidebar (device, seed) and the page list.

Each page is a file in views/, not pages/: Streamlit serves a pages/ folder by itself to a deep link,
bypassing this router and its sidebar.
"""

import gc
import sys

import streamlit as st
import torch

from views.ui import page_download, start_page

# Two cores are shared by the UI and the training workers: keep the server's torch to one thread.
torch.set_num_threads(1)

st.set_page_config(page_title="drnn_demo: recurrent topologies, seen", page_icon=":material/repeat:", layout="wide")

PAGES = [
    st.Page("views/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("views/delayed_outputs.py", title="Delayed outputs", icon=":material/fast_forward:", url_path="delayed"),
    st.Page("views/equivalence.py", title="Stacked ≡ Delayed", icon=":material/stacks:", url_path="equivalence"),
    st.Page("views/memory.py", title="Memory & stability", icon=":material/memory:", url_path="memory"),
    st.Page("views/lrn_gates.py", title="LRN gates", icon=":material/grid_on:", url_path="lrn"),
    st.Page("views/streaming.py", title="Streaming", icon=":material/stream:", url_path="streaming"),
    st.Page("views/paper_experiments.py", title="Paper experiments", icon=":material/science:", url_path="paper"),
    st.Page("views/your_data.py", title="Your data", icon=":material/upload_file:", url_path="data"),
    st.Page("views/training_runs.py", title="Training runs", icon=":material/directions_run:", url_path="runs"),
]
navigation = st.navigation(PAGES)
# Opening a page (the session's first run, a switch, back/forward) is when its URL-bound widgets read the link:
# views.ui.bound checks each one's link value once per visit.
if st.session_state.get("_url_page") != navigation.url_path:
    st.session_state["_url_page"] = navigation.url_path
    st.session_state["_url_visit"] = st.session_state.get("_url_visit", 0) + 1

@st.cache_resource(max_entries=1, show_spinner=False)
def freeze_imported(modules_loaded: int) -> None:
    """``gc.freeze()`` once per number of loaded modules (so after the first run, and after a run that imported
    more): the objects alive then (modules, classes, caches: torch, plotly and streamlit hold ~250,000) move to a
    generation the garbage collector no longer walks. Streamlit collects after every rerun (runner.postScriptGC);
    walking them took 50–75 ms each time, holding the GIL while the rerun's last messages waited to be sent. Frozen
    objects are still freed when their last reference goes; only cycles among them are kept."""
    gc.collect()
    gc.freeze()


def sidebar() -> None:
    """Device and seed, shared by every page (pages read them through views.ui.device and views.ui.seed)."""
    devices = ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    st.segmented_control("Device for training runs", devices, default="auto", required=True, key="device",
                         persist_state="session", help="auto = CUDA when a GPU is present, else CPU")
    in_use = "cuda" if st.session_state.device == "auto" and torch.cuda.is_available() else st.session_state.device
    st.caption(f"Device in use: **{'cpu' if in_use == 'auto' else in_use}**"
               + ("" if torch.cuda.is_available() else " (no GPU found)"))
    st.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key="seed", persist_state="session",
                    help="seeds the demo models, the data and the training runs")


# The sidebar's slot comes first, its widgets after the page: the page's first chart reaches the browser (and
# starts the plotly.js download) before the sidebar's widgets do. Filled even when the page stops early.
sidebar_slot = st.sidebar.container()
start_page()  # the figures views.ui.chart draws, for the page's HTML download
try:
    navigation.run()
finally:
    with sidebar_slot:
        sidebar()
    page_download(navigation.title)
    freeze_imported(len(sys.modules))
