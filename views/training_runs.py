"""Training runs: every background run with its progress, curves and actions."""

import streamlit as st

from drnn_demo import viz
from drnn_demo.checkpoints import MAX_UPLOAD_BYTES, CheckpointError, load_checkpoint_zip
from drnn_demo.training import retest
from views.ui import chart, format_seconds, job_manager

BADGE = {"queued": "gray", "running": "blue", "finished": "green", "early_stopped": "green", "diverged": "red",
         "cancelled": "orange", "failed": "red", "interrupted": "orange"}

jobs = job_manager()
st.title("Training runs")
st.caption(f"Runs train in their own processes (at most {jobs.max_concurrent} at once; the rest wait in a queue) "
           f"and are kept in `{jobs.root}`, so they survive reloads and server restarts.")


def run_card(info) -> None:
    with st.container(border=True):
        head = st.columns([3, 1])
        head[0].markdown(f"**{info.label}**  \n`{info.id}`")
        with head[1]:
            st.badge(info.status.replace("_", " "), color=BADGE.get(info.status, "gray"))
        if info.status == "queued":
            st.progress(0.0, text=f"queued: position {info.queue_position} in line")
        else:
            st.progress(min(max(info.fraction, 0.0), 1.0),
                        text=f"step {info.step}/{info.total_steps or '?'} · elapsed {format_seconds(info.elapsed)}"
                             f" · ETA {format_seconds(info.eta) if info.active else 'done'}")
        if info.message:
            st.caption(info.message)
        if info.metrics:
            st.caption(" · ".join(f"{k} = {v:.4g}" for k, v in info.metrics.items() if isinstance(v, int | float)))
        if info.history:
            chart(viz.training_curves(info.history), key=f"curves_{info.id}")
        actions = st.columns(4)
        if info.active and actions[0].button("Cancel", key=f"cancel_{info.id}", icon=":material/stop:"):
            jobs.cancel(info.id)
            st.rerun()
        if info.checkpoint is not None:
            actions[1].download_button("Download checkpoint", data=jobs.checkpoint_zip(info.id),
                                       file_name=f"{info.id}.zip", mime="application/zip", key=f"dl_{info.id}",
                                       icon=":material/download:", on_click="ignore")
            if info.page:
                actions[2].page_link(info.page, label="Open in its page", icon=":material/open_in_new:",
                                     query_params={**info.params, "run": info.id})
        if actions[3].button("Delete", key=f"delete_{info.id}", icon=":material/delete:"):
            jobs.delete(info.id)
            st.rerun()


jobs.poll()
was_active = jobs.active()


@st.fragment(run_every=1.0 if was_active else None)
def run_list() -> None:
    jobs.poll()
    runs = jobs.runs()
    if not runs:
        st.info("No runs yet. Start one from the **Delayed outputs** page with “Train this configuration”.")
    for info in runs:
        run_card(info)
    if was_active and not jobs.active():
        st.rerun()  # the last run ended: redraw once more and stop polling


run_list()


@st.cache_data(max_entries=4, show_spinner="Checking and re-testing the checkpoint ...")
def check_upload(data: bytes) -> dict:
    """Validate an uploaded checkpoint zip and re-measure it: {"card", "retest"} or {"error"}."""
    try:
        model, card = load_checkpoint_zip(data)
    except CheckpointError as err:
        return {"error": str(err)}
    try:
        measured = retest(model, card)
    except ValueError as err:
        measured = str(err)
    return {"card": card, "retest": measured}


st.subheader("Check a downloaded checkpoint")
upload = st.file_uploader(
    "Checkpoint zip (from “Download checkpoint”)", type=["zip"], key="upload",
    max_upload_size=MAX_UPLOAD_BYTES // 2**20,
    help=f"checked before use: at most {MAX_UPLOAD_BYTES // 2**20} MB, one .safetensors file and its .json card, the "
         "weights' SHA-256, a known model, tensor names and shapes, finite values; nothing is unpickled")
if upload is not None:
    checked = check_upload(upload.getvalue())
    if "error" in checked:
        st.error(f"{upload.name}: {checked['error']}", icon=":material/block:")
    else:
        card, measured = checked["card"], checked["retest"]
        model = card["model"]
        st.success(f"{upload.name}: a valid checkpoint of a **{model['core']}** model "
                   f"({', '.join(f'{k}={v}' for k, v in model.get('core_args', {}).items())}) for task "
                   f"**{card.get('task')}**.", icon=":material/verified:")
        recorded = (card.get("metrics") or {}).get("test") or {}
        if isinstance(measured, dict):
            st.dataframe([{"metric": k, "recorded in the card": recorded.get(k), "measured now": v}
                          for k, v in measured.items()], hide_index=True)
        else:
            st.caption(f"Not re-tested: {measured}.")

