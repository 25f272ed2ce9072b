"""The LRN classifiers (sentiment, last keyword) analysed: what the LRN gates page shows, without the page.

One input through a classifier ``embedding -> LRN -> final state -> linear head``:

- :func:`analyse` (:func:`analyse_ids` / :func:`analyse_sentence`): probabilities, the unfolded weights
  (:class:`~drnn_demo.token_weights.TokenWeights`) and every token's share of ``logit(1) - logit(0)``;
- :func:`parse_sequence`, :func:`keyword_truth`: a typed last-keyword sequence to ids, and its ground
  truth (label, deciding positions, last keyword); :func:`unknown_words`, :func:`strongest_token`,
  :func:`comparison_record`: small read-outs;
- :func:`token_scores`: the four token scores of "Are gates attention?" (gate weight, unfolded share,
  integrated gradients, gradient × input; see :mod:`drnn_demo.analysis.attributions`), and
  :func:`agreement` / :func:`checkpoint_agreement` their agreement over a test set.

``python -m drnn_demo.recipes.lrn_analysis`` measures the agreement of the four shipped LRNs on
their test sets and writes ``results/attributions_agreement.json`` (about a minute on one core).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..analysis.attributions import (
    N_STEPS,
    RESULTS_PATH,
    SHIPPED,
    AgreementTally,
    CenteredLogits,
    GradientAttributions,
    gradient_attributions,
    settings,
)
from ..checkpoints import PRETRAINED_DIR, load_checkpoint
from ..fileio import write_json_atomic
from ..tasks.keyword import LastKeyword
from ..tasks.sentiment import encode, explain, load_sentences
from ..token_weights import final_token_attribution, token_weights
from ..training import derived_seed

# ---------------------------------------------------------------- one input, as the page shows it


def analyse_ids(model, ids: torch.Tensor, names: list[str]) -> dict:
    """Probabilities ``(C,)``, unfolded weights and each token's share ``(T,)`` of logit(1) - logit(0)
    for one sequence of ids ``(T,)`` (no bias or margin: those are for sentences, :func:`analyse_sentence`)."""
    with torch.no_grad():
        probabilities = torch.softmax(model(ids.unsqueeze(0))[0].double(), -1)
    tw = token_weights(model, ids, tokens=names)
    contributions = tw.logit_contributions(-1)
    return {"probabilities": probabilities, "tw": tw, "shares": (contributions[:, 1] - contributions[:, 0]),
            "bias": None, "margin": None, "ids": ids}


def analyse_sentence(model, text: str, vocab: list[str]) -> dict:
    """:func:`~drnn_demo.tasks.sentiment.explain` as the page's dict (with the bias share and the margin)."""
    e = explain(model, text, vocab)
    return {"probabilities": e.probabilities, "tw": e.token_weights, "shares": e.shares, "bias": e.bias_share,
            "margin": e.margin, "ids": e.ids}


def analyse(model, mode: str, item_key: tuple, vocab: list[str] | None = None) -> dict:
    """One input: ``mode`` "sentiment" with ``item_key = (text,)``, else ``(ids, names)`` tuples."""
    if mode == "sentiment":
        return analyse_sentence(model, item_key[0], vocab)
    return analyse_ids(model, torch.tensor(item_key[0], dtype=torch.long), list(item_key[1]))


def comparison_record(label: str, result: dict, labels: list[str]) -> dict:
    """One model's row of the tanh-vs-identity figure: shares, unfolding error, state scale, prediction."""
    tw, p = result["tw"], result["probabilities"]
    best = int(p.argmax())
    return {"label": label, "tokens": tw.tokens, "shares": result["shares"].numpy(), "error": tw.error.numpy(),
            "scale": tw.hidden.abs().amax(-1).numpy(), "prediction": labels[best], "probability": float(p[best])}


def strongest_token(shares: torch.Tensor, best: int, signed: bool) -> int:
    """The token with the largest share: by size (``signed=False``), or pushing most toward class
    ``best`` of two (``signed=True``: the largest ``+share`` for class 1, ``-share`` for class 0)."""
    if not signed:
        return int(shares.abs().argmax())
    return int((shares if best == 1 else -shares).argmax())


def unknown_words(words: list[str], vocab: list[str]) -> list[str]:
    """The words outside ``vocab`` (read as ``<unk>``), in order, with repeats."""
    known = set(vocab)
    return [w for w in words if w not in known]


def parse_sequence(text: str, task: LastKeyword) -> tuple[list[int], list[str]]:
    """A typed sequence (``"d3 K0.1 d7"``, spaces or commas, any case) -> ``(ids, unknown tokens)``;
    the ids are only meaningful when no token is unknown."""
    index = {n.lower(): i for i, n in enumerate(task.token_names(range(task.vocab_size)))}
    parts = text.replace(",", " ").split()
    bad = list(dict.fromkeys(p for p in parts if p.lower() not in index))
    return [index[p.lower()] for p in parts if p.lower() in index], bad


