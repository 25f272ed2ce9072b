"""Training a stored data set of yours (:mod:`drnn_demo.tasks.user_data`) with any cell: the run's config.

The generic :class:`~drnn_demo.training.Trainer` trains it (run kind ``"train"``); this module only
says which core each cell choice is and fills a :class:`~drnn_demo.training.TrainConfig` dict whose
``model`` states ``readout`` and ``output_size`` from the data set, so a run's config alone tells
what it is (an LRN two-class classifier opens on the LRN gates page:
:func:`drnn_demo.tasks.user_data.opens_on_lrn_gates`).
"""

from __future__ import annotations

from ..models.common import check_choice, check_non_negative_int, check_positive_int
from ..tasks.user_data import EMBEDDING_SIZE, load_dataset

CELLS = {  # choice -> what the page shows
    "lstm": "LSTM",
    "delayed": "Delayed LSTM (delay d)",
    "bidirectional": "Bidirectional LSTM",
    "lrn": "LRN",
    "sru": "SRU",
    "asrnn": "asRNN",
}


def cell_model(cell: str, hidden_size: int, delay: int = 0, activation: str = "identity") -> dict:
    """The ``model`` entry (``core`` and ``core_args``) of a cell choice of :data:`CELLS`.

    ``delay`` applies to ``"delayed"`` only, ``activation`` (``g``) to ``"lrn"`` only; SRU has one layer."""
    check_choice("cell", cell, tuple(CELLS))
    check_positive_int("hidden_size", hidden_size)
    check_non_negative_int("delay", delay)
    if cell in ("lstm", "delayed"):
        return {"core": "delayed", "core_args": {"hidden_size": hidden_size, "delay": delay if cell == "delayed" else 0,
                                                 "cell": "lstm"}}
    if cell == "bidirectional":
        return {"core": "bidirectional", "core_args": {"hidden_sizes": [hidden_size], "cell": "lstm"}}
    if cell == "lrn":
        return {"core": "lrn", "core_args": {"hidden_size": hidden_size, "activation": activation}}
    if cell == "sru":
        return {"core": "sru", "core_args": {"hidden_size": hidden_size, "num_layers": 1}}
    return {"core": "asrnn", "core_args": {"hidden_size": hidden_size}}


def user_data_config(dataset: str, cell: str = "lstm", hidden_size: int = 32, delay: int = 0,
                     activation: str = "identity", steps: int = 500, batch_size: int = 32, lr: float = 3e-3,
                     seed: int = 0, device: str = "cpu", root: str | None = None) -> dict:
    """A :class:`~drnn_demo.training.TrainConfig` dict training ``cell`` on the stored set ``dataset``.

    Adam with a cosine decay of ``lr`` over ``steps``, validation every ``steps / 20`` steps (at least 10),
    no early stopping (the best validation weights are kept). Raises
    :class:`~drnn_demo.tasks.user_data.UserDataError` if the set is not stored or no longer valid."""
    _, info = load_dataset(dataset, root)
    model = cell_model(cell, hidden_size, delay, activation)
    model.update(input_size=EMBEDDING_SIZE, output_size=len(info.labels),
                 readout="last" if info.problem == "classification" else "steps")
    task_args = {"dataset": dataset} if root is None else {"dataset": dataset, "root": str(root)}
    return {"task": "user_data", "task_args": task_args, "model": model, "steps": steps, "batch_size": batch_size,
            "lr": lr, "lr_schedule": "cosine", "eval_every": max(10, steps // 20), "patience": 0, "seed": seed,
            "device": device}
