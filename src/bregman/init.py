r"""Sparse initialization (PAPER.md §3, Sec. 4.1 of the paper).

A weight is :math:`W = \tilde W \odot M` with a Bernoulli(r) mask M (one coin per entry, per row
or per conv kernel) and :math:`\tilde W \sim \mathcal N(0, \alpha/r)`, so that
:math:`\operatorname{Var}[W] = r\operatorname{Var}[\tilde W] = \alpha` keeps the variance of the
dense rule (eqs. 4.2–4.5). α is He's :math:`2/n_{in}` (default, ReLU) or Glorot's
:math:`2/(n_{in}+n_{out})`. Biases are dense: positive uniform :math:`U(0, s/\sqrt{n_{in}})` for
ReLU networks as the paper recommends (dead neurons stay distinguishable), or symmetric.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from bregman.params import classify

__all__ = ["variance", "mask", "sparse_", "bias_", "sparse_init_", "MASK_GROUPS", "SCHEMES"]


def _fans(shape: torch.Size) -> tuple[int, int]:
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    fan_in = shape[1] * receptive if len(shape) > 1 else shape[0]
    return fan_in, shape[0] * receptive


#: α(n_in, n_out): the variance the dense rule would use.
SCHEMES = {
    "he": lambda fan_in, fan_out: 2.0 / fan_in,
    "glorot": lambda fan_in, fan_out: 2.0 / (fan_in + fan_out),
}

#: Mask units: name → shape of one coin array for a weight of the given shape (broadcast to it).
MASK_GROUPS = {
    "entries": lambda shape: tuple(shape),
    "rows": lambda shape: (shape[0],) + (1,) * (len(shape) - 1),
    "kernels": lambda shape: tuple(shape[:2]) + (1,) * (len(shape) - 2),
}


def variance(shape: torch.Size, scheme: str = "he") -> float:
    """α of the dense initialization for a weight of this shape."""
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown init scheme {scheme!r}; known: {sorted(SCHEMES)}")
    return SCHEMES[scheme](*_fans(shape))


def _check_density(density: float) -> None:
    if not isinstance(density, (int, float)) or not 0.0 < density <= 1.0:
        raise ValueError(f"Invalid density: {density!r} (the fraction r of non-zeros must be in (0, 1])")


def _check_scale(name: str, scale: float | None) -> None:
    """A weight scale of 0 (all zeros: nothing ever trains) or NaN/inf is a mistake, never a choice."""
    if scale is not None and (not isinstance(scale, (int, float)) or isinstance(scale, bool)
                              or not math.isfinite(scale) or scale <= 0):
        raise ValueError(f"Invalid {name}: {scale!r} (must be a finite number > 0, or None for 1/√r)")


def mask(shape: torch.Size, density: float, groups: str = "entries", *, exact: bool = False,
         generator: torch.Generator | None = None, device=None) -> Tensor:
    """A {0, 1} mask, broadcastable to ``shape``: Bernoulli(r) per unit, or exactly round(r·units)."""
    _check_density(density)
    if groups not in MASK_GROUPS:
        raise ValueError(f"Unknown mask groups {groups!r}; known: {sorted(MASK_GROUPS)}")
    if groups == "kernels" and len(shape) < 3:
        raise ValueError(f"mask groups 'kernels' need a conv weight (>= 3-D), got shape {tuple(shape)}")
    unit_shape = MASK_GROUPS[groups](shape)
    n = math.prod(unit_shape)
    if exact:
        keep = torch.randperm(n, generator=generator, device=device)[: round(density * n)]
        m = torch.zeros(n, device=device)
        m[keep] = 1.0
        return m.reshape(unit_shape)
    return torch.bernoulli(torch.full(unit_shape, float(density), device=device), generator=generator)


@torch.no_grad()
def sparse_(tensor: Tensor, density: float, *, groups: str = "entries", scheme: str = "he",
            scale: float | None = None, exact: bool = False, generator: torch.Generator | None = None) -> Tensor:
    r"""Fill ``tensor`` in place with a sparse weight :math:`\tilde W \odot M`.

    Args:
        density: r, the expected (or, with ``exact``, realized) fraction of non-zero units.
        groups: mask unit: ``"entries"``, ``"rows"`` (neurons) or ``"kernels"`` (conv kernels).
        scheme: α: ``"he"`` (2/fan_in) or ``"glorot"`` (2/(fan_in+fan_out)).
        scale: std multiplier on √α; default 1/√r (the paper's variance rule; the authors' code
            used 7 for the MLP, 10 for the ConvNet, 5 for ResNet and autoencoder).
        exact: keep exactly round(r·units) units instead of Bernoulli coins.
    """
    _check_density(density)
    _check_scale("scale", scale)
    std = math.sqrt(variance(tensor.shape, scheme)) * (1.0 / math.sqrt(density) if scale is None else scale)
    values = torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype, device=tensor.device) * std
    if density < 1.0:
        values *= mask(tensor.shape, density, groups, exact=exact, generator=generator, device=tensor.device)
    return tensor.copy_(values)


@torch.no_grad()
def bias_(bias: Tensor, fan_in: int, *, mode: str = "positive", scale: float = 1.0,
          generator: torch.Generator | None = None) -> Tensor:
    """Dense bias: ``positive`` U(0, s/√fan_in) (ReLU nets), ``symmetric`` U(−s/√fan_in, s/√fan_in), or ``zero``."""
    bound = scale / math.sqrt(fan_in)
    low = {"positive": 0.0, "symmetric": -bound, "zero": 0.0}.get(mode)
    if low is None:
        raise ValueError(f"Unknown bias mode {mode!r}; known: ['positive', 'symmetric', 'zero']")
    u = torch.rand(bias.shape, generator=generator, dtype=bias.dtype, device=bias.device)
    return bias.copy_(low + (bound - low) * u if mode != "zero" else torch.zeros_like(bias))


#: sparse_init_'s per-kind options: a mask unit of MASK_GROUPS, "dense" (He/Glorot, unmasked) or
#: "keep" (left as the module initialized it)
_LAYER_OPTIONS = (*MASK_GROUPS, "dense", "keep")


@torch.no_grad()
def sparse_init_(model: nn.Module, density: float, *, linear: str = "entries", conv: str = "kernels",
                 attention: str | None = None, recurrent: str | None = None, embedding: str = "keep",
                 scheme: str = "he", weight_scale: float | None = None, bias: str = "positive",
                 bias_scale: float = 1.0, exact: bool = False,
                 generator: torch.Generator | None = None) -> nn.Module:
    """Sparse-initialize every weight of ``model`` in place (PAPER.md §3), by the kinds of
    :mod:`bregman.params`.

    ``linear`` / ``conv`` / ``attention`` / ``recurrent`` / ``embedding`` choose per kind the mask
    unit (``entries``, ``rows``, ``kernels``), ``"dense"`` for an unmasked He/Glorot init (e.g.
    ResNet's last layer in the authors' code) or ``"keep"`` to leave the module's own init;
    ``attention`` and ``recurrent`` default to ``linear``'s choice, embeddings are kept unless
    asked. A weight's bias (``bias``, ``in_proj_bias``, ``bias_ih_l0``...) is re-initialized with it
    (``bias`` mode, scale ``bias_scale``/√fan_in). ``density = 1`` is the standard dense init.
    Normalization layers and ``unknown`` parameters (see :func:`bregman.params.describe`) are untouched.

    Raises:
        ValueError: ``density`` outside (0, 1], ``weight_scale`` 0, negative or not finite, or an
            unknown option.
    """
    _check_density(density)
    _check_scale("weight_scale", weight_scale)
    if not isinstance(bias_scale, (int, float)) or not math.isfinite(bias_scale) or bias_scale < 0:
        raise ValueError(f"Invalid bias_scale: {bias_scale!r} (must be a finite number >= 0)")
    choice = {"linear": linear, "conv": conv, "attention": linear if attention is None else attention,
              "recurrent": linear if recurrent is None else recurrent, "embedding": embedding, "unknown": "keep"}
    for kind, c in choice.items():
        if c not in _LAYER_OPTIONS:
            raise ValueError(f"Invalid {kind} init {c!r}; choose one of {list(_LAYER_OPTIONS)}")
    params = dict(model.named_parameters(remove_duplicate=False))
    for info in classify(model):
        groups = choice.get(info.kind, "keep")
        if groups == "keep" or info.param.numel() == 0:  # an empty layer has nothing to draw (and fan_in 0)
            continue
        r = 1.0 if groups == "dense" else density
        sparse_(info.param, r, groups="entries" if groups == "dense" else groups, scheme=scheme,
                scale=weight_scale if r < 1.0 else None, exact=exact, generator=generator)
        if info.bias is not None:
            bias_(params[info.bias], _fans(info.param.shape)[0], mode=bias, scale=bias_scale, generator=generator)
    return model
