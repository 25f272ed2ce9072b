"""Training runs: every background run with its progress, curves and actions."""

import hashlib
import json
from pathlib import Path

import streamlit as st

from drnn_demo import viz
from drnn_demo.checkpoints import MAX_UPLOAD_BYTES, CheckpointError, load_checkpoint_zip, unpack_checkpoint_zip
from drnn_demo.retest import retest_plan
from drnn_demo.runs_compare import compare, metric_names, overlay_series, run_names
from views.ui import bound, chart, format_seconds, job_manager, run_outcome, run_progress

BADGE = {"queued": "gray", "running": "blue", "finished": "green", "early_stopped": "green", "diverged": "red",
         "cancelled": "orange", "failed": "red", "interrupted": "orange", "corrupt": "red"}

PAGES = {f"views/{p.name}" for p in Path(__file__).parent.glob("*.py")}
jobs = job_manager()
st.title("Training runs")
st.caption(f"Runs train in their own processes (at most {jobs.max_concurrent} at once; the rest wait in a queue) "
           f"and are kept in `{jobs.root}`, so they survive reloads and server restarts.")


def progress_text(info) -> str:
    """"step 40/100 · elapsed 0:12 · ETA 0:18" while running; how far it got once it ended."""
    steps = f"step {info.step:,}/{info.total_steps:,}" if info.total_steps else (
        f"step {info.step:,}" if info.step else "")
    if info.active:
        eta = format_seconds(info.eta) if info.eta is not None else "estimating…"
        return " · ".join((steps or "starting", f"elapsed {format_seconds(info.elapsed)}", f"ETA {eta}"))
    ended = "finished" if info.status in ("finished", "early_stopped") else info.status.replace("_", " ")
    return " · ".join(p for p in (ended, steps, f"took {format_seconds(info.elapsed)}") if p)


def delete_button(info, column) -> None:
    """Delete, after a second click on "Yes, delete" (a run's checkpoint and log go with it)."""
    asking = f"confirm_delete_{info.id}"
    if not st.session_state.get(asking):
        if column.button("Delete", key=f"delete_{info.id}", icon=":material/delete:"):
            st.session_state[asking] = True
            st.rerun()
        return
    column.caption("Delete this run, its checkpoint and its log?")
    yes, no = column.columns(2)
    if yes.button("Yes, delete", key=f"delete_yes_{info.id}", type="primary"):
        del st.session_state[asking]
        jobs.delete(info.id)
        st.rerun()
    if no.button("Keep", key=f"delete_no_{info.id}"):
        del st.session_state[asking]
        st.rerun()


def run_card(info) -> None:
    with st.container(border=True):
        head = st.columns([3, 1])
        head[0].markdown(f"**{info.label}**  \n`{info.id}`")
        with head[1]:
            st.badge(info.status.replace("_", " "), color=BADGE.get(info.status, "gray"))
        if info.status == "corrupt":
            st.error(f"This run's files are damaged and it cannot be shown: {info.message}", icon=":material/error:")
            delete_button(info, st.columns(4)[3])
            return
        if info.status == "queued":
            st.progress(0.0, text=f"queued: position {info.queue_position} in line")
        else:
            st.progress(min(max(info.fraction, 0.0), 1.0), text=progress_text(info))
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
        if not info.active and info.path is not None:
            actions[0].download_button("Export run", data=lambda path=info.path: run_zip(path),
                                       file_name=f"{info.id}-run.zip", mime="application/zip", key=f"export_{info.id}",
                                       icon=":material/folder_zip:", on_click="ignore",
                                       help="A zip of its config, final metrics, metrics history (CSV) and TensorBoard "
                                            "event files: unzip, then `tensorboard --logdir .`")
        if info.checkpoint is not None:
            actions[1].download_button("Download checkpoint", data=jobs.checkpoint_zip(info.id),
                                       file_name=f"{info.id}.zip", mime="application/zip", key=f"dl_{info.id}",
                                       icon=":material/download:", on_click="ignore")
            if info.page in PAGES:  # a page of this app (run.json may have been edited by hand)
                actions[2].page_link(info.page, label="Open in its page", icon=":material/open_in_new:",
                                     query_params={**info.params, "run": info.id})
        delete_button(info, actions[3])


def run_zip(path: Path) -> bytes:
    from drnn_demo.export import run_zip as zip_of_run  # imports torch's TensorBoard writer: only when clicked

    return zip_of_run(path)


