r"""Are LRN's gates attention? Token attributions by captum, and how well they agree with the gates.

For a classifier ``embedding -> LRN -> final state -> linear head`` and one sequence of ids
``x_1..x_T`` with embeddings ``e_k``, four scores per token ``k``, all for the predicted class ``ĉ``
and the function

.. math:: f(e) = \mathrm{logit}_{ĉ}(e) - \tfrac1C \sum_c \mathrm{logit}_c(e)

(the logit of ``ĉ`` against the mean, which the softmax sees; for two classes half the margin):

- ``gates``: the unfolded gate weight of token ``k`` in the final state, averaged over units,
  ``mean_u w[T-1, k, u]`` with ``w[t, k] = i_k ⊙ prod_{j=k+1..t} f_j`` (the "attention" reading;
  :func:`drnn_demo.token_weights.final_token_attribution`). Non-negative.
- ``share``: the token's share of ``f`` through the unfolding, ``(W_ĉ - mean_c W_c)(w[T-1, k] ⊙ r_k)``
  (exact for g = identity: the shares and the bias add up to ``f``). Signed.
- ``ig``: integrated gradients (captum's ``IntegratedGradients``) on the embedded inputs from the
  all-zero embedding baseline, summed over the embedding dimension:
  ``IG_k = sum_d (e_kd - 0) ∫_0^1 ∂f(α e)/∂e_kd dα``; completeness: ``sum_k IG_k = f(e) - f(0)``.
- ``grad_input``: gradient × input (captum's ``InputXGradient``), ``sum_d e_kd ∂f/∂e_kd``.

Agreement is the Spearman rank correlation, per sequence, of the **magnitudes** ``|score|`` (the
gate weight says how much, not in which direction), averaged over a test set with a 95 %
Student-t interval (:func:`drnn_demo.stats.mean_interval`); sequences shorter than two tokens, or
where a score is constant, have no rank correlation and are left out (``n`` counts the rest). On
the last-keyword task the deciding tokens are known (:meth:`LastKeyword.decisive`); the top token
of a method is the argmax of its signed score (the strongest evidence *for* ``ĉ``; the gate weight
itself for ``gates``), and a hit is a top token among the deciding ones.

This module holds captum's part (:func:`gradient_attributions`) and the statistics
(:func:`spearman`, :class:`AgreementTally`), on a float64 copy of the model, on CPU; the gate
scores and the test sets come from :mod:`drnn_demo.recipes.lrn_analysis` (they need the tasks), whose
``python -m drnn_demo.recipes.lrn_analysis`` writes the table of the shipped LRNs to
``results/attributions_agreement.json`` (the LRN gates page reads it).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import stats as _scipy_stats
from torch import nn

from ..models.lrn import LRN
from ..stats import mean_interval

METHODS = ("gates", "share", "ig", "grad_input")
METHOD_LABELS = {"gates": "gate weight", "share": "unfolded share", "ig": "integrated gradients",
                 "grad_input": "gradient × input"}
PAIRS = (("gates", "ig"), ("gates", "grad_input"), ("ig", "grad_input"), ("share", "ig"),
         ("share", "grad_input"), ("gates", "share"))
N_STEPS = 64  # Gauss-Legendre points of the IG integral (the completeness gap is reported)
INTERNAL_BATCH = 8192  # rows per captum forward pass (memory bound: rows x T x H float64)
RESULTS_PATH = Path(__file__).resolve().parents[2] / "results" / "attributions_agreement.json"
SHIPPED = ("lrn_sentiment", "lrn_sentiment_tanh", "lrn_keyword", "lrn_keyword_tanh")


def pair_key(a: str, b: str) -> str:
    return f"{a}~{b}"


class CenteredLogits(nn.Module):
    """Embedded inputs ``(B, T, E)`` -> ``logits - mean_c logits`` ``(B, C)`` of a float64 copy of a
    final-state LRN classifier (a :class:`~drnn_demo.models.SequenceModel`; the model is not touched)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        core, embedding, head = (getattr(model, name, None) for name in ("core", "embedding", "head"))
        if not isinstance(core, LRN) or embedding is None or getattr(model, "readout", None) != "last" \
                or not isinstance(head, nn.Linear):
            raise ValueError("attributions need an LRN token classifier: embedding -> LRN -> final state -> "
                             "linear head")
        if core.num_directions != 1:
            raise ValueError("attributions compare with the gates of a unidirectional LRN; this one is bidirectional")
        self.core = copy.deepcopy(core).double().eval()
        self.core.batch_first = True
        self.head = copy.deepcopy(head).double().eval()
        self.embedding_weight = embedding.weight.detach().double().cpu()

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding_weight[ids]

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        h, _ = self.core(embedded)
        logits = self.head(h[:, -1])
        return logits - logits.mean(-1, keepdim=True)


