"""Param groups from a model by one structural rule (nanoGPT/timm style).

Weights of ``Linear`` layers get the ``linear`` regularizer, weights of ``Conv*d`` layers the
``conv`` regularizer; everything else (biases, normalization parameters, embeddings…) gets
``Null``. Every trainable parameter lands in exactly one group; groups carry a ``name``.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from bregman.regularizers import Null, Regularizer

__all__ = ["param_groups", "LINEAR_TYPES", "CONV_TYPES"]

LINEAR_TYPES: tuple[type, ...] = (nn.Linear,)
CONV_TYPES: tuple[type, ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _kind(module: nn.Module, pname: str) -> str:
    if pname == "weight" and isinstance(module, LINEAR_TYPES):
        return "linear"
    if pname == "weight" and isinstance(module, CONV_TYPES):
        return "conv"
    return "other"


def param_groups(model: nn.Module, *, linear: Regularizer | None = None, conv: Regularizer | None = None,
                 **group_options: Any) -> list[dict[str, Any]]:
    """Split ``model``'s parameters into ``linear`` / ``conv`` / ``other`` groups.

    Args:
        linear: J for Linear weights (None = unregularized).
        conv: J for Conv weights (None = unregularized).
        group_options: extra keys for every group (e.g. ``lr``).

    Returns a list of param-group dicts with keys ``params``, ``param_names``, ``reg``, ``name``;
    empty groups are left out. Shared parameters are counted once.
    """
    regs = {"linear": linear or Null(), "conv": conv or Null(), "other": Null()}
    groups: dict[str, dict[str, Any]] = {
        k: {"name": k, "params": [], "param_names": [], "reg": r, **group_options} for k, r in regs.items()
    }
    seen: set[int] = set()
    for mname, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            g = groups[_kind(module, pname)]
            g["params"].append(p)
            g["param_names"].append(f"{mname}.{pname}" if mname else pname)
    return [g for g in groups.values() if g["params"]]
