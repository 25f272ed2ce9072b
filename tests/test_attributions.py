"""Are gates attention? captum's attributions on LRN classifiers, checked against slow references: integrated
gradients add up to f(x) - f(0) and match a plain Riemann sum over a hand-written LRN loop; gradient × input
equals autograd through that loop; the gate scores equal i_k * prod f_j from the loop; Spearman matches the
textbook formula; the test-set agreement stays in range and its top-token rates equal pointing_accuracy; the
stored table belongs to the shipped weights and backs the page's sentences."""

import math

import numpy as np
import pytest
import torch

from drnn_demo import viz
from drnn_demo.analysis.attributions import (
    PAIRS,
    SHIPPED,
    AgreementTally,
    CenteredLogits,
    agreement_rows,
    gradient_attributions,
    pair_key,
    read_results,
    spearman,
    stored_agreement,
)
from drnn_demo.checkpoints import PRETRAINED_DIR, load_checkpoint
from drnn_demo.models import SequenceModel
from drnn_demo.recipes.lrn_analysis import (
    agreement,
    checkpoint_agreement,
    held_out_sequences,
    token_scores,
)
from drnn_demo.tasks.keyword import LastKeyword, pointing_accuracy
from drnn_demo.tasks.sentiment import encode
from drnn_demo.viz.attributions import ATTRIBUTION_AGAINST, ATTRIBUTION_FOR, ATTRIBUTION_WEIGHT_COLOR

H, E, V, T = 3, 4, 7, 6


def tiny(activation: str, seed: int = 0) -> SequenceModel:
    torch.manual_seed(seed)
    model = SequenceModel("lrn", {"hidden_size": H, "activation": activation}, input_size=E, output_size=2,
                          vocab_size=V, readout="last").eval()
    with torch.no_grad():  # biases away from zero, so every term of the recurrence matters
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def reference_loop(model, e: torch.Tensor):
    """f(e) = logits - mean logit by a plain loop over time in float64 from the model's parameters, and the gates
    i, f of the run. ``e``: (T, E) or (N, T, E) float64; returns (C,) or (N, C), and (..., T, H) gates."""
    core = model.core
    W, b = core.weight_ih_l0.detach().double(), core.bias_ih_l0.detach().double()
    h = torch.zeros(*e.shape[:-2], core.hidden_size, dtype=torch.float64)
    gates_i, gates_f = [], []
    for t in range(e.shape[-2]):
        p, q, r = (e[..., t, :] @ W.T + b).split(core.hidden_size, dim=-1)
        i, f = torch.sigmoid(p + h), torch.sigmoid(q - h)
        h = i * r + f * h
        h = torch.tanh(h) if core.activation == "tanh" else h
        gates_i.append(i)
        gates_f.append(f)
    logits = h @ model.head.weight.detach().double().T + model.head.bias.detach().double()
    return logits - logits.mean(-1, keepdim=True), torch.stack(gates_i, -2), torch.stack(gates_f, -2)


