"""A recurrent core from the registry with an optional embedding in front and a linear head on top.

This is what the tasks train: ``x -> [embedding] -> core -> linear``, batch first throughout.
"""

from __future__ import annotations

import torch
from torch import nn

from .common import MAX_OUTPUTS, MAX_VOCAB, check_choice, check_input_size, check_positive_int
from .registry import build_model

READOUTS = ("steps", "last")


class SequenceModel(nn.Module):
    r"""Per-step (or final-step) predictions from any registered recurrent core.

    .. math:: y_t = W_o\, \mathrm{core}(e(x))_t + b_o

    Args:
        core: a name in :data:`drnn_demo.models.MODELS` (``"delayed"``, ``"stacked"``, ...).
        core_args: the core's constructor keywords, without ``input_size`` and ``batch_first``.
        input_size: features per step fed to the core (the embedding size when ``vocab_size``).
        output_size: classes (logits) or regression targets per prediction.
        vocab_size: if given, inputs are token ids ``(B, L)`` embedded to ``input_size``.
        readout: ``"steps"``: one prediction per step, ``(B, L, output_size)``;
            ``"last"``: one per sequence from the last output step, ``(B, output_size)``.

    Shapes:
        - input: ``(B, L, input_size)`` floats, or ``(B, L)`` token ids with ``vocab_size``
        - output: ``(B, L, output_size)`` or ``(B, output_size)``
    """

    def __init__(
        self, core: str, core_args: dict, input_size: int, output_size: int,
        vocab_size: int | None = None, readout: str = "steps",
    ):
        super().__init__()
        check_input_size("input_size", input_size)
        check_positive_int("output_size", output_size, MAX_OUTPUTS)
        check_choice("readout", readout, READOUTS)
        self.config = dict(core=core, core_args=dict(core_args), input_size=input_size,
                           output_size=output_size, vocab_size=vocab_size, readout=readout)
        self.embedding = None
        if vocab_size is not None:
            check_positive_int("vocab_size", vocab_size, MAX_VOCAB)
            self.embedding = nn.Embedding(vocab_size, input_size)
        self.core = build_model(core, input_size=input_size, batch_first=True, **core_args)
        self.head = nn.Linear(self.core.output_size, output_size)
        self.readout = readout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.embedding is not None:
            x = self.embedding(x)
        h, _ = self.core(x)
        if self.readout == "last":
            h = h[:, -1]
        return self.head(h)
