r"""Sparsity-promoting regularizers J with their proximal maps (PAPER.md §2).

Every regularizer is a small frozen object with three pieces of math:

* ``value(x)``: :math:`J(x)`, a differentiable tensor (so it can also be added to a loss);
* ``prox(x, t)``: :math:`\operatorname{prox}_{tJ}(x) = \arg\min_y \tfrac12\|y-x\|^2 + t\,J(y)`;
* ``subgradient(x)``: one element of :math:`\partial J(x)`, with the conventions of the authors'
  code (``sign(0) = 0`` for ℓ1, ``0`` for a zero group), so that
  :math:`\operatorname{prox}_{\delta J}(\delta(x/\delta + p)) = x` for :math:`p` = ``subgradient(x)``.

Optimizers never branch on the kind of regularizer: they call ``check(shape)`` once per tensor,
``subgradient`` once to initialise the dual variable, and ``dual_prox_(p, v, delta)`` every step
(``dual_prox_all_`` on a param group's lists), which writes
:math:`\theta = \operatorname{prox}_{\delta J}(\delta v)` into ``p`` in place.

A new regularizer is one class here plus its entry in :data:`REGULARIZERS`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

__all__ = ["Regularizer", "Null", "L1", "GroupL12", "REGULARIZERS", "get", "from_dict", "GROUPINGS", "HEAD_BLOCKS"]


#: torch's soft shrinkage; ``out=`` writes in place (``torch.nn.functional.softshrink`` is the
#: generated binding itself, so a call costs no Python frame: a step makes one per tensor)
_SOFTSHRINK = torch.nn.functional.softshrink


def _softshrink_(out: Tensor, x: Tensor, thresh: float) -> Tensor:
    r"""``out ← prox_{thresh‖·‖₁}(x)`` in one pass (``out`` may alias ``x``).

    Real x: sign(x)·max(|x| − thresh, 0) (torch's softshrink). Complex x: the ℓ1 norm is Σ|xᵢ|
    (moduli), whose prox shrinks each modulus, x·max(|x| − thresh, 0)/|x|: a group of one entry.
    NaN stays NaN (and ±inf stays ±inf for real x).
    """
    if x.is_complex():
        return torch.mul(x, _shrink_factor(x.abs(), thresh), out=out)
    return _SOFTSHRINK(x, thresh, out=out)


#: A group shorter than this many bytes (one cache line: 16 float32 or 8 float64 entries) has its
#: norm computed by :func:`_short_row_norms` (measured on 1M-entry tensors: faster than torch's norm
#: for 2 to 15 float32 entries per group, 1.8× at 9; slower from 16 on, and for float64 from 8 on).
_SHORT_GROUP_BYTES = 64
#: Entries squared per block in :func:`_short_row_norms`: 1 MiB of float32, so the squares are read
#: back from cache.
_BLOCK = 1 << 18


def _short_row_norms(x: Tensor) -> Tensor:
    r"""‖x_i‖₂ of every row of a contiguous 2-D real tensor with short rows, shape ``(rows,)``.

    ‖x_i‖₂² = Σ_j x_ij² is the product (x ⊙ x)·1: BLAS's matrix-vector product sums rows of a few
    entries (a 3×3 kernel: 9) at close to memory speed, where torch's norm over so few entries per
    row is about 2× slower (ResNet-18's conv weights). The squares are made block by block in one
    scratch buffer, so each block is summed while it is still in cache (squaring the whole tensor
    first was 1.6× slower).
    """
    rows, n = x.shape
    per = max(_BLOCK // n, 1)
    out, ones, buf = x.new_empty(rows), x.new_ones(n), x.new_empty(min(per, rows) * n)
    for i in range(0, rows, per):
        block = x[i:i + per]
        torch.mv(torch.mul(block, block, out=buf[:block.numel()].view_as(block)), ones, out=out[i:i + per])
    return out.sqrt_()


def _group_norms(x: Tensor, dims: tuple[int, ...]) -> Tensor:
    """‖x_g‖₂ for the groups that span ``dims`` of ``x``, with those dims kept (size 1).

    The one norm every GroupL12 method uses. Where the groups are short contiguous runs (the
    trailing dims of a contiguous real float CPU tensor, fewer than a cache line of entries, no
    autograd), :func:`_short_row_norms`; otherwise ``torch.linalg.vector_norm``.
    """
    n = math.prod(x.shape[d] for d in dims)
    if _short_rows(x, dims, n):
        return _short_row_norms(x.view(-1, n)).view([1 if d in dims else s for d, s in enumerate(x.shape)])
    return torch.linalg.vector_norm(x, dim=dims, keepdim=True)


def _short_rows(x: Tensor, dims: tuple[int, ...], n: int) -> bool:
    """Whether the groups of ``n`` entries over ``dims`` are the rows of ``x.view(-1, n)``, shorter
    than a cache line, in a tensor :func:`_short_row_norms` can take (real float32/float64 on the CPU,
    not being traced or differentiated: it writes through ``out=``)."""
    return (1 < n and n * x.element_size() < _SHORT_GROUP_BYTES and x.numel() > 0
            and dims == tuple(range(x.ndim - len(dims), x.ndim)) and x.is_contiguous() and x.is_cpu
            and x.dtype in (torch.float32, torch.float64)
            and not (x.requires_grad and torch.is_grad_enabled()) and not torch.compiler.is_compiling())


def _shrink_factor(norm: Tensor, thresh: float) -> Tensor:
    """max(‖x_g‖ − thresh, 0)/‖x_g‖ from the group norms (0 for zero groups; NaN stays NaN), in place
    on ``norm`` (a temporary)."""
    shrunk = (norm - thresh).clamp_min_(0.0)
    return shrunk.div_(norm.clamp_min_(torch.finfo(norm.dtype).tiny))


@dataclass(frozen=True)
class Regularizer:
    """Base class: the convex, proper, lsc functional J of PAPER.md §1 (J = 0 here)."""

    kind: ClassVar[str] = "base"

    # -- the math --------------------------------------------------------------------------
    def value(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def prox(self, x: Tensor, t: float) -> Tensor:
        raise NotImplementedError

    def subgradient(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    # -- what optimizers call --------------------------------------------------------------
    def check(self, shape: torch.Size, name: str = "parameter") -> None:
        """Raise ``ValueError`` if J is not defined on tensors of this shape."""

    def prox_(self, x: Tensor, t: float) -> Tensor:
        """In-place ``x ← prox_{tJ}(x)``."""
        return x.copy_(self.prox(x, t))

    def dual_prox_(self, p: Tensor, v: Tensor, delta: float) -> Tensor:
        r"""In-place ``p ← prox_{δJ}(δ v)``: the primal iterate θ from the dual variable v (eq. 2.9)."""
        return p.copy_(self.prox(v * delta, delta))

    def dual_prox_all_(self, params: list[Tensor], duals: list[Tensor], delta: float) -> None:
        """:meth:`dual_prox_` for every pair of the lists, last pair first: an optimizer's update has
        just walked them forwards, so the last tensors' v are still in cache (measured: ResNet-18's
        LinBreg step with conv-kernel groups 1.77× → 1.60× SGD's)."""
        for p, v in zip(reversed(params), reversed(duals)):
            self.dual_prox_(p, v, delta)

    # -- (de)serialisation: plain values only, so state dicts load with weights_only=True ----
    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class Null(Regularizer):
    """J = 0. LinBreg then is SGD with learning rate δτ, AdaBreg (δ = 1) is Adam."""

    kind: ClassVar[str] = "none"

    def value(self, x: Tensor) -> Tensor:
        return x.new_zeros(())

    def prox(self, x: Tensor, t: float) -> Tensor:
        return x.clone()

    def prox_(self, x: Tensor, t: float) -> Tensor:
        return x

    def subgradient(self, x: Tensor) -> Tensor:
        return torch.zeros_like(x)

    def dual_prox_(self, p: Tensor, v: Tensor, delta: float) -> Tensor:
        return p.copy_(v) if delta == 1.0 else torch.mul(v, delta, out=p)

    def dual_prox_all_(self, params: list[Tensor], duals: list[Tensor], delta: float) -> None:
        if delta == 1.0:
            torch._foreach_copy_(params, duals)  # (one call for all: biases and norm weights are many and small)
        else:
            super().dual_prox_all_(params, duals, delta)


def _check_lam(lam: float) -> None:
    if not isinstance(lam, (int, float)) or isinstance(lam, bool) or not math.isfinite(lam) or lam < 0:
        raise ValueError(f"Invalid regularization strength lam: {lam!r} (must be a finite number >= 0)")


@dataclass(frozen=True)
class L1(Regularizer):
    r"""J(θ) = λ‖θ‖₁ (eq. 1.1).

    prox_{tJ}(x) = sign(x)·max(|x| − tλ, 0) (soft shrinkage, eq. 1.3); ∂J(x) ∋ λ·sign(x).
    For complex x, ‖x‖₁ = Σ|xᵢ| (moduli): prox_{tJ}(x) = x·max(1 − tλ/|x|, 0), ∂J(x) ∋ λx/|x|.
    With J 1-homogeneous, prox_{δJ}(δv) = δ·shrink(v; λ): θᵢ ≠ 0 ⇔ |vᵢ| > λ, and δ scales
    magnitudes but never the support.
    """

    lam: float
    kind: ClassVar[str] = "l1"

    def __post_init__(self) -> None:
        _check_lam(self.lam)

    def value(self, x: Tensor) -> Tensor:
        return self.lam * x.abs().sum()

    def prox(self, x: Tensor, t: float) -> Tensor:
        return _softshrink_(torch.empty_like(x), x, t * self.lam)

    def prox_(self, x: Tensor, t: float) -> Tensor:
        return _softshrink_(x, x, t * self.lam)

    def subgradient(self, x: Tensor) -> Tensor:
        return self.lam * torch.sgn(x)  # sign(x), and x/|x| for complex x

    def dual_prox_(self, p: Tensor, v: Tensor, delta: float) -> Tensor:
        _softshrink_(p, v, self.lam)
        return p if delta == 1.0 else p.mul_(delta)


#: How a tensor is cut into groups: name → (allowed ndims, the dims one group spans). Reducing
#: over dims (rather than reshaping) keeps every op a view, so channels_last weights work in place.
#: The head groupings act on a view that cuts one dim into blocks of ``head_dim`` (see
#: :data:`HEAD_BLOCKS`); their dims refer to that 3-D view.
GROUPINGS: dict[str, tuple[tuple[int, ...], Any]] = {
    "rows": ((2,), lambda nd: (1,)),  # each row of a Linear weight: the incoming weights of a neuron
    "columns": ((2,), lambda nd: (0,)),  # each column: the outgoing weights of one input
    "kernels": ((3, 4, 5), lambda nd: tuple(range(2, nd))),  # each kernel K_{i,j} of a Conv1d/2d/3d weight
    "filters": ((3, 4, 5), lambda nd: tuple(range(1, nd))),  # each slice w[i] of a conv weight
    "heads": ((2,), lambda nd: (1, 2)),  # each block of head_dim rows: one head's Q, K or V projection
    "head_inputs": ((2,), lambda nd: (0, 2)),  # each block of head_dim columns: one head's input to out_proj
}

#: grouping → the dim of a 2-D weight that is cut into blocks of ``head_dim``
HEAD_BLOCKS: dict[str, int] = {"heads": 0, "head_inputs": 1}


@dataclass(frozen=True)
class GroupL12(Regularizer):
    r"""Group ℓ1,2: J(θ) = λ Σ_g √n_g ‖θ_g‖₂ (eqs. 1.2, 1.14; weights after Scardapane et al. 2017).

    ``groups`` picks the groups g: ``"rows"`` (2-D, n_g = fan-in: few active neurons),
    ``"columns"`` (2-D), ``"kernels"`` (3-, 4- or 5-D conv, n_g = kernel size: few active
    kernels), ``"filters"`` (conv, one group per slice ``w[i]``: an output channel, or an input
    channel of a transposed conv), ``"heads"`` (2-D, one group per block of ``head_dim``
    consecutive rows: a head's rows of a Q/K/V projection, so an ``in_proj_weight`` of
    3E × E with H heads has 3H groups) and ``"head_inputs"`` (2-D, one group per block of
    ``head_dim`` consecutive columns: the weights of ``out_proj`` that read one head).
    ``head_dim`` is needed by the head groupings only; :func:`bregman.params.param_groups` sets
    it from the ``nn.MultiheadAttention`` module.

    prox_{tJ}(x)_g = x_g · max(1 − tλ√n_g / ‖x_g‖₂, 0) (zero groups stay zero);
    ∂J(x)_g ∋ λ√n_g · x_g/‖x_g‖₂ (0 for a zero group). Support rule: θ_g ≠ 0 ⇔ ‖v_g‖₂ > λ√n_g.
    """

    lam: float
    groups: str = "rows"
    head_dim: int | None = None
    kind: ClassVar[str] = "group_l12"

    def __post_init__(self) -> None:
        _check_lam(self.lam)
        if self.groups not in GROUPINGS:
            raise ValueError(f"Invalid groups: {self.groups!r}; choose one of {sorted(GROUPINGS)}")
        if self.head_dim is not None and (self.groups not in HEAD_BLOCKS or not isinstance(self.head_dim, int)
                                          or isinstance(self.head_dim, bool) or self.head_dim < 1):
            raise ValueError(f"Invalid head_dim: {self.head_dim!r} (an int >= 1, only for groups "
                             f"{sorted(HEAD_BLOCKS)})")

    def check(self, shape: torch.Size, name: str = "parameter") -> None:
        ndims, _ = GROUPINGS[self.groups]
        if len(shape) not in ndims:
            want = " or ".join(f"{d}-D" for d in ndims)
            raise ValueError(
                f"GroupL12(groups={self.groups!r}) needs a {want} tensor, but {name} has shape "
                f"{tuple(shape)}; put this parameter in a param group with a regularizer that fits "
                f"it (e.g. L1, or GroupL12 with groups='rows' for Linear / 'kernels' for Conv weights)"
            )
        if self.groups in HEAD_BLOCKS:
            dim = HEAD_BLOCKS[self.groups]
            if self.head_dim is None or shape[dim] % self.head_dim:
                raise ValueError(
                    f"GroupL12(groups={self.groups!r}, head_dim={self.head_dim!r}) cuts dim {dim} of {name} "
                    f"(shape {tuple(shape)}) into blocks of head_dim entries; give the head_dim that divides "
                    f"it (bregman.params.param_groups sets it from the nn.MultiheadAttention module)")

    def _view(self, x: Tensor) -> Tensor:
        """``x`` itself, or for the head groupings a 3-D view whose middle or last dim is one head's block."""
        self.check(x.shape)
        dim = HEAD_BLOCKS.get(self.groups)
        return x if dim is None else x.unflatten(dim, (-1, self.head_dim))

    def _dims(self, x: Tensor) -> tuple[tuple[int, ...], float]:
        """The reduced dims of one group (of ``x``'s :meth:`_view`, where that is not ``x``) and √n_g."""
        xv = self._view(x)
        dims = GROUPINGS[self.groups][1](xv.ndim)
        return dims, math.sqrt(math.prod(xv.shape[d] for d in dims))

    def _scale(self, x: Tensor, thresh: float) -> Tensor:
        """Per-group factor max(‖x_g‖ − thresh·√n_g, 0)/‖x_g‖ (0 for zero groups), broadcastable
        to ``x``'s :meth:`_view`."""
        dims, sqrt_n = self._dims(x)
        return _shrink_factor(_group_norms(self._view(x), dims), thresh * sqrt_n)

    def value(self, x: Tensor) -> Tensor:
        dims, sqrt_n = self._dims(x)
        return self.lam * sqrt_n * _group_norms(self._view(x), dims).sum()

    def prox(self, x: Tensor, t: float) -> Tensor:
        return (self._view(x) * self._scale(x, t * self.lam)).reshape(x.shape)

    def prox_(self, x: Tensor, t: float) -> Tensor:
        self._view(x).mul_(self._scale(x, t * self.lam))  # the view writes x
        return x

    def subgradient(self, x: Tensor) -> Tensor:
        dims, sqrt_n = self._dims(x)
        xv = self._view(x)
        norm = _group_norms(xv, dims)
        # x_g/‖x_g‖ first: λ√n_g/tiny would overflow to inf once λ√n_g > ~4 (float32), and 0·inf is NaN
        return (xv / norm.clamp_min(torch.finfo(norm.dtype).tiny)).mul_(self.lam * sqrt_n).reshape(x.shape)

    def dual_prox_(self, p: Tensor, v: Tensor, delta: float) -> Tensor:
        scale = self._scale(v, self.lam)
        if delta != 1.0:
            scale.mul_(delta)
        torch.mul(self._view(v), scale, out=self._view(p))
        return p


#: One registry of regularizer kinds: name → constructor ``f(lam) -> Regularizer``.
REGULARIZERS: dict[str, Any] = {
    "none": lambda lam=0.0: Null(),
    "l1": L1,
    **{g: (lambda lam, _g=g: GroupL12(lam, _g)) for g in GROUPINGS},
}


def get(name: str, lam: float = 0.0) -> Regularizer:
    """Build a regularizer by registry name, e.g. ``get("l1", 0.1)``, ``get("kernels", 0.1)``."""
    try:
        factory = REGULARIZERS[name]
    except KeyError:
        raise ValueError(f"Unknown regularizer {name!r}; known: {sorted(REGULARIZERS)}") from None
    return factory(lam)


_KINDS = {cls.kind: cls for cls in (Null, L1, GroupL12)}


def from_dict(d: dict[str, Any]) -> Regularizer:
    """Inverse of :meth:`Regularizer.to_dict` (used when loading optimizer state dicts)."""
    d = dict(d)
    kind = d.pop("kind", None)
    if kind not in _KINDS:
        raise ValueError(f"Unknown regularizer kind {kind!r} in state dict; known: {sorted(_KINDS)}")
    return _KINDS[kind](**d)