# ---------------------------------------------------------------- Spearman


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties at their average rank, by a plain loop."""
    return np.array([1 + sum(v < x[i] for v in x) + (sum(v == x[i] for v in x) - 1) / 2 for i in range(len(x))])


def test_spearman_matches_the_textbook_formula_and_the_ranked_pearson():
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(1 - 6 * 4 / (5 * 24))  # sum d^2 = 4: 0.8
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.integers(0, 4, 9).astype(float), rng.normal(size=9)  # ties in a
        if np.ptp(a) == 0:
            continue
        ra, rb = average_ranks(a), average_ranks(b)
        assert spearman(a, b) == pytest.approx(float(np.corrcoef(ra, rb)[0, 1]), abs=1e-12)


def test_spearman_is_undefined_for_one_value_or_a_constant_and_refuses_mismatched_shapes():
    assert math.isnan(spearman([1.0], [2.0]))
    assert math.isnan(spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="one length"):
        spearman([1, 2, 3], [1, 2])


# ---------------------------------------------------------------- captum against the reference loop


@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_gradient_times_input_is_autograd_through_a_plain_loop(activation):
    model = tiny(activation)
    ids = torch.tensor([3, 1, 6, 0, 2, 5])
    scores, grads = token_scores(model, ids)
    e = model.embedding.weight.detach().double()[ids].requires_grad_(True)
    f, _, _ = reference_loop(model, e)
    c = int(f.argmax())
    assert grads.target.tolist() == [c]
    (grad,) = torch.autograd.grad(f[c], e)
    assert np.allclose(scores["grad_input"][0], (grad * e).sum(-1).detach().numpy(), rtol=1e-9, atol=1e-12)
    assert grads.f[0] == pytest.approx(float(f[c].detach()), abs=1e-12)


@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_integrated_gradients_add_up_and_match_a_riemann_sum(activation):
    model = tiny(activation, seed=1)
    ids = torch.tensor([4, 4, 1, 6, 2, 0])
    scores, grads = token_scores(model, ids)
    e = model.embedding.weight.detach().double()[ids]
    f, _, _ = reference_loop(model, e)
    c = int(f.argmax())
    f0, _, _ = reference_loop(model, torch.zeros_like(e))
    ig = scores["ig"][0]
    assert ig.sum() == pytest.approx(float(f[c] - f0[c]), abs=1e-6)  # completeness
    assert abs(grads.ig_gap[0]) < 1e-6
    steps = 2000  # the midpoint rule along the straight path from the zero embedding, all points at once
    alphas = ((torch.arange(steps, dtype=torch.float64) + 0.5) / steps)[:, None, None]
    path = (alphas * e).requires_grad_(True)  # (steps, T, E)
    (g,) = torch.autograd.grad(reference_loop(model, path)[0][:, c].sum(), path)
    assert np.allclose(ig, (e * g.mean(0)).sum(-1).numpy(), atol=1e-6)


@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_gate_scores_are_the_unfolded_weights_of_the_loop(activation):
    model = tiny(activation, seed=2)
    ids = torch.tensor([0, 5, 2, 2, 6, 1])
    scores, grads = token_scores(model, ids)
    e = model.embedding.weight.detach().double()[ids]
    f, i, fg = reference_loop(model, e)
    w = torch.stack([i[k] * fg[k + 1:].prod(0) for k in range(T)])  # (T, H): i_k * prod_{j>k} f_j
    assert np.allclose(scores["gates"][0], w.mean(-1).numpy(), rtol=1e-6, atol=1e-9)
    if activation == "identity":  # the shares and the head's bias add up to f exactly
        c = int(grads.target[0])
        bias = model.head.bias.detach().double()
        assert scores["share"][0].sum() + float(bias[c] - bias.mean()) == pytest.approx(float(f[c]), abs=1e-9)


def test_shipped_models_integrated_gradients_add_up():
    for name in ("lrn_sentiment_tanh", "lrn_keyword"):
        model, card = load_checkpoint(PRETRAINED_DIR / f"{name}.safetensors")
        x = encode("Not bad at all, the battery lasts all day.", card["vocab"]) if "vocab" in card else \
            LastKeyword(**card["task_args"]).sample(8, 3)[0]
        grads = gradient_attributions(model, x)
        change = grads.f - grads.f_baseline
        assert np.allclose(grads.ig.sum(-1), change, atol=1e-3 * max(1.0, float(np.abs(change).max())))
        net = CenteredLogits(model)
        with torch.no_grad():  # the float64 copy predicts what the model predicts
            assert (net(net.embed(x.reshape(-1, x.shape[-1]))).argmax(-1).numpy() == grads.target).all()


def test_bad_models_and_inputs_get_one_clear_message():
    bi = SequenceModel("lrn", {"hidden_size": 3, "bidirectional": True}, input_size=4, output_size=2, vocab_size=5,
                       readout="last")
    with pytest.raises(ValueError, match="bidirectional"):
        CenteredLogits(bi)
    lstm = SequenceModel("sru", {"hidden_size": 3}, input_size=4, output_size=2, vocab_size=5, readout="last")
    with pytest.raises(ValueError, match="LRN token classifier"):
        CenteredLogits(lstm)
    with pytest.raises(ValueError, match="token ids"):
        gradient_attributions(tiny("identity"), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="token ids"):
        gradient_attributions(tiny("identity"), torch.zeros(0, dtype=torch.long))


# ---------------------------------------------------------------- agreement over a set


def test_agreement_ranges_and_top_tokens_match_pointing_accuracy():
    model, card = load_checkpoint(PRETRAINED_DIR / "lrn_keyword.safetensors")
    sequences, deciding = held_out_sequences(card)
    assert len(sequences) == 1000
    out = agreement(model, sequences[:100], deciding[:100])
    assert out["n_sequences"] == 100
    for key in (pair_key(a, b) for a, b in PAIRS):
        row = out["spearman"][key]
        assert row["n"] == 100 and -1 <= row["low"] <= row["mean"] <= row["high"] <= 1
    for row in out["top_token"].values():
        assert 0 <= row["low"] <= row["mean"] <= row["high"] <= 1
    task = LastKeyword(**card["task_args"])
    x = torch.stack(sequences[:100])
    y = torch.tensor([int(task.keyword_class(s[task.evidence(s[None])[0]])) for s in sequences[:100]])
    pointing = pointing_accuracy(model, task, x, y)  # accuracy 1.0: the predicted class is the label
    assert out["top_token"]["gates"]["mean"] == pytest.approx(pointing["weight"])
    assert out["top_token"]["share"]["mean"] == pytest.approx(pointing["logit"])


def test_a_one_token_sequence_has_no_correlation_and_the_tally_says_n():
    model = tiny("identity")
    out = agreement(model, [torch.tensor([3]), torch.tensor([1, 2, 4, 0])])
    assert out["n_sequences"] == 2 and all(row["n"] == 1 for row in out["spearman"].values())
    empty = AgreementTally()
    scores, grads = token_scores(model, torch.tensor([[2], [5]]))
    empty.add(scores, grads)
    assert all(row == {"mean": None, "low": None, "high": None, "n": 0} for row in empty.summary()["spearman"].values())
    with pytest.raises(ValueError, match="no sequences"):
        agreement(model, [])


def test_the_stored_table_is_of_the_shipped_weights_and_backs_the_page():
    results = read_results()
    assert results["generated_by"] == "python -m drnn_demo.recipes.lrn_analysis"
    rows = {}
    for name in SHIPPED:
        _, card = load_checkpoint(PRETRAINED_DIR / f"{name}.safetensors")
        rows[name] = stored_agreement(card, results)
        assert rows[name] is not None, f"{name}: stored for other weights; rerun the module"
        assert rows[name]["n_sequences"] == (277 if "sentiment" in name else 1000)
        assert rows[name]["ig_gap_max"] < 1e-3 * rows[name]["ig_f_change_max"]
    s_id, s_tanh, k_id, k_tanh = (rows[n] for n in SHIPPED)

    def rho(row, a, b):
        return row["spearman"][pair_key(a, b)]["mean"]

    # what the page's "What the numbers say" states in words
    for row in (s_id, s_tanh):
        assert rho(row, "share", "ig") > rho(row, "gates", "ig") + 0.1  # the share agrees far better than the gates
    assert k_id["top_token"]["gates"]["mean"] < 0.5 < 0.95 < k_id["top_token"]["ig"]["mean"]
    assert k_tanh["top_token"]["grad_input"]["mean"] < k_tanh["top_token"]["ig"]["mean"] - 0.2
    assert min(k_id["top_token"]["share"]["mean"], k_tanh["top_token"]["share"]["mean"]) > 0.95
    table = agreement_rows({"a": s_id, "b": k_id})
    assert table[0] == {"measure": "sequences (n)", "a": "277", "b": "1000"}
    assert len(table) == 1 + len(PAIRS) + 4 and table[-1]["a"] == "–"


@pytest.mark.slow
def test_the_stored_sentiment_row_is_reproduced():
    stored = read_results()["models"]["lrn_sentiment"]
    fresh = checkpoint_agreement(PRETRAINED_DIR / "lrn_sentiment.safetensors")
    for key, row in fresh["spearman"].items():
        assert row["mean"] == pytest.approx(stored["spearman"][key]["mean"], abs=1e-9)


# ---------------------------------------------------------------- figures


def test_attribution_bars_align_the_rows_and_refuse_ragged_ones():
    rows = {"gate weight": [0.1, 0.5, 0.2], "integrated gradients": [0.3, -0.2, 1.0]}
    fig = viz.attribution_bars(["a", "b", "c"], rows, "positive", marks=[1], signed=[False, True])
    bars = [t for t in fig.data if t.type == "bar"]
    assert [list(b.y) for b in bars] == list(rows.values())
    assert bars[0].marker.color == ATTRIBUTION_WEIGHT_COLOR
    assert list(bars[1].marker.color) == [ATTRIBUTION_FOR, ATTRIBUTION_AGAINST, ATTRIBUTION_FOR]
    assert fig.layout.xaxis.ticktext[1].startswith("<b")  # the deciding token in bold red
    assert [a.text for a in fig.layout.annotations] == list(rows)  # one titled row per method, in order
    with pytest.raises(ValueError, match="3 scores"):
        viz.attribution_bars(["a", "b", "c"], {"x": [1.0, 2.0]}, "positive")


def test_agreement_chart_draws_each_model_with_its_interval():
    row = {"spearman": {"gates~ig": {"mean": 0.6, "low": 0.5, "high": 0.7, "n": 10}},
           "top_token": {"gates": {"mean": 0.2, "low": 0.1, "high": 0.3, "n": 10}}}
    fig = viz.agreement_chart({"m": row, "other": {"spearman": row["spearman"]}}, {"gates~ig": "gates ↔ IG"},
                              {"gates": "gate weight"}, highlight="m")
    left = [t for t in fig.data if t.xaxis == "x"]
    assert [t.name for t in left] == ["m", "other"] and list(left[0].error_x.array) == pytest.approx([0.1])
    assert left[0].marker.size > left[1].marker.size
    right = [t for t in fig.data if t.xaxis == "x2"]
    assert len(right) == 1 and list(right[0].x) == [0.2]
