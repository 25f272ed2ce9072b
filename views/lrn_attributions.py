"""The "Are gates attention?" section of the LRN gates page: the gate weights beside captum's integrated
gradients and gradient × input for the prediction in view, and the test-set agreement table (stored in
results/attributions_agreement.json for the shipped models; measured on request for a run of yours)."""

from __future__ import annotations

import math
from pathlib import Path

import streamlit as st

from drnn_demo import viz
from drnn_demo.analysis.attributions import (
    METHOD_LABELS,
    PAIRS,
    RESULTS_PATH,
    SHIPPED,
    agreement_rows,
    pair_key,
    stored_agreement,
)
from drnn_demo.checkpoints import CheckpointError
from drnn_demo.pretrained import PRETRAINED_DIR
from views.lrn_sections import attributed, item_key, load_path, measured_agreement, stored_results
from views.ui import chart

SHIPPED_LABELS = {"lrn_sentiment": "sentiment, g = identity", "lrn_sentiment_tanh": "sentiment, g = tanh",
                  "lrn_keyword": "keyword, g = identity", "lrn_keyword_tanh": "keyword, g = tanh"}
ROWS = {"gates": "gate weight mean_u w[T−1, k]", "share": "unfolded share (W_head · w ⊙ r)",
        "ig": "integrated gradients", "grad_input": "gradient × input"}
PAIR_LABELS = {pair_key(a, b): f"{METHOD_LABELS[a]} ↔ {METHOD_LABELS[b]}" for a, b in PAIRS}
REGENERATE = "python -m drnn_demo.recipes.lrn_analysis"


@st.cache_resource(max_entries=32, show_spinner=False)
def attribution_figure(path: str, mtime: float, mode: str, key: tuple, tokens: tuple, labels: tuple, marks: tuple):
    """The aligned bar rows of one input, built once per (checkpoint, input) (read only)."""
    a = attributed(path, mtime, mode, key)
    return viz.attribution_bars(list(tokens), {ROWS[m]: a["scores"][m] for m in ROWS}, labels[a["target"]],
                                marks=list(marks), signed=[False, True, True, True])


@st.cache_resource(max_entries=16, show_spinner=False)
def agreement_figure(rows: dict, highlight: str | None):
    """The agreement chart of these rows, built once (read only)."""
    return viz.agreement_chart(rows, PAIR_LABELS, METHOD_LABELS, highlight=highlight)


def _rho(value: float) -> str:
    return "undefined" if not math.isfinite(value) else f"{value:.2f}"


def shipped_rows() -> tuple[dict[str, dict], list[str]]:
    """Label -> stored agreement row of each shipped model whose weights match the stored ones; and the names
    of those without a current row."""
    results = stored_results(RESULTS_PATH.stat().st_mtime if RESULTS_PATH.exists() else 0.0)
    rows, stale = {}, []
    for name in SHIPPED:
        path = PRETRAINED_DIR / f"{name}.safetensors"
        try:
            _, card = load_path(path)
        except (OSError, CheckpointError):
            continue
        row = stored_agreement(card, results=results)
        if row is None:
            stale.append(name)
        else:
            rows[SHIPPED_LABELS[name]] = row
    return rows, stale


def reading(rows: dict[str, dict]) -> str | None:
    """What the stored numbers say, in three sentences (None unless all four shipped models are there)."""
    if not all(label in rows for label in SHIPPED_LABELS.values()):
        return None
    s_id, s_tanh, k_id, k_tanh = (rows[SHIPPED_LABELS[n]] for n in SHIPPED)

    def rho(row, a, b):
        return row["spearman"][pair_key(a, b)]["mean"]

    def top(row, method):
        return f"{row['top_token'][method]['mean']:.1%}"

    gate_rhos = [rho(r, "gates", m) for r in rows.values() for m in ("ig", "grad_input")]
    return (
        f"**What the numbers say.** On the sentiment test sentences the gate weight ranks the words only moderately "
        f"like the gradient methods (ρ with integrated gradients {rho(s_id, 'gates', 'ig'):.2f} for g = identity, "
        f"{rho(s_tanh, 'gates', 'ig'):.2f} for tanh), while the unfolded share, the same gates times the values read "
        f"through the head, agrees with integrated gradients at {rho(s_id, 'share', 'ig'):.2f} and "
        f"{rho(s_tanh, 'share', 'ig'):.2f}. On the last keyword the gate weight's top token is a deciding keyword "
        f"in {top(k_id, 'gates')} of the test sequences for g = identity and {top(k_tanh, 'gates')} for tanh; "
        f"integrated gradients find one in {top(k_id, 'ig')} and {top(k_tanh, 'ig')}, the unfolded share in "
        f"{top(k_id, 'share')} and {top(k_tanh, 'share')}, gradient × input in {top(k_id, 'grad_input')} but only "
        f"{top(k_tanh, 'grad_input')} for tanh. So the gates alone are an attention map only in part (ρ "
        f"{min(gate_rhos):.2f}–{max(gate_rhos):.2f} with the attributions over the four models, and for the identity "
        "LRN mostly not pointing at the deciding keyword); weighed by what each token carries into the readout, "
        "they point where integrated gradients do."
    )


