"""Memory & stability: LSTM, expRNN, asRNN, SRU and LRN on copy memory and digits, side by side.

Cross-entropy vs iteration with the baseline; below it, in tabs (only the open one is built), ||dL/ds_t|| over
time, the connectivity map of one cell, asRNN's saturation levels and the orthogonality error of W_hh; from the
pretrained checkpoints or from your own background runs.
"""

from pathlib import Path

import numpy as np
import streamlit as st

from drnn_demo import viz
from drnn_demo.analysis import connectivity
from drnn_demo.checkpoints import CheckpointError, load_checkpoint, read_card
from drnn_demo.memory_analysis import COPY_TASK, MEMORY_MODELS, gradient_reach, memory_task, task_phases
from drnn_demo.pretrained import PRETRAINED_DIR
from drnn_demo.recipes.memory import PRETRAIN_CELLS, pretrained_name
from views.memory_training import train_side_by_side
from views.ui import bound, chart, format_seconds, job_manager, seed, table, view_tabs

NAMES = viz.MEMORY_CELL_NAMES
GAPS = [10, 25, 50, 100, 200]
K = COPY_TASK["copy_length"]
PRETRAINED_GAP = COPY_TASK["gap"]
TASK_CHOICES = ["copy memory", "sequential digits", "permuted digits"]
VIEWS = ("Gradients", "Connectivity", "asRNN saturation", "Orthogonality")  # the tabs below the loss curves
CELL_TEXT = {
    "lstm": "gated, saturating", "exprnn": "orthogonal W_hh (expm), modReLU", "asrnn": "orthogonal W_hh, adaptive "
    "saturation", "sru": "element-wise recurrence (2 layers)", "lrn": "element-wise recurrence, gates read h_{t-1}",
}
jobs = job_manager()


@st.cache_data(max_entries=128, show_spinner=False)
def card_of(path: str, mtime: float) -> dict | None:
    """The model card of a memory checkpoint (JSON only), cached by path and modification time."""
    try:
        card = read_card(path)
    except CheckpointError:
        return None
    return card if isinstance(card.get("memory"), dict) else None


def card_at(path: Path) -> dict | None:
    return card_of(str(path), path.stat().st_mtime) if path.exists() else None


def pretrained_card(cell: str, task) -> dict | None:
    return card_at(PRETRAINED_DIR / f"{pretrained_name(cell, task)}.safetensors")


def latest_runs(task) -> dict:
    """The newest memory run with a checkpoint for each cell on this task: {cell: RunInfo}."""
    found = {}
    for info in jobs.runs():  # newest first
        if info.kind != "memory" or info.checkpoint is None or info.config.get("task", "copy_memory") != task.name \
                or info.config.get("task_args") != task.args:
            continue
        found.setdefault(info.config.get("cell"), info)
    return found


def reach_text(memory: dict, task) -> str:
    reach = gradient_reach((memory.get("gradient_norms") or {}).get("final"), task)
    return "–" if reach is None else f"{reach:.2e}"


def record(cell: str, memory: dict, source: str) -> dict:
    return {**memory, "cell": cell, "label": f"{NAMES[cell]}", "source": source}


# ---------------------------------------------------------------- connectivity ||dy_t/dx_s|| of a copy-memory model


@st.cache_resource(max_entries=16, show_spinner=False)
def load_model(path: str, mtime: float):
    """A checkpoint's model, cached by path and modification time."""
    return load_checkpoint(path)[0]


@st.cache_data(max_entries=32, show_spinner="Computing ‖∂y_t/∂x_s‖…")
def connectivity_of(path: str, mtime: float, x: np.ndarray) -> np.ndarray:
    """The connectivity map (T, T) of a checkpoint on one input sequence ``x`` (T, D), cached by path, mtime and x."""
    return connectivity(load_model(path, mtime), x).numpy()


def checkpoint_path(rec: dict, runs: dict, task) -> Path:
    """The weights file behind a shown record: the user's run, else the pretrained checkpoint."""
    info = runs.get(rec["cell"])
    if rec["source"].startswith("your run") and info is not None:
        return Path(info.checkpoint)
    return PRETRAINED_DIR / f"{pretrained_name(rec['cell'], task)}.safetensors"


@st.fragment
def connectivity_section(paths: dict, x: np.ndarray, copy_length: int, sequence_seed: int) -> None:
    """The heatmap of one shown cell on one copy-memory sequence, with the recall rows x symbol columns boxed."""
    st.markdown("**Do the recall steps reach the stored symbols?**")
    options = list(paths)
    cell = bound(st.segmented_control, "Map of", options, default="asrnn" if "asrnn" in options else options[0],
                 required=True, key="mem_conn_cell", format_func=NAMES.get,
                 help="one of the cells shown above, on one copy-memory sequence")
    path = paths[cell]
    matrix = connectivity_of(str(path), path.stat().st_mtime, x)
    T = len(x)
    box = {"rows": (T - copy_length, T), "cols": (0, copy_length), "label": "recall ← symbols"}
    chart(viz.connectivity_map(matrix, delay=0, boxes=[box], title=f"Connectivity ‖∂y_t/∂x_s‖ of {NAMES[cell]}, "
                               f"copy-memory sequence (seed {sequence_seed}, log scale)"), key="mem_connectivity")
    st.caption("Each row is an output step t, each column an input step s; colour: how strongly output t depends on "
               "input s (log scale). Every cell here is causal (right of the line is exactly 0); to copy, the recall "
               "rows must reach the symbol columns (dotted box), which a forgetting cell shows as decades of decay.")


