r"""Linear layers that compute only on their weight's row support (exact, for row-sparse nets).

A net trained with row sparsity (eq. 1.14; the denoising MLP of Sec. 4.6, which starts from 1 % of
the rows) keeps most rows :math:`W_o` of each weight exactly zero: those neurons output their bias
only. Let :math:`O` be the rows with a non-zero entry. Then, for :math:`y = x W^\top + b`,

.. math::
    y_{:,o} = x W_o^\top + b_o \quad (o\in O), \qquad y_{:,o} = b_o \quad (o\notin O),
    \qquad \frac{\partial L}{\partial x} = \Big(\frac{\partial L}{\partial y}\Big)_{:,O} W_O,

so the forward pass and the input gradient need only :math:`W_O`: a fraction :math:`|O|/C_{out}`
of the work. The weight gradient :math:`\partial L/\partial W = (\partial L/\partial y)^\top x`
stays dense on purpose: LinBreg and AdaBreg accumulate it for the zero rows too (the dual
variable :math:`v` is how a neuron comes back), so it is computed in full.

For finite inputs the results equal ``F.linear``'s up to the order of floating-point summation.
Where more than ``max_fraction`` of the rows are non-zero the dense ``F.linear`` runs unchanged.
With entry-wise sparsity almost every row keeps a non-zero (at 1 % density, all but 0.99⁷⁸⁴ ≈
0.04 % of the rows of a 784-input layer), so only a net sparse by rows gains; ``bregman train``
builds these layers on CPU when the linear weights are regularized or initialized by rows
(``Config.support_linear``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SupportLinear", "support_linear", "MAX_FRACTION"]

#: use the row subset only when it has at most this fraction of the rows (784×784 at batch 128,
#: forward + backward, one thread: 0.66× the dense time at 1 % of the rows, 0.69× at 10 %, 1.0× at 50 %)
MAX_FRACTION = 0.25


class _SupportLinear(torch.autograd.Function):
    """``x W[rows]ᵀ + b[rows]`` scattered into the bias; dense weight gradient."""

    @staticmethod
    def forward(ctx, x, weight, bias, rows):
        w_rows = weight.detach().index_select(0, rows)
        if bias is None:
            y = x.new_zeros((x.shape[0], weight.shape[0]))
            y.index_copy_(1, rows, x @ w_rows.T)
        else:
            b = bias.detach()
            y = b.expand(x.shape[0], -1).clone()
            y.index_copy_(1, rows, torch.addmm(b.index_select(0, rows), x, w_rows.T))
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x, w_rows, rows)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, w_rows, rows = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        dx = dy.index_select(1, rows) @ w_rows if need_x else None
        dw = dy.T @ x if need_w else None  # dense: the optimizer needs the gradient of the zero rows too
        db = dy.sum(0) if need_b and ctx.has_bias else None
        return dx, dw, db, None


def support_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                   max_fraction: float = MAX_FRACTION) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` for a 2-D ``x``, computed on the non-zero rows of ``weight``;
    densely when more than ``max_fraction`` of the rows are non-zero (or ``x`` is not 2-D).
    Differentiable in ``x``, ``weight``, ``bias``."""
    w = weight.detach()
    limit = max_fraction * w.shape[0]
    # Dense weights (SGD's, Adam's) are decided on the first m rows alone, with one fast vectorized
    # pass: if all m > limit of them have a non-zero norm, more than `limit` rows are non-zero, and
    # F.linear runs. Exact: a non-zero norm proves a non-zero row (not conversely: squares of tiny
    # entries underflow; such rows go on to the exact support below). A NaN norm counts as non-zero.
    m = int(limit) + 1
    if x.dim() != 2 or (m <= w.shape[0] and bool(torch.linalg.vector_norm(w[:m], dim=1).all())):
        return F.linear(x, weight, bias)
    # the exact row support: a row is zero where its max and min are (two vectorized reductions,
    # 3× faster than ne(0).any(1); a NaN row counts as non-zero and spreads as in F.linear)
    rows = ((w.amax(1) != 0) | (w.amin(1) != 0)).nonzero().flatten()
    if rows.numel() > limit:
        return F.linear(x, weight, bias)
    return _SupportLinear.apply(x, weight, bias, rows)


class SupportLinear(nn.Linear):
    """``nn.Linear`` that runs :func:`support_linear`: the forward pass and the input gradient on
    the weight's non-zero rows only. Same parameters, same ``state_dict``."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return support_linear(input, self.weight, self.bias)
