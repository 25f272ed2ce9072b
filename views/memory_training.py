"""Memory & stability's "Train side by side": one background run per selected cell, their live curves and outcomes."""

import streamlit as st

from drnn_demo import viz
from drnn_demo.memory_analysis import MEMORY_SPECS
from drnn_demo.recipes.memory import PRETRAIN_STEPS
from views.ui import chart, device, follow_runs, format_seconds, job_manager, seed

NAMES = viz.MEMORY_CELL_NAMES


def live_curves(infos: list, baseline: float) -> None:
    """The runs' training cross-entropy so far, one curve per cell."""
    live = [{"cell": info.config.get("cell", ""), "label": NAMES.get(info.config.get("cell"), info.label),
             "history": {"step": [p["step"] for p in info.history], "loss": [p.get("loss") for p in info.history]}}
            for info in infos if info.history]
    if live:
        chart(viz.memory_loss_curves(live, baseline, title="Live: training cross-entropy"), key="mem_live")


def train_side_by_side(task, task_text: str, cells: list[str], baseline: float, params: dict,
                       pretrained_cards: list[dict]) -> None:
    """The section: settings, the Train button (one "memory" run per cell), live progress, then the outcomes.
    ``params``: the page's query parameters a run links back to; ``pretrained_cards``: the shipped models'
    cards on this task (their time per step sets the scale)."""
    jobs = job_manager()
    st.subheader("Train side by side")
    st.caption(f"One background run per selected cell on {task_text} (device: {device()}, seed {seed()}); "
               f"runs queue and train one after another. Each cell uses its paper's optimiser. The newest run of each "
               "cell replaces the pretrained curve above when it ends.")
    shipped = [card for card in pretrained_cards if card is not None and card["memory"]["history"]["step"]]
    if shipped:
        times = [c["memory"]["elapsed"] / c["memory"]["history"]["step"][-1] for c in shipped]
        st.caption(f"For scale: the pretrained models took {min(times) * 1000:.0f}–{max(times) * 1000:.0f} ms per step "
                   f"(hidden 128, batch 128, one CPU thread), i.e. about {format_seconds(min(times) * PRETRAIN_STEPS)}–"
                   f"{format_seconds(max(times) * PRETRAIN_STEPS)} per cell for {PRETRAIN_STEPS} steps.")
    train_cols = st.columns([1, 1, 1, 1, 2])
    steps = train_cols[0].number_input("Steps", 5, 20_000, PRETRAIN_STEPS, step=100, key="mem_steps")
    hidden = train_cols[1].select_slider("Hidden size", [16, 32, 64, 128], value=128, key="mem_hidden")
    batch = train_cols[2].select_slider("Batch size", [16, 32, 64, 128], value=128, key="mem_batch")
    init_b = train_cols[3].select_slider(
        "asRNN init: s ~ U[0, b]", [0.0, 0.01, 0.1, 1.0, 3.0], value=0.1, key="mem_asrnn_b",
        disabled="asrnn" not in cells,
        help="b = 0 is the reference code's setting: s stays at 0 (d|s|/ds = 0 there), the levels never move")
    if train_cols[4].button(f"Train {len(cells)} cell{'s' if len(cells) != 1 else ''}", type="primary",
                            icon=":material/play_arrow:", disabled=not cells):
        submitted = []
        for cell in cells:
            config = {"cell": cell, "steps": int(steps), "task": task.name, "task_args": dict(task.args),
                      "hidden_size": int(hidden), "batch_size": int(batch), "seed": seed(),
                      "snapshot_every": max(1, int(steps) // 20), "device": device()}
            if cell == "asrnn":
                config["core_args"] = {**MEMORY_SPECS["asrnn"].core_args, "a": 0.0, "b": float(init_b)}
            submitted.append(jobs.submit("memory", config, label=f"{task_text}: {NAMES[cell]} h={hidden}",
                                         page="views/memory.py", params=params))
        st.session_state.memory_runs = submitted
        st.session_state.pop("memory_done", None)



    if follow_runs("memory_runs", "memory_done", live=lambda infos: live_curves(infos, baseline)):
        st.page_link("views/training_runs.py", label="All training runs", icon=":material/directions_run:")
