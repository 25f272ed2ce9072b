"""Home: what the lab shows, a card per page with a small live figure, the device, the papers."""

import streamlit as st
import torch

from drnn_demo import viz
from drnn_demo.checkpoints import CheckpointError, load_checkpoint, read_card
from drnn_demo.equivalence import demo_report
from drnn_demo.memory_analysis import memory_task
from drnn_demo.pretrained import PRETRAINED_DIR, catalog, describe
from drnn_demo.recipes.memory import pretrained_name
from drnn_demo.tasks import build_task
from drnn_demo.tasks.sentiment import explain
from views.ui import chart, job_manager

st.title("drnn_demo: how recurrent topologies really behave")
st.markdown(
    "An interactive lab for recurrent networks. Move the sliders and watch what the papers claim: a **single-layer "
    "delayed RNN** that sees d steps of the future like a bidirectional one, a **stacked RNN rebuilt exactly** as "
    "one delayed layer, and small models that train in the background while the page stays responsive."
)
device = "cuda" if torch.cuda.is_available() else "cpu"
st.info(f"Running on **{device}** with torch {torch.__version__}"
        + ("" if device == "cuda" else " (no GPU found; training runs use the CPU)") + ".")


# Each card's figure is built once per server (and again when its files change), not on every visit: a new
# session's first chart is not kept waiting by plotly validating it again. The figures are read only.


@st.cache_resource(show_spinner=False)
def equivalence_card():
    """The largest error of a 3-layer LSTM against its delayed twin, and its error-per-layer figure."""
    report = demo_report("lstm", (4, 4, 4), 30, 0, 0.0)
    return report.max_error, viz.layer_errors(report.layer_error)


@st.cache_resource(show_spinner=False)
def reversal_figure(signature: tuple):
    """Test accuracy vs delay of the shipped reversal models (re-read when the files change); None without any."""
    ladder = [describe(c) for c in catalog("reversal")]
    points = [{"delay": c["delay"], "value": c["test"]["accuracy"], "label": c["name"]}
              for c in ladder if c["core"] == "delayed"]
    baselines = [{"name": c["core"], "value": c["test"]["accuracy"]} for c in ladder if c["core"] != "delayed"]
    if not points:
        return None
    delays, task = list(range(20)), build_task("reversal")
    return viz.metric_vs_delay(points, "accuracy", baselines, (delays, [task.best_possible(d) for d in delays]))


LRN_EXAMPLE = "The food was great but the service was not friendly."


@st.cache_resource(show_spinner=False)
def lrn_figure(mtime: float):
    """The pretrained sentiment LRN's per-token shares of its decision on one example sentence; None without it."""
    try:
        model, card = load_checkpoint(PRETRAINED_DIR / "lrn_sentiment.safetensors")
    except (CheckpointError, FileNotFoundError):
        return None
    e = explain(model.eval(), LRN_EXAMPLE, card["vocab"])
    return viz.lrn_token_shares(e.token_weights.tokens, e.shares.numpy(), title="Each word's share of the decision")


HOME_MEMORY_CELLS = (("asrnn", "asRNN"), ("lstm", "LSTM"))


@st.cache_resource(show_spinner=False)
def memory_figure(mtimes: tuple):
    """The shipped copy-memory (L = 50) training curves of asRNN and LSTM (model cards only); None without any."""
    records = []
    for cell, label in HOME_MEMORY_CELLS:
        path = PRETRAINED_DIR / f"{pretrained_name(cell)}.safetensors"
        try:
            records.append({**read_card(path)["memory"], "cell": cell, "label": label})
        except (CheckpointError, FileNotFoundError, KeyError):
            continue
    if not records:
        return None
    return viz.memory_loss_curves(records, float(memory_task().baseline_loss), title="Copy memory, L = 50")


def mtime(path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


cards = st.columns(3)
with cards[0].container(border=True):
    st.subheader("Delayed outputs")
    st.markdown("Reversal and sine filtering: the metric against the delay, next to bidirectional and stacked "
                "baselines and the theoretical bound.")
    delayed_fig = reversal_figure(tuple(sorted((p.name, mtime(p)) for p in PRETRAINED_DIR.glob("*.json"))))
    if delayed_fig is not None:
        chart(delayed_fig, key="home_delayed")
    else:
        st.warning("No pretrained models yet: run `make pretrain`.")
    st.page_link("views/delayed_outputs.py", label="Open Delayed outputs", icon=":material/fast_forward:")
with cards[1].container(border=True):
    st.subheader("Stacked ≡ Delayed")
    max_error, errors_fig = equivalence_card()
    st.markdown(f"A 3-layer LSTM and its one-layer delayed twin differ by at most **{max_error:.1e}**.")
    chart(errors_fig, key="home_eq")
    st.page_link("views/equivalence.py", label="Open Stacked ≡ Delayed", icon=":material/stacks:")
with cards[2].container(border=True):
    st.subheader("LRN gates")
    st.markdown("LRN's input and forget gates unfolded into weights over the tokens: which word decides.")
    lrn_fig = lrn_figure(mtime(PRETRAINED_DIR / "lrn_sentiment.safetensors"))
    if lrn_fig is not None:
        chart(lrn_fig, key="home_lrn")
    else:
        st.warning("No pretrained sentiment LRN yet: run `make pretrain`.")
    st.page_link("views/lrn_gates.py", label="Open LRN gates", icon=":material/grid_on:")

more = st.columns(3)
with more[0].container(border=True):
    st.subheader("Memory & stability")
    st.markdown("Copy memory and pixel-by-pixel digits: which cells remember, and where gradients vanish.")
    memory_card_mtimes = tuple(mtime(PRETRAINED_DIR / f"{pretrained_name(c)}.json") for c, _ in HOME_MEMORY_CELLS)
    memory_fig = memory_figure(memory_card_mtimes)
    if memory_fig is not None:
        chart(memory_fig, key="home_memory")
    else:
        st.warning("No pretrained copy-memory models yet: run `make pretrain`.")
    st.page_link("views/memory.py", label="Open Memory & stability", icon=":material/memory:")
with more[1].container(border=True):
    st.subheader("Training runs")
    runs = job_manager().runs()
    st.markdown(f"Small models train in background processes while you explore. **{len(runs)}** run(s) so far, "
                f"{sum(r.active for r in runs)} active.")
    if runs and runs[0].history:
        chart(viz.training_curves(runs[0].history), key="home_runs")
        st.caption(f"Latest: {runs[0].label} ({runs[0].status.replace('_', ' ')})")
    st.page_link("views/training_runs.py", label="Open Training runs", icon=":material/directions_run:")

st.subheader("Seed papers")
st.markdown(
    "- Turek, Jain, Vo, Capotă, Huth, Willke. *Approximating Stacked and Bidirectional Recurrent Architectures "
    "with the Delayed Recurrent Neural Network.* ICML 2020.\n"
    "- Zhang, Sennrich. *A Lightweight Recurrent Network for Sequence Modeling.* ACL 2019.\n"
    "- Lei, Zhang, Wang, Dai, Artzi. *Simple Recurrent Units for Highly Parallelizable Recurrence.* EMNLP 2018.\n"
    "- Nguyen-Duy et al. *Adaptive-saturated RNN: Remember more with less instability.* ICLR 2023 (tiny paper)."
)
