"""Paper experiments: the delayed-RNN paper's experiments as measured here, and its claims beside them."""

import re

import pandas as pd
import streamlit as st

from drnn_demo import viz
from drnn_demo.experiments import EXPERIMENTS, experiment
from drnn_demo.reproduce import claims, format_value, load_results, results_path, series
from views.ui import bound, chart, format_seconds, job_manager, run_outcome, run_progress, seed

BUDGET = "small"
VERDICT_COLORS = {"agrees": "green", "partly": "orange", "disagrees": "red", "not measured yet": "gray"}
jobs = job_manager()


@st.cache_data(max_entries=64, show_spinner=False)
def stored(name: str, mtime: float) -> tuple[list[dict], str]:
    """The stored rows of an experiment (re-read when the file changes) and an error text, if any."""
    try:
        return load_results(name, BUDGET), ""
    except ValueError as e:
        return [], str(e)


def rows_of(name: str) -> tuple[list[dict], str]:
    path = results_path(name, BUDGET)
    return stored(name, path.stat().st_mtime if path.exists() else 0.0)


st.title("Paper experiments")
st.markdown(
    "Turek et al. (ICML 2020) compare a **delayed RNN** (one layer, output delayed by d steps) with bidirectional "
    "and stacked networks. Here are their experiments at a small budget that trains on a CPU in minutes "
    f"(`python -m drnn_demo reproduce EXPERIMENT --budget {BUDGET}` regenerates them; `--budget full` uses the "
    "paper's sizes, for a GPU), and the abstract's claims beside what these measurements show."
)

results = {name: rows_of(name)[0] for name in EXPERIMENTS}
st.subheader("The paper's claims, against our measurements")
lines = ["| claim | our measurement | verdict |", "|---|---|---|"]
for c in claims(results):
    lines.append(f"| {c['claim']} | {c['evidence']} | :{VERDICT_COLORS[c['verdict']]}[**{c['verdict']}**] |")
st.markdown("\n".join(lines))
st.caption("Verdicts are computed from the stored results below (rerun a cell and they follow). The small budget is "
           "far from the paper's: where we disagree, more training may change the answer.")

name = bound(st.segmented_control, "Experiment", list(EXPERIMENTS), default="reversal", required=True,
             format_func=lambda n: experiment(n).TITLE, key="paper_exp")  # in the URL by its title
module = experiment(name)
rows, error = rows_of(name)
st.subheader(module.TITLE)
st.markdown(re.sub(r":\w+:`~?([^`]+)`", r"`\1`", module.__doc__.split("\n\n")[1].replace("\n", " ")))
if error:
    st.error(f"The stored results cannot be read: {error}. Rerun the cells below to replace them.")
elif not rows:
    st.info(f"No results yet for this experiment: run `python -m drnn_demo reproduce {name} --budget {BUDGET}`, "
            "or rerun its cells one by one below.", icon=":material/hourglass_empty:")
else:
    data = series(name, rows)
    lower = not module.HIGHER_IS_BETTER
    chart(viz.metric_vs_delay(data["points"], module.METRIC_LABEL, data["baselines"], data["bound"],
                              lower_is_better=lower and name != "runtime",
                              title=f"{module.TITLE}: {module.METRIC_LABEL} vs delay"), key=f"paper_plot_{name}")
    notes = ["Dots: the delayed RNN at each delay; dotted lines: the other families"]
    if data["bound"]:
        notes.append("dashed: the best any model with that look-ahead can do")
        delays, best = data["bound"]
        solved = [d for d, b in zip(delays, best, strict=True) if b == 0]
        if solved and lower:
            notes.append(f"it is 0 from d = {solved[0]} on, below the log axis")
    st.caption("; ".join(notes) + ".")
    st.dataframe(pd.DataFrame([{
        "cell": r["cell"]["id"], "family": r["cell"]["family"], "delay": r["cell"]["delay"],
        "hidden": r["cell"].get("hidden"), module.METRIC_LABEL: format_value(r["result"].get(module.METRIC)),
        "parameters": r["result"].get("params"), "train/measure time": format_seconds(r["result"].get("seconds")),
        "status": r["result"].get("status"), "seed": r.get("seed")} for r in rows]), hide_index=True, width="stretch")

grid = module.cells(BUDGET)
with st.expander("Settings of every cell"):
    st.json(grid, expanded=1)

st.markdown("**Rerun one cell** in the background (the table, the plot and the claims update when it ends).")
pick = st.columns([2, 1])
cell_id = pick[0].selectbox("Cell", [c["id"] for c in grid], key="paper_cell")
if pick[1].button("Rerun in the background", icon=":material/play_arrow:", type="primary"):
    config = {"experiment": name, "budget": BUDGET, "cell": cell_id, "seed": seed()}
    st.session_state.paper_run = jobs.submit("reproduce_cell", config, label=f"{name} / {cell_id}",
                                             page="views/paper_experiments.py", params={"paper_exp": module.TITLE})
    st.session_state.pop("paper_done", None)


@st.fragment(run_every=1.0)
def rerun_progress(run_id: str) -> None:
    """Polls only while the submitted run is queued or running."""
    jobs.poll()
    try:
        info = jobs.get(run_id)
    except KeyError:
        st.session_state.pop("paper_run", None)
        return
    if info.active:
        run_progress(info, show="percent")
        return
    st.session_state.pop("paper_run", None)
    st.session_state.paper_done = run_id
    st.rerun()


if st.session_state.get("paper_run"):
    rerun_progress(st.session_state.paper_run)
if st.session_state.get("paper_done"):
    try:
        run_outcome(jobs.get(st.session_state.paper_done))
    except KeyError:
        pass
