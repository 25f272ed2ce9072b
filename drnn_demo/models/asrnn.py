"""The adaptive-saturated RNN, asRNN (Nguyen-Duy et al., 2023), and its expRNN baseline.

An orthogonal RNN whose activation can move between linear and tanh, unit direction by unit
direction: ``h_t = W_f^{-1} tanh(W_f z_t)`` with ``W_f = U_f diag(|s| + eps)``. Small ``|s|``
gives the linear orthogonal RNN (no vanishing or exploding gradients), large ``|s|`` the
saturating tanh RNN. ``W_hh`` and ``U_f`` are orthogonal by construction, as the matrix
exponential (or the Cayley map) of a skew-symmetric parameter.

The mode ``nonlinearity="modrelu"`` is the expRNN of Lezcano-Casado & Martinez-Rubio (2019):
the same orthogonal ``W_hh`` with ``h_t = modReLU(W_xh x_t + W_hh h_{t-1})``.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from .common import (
    check_choice,
    check_hidden_size,
    check_input_size,
    to_time_first,
)

NONLINEARITIES = ("asrnn", "modrelu")
PARAMETRIZATIONS = ("expm", "cayley")
INITS = ("henaff", "cayley")


def skew(raw: torch.Tensor) -> torch.Tensor:
    """The skew-symmetric matrix ``A - A^T`` from the strict upper triangle ``A`` of ``raw``."""
    upper = raw.triu(1)
    return upper - upper.transpose(-1, -2)


def orthogonal_from_skew(a: torch.Tensor, parametrization: str = "expm") -> torch.Tensor:
    """An orthogonal matrix from a skew-symmetric ``a``: ``expm(a)`` or the Cayley map ``(I + a)^{-1} (I - a)``.

    Computed in float64 and cast back, so a float32 result is orthogonal to ~1e-7 even for
    large ``a`` (float32 ``matrix_exp`` of a 128 x 128 rotation generator is off by ~1e-4).
    """
    check_choice("parametrization", parametrization, PARAMETRIZATIONS)
    wide = a.to(torch.float64)
    if parametrization == "expm":
        q = torch.linalg.matrix_exp(wide)
    else:
        eye = torch.eye(a.shape[-1], dtype=wide.dtype, device=a.device)
        q = torch.linalg.solve(eye + wide, eye - wide)
    return q.to(a.dtype)


@torch.no_grad()
def block_diagonal_skew_(raw: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Fill ``raw`` (n, n) with the upper triangle of a block-diagonal skew matrix with 2 x 2 blocks
    ``[[0, θ_i], [-θ_i, 0]]`` (``n // 2`` angles; an odd last unit gets a zero block)."""
    n = raw.shape[0]
    raw.zero_()
    idx = torch.arange(0, 2 * (n // 2), 2, device=raw.device)
    raw[idx, idx + 1] = angles.to(raw)
    return raw


@torch.no_grad()
def henaff_init_(raw: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Henaff et al. (2016): block angles ``θ ~ U(-π, π)``; ``expm`` gives random 2-D rotations."""
    angles = torch.empty(raw.shape[0] // 2).uniform_(-math.pi, math.pi, generator=generator)
    return block_diagonal_skew_(raw, angles)


@torch.no_grad()
def cayley_init_(raw: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Helfrich et al. (2018): ``θ = -sqrt((1 - cos u) / (1 + cos u))``, ``u ~ U(0, π/2)``."""
    u = torch.empty(raw.shape[0] // 2).uniform_(0.0, math.pi / 2, generator=generator)
    return block_diagonal_skew_(raw, -torch.sqrt((1 - torch.cos(u)) / (1 + torch.cos(u))))


def modrelu(z: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``modReLU(z) = sign(z) relu(|z| + b)`` (Arjovsky et al., 2016), element-wise."""
    return torch.sign(z) * torch.relu(z.abs() + bias)


class ASRNN(nn.Module):
    r"""The adaptive-saturated RNN (or, with ``nonlinearity="modrelu"``, expRNN), one layer.

    .. math::
        z_t &= W_{xh} x_t + b + W_{hh} h_{t-1}, \qquad W_{hh} = \phi(\mathrm{skew}(A_{hh})) \\
        h_t &= W_f^{-1} \tanh(W_f z_t), \qquad W_f = U_f\,\mathrm{diag}(|s| + \epsilon),
        \quad U_f = \phi(\mathrm{skew}(A_f))

    so ``W_f^{-1} = diag(1 / (|s| + eps)) U_f^T`` needs no inversion. ``φ`` is ``expm`` or the
    Cayley map, ``skew(A) = triu(A, 1) - triu(A, 1)^T``. With ``nonlinearity="modrelu"``:
    ``h_t = sign(z_t) relu(|z_t| + b_m)`` with ``z_t = W_xh x_t + W_hh h_{t-1}`` (no input bias).

    Computation: with ``y_t = tanh(W_f z_t)`` the recurrence is a plain tanh RNN,
    ``y_t = tanh(W_f W_{xh} x_t + W_f b + (W_f W_{hh} W_f^{-1}) y_{t-1})``, run by torch's fused
    RNN kernel; then ``h_t = W_f^{-1} y_t`` for all steps at once. (The tests check it against the
    step-by-step equations above.)

    Initialisation (as the reference code): ``A_hh`` by ``init`` ("henaff": block rotations with
    angles ``U(-π, π)``; "cayley"), ``A_f = 0`` (``U_f = I``), ``s ~ U(a, b)``; asRNN:
    ``W_xh`` orthogonal and ``b = 0``; expRNN: ``W_xh`` Kaiming-normal and ``b_m ~ U(-0.01, 0.01)``.
    Note that ``d|s|/ds = 0`` at ``s = 0``: with ``a = b = 0`` the saturation stays at ``eps``.

    Args:
        input_size: features per step, ``D``.
        hidden_size: ``H``.
        nonlinearity: ``"asrnn"`` (adaptive saturation) or ``"modrelu"`` (expRNN).
        parametrization: ``"expm"`` or ``"cayley"``: how ``W_hh`` and ``U_f`` come from skew matrices.
        init: ``"henaff"`` or ``"cayley"`` initialisation of ``A_hh``.
        a, b: ``s`` is initialised uniformly in ``[a, b]`` (the saturation levels ``|s| + eps``).
        eps: the floor ``ε > 0`` of the saturation levels.
        bias: learn ``b`` (asRNN only).
        batch_first: inputs and outputs are ``(B, L, *)``.

    Parameters: ``weight_ih`` ``(H, D)`` = ``W_xh``; ``bias_ih`` ``(H,)`` = ``b``; ``skew_hh``
    ``(H, H)`` = ``A_hh``; asRNN: ``skew_f`` ``(H, H)`` = ``A_f``, ``s`` ``(H,)``; expRNN:
    ``modrelu_bias`` ``(H,)``. Only the strict upper triangles of ``skew_*`` are used.

    Shapes:
        - input: ``(L, B, D)`` (``(B, L, D)`` if ``batch_first``); hx: ``(1, B, H)`` or None (zeros)
        - output: ``(L, B, H)`` (``(B, L, H)`` if ``batch_first``); h_n: ``(1, B, H)``
    """

    def __init__(
        self, input_size: int, hidden_size: int, nonlinearity: str = "asrnn", parametrization: str = "expm",
        init: str = "henaff", a: float = 0.02, b: float = 0.02, eps: float = 0.01, bias: bool = True,
        batch_first: bool = False,
    ):
        super().__init__()
        check_input_size("input_size", input_size)
        check_hidden_size("hidden_size", hidden_size)
        check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
        check_choice("parametrization", parametrization, PARAMETRIZATIONS)
        check_choice("init", init, INITS)
        for name, value in (("a", a), ("b", b), ("eps", eps)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if a > b:
            raise ValueError(f"a must be <= b (s is initialised uniformly in [a, b]), got a={a}, b={b}")
        if eps <= 0:
            raise ValueError(f"eps must be positive (it keeps W_f invertible), got {eps!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = hidden_size
        self.nonlinearity = nonlinearity
        self.parametrization = parametrization
        self.init = init
        self.a, self.b, self.eps = float(a), float(b), float(eps)
        self.batch_first = batch_first
        self.use_bias = bias and nonlinearity == "asrnn"
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.bias_ih = nn.Parameter(torch.empty(hidden_size)) if self.use_bias else None
        self.skew_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))
        if nonlinearity == "asrnn":
            self.skew_f = nn.Parameter(torch.empty(hidden_size, hidden_size))
            self.s = nn.Parameter(torch.empty(hidden_size))
        else:
            self.modrelu_bias = nn.Parameter(torch.empty(hidden_size))
        self._frozen: dict[str, torch.Tensor] | None = None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        (henaff_init_ if self.init == "henaff" else cayley_init_)(self.skew_hh)
        if self.nonlinearity == "asrnn":
            nn.init.orthogonal_(self.weight_ih)
            if self.bias_ih is not None:
                self.bias_ih.zero_()
            self.skew_f.zero_()
            self.s.uniform_(self.a, self.b)
        else:
            nn.init.kaiming_normal_(self.weight_ih, nonlinearity="relu")
            self.modrelu_bias.uniform_(-0.01, 0.01)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, nonlinearity={self.nonlinearity!r}, " \
            f"parametrization={self.parametrization!r}, init={self.init!r}"
        if self.nonlinearity == "asrnn":
            s += f", a={self.a}, b={self.b}, eps={self.eps}"
        return s

    # ------------------------------------------------------------------ effective matrices

    @property
    def weight_hh(self) -> torch.Tensor:
        """``W_hh`` ``(H, H)``, orthogonal."""
        if self._frozen is not None:
            return self._frozen["W_hh"]
        return orthogonal_from_skew(skew(self.skew_hh), self.parametrization)

    @property
    def basis_f(self) -> torch.Tensor:
        """``U_f`` ``(H, H)``, orthogonal (asRNN only)."""
        if self._frozen is not None:
            return self._frozen["U_f"]
        return orthogonal_from_skew(skew(self.skew_f), self.parametrization)

    @contextlib.contextmanager
    def frozen_weights(self):
        """Compute ``W_hh`` and ``U_f`` once for all calls inside the block (step-by-step analysis
        calls the module once per step). Gradients still reach the parameters; do not change the
        parameters inside the block."""
        frozen = {"W_hh": self.weight_hh}
        if self.nonlinearity == "asrnn":
            frozen["U_f"] = self.basis_f
        self._frozen = frozen
        try:
            yield self
        finally:
            self._frozen = None

    @property
    def saturation(self) -> torch.Tensor:
        """The saturation levels ``|s| + eps`` ``(H,)`` (asRNN only): small = linear, large = tanh."""
        return self.s.abs() + self.eps

    def matrices(self) -> dict[str, torch.Tensor]:
        """The effective matrices, detached, for analysis and plots.

        ``W_xh`` (H, D), ``b`` (H,), ``W_hh`` (H, H); asRNN also ``U_f``, ``W_f``, ``W_f_inv``
        (H, H) and ``saturation`` = ``|s| + eps`` (H,); expRNN ``modrelu_bias`` (H,).
        """
        with torch.no_grad():
            out = {
                "W_xh": self.weight_ih.detach().clone(),
                "b": self.bias_ih.detach().clone() if self.bias_ih is not None
                else self.weight_ih.new_zeros(self.hidden_size),
                "W_hh": self.weight_hh,
            }
            if self.nonlinearity == "asrnn":
                u_f, d = self.basis_f, self.saturation
                out.update(U_f=u_f, W_f=u_f * d, W_f_inv=u_f.T / d.unsqueeze(1), saturation=d.clone())
            else:
                out["modrelu_bias"] = self.modrelu_bias.detach().clone()
        return out

    # ------------------------------------------------------------------ forward

    def forward(self, x: torch.Tensor, hx: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_time_first(x, self.batch_first, self.input_size)
        batch = x.shape[1]
        if hx is None:
            hx = x.new_zeros(1, batch, self.hidden_size)
        elif tuple(hx.shape) != (1, batch, self.hidden_size):
            raise ValueError(f"hx must have shape (1, B, hidden_size) = {(1, batch, self.hidden_size)}, "
                             f"got {tuple(hx.shape)}")
        w_hh = self.weight_hh
        if self.nonlinearity == "asrnn":
            output = self._asrnn(x, hx, w_hh)
        else:
            output = self._modrelu(x, hx[0], w_hh)
        h_n = output[-1:]
        return (output.transpose(0, 1) if self.batch_first else output), h_n

    def _asrnn(self, x: torch.Tensor, hx: torch.Tensor, w_hh: torch.Tensor) -> torch.Tensor:
        u_f, d = self.basis_f, self.saturation
        w_f = u_f * d  # U_f diag(d)
        w_f_inv = u_f.T / d.unsqueeze(1)  # diag(1/d) U_f^T
        w_in = w_f @ self.weight_ih
        b_in = w_f @ self.bias_ih if self.bias_ih is not None else x.new_zeros(self.hidden_size)
        w_rec = w_f @ w_hh @ w_f_inv
        y0 = hx @ w_f.T
        params = [w_in, w_rec, b_in, torch.zeros_like(b_in)]
        y, _ = torch.rnn_tanh(x, y0, params, True, 1, 0.0, self.training, False, False)
        return y @ w_f_inv.T

    def _modrelu(self, x: torch.Tensor, h: torch.Tensor, w_hh: torch.Tensor) -> torch.Tensor:
        inputs = x @ self.weight_ih.T
        outputs = []
        for t in range(x.shape[0]):
            h = modrelu(torch.addmm(inputs[t], h, w_hh.T), self.modrelu_bias)
            outputs.append(h)
        return torch.stack(outputs)


def exprnn(**kwargs) -> ASRNN:
    """The expRNN baseline: :class:`ASRNN` with ``nonlinearity="modrelu"`` (orthogonal RNN + modReLU)."""
    return ASRNN(nonlinearity="modrelu", **kwargs)


def orthogonal_param_groups(
    model: nn.Module, lr: float, orthogonal_lr: float | None = None, include_basis_f: bool = False,
) -> list[dict]:
    """Optimizer parameter groups that give the orthogonal parameters their own learning rate.

    As the reference code does, only the skew parameter of ``W_hh`` (``*.skew_hh``) gets
    ``orthogonal_lr`` (default ``lr / 10``, the papers' ratio); ``U_f``'s (``*.skew_f``) joins it
    only with ``include_basis_f``. Works on any module that contains :class:`ASRNN` layers (a
    :class:`~drnn_demo.models.SequenceModel`, ...); with none, there is one group.
    """
    orthogonal_lr = lr / 10 if orthogonal_lr is None else orthogonal_lr
    suffixes = ("skew_hh", "skew_f") if include_basis_f else ("skew_hh",)
    special, other = [], []
    for name, p in model.named_parameters():
        (special if name.split(".")[-1] in suffixes else other).append(p)
    groups = [{"params": other, "lr": lr}]
    if special:
        groups.append({"params": special, "lr": orthogonal_lr})
    return groups


def make_optimizer(
    model: nn.Module, lr: float = 1e-3, orthogonal_lr: float | None = None, kind: str = "rmsprop",
    alpha: float = 0.9,
) -> torch.optim.Optimizer:
    """RMSprop (smoothing ``alpha``, as the reference's copy task) or Adam over
    :func:`orthogonal_param_groups`."""
    check_choice("kind", kind, ("rmsprop", "adam"))
    groups = orthogonal_param_groups(model, lr, orthogonal_lr)
    if kind == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, alpha=alpha)
    return torch.optim.Adam(groups, lr=lr)
