"""Home: what the lab shows, a card per page with a small live figure, the device, the papers."""

import streamlit as st
import torch

from drnn_demo import viz
from drnn_demo.equivalence import demo_report
from pages.ui import chart

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


cards = st.columns(2)
with cards[0].container(border=True):
    st.subheader("Delayed outputs")
    st.markdown("Reversal and sine filtering: accuracy against the delay, next to bidirectional and stacked "
                "baselines and the theoretical bound.")
    st.page_link("pages/delayed_outputs.py", label="Open Delayed outputs", icon=":material/fast_forward:")
with cards[1].container(border=True):
    st.subheader("Stacked ≡ Delayed")
    report = small_report()
    st.markdown(f"A 3-layer LSTM and its one-layer delayed twin differ by at most **{report.max_error:.1e}**.")
    chart(viz.layer_errors(report.layer_error), key="home_eq")
    st.page_link("pages/equivalence.py", label="Open Stacked ≡ Delayed", icon=":material/stacks:")

st.subheader("Seed papers")
st.markdown(
    "- Turek, Jain, Vo, Capotă, Huth, Willke. *Approximating Stacked and Bidirectional Recurrent Architectures "
    "with the Delayed Recurrent Neural Network.* ICML 2020.\n"
    "- Zhang, Sennrich. *A Lightweight Recurrent Network for Sequence Modeling.* ACL 2019.\n"
    "- Lei, Zhang, Wang, Dai, Artzi. *Simple Recurrent Units for Highly Parallelizable Recurrence.* EMNLP 2018.\n"
    "- Nguyen-Duy et al. *Adaptive-saturated RNN: Remember more with less instability.* ICLR 2023 (tiny paper)."
)