def keyword_truth(task: LastKeyword, ids: torch.Tensor) -> tuple[int | None, list[int], int]:
    """``(label, deciding positions, last keyword position)`` of one sequence ``(T,)``; a sequence with no
    keyword has no label: ``(None, [], -1)``."""
    x = ids.unsqueeze(0)
    last = int(task.evidence(x)[0])
    if last < 0:
        return None, [], last
    label = int(task.keyword_class(ids[last]))
    return label, task.decisive(x, torch.tensor([label]))[0].nonzero().flatten().tolist(), last


# ---------------------------------------------------------------- are gates attention?


def token_scores(model, x: torch.Tensor, *, n_steps: int = N_STEPS,
                 wrapped: CenteredLogits | None = None) -> tuple[dict[str, np.ndarray], GradientAttributions]:
    """The four scores (method -> ``(B, T)``) of ``x`` (``(T,)`` or ``(B, T)`` ids) for the predicted
    class ``ĉ``: ``gates`` ``mean_u w[T-1, k, u]``, ``share`` ``(W_ĉ - mean_c W_c)(w[T-1, k] ⊙ r_k)``,
    ``ig`` and ``grad_input`` (captum), with captum's :class:`GradientAttributions`."""
    grads = gradient_attributions(model, x, n_steps=n_steps, wrapped=wrapped)
    x = x.unsqueeze(0) if x.dim() == 1 else x
    final = final_token_attribution(model, x.cpu())
    logit = final.logit - final.logit.mean(-1, keepdim=True)  # (B, T, C)
    target = torch.as_tensor(grads.target)
    share = logit.gather(2, target[:, None, None].expand(-1, x.shape[1], 1))[..., 0]
    scores = {"gates": final.weight.numpy(), "share": share.numpy(), "ig": grads.ig, "grad_input": grads.grad_input}
    return scores, grads


def agreement(model, sequences: Sequence[torch.Tensor], deciding: Sequence[torch.Tensor] | None = None,
              *, n_steps: int = N_STEPS) -> dict:
    """:meth:`AgreementTally.summary` of ``sequences`` (``(T_i,)`` ids each, batched by length);
    ``deciding``: optional ``(T_i,)`` bool masks of the known deciding tokens (last-keyword task)."""
    if not sequences:
        raise ValueError("no sequences to attribute")
    if deciding is not None and len(deciding) != len(sequences):
        raise ValueError(f"{len(deciding)} deciding masks for {len(sequences)} sequences")
    net = CenteredLogits(model)
    by_length: dict[int, list[int]] = {}
    for i, s in enumerate(sequences):
        by_length.setdefault(len(s), []).append(i)
    tally = AgreementTally()
    for length in sorted(by_length):
        idx = by_length[length]
        scores, grads = token_scores(model, torch.stack([sequences[i] for i in idx]), n_steps=n_steps, wrapped=net)
        mask = None if deciding is None else torch.stack([deciding[i] for i in idx]).numpy()
        tally.add(scores, grads, mask)
    return tally.summary()


def held_out_sequences(card: dict) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """The test set of a checkpoint's task: every sentence of the fixed sentiment test split (encoded
    with the card's vocabulary, unpadded), or the last-keyword trainer's test draw (``test_size``
    sequences, seed ``derived_seed(seed, "test")``) with its deciding masks. ``ValueError`` otherwise."""
    task = card.get("task")
    if task == "sentiment":
        index = {w: i for i, w in enumerate(card["vocab"])}
        return [encode(s.text, index) for s in load_sentences() if s.split == "test"], None
    if task == "keyword":
        lk = LastKeyword(**card.get("task_args", {}))
        size = int((card.get("train") or {}).get("test_size", 1000))
        x, y = lk.sample(size, derived_seed(int(card.get("seed", 0)), "test"))
        return list(x), list(lk.decisive(x, y))
    raise ValueError(f"no test set known for task {task!r} (sentiment and keyword only)")


def checkpoint_agreement(path: str | Path, *, n_steps: int = N_STEPS) -> dict:
    """:func:`agreement` of a checkpoint on its task's test set, with what identifies the checkpoint."""
    start = time.perf_counter()
    model, card = load_checkpoint(path)
    sequences, deciding = held_out_sequences(card)
    out = agreement(model, sequences, deciding, n_steps=n_steps)
    core_args = card["model"]["core_args"]
    return {"checkpoint": Path(path).name, "sha256": card.get("sha256"), "task": card.get("task"),
            "activation": core_args.get("activation", "tanh"), "hidden_size": core_args.get("hidden_size"),
            **out, "seconds": round(time.perf_counter() - start, 2)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drnn_demo.recipes.lrn_analysis",
                                     description="gate weights vs captum attributions on the shipped LRNs")
    parser.add_argument("--out", default=str(RESULTS_PATH), help="the JSON to write (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = {}
    for name in SHIPPED:
        models[name] = checkpoint_agreement(PRETRAINED_DIR / f"{name}.safetensors")
        print(f"{name}: {json.dumps(models[name]['spearman'])}")
    write_json_atomic(args.out, {"generated_by": "python -m drnn_demo.recipes.lrn_analysis", "settings": settings(),
                                 "models": models})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
