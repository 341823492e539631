r"""Sparsity measures of PAPER.md §4.0, as pure functions returning plain numbers.

*density* = fraction of non-zero entries; *sparsity* = 1 − density. The paper's measures are
densities:

* :math:`N_{linear} = \sum_l \|W_l\|_0 / \sum_l n_l n_{l-1}` over Linear weights;
* :math:`N_{conv} = \sum_l \#\{K_{i,j} \neq 0\} / \sum_l c_l c_{l-1}`: the fraction of non-zero
  conv kernels;
* :math:`N_{total}`: the non-zero fraction of all weights (the paper writes "N_conv + N_linear";
  as a fraction of weights this is the only reading that is a percentage). For the paper's
  models, all conv + linear weights; for any model, every weight that :mod:`bregman.params`
  classifies (attention projections, recurrent weights, embeddings and unknown matrices too), so
  that no dense matrix hides from it;
* active neurons of a Linear layer: its non-zero rows (neurons with any incoming weight).

Biases and normalization parameters are never counted. An empty tensor has density 0 (it has
no non-zero entry) and adds nothing to any aggregate; a measure over no entries at all is ``None``.
"""
from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import Tensor, nn

from bregman import params

__all__ = ["density", "sparsity", "weights", "n_total", "n_linear", "n_conv", "n_kinds", "active_neurons",
           "l1_norm", "sparsity_report"]


def density(t: Tensor) -> float:
    """Fraction of non-zero entries of ``t`` (0.0 for an empty tensor)."""
    return torch.count_nonzero(t).item() / max(t.numel(), 1)


def sparsity(t: Tensor) -> float:
    """1 − density(t)."""
    return 1.0 - density(t)


def weights(model: nn.Module, kind: str | None = None) -> Iterator[tuple[str, str, Tensor]]:
    """(name, kind, weight) for every weight of ``model`` (:func:`bregman.params.weights`), or
    those of one ``kind`` (``'linear'``, ``'conv'``, ``'attention'``...)."""
    for info in params.weights(model, kind):
        yield info.name, info.kind, info.param.detach()


def _ratio(num: list[Tensor], den: int) -> float | None:
    return torch.stack(num).sum().item() / den if den else None


def _entries(ws: list[Tensor]) -> float | None:
    return _ratio([torch.count_nonzero(w) for w in ws], sum(w.numel() for w in ws)) if ws else None


def n_linear(model: nn.Module) -> float | None:
    return _entries([w for _, _, w in weights(model, "linear")])


def _nonzero_kernels(w: Tensor) -> Tensor:
    return torch.count_nonzero(w.flatten(2).ne(0).any(dim=2)) if w.ndim > 2 else torch.count_nonzero(w)


def n_conv(model: nn.Module) -> float | None:
    ws = [w for _, _, w in weights(model, "conv")]
    return _ratio([_nonzero_kernels(w) for w in ws], sum(w.shape[0] * w.shape[1] for w in ws)) if ws else None


def n_total(model: nn.Module) -> float | None:
    return _entries([w for _, _, w in weights(model)])


def n_kinds(model: nn.Module) -> dict[str, float | None]:
    """The non-zero fraction of the entries of each kind of weight present in ``model``."""
    by: dict[str, list[Tensor]] = {}
    for _, kind, w in weights(model):
        by.setdefault(kind, []).append(w)
    return {kind: _entries(ws) for kind, ws in by.items()}


def active_neurons(model: nn.Module) -> dict[str, int]:
    """Non-zero rows (output neurons with any non-zero incoming weight) per Linear layer."""
    ws = list(weights(model, "linear"))
    if not ws:
        return {}
    counts = torch.stack([torch.count_nonzero(w.flatten(1).ne(0).any(dim=1)) for _, _, w in ws]).tolist()
    return {name: int(c) for (name, _, _), c in zip(ws, counts)}


def l1_norm(model: nn.Module) -> float:
    """Σ |W| over all weights (the ℓ1 panel of the paper's Fig. 2: conv and linear weights)."""
    ws = [w for _, _, w in weights(model)]
    return torch.stack([w.abs().sum() for w in ws]).sum().item() if ws else 0.0


@torch.no_grad()
def sparsity_report(model: nn.Module) -> dict[str, Any]:
    """All measures at once, keyed as in metrics.jsonl: N_total, N_linear, N_conv, l1_norm,
    active_neurons {layer: int}, and per-weight densities ``layers`` {weight name: float}
    (per kind: :func:`n_kinds`)."""
    return {
        "N_total": n_total(model),
        "N_linear": n_linear(model),
        "N_conv": n_conv(model),
        "l1_norm": l1_norm(model),
        "active_neurons": active_neurons(model),
        "layers": {name: density(w) for name, _, w in weights(model)},
    }
