"""Recipes: each trainer of the project as hook definitions for the one loop, :func:`drnn_demo.loop.fit`.

- :mod:`~drnn_demo.recipes.sentiment`: the sentiment LRN (epochs of equal-length sentences), its
  pretrained models and the ``"lrn_sentiment"`` run kind;
- :mod:`~drnn_demo.recipes.keyword`: the last-keyword LRNs (the generic :class:`~drnn_demo.training.Trainer`);
- :mod:`~drnn_demo.recipes.memory`: the memory-task cells with their snapshots, pretrained models and
  the ``"memory"`` run kind;
- :mod:`~drnn_demo.recipes.pos`: the POS tagger (word + character batches);
- :mod:`~drnn_demo.recipes.user_data`: the run config of any cell on an uploaded data set;
- :mod:`~drnn_demo.recipes.lrn_analysis`: what the LRN gates page measures on the shipped LRNs, and
  ``python -m drnn_demo.recipes.lrn_analysis``, which regenerates ``results/attributions_agreement.json``.

The generated tasks (reversal, sine, copy, ...) need no recipe: :class:`drnn_demo.training.Trainer`
is ``fit`` with a fresh seeded batch per step.
"""

from pathlib import Path

from ..checkpoints import PRETRAINED_DIR, checkpoint_paths


def pretrained_target(out, name: str, force: bool, log) -> tuple[Path, bool]:
    """``(<out or pretrained/>/<name>.safetensors, skip)``; ``skip`` when the checkpoint exists and not ``force``
    (and then says so to ``log``)."""
    weights, _ = checkpoint_paths(Path(out or PRETRAINED_DIR) / name)
    skip = weights.exists() and not force
    if skip and log is not None:
        log(f"{weights} exists (use force=True to retrain)")
    return weights, skip