def agreement_table(path: Path, card: dict) -> None:
    """The test-set agreement of the shipped models (stored), plus the model in view if it is a run of yours."""
    rows, stale = shipped_rows()
    current = next((label for name, label in SHIPPED_LABELS.items() if path == PRETRAINED_DIR / f"{name}.safetensors"),
                   None)
    if current is None:
        label = f"this model ({path.stem})"
        if card.get("task") not in ("sentiment", "keyword"):
            st.info("The test-set agreement is measured for the sentiment and last-keyword tasks only.")
        elif st.session_state.get("lrn_agree") == str(path) or st.button(
                "Measure this model's agreement on its test set", key="lrn_agree_button",
                icon=":material/functions:", help="integrated gradients on every test sequence: 5–30 s"):
            st.session_state.lrn_agree = str(path)
            with st.spinner("Attributing every test sequence…"):
                rows = {label: measured_agreement(str(path), path.stat().st_mtime), **rows}
            current = label
    if stale:
        st.warning(f"No stored agreement for {', '.join(stale)} with the weights shipped now: run `{REGENERATE}` "
                   f"to measure it again ({RESULTS_PATH.name}).", icon=":material/history:")
    if not rows:
        return
    chart(agreement_figure(rows, current), key="lrn_agreement")
    table = agreement_rows(rows)
    st.dataframe(table, hide_index=True, width="stretch", height=35 * (len(table) + 1) + 3)
    gap = max(row["ig_gap_max"] for row in rows.values())
    change = max(row["ig_f_change_max"] for row in rows.values())
    st.caption("Spearman ρ per sequence, of |score|, averaged over each model's test set with its 95% Student-t "
               "interval; top token: the largest signed score (the largest weight for the gates), a hit when it is a "
               "deciding keyword. Integrated gradients: 64 Gauss–Legendre steps from the all-zero embedding; on "
               f"every test sequence their sum matches f(x) − f(0) within {gap:.2g} (f(x) − f(0) reaches "
               f"{change:.3g}). Stored in `results/{RESULTS_PATH.name}` by `{REGENERATE}`.")
    text = reading(rows)
    if text:
        st.markdown(text)


def attribution_section(path: Path, mode: str, item: dict, result: dict, labels: list[str], marks: list[int],
                        card: dict) -> None:
    st.markdown(
        "If the unfolded gate weights are attention, the tokens they weigh most should be the ones the prediction "
        "depends on. Two gradient attributions by [captum](https://captum.ai) measure that dependence directly, "
        "for the predicted class c and f = logit_c − mean logit, on the embedded words: **integrated gradients** "
        "(from an all-zero embedding; they add up to f(x) − f(0)) and **gradient × input**.")
    tokens, key, mtime = result["tw"].tokens, item_key(mode, item), path.stat().st_mtime
    try:
        a = attributed(str(path), mtime, mode, key)
    except ValueError as e:
        st.info(f"No attributions for this model: {e}")
        return
    chart(attribution_figure(str(path), mtime, mode, key, tuple(tokens), tuple(labels), tuple(marks)),
          key="lrn_attributions")
    rho = a["rho"]
    st.caption(f"This input, Spearman ρ of |score| over its {len(tokens)} tokens: gate weight ↔ integrated gradients "
               f"{_rho(rho[pair_key('gates', 'ig')])}, gate weight ↔ gradient × input "
               f"{_rho(rho[pair_key('gates', 'grad_input')])}, integrated gradients ↔ gradient × input "
               f"{_rho(rho[pair_key('ig', 'grad_input')])}, unfolded share ↔ integrated gradients "
               f"{_rho(rho[pair_key('share', 'ig')])}.")
    agreement_table(path, card)
