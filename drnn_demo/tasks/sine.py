r"""Sine filtering: a non-linear function of a window that reaches ``acausal`` steps into the future.

.. math:: y_k = \sin\Big(s \sum_{j=-(c-1)}^{a} h_{j+c-1}\, x_{k+j}\Big), \qquad x_k \sim U(0, 1)

with ``c`` causal taps (the current step included), ``a`` future taps, a fixed filter
``h ~ U(0,1)^{c+a}`` and inputs outside ``0..T-1`` taken as 0 (the reference code truncates the
filter at the edges: the same thing). A model that has read ``x[0..k+d]`` at output ``k`` can be
exact iff ``d >= a``; :func:`sine_irreducible_mse` gives the floor below that.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..models.common import MAX_LENGTH, check_non_negative_int, check_positive_int
from .base import Task


def sine_filter(causal: int, acausal: int, filter_seed: int) -> torch.Tensor:
    """The filter ``h ~ U(0,1)^{causal + acausal}`` (float64), drawn from its own seed.

    ``h[c-1+j]`` multiplies ``x[k+j]``: ``h[:c]`` are the past and current taps, ``h[c:]`` the future.
    """
    check_positive_int("causal", causal)
    check_non_negative_int("acausal", acausal)
    check_non_negative_int("filter_seed", filter_seed)
    return torch.rand(causal + acausal, generator=torch.Generator().manual_seed(filter_seed), dtype=torch.float64)


def _uniform_char(beta: np.ndarray, t: float) -> complex:
    """``E[exp(i t sum_j beta_j u_j)]`` for independent ``u_j ~ U(0,1)``: a product of ``(e^{iw}-1)/(iw)``."""
    w = t * np.asarray(beta, dtype=np.float64)
    w = w[w != 0]
    return complex(np.prod((np.exp(1j * w) - 1) / (1j * w))) if w.size else 1.0 + 0j


def sine_irreducible_mse(
    delay: int, causal: int = 15, acausal: int = 5, scale: float = 0.1, length: int = 50, filter_seed: int = 0,
    per_position: bool = False,
) -> float | np.ndarray:
    r"""The least MSE any model reaches when output ``k`` has read only ``x[0..k+delay]``.

    That is :math:`E[\mathrm{Var}(y_k \mid x_{\le k+d})]`, averaged over positions ``k`` (or per
    position with ``per_position=True``). Write ``y_k = sin(A + B)`` with ``A`` the (scaled) sum
    over read inputs and ``B`` over the unread future ones; ``A`` and ``B`` are independent sums of
    scaled uniforms, so with :math:`\varphi_X(t) = E[e^{itX}]` and :math:`u = \varphi_B(1)`

    .. math::
        E[\mathrm{Var}(y \mid A)] = \tfrac12\big(1 - \mathrm{Re}\,\varphi_A(2)\varphi_B(2)\big)
            - \tfrac12\big(|u|^2 - \mathrm{Re}\,\varphi_A(2)\,u^2\big),

    and :math:`\varphi` of a sum of ``beta_j u_j`` is :math:`\prod_j (e^{i\beta_j t}-1)/(i\beta_j t)`.
    This is exact (no sampling); ``tests/test_tasks.py`` checks it against a nested Monte Carlo
    estimate. It is 0 for ``delay >= acausal``.
    """
    check_non_negative_int("delay", delay)
    check_positive_int("length", length, MAX_LENGTH)
    h = sine_filter(causal, acausal, filter_seed).numpy()
    floors = np.zeros(length)
    for k in range(length):
        # tap index i multiplies x[k + i - (c-1)]; taps outside the sequence see zeros
        offsets = np.arange(causal + acausal) - (causal - 1)
        inside = (k + offsets >= 0) & (k + offsets < length)
        read = inside & (offsets <= delay)
        unread = inside & (offsets > delay)
        if not unread.any():
            continue
        beta_a, beta_b = scale * h[read], scale * h[unread]
        phi_a2, phi_b2, u = _uniform_char(beta_a, 2.0), _uniform_char(beta_b, 2.0), _uniform_char(beta_b, 1.0)
        value = 0.5 * (1 - (phi_a2 * phi_b2).real) - 0.5 * (abs(u) ** 2 - (phi_a2 * u * u).real)
        floors[k] = max(value, 0.0)
    return floors if per_position else float(floors.mean())


# The paper's setting: the experiment and the Delayed outputs page both use it.
PAPER_ARGS = {"length": 50, "causal": 15, "acausal": 5, "scale": 0.1}


class SineFiltering(Task):
    """Regression: ``y_k = sin(scale * sum_j h_j x_{k+j})`` over ``causal`` past and ``acausal`` future taps.

    Args:
        length: ``T`` (default 50).
        causal: ``c``, taps on the past and the current step (default 15).
        acausal: ``a``, taps on the future (default 5); delay ``>= a`` is needed to be exact.
        scale: ``s`` inside the sine (default 0.1).
        filter_seed: seeds the filter ``h``, so every split (train, validation, test) shares it.

    Shapes:
        - x: ``(n, T, 1)`` float in ``[0, 1)``
        - y: ``(n, T, 1)`` float
    """

    name = "sine"
    kind = "regression"
    metric = "mse"
    higher_is_better = False

    def __init__(self, length: int = 50, causal: int = 15, acausal: int = 5, scale: float = 0.1,
                 filter_seed: int = 0):
        super().__init__()
        check_positive_int("length", length, MAX_LENGTH)
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a positive finite number, got {scale!r}")
        self.filter = sine_filter(causal, acausal, filter_seed)
        self.args = {"length": length, "causal": causal, "acausal": acausal, "scale": float(scale),
                     "filter_seed": filter_seed}
        self.length, self.causal, self.acausal, self.scale = length, causal, acausal, float(scale)
        self.filter_seed = filter_seed
        self.input_size = 1
        self.output_size = 1

    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """``y`` for inputs ``x`` of shape ``(n, T)`` or ``(n, T, 1)``; returns ``(n, T, 1)`` float32."""
        x = x.reshape(x.shape[0], -1).double()
        padded = torch.nn.functional.pad(x, (self.causal - 1, self.acausal))
        windows = padded.unfold(1, self.causal + self.acausal, 1)  # (n, T, c+a): x[k-(c-1) .. k+a]
        return torch.sin(self.scale * (windows @ self.filter)).float().unsqueeze(-1)

    def sample(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = self._generator(n, seed)
        x = torch.rand(n, self.length, generator=g, dtype=torch.float64)
        return x.float().unsqueeze(-1), self.targets(x)

    def irreducible_mse(self, delay: int, per_position: bool = False) -> float | np.ndarray:
        """:func:`sine_irreducible_mse` for this task's arguments."""
        return sine_irreducible_mse(delay, self.causal, self.acausal, self.scale, self.length, self.filter_seed,
                                    per_position=per_position)

    def best_possible(self, delay: int) -> float:
        """The MSE floor at ``delay``: :meth:`irreducible_mse`."""
        return self.irreducible_mse(delay)
