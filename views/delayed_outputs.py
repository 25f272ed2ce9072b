"""Delayed outputs: what a delay buys on reversal and sine filtering, from pretrained models or your own runs."""

from pathlib import Path

import numpy as np
import streamlit as st

from drnn_demo import viz
from drnn_demo.analysis import connectivity
from drnn_demo.checkpoints import PRETRAINED_DIR, load_checkpoint
from drnn_demo.pretrained import BUDGET, REVERSAL, SINE, catalog, describe, evaluate_on_test_set, nearest
from drnn_demo.tasks import build_task
from drnn_demo.training import TrainConfig
from views.ui import bound, chart, device, follow_runs, job_manager, seed

TASK_ARGS = {"reversal": REVERSAL, "sine": SINE}
TASK_TEXT = {
    "reversal": "**Reversal**: read 20 random tokens (4 symbols), emit them in reverse order, one per step. Output t "
                "must be x[19−t]; a causal model has read it only when 19−t ≤ t+d, so exact reversal needs d ≥ 19.",
    "sine": "**Sine filtering**: y_t = sin(0.1 · Σ_j h_j x_{t+j}) with 15 past/present taps and 5 future taps of a "
            "fixed random filter. A model with delay d ≥ 5 has read every tap it needs.",
}
MAX_DELAY = {"reversal": 19, "sine": 10}
DEFAULT_DELAY = {"reversal": 9, "sine": 5}  # both have a pretrained model
jobs = job_manager()


def run_info(run_id: str):
    """The run, or None if there is no such run (deleted, or a stale link)."""
    try:
        return jobs.get(run_id)
    except KeyError:
        return None


@st.cache_resource(max_entries=32, show_spinner=False)
def load(path: str, mtime: float):
    """A checkpoint, cached by path and modification time."""
    return load_checkpoint(path)


@st.cache_data(max_entries=64, show_spinner="Evaluating on the test set…")
def evaluate(path: str, mtime: float):
    model, card = load(path, mtime)
    return evaluate_on_test_set(model, card)


@st.cache_data(max_entries=8, show_spinner=False)
def cards_of(task: str, directory_mtime: int) -> list[dict]:
    """The pretrained model cards of ``task``, read again when a file is added to or replaced in pretrained/."""
    return catalog(task)


def view_of(path: str):
    mtime = Path(path).stat().st_mtime
    return evaluate(path, mtime), load(path, mtime)[1]


# ---------------------------------------------------------------- connectivity ||dy_t/dx_s|| of the model in view


@st.cache_data(max_entries=64, show_spinner="Computing ‖∂y_t/∂x_s‖…")
def connectivity_of(path: str, mtime: float, x: np.ndarray) -> np.ndarray:
    """The connectivity map (T, T) of a checkpoint on one input sequence ``x`` (T, D), cached by path, mtime and x."""
    model, _ = load(path, mtime)
    return connectivity(model, x).numpy()


def fed_input(inputs: np.ndarray, kind: str, size: int) -> np.ndarray:
    """The (T, D) float input a shown test sequence was fed as: one-hot tokens, or one value per step."""
    if kind == "classification":
        return np.eye(size, dtype=np.float32)[np.asarray(inputs, dtype=int)]
    return np.asarray(inputs, dtype=np.float32)[:, None]


@st.fragment
def connectivity_section(shown: str, name: str, delay: int, x: np.ndarray, example: int, baselines: dict) -> None:
    """The heatmap of the model in view on its current test sequence, or of a pretrained baseline on the same one."""
    st.subheader("Connectivity: which inputs each output reads")
    options = ["model shown", *baselines]
    which = bound(st.segmented_control, "Map of", options, default="model shown", required=True, key="conn_model",
                  help="the model shown above, or a pretrained baseline on the same test sequence")
    if which == "model shown":
        path, line, label = shown, delay, f"{name}, delay d = {delay}"
    else:
        path, line = baselines[which], (0 if which == "stacked" else None)
        label = f"{Path(path).stem} ({which} baseline)"
    matrix = connectivity_of(path, Path(path).stat().st_mtime, x)
    chart(viz.connectivity_map(matrix, delay=line, title=f"Connectivity ‖∂y_t/∂x_s‖ of {label}, test sequence "
                               f"{example} (log scale)"), key="do_connectivity")
    st.caption("Each row is an output step t, each column an input step s; colour: how strongly output t depends on "
               "input s (log scale). A delayed RNN with delay d reads nothing beyond s = t + d (right of the line is "
               "exactly 0); a bidirectional network reads everything.")


