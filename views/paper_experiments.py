"""Paper experiments: the delayed-RNN paper's experiments as measured here, and its claims beside them."""

import os
import re

import pandas as pd
import streamlit as st

from drnn_demo import viz
from drnn_demo.claims import claims, series
from drnn_demo.experiments import BUDGETS, EXPERIMENTS, SEEDS, experiment
from drnn_demo.jobs.launchers import GRID_KIND, RAY_ADDRESS_ENV
from drnn_demo.reproduce import format_value, load_results, results_path
from views.ui import bound, chart, follow_runs, format_seconds, job_manager, seed

BUDGET_NOTES = {
    "small": "one seed per cell, minutes on a CPU: no interval, so no verdict can be more than inconclusive",
    "medium": "three seeds per cell, about an hour per experiment on a 2-core CPU, sizes where a delayed network "
              "has time to learn its delay",
    "full": "the paper's sizes, three seeds (a GPU or a Ray cluster)",
    "tiny": "seconds per cell, for the tests",
}
VERDICT_COLORS = {"agrees": "green", "inconclusive": "orange", "disagrees": "red", "not measured yet": "gray"}
jobs = job_manager()


@st.cache_data(max_entries=64, show_spinner=False)
def stored(name: str, budget: str, mtime: float) -> tuple[list[dict], str]:
    """The stored rows of an experiment (re-read when the file changes) and an error text, if any."""
    try:
        return load_results(name, budget), ""
    except ValueError as e:
        return [], str(e)


def rows_of(name: str, budget: str) -> tuple[list[dict], str]:
    path = results_path(name, budget)
    return stored(name, budget, path.stat().st_mtime if path.exists() else 0.0)


def present(budget: str) -> int:
    """How many experiments have results at ``budget``."""
    return sum(results_path(name, budget).exists() for name in EXPERIMENTS)


st.title("Paper experiments")
budgets = [b for b in BUDGETS if b != "tiny" and (b == "small" or present(b))]
default = "medium" if "medium" in budgets and present("medium") == len(EXPERIMENTS) else "small"
BUDGET = bound(st.segmented_control, "Budget", budgets, default=default, required=True, key="paper_budget",
               help="every number on this page comes from the results of this budget")
st.markdown(
    "Turek et al. (ICML 2020) compare a **delayed RNN** (one layer, output delayed by d steps) with bidirectional "
    f"and stacked networks. Here are their experiments at the **{BUDGET}** budget ({BUDGET_NOTES[BUDGET]}; "
    f"`python -m drnn_demo reproduce EXPERIMENT --budget {BUDGET}` regenerates them), and the abstract's claims "
    "beside what these measurements show."
)
if present(BUDGET) < len(EXPERIMENTS):
    missing = [experiment(n).TITLE for n in EXPERIMENTS if not results_path(n, BUDGET).exists()]
    st.caption(f"Not measured at this budget yet: {', '.join(missing)}.")

results = {name: rows_of(name, BUDGET)[0] for name in EXPERIMENTS}
st.subheader("The paper's claims, against our measurements")
lines = ["| claim | the paper says | ours: mean [95 % interval] over seeds | test | verdict |", "|---|---|---|---|---|"]
for c in claims(results):
    lines.append(f"| {c['claim']} | {c['paper']} | {c['evidence']} | {c['test']} | "
                 f":{VERDICT_COLORS[c['verdict']]}[**{c['verdict']}**] |")
st.markdown("\n".join(lines))
st.caption("Verdicts are computed from the stored results below (rerun a cell and they follow): a claim agrees or "
           "disagrees only when the 95 % interval over seeds lies wholly on one side of the claim's margin. The "
           "delayed model each claim compares is the one with the best validation score.")

name = bound(st.segmented_control, "Experiment", list(EXPERIMENTS), default="reversal", required=True,
             format_func=lambda n: experiment(n).TITLE, key="paper_exp")  # in the URL by its title
module = experiment(name)
rows, error = rows_of(name, BUDGET)
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
    notes = ["Dots: the delayed RNN at each delay (mean over seeds, bars: 95 % interval); dotted lines: the other "
             "families (bands: their intervals)"]
    if data["bound"]:
        notes.append("dashed: the best any model with that look-ahead can do")
        delays, best = data["bound"]
        solved = [d for d, b in zip(delays, best, strict=True) if b == 0]
        if solved and lower:
            notes.append(f"it is 0 from d = {solved[0]} on, below the log axis")
    st.caption("; ".join(notes) + ". These models are this experiment's grid at the "
               f"{BUDGET} budget (settings below); the **Delayed outputs** page shows the pretrained models, trained "
               "with other sizes and budgets, so the same family can score differently there.")
    st.dataframe(pd.DataFrame([{
        "cell": r["cell"]["id"], "family": r["cell"]["family"], "delay": r["cell"]["delay"],
        "hidden": r["cell"].get("hidden"), module.METRIC_LABEL: format_value(r["result"].get(module.METRIC)),
        "parameters": r["result"].get("params"), "train/measure time": format_seconds(r["result"].get("seconds")),
        "status": r["result"].get("status"), "seed": r.get("seed")} for r in rows]), hide_index=True, width="stretch")

grid = module.cells(BUDGET)
with st.expander("Settings of every cell"):
    st.json(grid, expanded=1)

st.markdown(f"**Rerun one cell** in the background with the sidebar's seed (its row for that seed is replaced; the "
            f"budget's own seeds are {', '.join(map(str, SEEDS[BUDGET]))}); the table, the plot and the claims "
            "update when it ends.")
pick = st.columns([2, 1])
cell_id = pick[0].selectbox("Cell", [c["id"] for c in grid], key="paper_cell")
if pick[1].button("Rerun in the background", icon=":material/play_arrow:", type="primary"):
    config = {"experiment": name, "budget": BUDGET, "cell": cell_id, "seed": seed()}
    st.session_state.paper_run = jobs.submit("reproduce_cell", config, label=f"{name} / {cell_id}",
                                             page="views/paper_experiments.py", params={"paper_exp": module.TITLE,
                                                                                   "paper_budget": BUDGET})
    st.session_state.pop("paper_done", None)

if os.environ.get(RAY_ADDRESS_ENV, "").strip():  # a cluster to run on: the whole grid as one background run
    st.markdown(f"**Run the whole grid** of this experiment at the {BUDGET} budget on the Ray cluster "
                f"(`{RAY_ADDRESS_ENV}`): every (cell, seed) pair not stored yet is a Ray task, as "
                f"`python -m drnn_demo reproduce {name} --budget {BUDGET} --backend ray` would run them; results "
                "already stored stay, and the table, the plot and the claims update when it ends.")
    if st.button("Run the whole grid on the cluster", icon=":material/hub:"):
        st.session_state.paper_run = jobs.submit(GRID_KIND, {"experiment": name, "budget": BUDGET},
                                                 label=f"{name} ({BUDGET}) grid on the cluster",
                                                 page="views/paper_experiments.py",
                                                 params={"paper_exp": module.TITLE, "paper_budget": BUDGET})
        st.session_state.pop("paper_done", None)


follow_runs("paper_run", "paper_done", show="percent")
