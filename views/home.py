"""Home: what the lab shows, a card per page with a small live figure, the device, the papers."""

import streamlit as st
import torch

from drnn_demo import viz
from drnn_demo.equivalence import demo_report
from drnn_demo.pretrained import PRETRAINED_DIR, catalog, describe
from drnn_demo.tasks import build_task
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


@st.cache_data(show_spinner=False)
def small_report():
    return demo_report("lstm", (4, 4, 4), 30, 0, 0.0)


@st.cache_data(show_spinner=False)
def reversal_ladder(signature: tuple):
    """Test accuracy vs delay of the shipped reversal models (re-read when the files change)."""
    ladder = [describe(c) for c in catalog("reversal")]
    points = [{"delay": c["delay"], "value": c["test"]["accuracy"], "label": c["name"]}
              for c in ladder if c["core"] == "delayed"]
    baselines = [{"name": c["core"], "value": c["test"]["accuracy"]} for c in ladder if c["core"] != "delayed"]
    return points, baselines


cards = st.columns(3)
with cards[0].container(border=True):
    st.subheader("Delayed outputs")
    st.markdown("Reversal and sine filtering: the metric against the delay, next to bidirectional and stacked "
                "baselines and the theoretical bound.")
    points, baselines = reversal_ladder(tuple(sorted(p.name for p in PRETRAINED_DIR.glob("*.json"))))
    if points:
        delays = list(range(20))
        task = build_task("reversal")
        chart(viz.metric_vs_delay(points, "accuracy", baselines, (delays, [task.best_possible(d) for d in delays])),
              key="home_delayed")
    else:
        st.warning("No pretrained models yet: run `make pretrain`.")
    st.page_link("views/delayed_outputs.py", label="Open Delayed outputs", icon=":material/fast_forward:")
with cards[1].container(border=True):
    st.subheader("Stacked ≡ Delayed")
    report = small_report()
    st.markdown(f"A 3-layer LSTM and its one-layer delayed twin differ by at most **{report.max_error:.1e}**.")
    chart(viz.layer_errors(report.layer_error), key="home_eq")
    st.page_link("views/equivalence.py", label="Open Stacked ≡ Delayed", icon=":material/stacks:")
with cards[2].container(border=True):
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