@st.fragment
def sequence_view(shown: str, name: str, shown_delay: int, input_size: int, baselines: dict) -> None:
    """One test sequence of the model in view and its connectivity: the view-only sliders (both in the
    URL) rerun only this part of the page."""
    view, _ = view_of(shown)
    pick = st.columns(2)
    example = bound(pick[0].slider, "Test sequence", 0, len(view.targets) - 1, 0, key="example")
    T = view.targets.shape[1]
    position = bound(pick[1].slider, "Output position t", 0, T - 1, T // 2, key="position")
    chart(viz.sequence_panels(view.inputs[example], view.targets[example], view.predictions[example], shown_delay,
                              position, view.kind), key="do_sequence")
    connectivity_section(shown, name, shown_delay, fed_input(view.inputs[example], view.kind, input_size), example,
                         baselines)


st.title("Delayed outputs")
controls = st.columns([1.2, 1, 2, 1.2])
task_name = bound(controls[0].segmented_control, "Task", ["reversal", "sine"], default="reversal", required=True,
                  wrap=True, key="task")
cell = bound(controls[1].segmented_control, "Cell", ["lstm", "gru", "rnn"], default="lstm", required=True, wrap=True,
             key="cell")
delay = bound(controls[2].slider, "Delay d", 0, MAX_DELAY[task_name], DEFAULT_DELAY[task_name],
              key=f"delay_{task_name}", help="output t has read x[0..t+d]")
hidden = bound(controls[3].select_slider, "Hidden size", [16, 32, 64, 128], value=64, key="hidden")
st.markdown(TASK_TEXT[task_name])

task = build_task(task_name, **TASK_ARGS[task_name])
metric = task.metric
cards = cards_of(task_name, PRETRAINED_DIR.stat().st_mtime_ns)
run_id = st.query_params.get("run")
shown, note = None, ""
if run_id:
    info = run_info(run_id)
    if info is not None and info.checkpoint is not None:
        shown, note = str(info.checkpoint), f"your run {info.label} ({info.status})"
    else:
        st.warning(f"Run {run_id} has no checkpoint (yet); showing a pretrained model instead.")
if shown is None:
    best, note = nearest(cards, task_name, cell, delay, hidden)
    shown = best["path"] if best else None

if shown is None:
    st.error("No pretrained models found in pretrained/. Run `make pretrain` (or train one below).")
else:
    view, card = view_of(shown)
    shown_args = card["train"]["model"]["core_args"]
    shown_delay = shown_args.get("delay", 0)
    st.info(f"Showing **{card.get('name') or Path(shown).stem}**: {note}. Test {metric}: "
            f"**{view.metrics[metric]:.4g}**" + (f" (best possible at d={shown_delay}: "
            f"{task.best_possible(shown_delay):.4g})" if task.best_possible(shown_delay) is not None else ""))
    baseline_paths = {c["core"]: c["path"] for c in map(describe, cards) if c["core"] in ("bidirectional", "stacked")}
    sequence_view(shown, card.get("name") or Path(shown).stem, shown_delay, task.input_size, baseline_paths)

# ---------------------------------------------------------------- metric vs delay, all models of this task
ladder = [describe(c) for c in cards]
points = [{"delay": c["delay"], "value": c["test"][metric], "label": c["name"]}
          for c in ladder if c["core"] == "delayed" and c["cell"] == "lstm" and c["hidden"] == 64]
baselines = [{"name": f"{c['core']} LSTM ({c['layers']}×{c['hidden']})", "value": c["test"][metric]}
             for c in ladder if c["core"] in ("bidirectional", "stacked")]
delays = list(range(MAX_DELAY[task_name] + 1))
ceiling = (delays, [task.best_possible(d) for d in delays])
current = None
if shown is not None:
    current = {"delay": shown_delay, "value": view.metrics[metric]}
if points:
    chart(viz.metric_vs_delay(points, metric, baselines, ceiling, current, lower_is_better=not task.higher_is_better),
          key="do_vs_delay")
    st.caption("Pretrained delayed LSTMs (hidden 64) at each delay; dotted lines: the baselines; dashed: the best "
               "any model with that delay can do (reversal: argmax bound; sine: the irreducible MSE). "
               "The ringed point is the model shown above.")
    ladder_paths = sorted((c for c in ladder if c["core"] == "delayed" and c["cell"] == "lstm" and c["hidden"] == 64),
                          key=lambda c: c["delay"])
    matrix = np.stack([view_of(c["path"])[0].per_position for c in ladder_paths])
    chart(viz.position_heatmap(matrix, [c["delay"] for c in ladder_paths], metric), key="do_positions")

# ---------------------------------------------------------------- train this configuration
st.subheader("Train this configuration")
article = "An" if cell in ("lstm", "rnn") else "A"  # "an L-S-T-M", "an R-N-N", "a G-R-U"
st.caption(f"{article} {cell.upper()} with delay {delay} and hidden size {hidden} on {task_name}, in the background "
           f"(device: {device()}, seed {seed()}). Watch it here or on the Training runs page.")
train_cols = st.columns([1, 1, 2])
steps = train_cols[0].number_input("Steps", 10, 20_000, BUDGET[task_name]["steps"], step=100, key="steps")
if train_cols[1].button("Train this configuration", type="primary", icon=":material/play_arrow:"):
    config = TrainConfig(task=task_name, task_args=dict(TASK_ARGS[task_name]),
                         model={"core": "delayed", "core_args": {"hidden_size": hidden, "delay": delay, "cell": cell}},
                         steps=int(steps), eval_every=max(10, int(steps) // 20), patience=0, seed=seed(),
                         device=device(), lr=BUDGET[task_name]["lr"])
    st.session_state.last_run = jobs.submit(
        "train", config.to_dict(), label=f"{task_name} {cell} d={delay} h={hidden}", page="views/delayed_outputs.py",
        params={"task": task_name, "cell": cell, f"delay_{task_name}": str(delay), "hidden": str(hidden)})



for finished in follow_runs("last_run", "finished_run"):
    links = st.columns(2)
    if finished.checkpoint is not None:
        links[0].page_link("views/delayed_outputs.py", label="Show this run here", icon=":material/visibility:",
                           query_params={**finished.params, "run": finished.id})
    links[1].page_link("views/training_runs.py", label="All training runs", icon=":material/directions_run:")