def gradient_section(records: list[dict], task, is_copy: bool) -> None:
    """||dL/ds_t|| over t of every shown cell, final or at initialisation, with how to read it."""
    left, right = st.columns([1, 3])
    which = bound(left.segmented_control, "Gradients measured", ["final", "initial", "both"], default="final",
                  required=True, wrap=True, key="mem_grad",
                  help="on a fixed validation batch, after training or at initialisation")
    right.markdown(
        ("**Reading it.** The loss sits on the recall steps (red band). To copy, the gradient must reach back across "
         "the gap to the symbol steps (green band). " if is_copy else
         "**Reading it.** The loss sits on the last step (red band). To classify, the gradient must reach back to "
         "the first pixels (green band). ")
        + "An orthogonal W_hh (expRNN, asRNN near linear) keeps the norm flat; a saturating cell loses decades on "
        "the way back (vanishing); a curve rising to the left explodes."
    )
    chart(viz.gradient_norms_over_time(records, task_phases(task), which), key="mem_grads")
    st.caption("The table's last column: ‖∂L/∂s‖ at the first step over ‖∂L/∂s‖ at the "
               + ("marker" if is_copy else "last pixel (where the class is read out)") + ", after training.")


def saturation_section(asrnn: dict | None) -> None:
    """asRNN's saturation levels: their histogram at one training step, and their trajectories."""
    if asrnn is None:
        st.caption("Add asRNN to the cells to see its saturation levels.")
        return
    snaps = [s for s in asrnn["snapshots"] if s.get("saturation")]
    snap_steps = [s["step"] for s in snaps]
    step = st.select_slider("Training step", snap_steps, value=snap_steps[-1], key="mem_snap",
                            help="the snapshot shown in the histogram") if len(snap_steps) > 1 else snap_steps[0]
    sat = st.columns(2)
    with sat[0]:
        chart(viz.saturation_histogram(snaps, step), key="mem_sat_hist")
    with sat[1]:
        chart(viz.saturation_trajectory(snaps, step), key="mem_sat_traj")
    if all(s["saturation"] == snaps[0]["saturation"] for s in snaps):
        st.info("The levels never moved: this asRNN started with s = 0 exactly (the reference code's copy-task "
                "setting), where d|s|/ds = 0, so every level stays at eps and the cell remains a linear "
                "orthogonal RNN. Train one below with s ~ U[0, b], b > 0, to watch them move.",
                icon=":material/info:")
    st.caption("Each unit's level |s| + eps sets how much its tanh saturates: h = W_f⁻¹ tanh(W_f z) is nearly "
               "linear (an orthogonal RNN) for small levels and a saturating tanh RNN for large ones. asRNN starts "
               "at eps (linear) and learns where it needs saturation.")


def orthogonality_section(ortho: list[dict]) -> None:
    """||W_hh^T W_hh - I||_F over training, of the cells with an orthogonal W_hh."""
    if not ortho:
        st.caption("Add asRNN or expRNN: only they have an orthogonal W_hh.")
        return
    chart(viz.orthogonality_errors(ortho), key="mem_ortho")
    st.caption("||W_hhᵀ W_hh − I||_F, in float64, of the recurrent matrix built from its skew-symmetric "
               "parameter. It stays at float32 round-off: the parametrisation keeps W_hh orthogonal however "
               "far training moves it. LSTM, SRU and LRN have no orthogonal matrix to measure.")


st.title("Memory & stability")
controls = st.columns([2.2, 1.2, 1.6])
task_choice = bound(
    controls[0].segmented_control, "Task", TASK_CHOICES, default="copy memory", required=True, wrap=True,
    key="mem_task",
    help="copy memory: recall symbols after a gap of L blanks; digits: classify an 8×8 "
    "handwritten digit read one pixel per step (sMNIST / pMNIST in miniature)")
is_copy = task_choice == "copy memory"
gap = bound(controls[1].select_slider, "Gap L", GAPS, value=PRETRAINED_GAP, key="mem_gap", disabled=not is_copy,
            help=f"copy memory only; pretrained models exist for L = {PRETRAINED_GAP}, train your own for other L")
cells = bound(st.multiselect, "Cells", list(MEMORY_MODELS), default=list(MEMORY_MODELS), key="mem_cells",
              format_func=NAMES.get, help="; ".join(f"{NAMES[c]}: {CELL_TEXT[c]}" for c in MEMORY_MODELS))
source_choice = bound(
    controls[2].segmented_control, "Show", ["newest runs", "pretrained"], default="newest runs", required=True,
    wrap=True, key="mem_source",
    help="newest runs: your newest run of each cell on this task, else the pretrained model")
