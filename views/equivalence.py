"""Stacked ≡ Delayed: a k-layer stack rebuilt as one delayed layer, side by side with the error.

The block matrix, and beside it four tabs (only the open one is built): the stacked layers over the delayed blocks
for one unit, the error per layer over time, the error as the zero blocks are relaxed by eps, and which future
inputs reach each block."""

import streamlit as st

from drnn_demo import viz
from drnn_demo.equivalence import demo_report
from views.ui import bound, chart, seed, view_tabs

GATES = {"rnn": ["h"], "gru": ["r", "z", "n"], "lstm": ["i", "f", "g", "o"]}
EPS_CHOICES = [0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]
# the tabs beside the matrix
VIEWS = ("Overlay", "Error per layer", "Relaxed blocks", "Future inputs")
GRU_NOTE = (
    "PyTorch's GRU multiplies its whole recurrent candidate term by the reset gate, and in the delayed layer that "
    "term also carries the layer input A_l h^(l-1), so one GRU layer cannot reproduce the stack exactly: the error "
    "below is measured, not hidden (layer 1 reads x directly and stays exact)."
)


@st.cache_data(max_entries=64, show_spinner="Building the delayed twin and comparing…")
def report(cell, sizes, length, seed, eps):
    return demo_report(cell, sizes, length, seed, eps)


@st.cache_resource(max_entries=64, show_spinner=False)
def figure_of(name: str, cell, sizes, length, seed, eps):
    """One of the page's figures for one report, built once and only when shown (read only)."""
    result = report(cell, sizes, length, seed, eps)
    if name == "matrix":
        return viz.block_matrix(result.weight_hh, result.block_edges, GATES[cell])
    if name == "errors":
        return viz.layer_errors(result.layer_error)
    if name == "eps":
        return viz.eps_curve(result.eps_grid, result.eps_errors, eps)
    return viz.influence_map(result.influence)


@st.cache_resource(max_entries=64, show_spinner=False)
def overlay_figure(cell, sizes, length, seed, eps, unit: int):
    """The stacked layers over the delayed blocks for one unit, built once per report and unit (read only)."""
    result = report(cell, sizes, length, seed, eps)
    return viz.layer_overlay(result.stacked_layers, result.delayed_layers, unit)


st.title("Stacked ≡ Delayed")
st.markdown(
    "Any k-layer stacked RNN is one **delayed** layer of size Σh_l with delay k−1: the recurrent matrix W holds "
    "each layer's recurrent weights R_l on its diagonal and each layer's input weights A_l just below it. "
    "Block l of the delayed state at step t+l−1 *is* layer l of the stack at step t."
)

controls = st.columns([1.2, 1, 1, 1])
cell = bound(controls[0].segmented_control, "Cell", ["rnn", "lstm", "gru"], default="lstm", required=True,
             wrap=True, key="eq_cell")
k = bound(controls[1].slider, "Layers k", 1, 6, 3, key="eq_layers")
length = bound(controls[2].slider, "Sequence length", 5, 200, 50, key="eq_length")
eps = bound(controls[3].select_slider, "Relax zero blocks: eps", EPS_CHOICES, value=0.0, key="eq_eps",
            help="fill the blocks that must be zero with eps-scaled noise")
size_columns = st.columns(6)
sizes = tuple(
    bound(size_columns[l].number_input, f"h{l + 1}", 1, 64, 8, key=f"eq_h{l + 1}") for l in range(k)
)

inputs = (cell, sizes, length, seed(), eps)
result = report(*inputs)

summary = st.columns(4)
summary[0].metric("max |stacked − delayed|", f"{result.max_error:.2e}")
summary[1].metric("exact construction", "yes" if result.exact else "no (GRU)")
summary[2].metric("delayed layer", f"H={sum(sizes)}, d={k - 1}")
summary[3].metric(f"error at eps={eps:g}", f"{result.eps_errors[result.eps_grid == eps][0]:.2e}")
if not result.exact and k > 1:
    st.warning(GRU_NOTE)

@st.fragment
def overlay(inputs: tuple, units: int) -> None:
    """The stacked layers and the delayed blocks for one unit: moving "Unit shown" reruns only this."""
    unit = bound(st.slider, "Unit shown", 0, units - 1, 0, key="eq_unit") if units > 1 else 0
    chart(overlay_figure(*inputs, unit), key="eq_overlay")


left, right = st.columns([1.1, 1])
with left:
    chart(figure_of("matrix", *inputs), key="eq_matrix")
    st.caption("Black lines: layer blocks inside each gate chunk. Everything off the diagonal and sub-diagonal "
               "blocks is exactly zero.")
with right:
    view, tab = view_tabs(list(VIEWS), key="eq_view")  # only the open tab is built: a move redraws 2 charts, not 5
with tab:
    if view == "Overlay":
        overlay(inputs, min(sizes))
    elif view == "Error per layer":
        chart(figure_of("errors", *inputs), key="eq_errors")
    elif view == "Relaxed blocks":
        chart(figure_of("eps", *inputs), key="eq_eps_curve")
    else:
        chart(figure_of("influence", *inputs), key="eq_influence")
        st.caption("Gradient of block l's state (standing for layer l at step t) with respect to x[t+o]. In the "
                   "exact construction only o = 0 (the present) and the past reach a block; with eps > 0 block l "
                   "reads up to l−1 steps ahead: the partial acausality of the paper.")