def compare_runs(runs) -> None:
    """Pick runs (kept in the URL as ``?compare=``): their curves overlaid and a table of the settings that differ,
    with their final metrics."""
    if len(runs) < 2:
        return
    by_id = {r.id: r for r in runs}
    names = dict(zip(by_id, run_names(runs), strict=True))
    st.subheader("Compare runs")
    picked = bound(st.multiselect, "Runs to compare", list(by_id), key="compare", format_func=names.get,
                   placeholder="pick two or more runs")
    if len(picked) < 2:
        st.caption("Pick two or more runs to overlay their curves and list the settings in which they differ.")
        return
    chosen = [by_id[r] for r in picked]
    metrics = metric_names([r.history for r in chosen])
    pick = st.columns([2, 1, 3])
    metric = bound(pick[0].selectbox, "Metric", metrics, key="compare_metric") if metrics else None
    x = bound(pick[1].segmented_control, "Against", ["step", "time"], default="step", required=True,
              wrap=True, key="compare_x", help="training step, or seconds since the run started")
    chart(viz.runs_overlay(overlay_series(chosen, metric, "step" if x == "step" else "elapsed"), metric,
                           "step" if x == "step" else "elapsed (s)"), key="compare_curves", name="compared_runs")
    comparison = compare(chosen)
    if not comparison.settings:
        st.caption("These runs have the same settings.")
    st.dataframe(comparison.table(), hide_index=True)
    st.divider()


jobs.poll()
was_active = jobs.active()


@st.fragment(run_every=1.0 if was_active else None)
def run_list() -> None:
    jobs.poll()
    runs = jobs.runs()
    if not runs:
        st.info("No runs yet. Start one from the **Delayed outputs** page with “Train this configuration”.")
    compare_runs([r for r in runs if r.status != "corrupt"])
    for info in runs:
        run_card(info)
    if was_active and not jobs.active():
        st.rerun()  # the last run ended: redraw once more and stop polling


run_list()


@st.cache_data(max_entries=4, show_spinner="Checking the checkpoint ...")
def check_upload(data: bytes) -> dict:
    """Validate an uploaded checkpoint zip: ``{"card", "plan_error"}`` or ``{"error"}``. Cheap and
    bounded whatever the card says; the re-test itself runs as a background run."""
    try:
        _, card = load_checkpoint_zip(data)
    except CheckpointError as err:
        return {"error": str(err)}
    try:
        retest_plan(card)
        plan_error = None
    except ValueError as err:
        plan_error = str(err)
    return {"card": card, "plan_error": plan_error}


def submit_retest(data: bytes, name: str) -> str:
    """Queue the re-test of a checked upload; its two files go into the run's directory."""
    weights, card, _, _ = unpack_checkpoint_zip(data)
    return jobs.submit("retest", {}, label=f"re-test of {name}", params={"upload": name},
                       files={"model.safetensors": weights, "model.json": json.dumps(card).encode()})


def retest_table(info) -> None:
    """The card's test metrics beside the ones the re-test measured."""
    rows = [{"metric": key.removeprefix("test_"), "recorded in the card": info.metrics.get(f"recorded_{key}"),
             "measured now": value} for key, value in info.metrics.items() if key.startswith("test_")]
    st.dataframe(rows, hide_index=True)


st.subheader("Check a downloaded checkpoint")
upload = st.file_uploader(
    "Checkpoint zip (from “Download checkpoint”)", type=["zip"], key="upload",
    max_upload_size=MAX_UPLOAD_BYTES // 2**20,
    help=f"checked before use: at most {MAX_UPLOAD_BYTES // 2**20} MB, one .safetensors file and its .json card, a "
         "known model within the size limits, tensor names and shapes, the weights' SHA-256, finite values; nothing "
         "is unpickled. A valid one is re-tested on its run's test set in the background.")
if upload is not None:
    data = upload.getvalue()
    checked = check_upload(data)
    if "error" in checked:
        st.error(f"{upload.name}: {checked['error']}", icon=":material/block:")
    else:
        card = checked["card"]
        model = card["model"]
        st.success(f"{upload.name}: a valid checkpoint of a **{model['core']}** model "
                   f"({', '.join(f'{k}={v}' for k, v in model.get('core_args', {}).items())}) for task "
                   f"**{card.get('task')}**.", icon=":material/verified:")
        if checked["plan_error"]:
            st.caption(f"Not re-tested: {checked['plan_error']}.")
        else:
            retests = st.session_state.setdefault("retests", {})
            digest = hashlib.sha256(data).hexdigest()
            try:
                retest_info = jobs.get(retests[digest])
            except KeyError:  # not re-tested in this session yet, or its run was deleted
                retests[digest] = submit_retest(data, upload.name)
                retest_info = jobs.get(retests[digest])

            @st.fragment(run_every=1.0 if retest_info.active else None)
            def retest_status(run_id: str, was_active: bool) -> None:
                info = jobs.get(run_id)
                if info.active:
                    run_progress(info, show="percent")
                elif info.status == "finished":
                    retest_table(info)
                else:
                    run_outcome(info)
                if was_active and not info.active:
                    st.rerun()

            retest_status(retest_info.id, retest_info.active)