@dataclass
class GradientAttributions:
    """captum's token attributions of a batch of equal-length sequences (float64 numpy).

    Attributes:
        target: ``(B,)`` the predicted class ``ĉ``.
        ig, grad_input: ``(B, T)`` integrated gradients and gradient × input, summed over the embedding.
        f, f_baseline: ``(B,)``, ``f(e)`` and ``f(0)``.
        ig_gap: ``(B,)``, ``sum_k IG_k - (f(e) - f(0))``: the integral's error (captum's delta).
    """

    target: np.ndarray
    ig: np.ndarray
    grad_input: np.ndarray
    f: np.ndarray
    f_baseline: np.ndarray
    ig_gap: np.ndarray


def gradient_attributions(model: nn.Module, x: torch.Tensor, *, n_steps: int = N_STEPS,
                          wrapped: CenteredLogits | None = None) -> GradientAttributions:
    """IG and gradient × input of ``x``: ``(T,)`` ids (one sequence) or ``(B, T)`` (equal lengths), for
    the predicted class. ``wrapped``: a :class:`CenteredLogits` of ``model`` to reuse across calls."""
    from captum.attr import InputXGradient, IntegratedGradients  # 0.8 s to import: only when used

    if not isinstance(x, torch.Tensor) or x.dtype != torch.long or x.dim() not in (1, 2) or x.shape[-1] == 0:
        raise ValueError(f"x must be (T,) or (B, T) token ids with T >= 1, got {getattr(x, 'shape', type(x))}")
    x = (x.unsqueeze(0) if x.dim() == 1 else x).cpu()
    net = wrapped or CenteredLogits(model)
    embedded = net.embed(x)
    with torch.no_grad():
        f_x = net(embedded)
        target = f_x.argmax(-1)
        f_0 = net(torch.zeros_like(embedded)).gather(1, target[:, None])[:, 0]
    f_x = f_x.gather(1, target[:, None])[:, 0]
    rows = max(1, INTERNAL_BATCH // x.shape[0]) * x.shape[0]
    ig, gap = IntegratedGradients(net).attribute(
        embedded, baselines=torch.zeros_like(embedded), target=target, n_steps=n_steps,
        internal_batch_size=rows, return_convergence_delta=True)
    gxi = InputXGradient(net).attribute(embedded.clone().requires_grad_(True), target=target)
    return GradientAttributions(target=target.numpy(), ig=ig.detach().sum(-1).numpy(),
                                grad_input=gxi.detach().sum(-1).numpy(), f=f_x.numpy(), f_baseline=f_0.numpy(),
                                ig_gap=gap.detach().double().numpy())


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (ties at their average rank; scipy's ``spearmanr``), NaN when it is
    undefined: fewer than two values or a constant one."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"spearman needs two 1-d arrays of one length, got {a.shape} and {b.shape}")
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(_scipy_stats.spearmanr(a, b).statistic)


def correlations(scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Pair -> ``(B,)`` per-sequence Spearman of ``|score|``; ``scores``: method -> ``(B, T)`` (:data:`PAIRS`)."""
    out = {}
    for a, b in PAIRS:
        sa, sb = np.abs(scores[a]), np.abs(scores[b])
        out[pair_key(a, b)] = np.array([spearman(sa[i], sb[i]) for i in range(len(sa))])
    return out


def top_tokens(scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Method -> ``(B,)`` the position of its top token (largest signed score: evidence for ``ĉ``)."""
    return {m: np.asarray(scores[m]).argmax(-1) for m in METHODS}


def _interval(values, low: float, high: float) -> dict:
    """:func:`mean_interval` as a dict, its ends clipped to the possible range ``[low, high]``."""
    if not any(math.isfinite(v) for v in values):
        return {"mean": None, "low": None, "high": None, "n": 0}
    iv = mean_interval(values)
    low_end = None if iv.low is None else max(low, iv.low)
    high_end = None if iv.high is None else min(high, iv.high)
    return {"mean": iv.mean, "low": low_end, "high": high_end, "n": iv.n}


class AgreementTally:
    """Per-sequence agreement collected batch by batch; :meth:`summary` averages it over the set."""

    def __init__(self):
        self.rho = {pair_key(a, b): [] for a, b in PAIRS}
        self.hits = {m: [] for m in METHODS}
        self.sequences, self.ig_gap, self.f_change = 0, 0.0, 0.0
        self.with_deciding = False

    def add(self, scores: dict[str, np.ndarray], grads: GradientAttributions, deciding: np.ndarray | None = None):
        """One batch: ``scores`` method -> ``(B, T)``, its :class:`GradientAttributions`, and optionally the
        ``(B, T)`` bool mask of the deciding tokens."""
        for key, values in correlations(scores).items():
            self.rho[key] += values.tolist()
        self.sequences += len(grads.target)
        self.ig_gap = max(self.ig_gap, float(np.abs(grads.ig_gap).max()))
        self.f_change = max(self.f_change, float(np.abs(grads.f - grads.f_baseline).max()))
        if deciding is not None:
            self.with_deciding = True
            rows = np.arange(len(deciding))
            for method, top in top_tokens(scores).items():
                self.hits[method] += np.asarray(deciding)[rows, top].astype(float).tolist()

    def summary(self) -> dict:
        """JSON-able: ``spearman`` pair -> {mean, low, high, n}; with deciding masks ``top_token`` method ->
        the hit rate as {mean, low, high, n}; ``ig_gap_max`` (max |completeness gap|) beside
        ``ig_f_change_max`` (max |f(e) - f(0)|, its scale); ``n_sequences``."""
        out = {"n_sequences": self.sequences, "spearman": {k: _interval(v, -1.0, 1.0) for k, v in self.rho.items()},
               "ig_gap_max": self.ig_gap, "ig_f_change_max": self.f_change}
        if self.with_deciding:
            out["top_token"] = {m: _interval(v, 0.0, 1.0) for m, v in self.hits.items()}
        return out


def settings() -> dict:
    return {"target": "predicted class; f = logit_c - mean_c logit_c", "baseline": "all-zero embedding",
            "ig": f"captum IntegratedGradients, gausslegendre, n_steps={N_STEPS}",
            "grad_input": "captum InputXGradient", "reduction": "sum over the embedding dimension",
            "spearman": "per sequence, on |score|; mean with 95% Student-t interval (clipped to [-1, 1])",
            "top_token": "argmax of the signed score (gate weight for gates); hit = a deciding token; "
                         "95% Student-t interval of the hit rate, clipped to [0, 1]"}


def agreement_rows(models: dict[str, dict]) -> list[dict]:
    """The agreement table, one row per measure (each pair's Spearman, then each method's top-token hit
    rate where known) and one column per model label: ``"mean [low, high]"`` strings, and the ``n`` row."""
    rows = [{"measure": "sequences (n)", **{label: str(row.get("n_sequences", "–")) for label, row in models.items()}}]
    for a, b in PAIRS:
        rows.append({"measure": f"ρ {METHOD_LABELS[a]} ↔ {METHOD_LABELS[b]}",
                     **{label: _text(row.get("spearman", {}).get(pair_key(a, b)) or {})
                        for label, row in models.items()}})
    if any(row.get("top_token") for row in models.values()):
        for method in METHODS:
            rows.append({"measure": f"top token is deciding: {METHOD_LABELS[method]}",
                         **{label: _text((row.get("top_token") or {}).get(method) or {})
                            for label, row in models.items()}})
    return rows


def _text(value: dict) -> str:
    if value.get("mean") is None:
        return "–"
    if value.get("low") is None:
        return f"{value['mean']:.3f}"
    return f"{value['mean']:.3f} [{value['low']:.3f}, {value['high']:.3f}]"


def read_results(path: str | Path = RESULTS_PATH) -> dict:
    """The stored table (``{}`` when the file is missing or unreadable)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def stored_agreement(card: dict, results: dict | None = None, path: str | Path = RESULTS_PATH) -> dict | None:
    """The stored row of the checkpoint with this card (matched by name and weights' SHA-256), or None;
    from ``results`` (a :func:`read_results` dict) if given, else read from ``path``."""
    row = (results if results is not None else read_results(path)).get("models", {}).get(str(card.get("name")))
    return row if row and row.get("sha256") == card.get("sha256") else None