if is_copy:
    task = memory_task(copy_length=K, gap=gap)
    task_text = f"copy memory, K={K}, L={gap}"
    st.markdown(
        f"**Copy memory**: read {K} symbols (from 8), then a gap of **L** blanks, then a marker; the network must "
        f"output blanks until the marker and then recall the {K} symbols in order. Always answering blank and then "
        f"guessing scores the **baseline** cross-entropy K ln 8 / (L + 2K); a cell that remembers goes far below "
        "it. The gradient of the loss with respect to the recurrent state at step t shows whether the error at the "
        "recall steps reaches the steps that stored the symbols: vanishing gradients fall by decades to the left.")
else:
    task = memory_task("digits", permuted=task_choice == "permuted digits")
    task_text = task_choice
    st.markdown(
        f"**{task_text.capitalize()}**: a real handwritten digit (scikit-learn's 8×8 images) is read one pixel per "
        "step, 64 steps, " + ("in a fixed random order, which scatters each stroke over the whole sequence "
                              "(pMNIST in miniature); " if task.permuted else "row by row (sMNIST in miniature); ")
        + "the class is read out at the last step. A uniform guess scores the **baseline** cross-entropy ln 10; the "
        "gradient over t shows whether the loss at the last step still reaches the first pixels.")
baseline = float(task.baseline_loss)

# ---------------------------------------------------------------- what to show: your newest run, else pretrained
runs = latest_runs(task) if source_choice == "newest runs" else {}
records, rows, missing = [], [], []
for cell in cells:
    info = runs.get(cell)
    card = card_at(info.checkpoint.with_suffix(".json")) if info is not None else None
    source = f"your run {info.id} ({info.status})" if card is not None else ""
    if card is None:
        card = pretrained_card(cell, task)
        source = "pretrained" if card is not None else ""
    if card is None:
        missing.append(cell)
        continue
    memory = card["memory"]
    records.append(record(cell, memory, source))
    steps = memory["history"]["step"][-1] if memory["history"]["step"] else 0
    rows.append({"cell": NAMES[cell], "shown": source, "steps": steps, "hidden": memory.get("hidden_size"),
                 "validation CE": f"{memory['final_loss']:.3g}", "× baseline": f"{memory['loss_ratio']:.3g}",
                 **({} if is_copy else {"validation accuracy": f"{memory.get('final_accuracy', float('nan')):.1%}"}),
                 "train time": format_seconds(memory.get("elapsed")),
                 f"‖∂L/∂s‖ {'first symbol / marker' if is_copy else 'first / last pixel'}": reach_text(memory, task)})

if missing:
    names = ", ".join(NAMES[c] for c in missing)
    unshipped = [c for c in missing if c not in PRETRAIN_CELLS]
    if is_copy and gap != PRETRAINED_GAP:
        st.info(f"No model yet for **{names}** at L = {gap}: pretrained models exist only for L = {PRETRAINED_GAP}. "
                "Train them below (one background run per cell).", icon=":material/model_training:")
    elif unshipped == missing:
        st.info(f"No model yet for **{names}** on {task_text}: there is no pretrained model for "
                f"{'it' if len(missing) == 1 else 'them'}. Train {'it' if len(missing) == 1 else 'them'} below.",
                icon=":material/model_training:")
    else:
        st.info(f"No model yet for **{names}** on {task_text}. Pretrained checkpoints "
                f"(`pretrained/{pretrained_name('<cell>', task)}`) are missing: run "
                "`python -m drnn_demo pretrain --group memory`, or train the cells below.",
                icon=":material/hourglass_empty:")

if not cells:
    st.warning("Pick at least one cell.")
elif records:
    chart(viz.memory_loss_curves(records, baseline, title=f"Cross-entropy vs iteration ({task_text})"),
          key="mem_loss")
    st.caption(f"Lines: training cross-entropy of every step (downsampled); open circles: validation cross-entropy. "
               f"Dashed: the baseline {baseline:.4f}. Below the baseline a cell has started to remember.")
    table(rows)

    view, tab = view_tabs(list(VIEWS), key="mem_view")  # only the open tab is built
    with tab:
        if view == "Gradients":
            gradient_section(records, task, is_copy)
        elif view == "Connectivity":
            if is_copy:
                connectivity_section({r["cell"]: checkpoint_path(r, runs, task) for r in records},
                                     task.sample(1, seed())[0][0].numpy(), K, seed())
            else:
                st.caption("Connectivity maps are drawn for copy memory: a digit is read out at the last step only.")
        elif view == "asRNN saturation":
            saturation_section(next((r for r in records if r["cell"] == "asrnn"), None))
        else:
            orthogonality_section([r for r in records if r["cell"] in ("asrnn", "exprnn")])

# ---------------------------------------------------------------- train side by side in background runs
train_side_by_side(task, task_text, cells, baseline, {"mem_task": task_choice, "mem_gap": str(gap)},
                   [pretrained_card(c, task) for c in MEMORY_MODELS])
