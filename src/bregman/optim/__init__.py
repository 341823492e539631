"""Optimizers: LinBreg, AdaBreg, ProxSGD, and one registry that also knows torch's SGD and Adam.

``create_optimizer(name, params, **hparams)`` builds any of them by name (timm-style), so the
training code and the CLI never branch on optimizer names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import torch

from bregman.optim.adabreg import AdaBreg, adabreg
from bregman.optim.linbreg import LinBreg, linbreg
from bregman.optim.proxsgd import ProxSGD, proxsgd

__all__ = ["LinBreg", "AdaBreg", "ProxSGD", "linbreg", "adabreg", "proxsgd", "OPTIMIZERS",
           "OptimizerInfo", "create_optimizer"]


@dataclass(frozen=True)
class OptimizerInfo:
    """A registry record: the class, the hyperparameters it takes, and whether it uses ``reg``."""

    name: str
    cls: type
    hparams: tuple[str, ...]
    regularized: bool
    description: str


OPTIMIZERS: dict[str, OptimizerInfo] = {
    info.name: info
    for info in (
        OptimizerInfo("sgd", torch.optim.SGD, ("lr", "momentum", "foreach"), False,
                      "torch.optim.SGD (dense baseline; J only through a loss penalty)"),
        OptimizerInfo("adam", torch.optim.Adam, ("lr", "betas", "eps", "foreach"), False,
                      "torch.optim.Adam (dense baseline; J only through a loss penalty)"),
        OptimizerInfo("adamw", torch.optim.AdamW, ("lr", "betas", "eps", "foreach"), False,
                      "torch.optim.AdamW (dense baseline; torch's default decoupled weight decay 0.01)"),
        OptimizerInfo("linbreg", LinBreg, ("lr", "delta", "momentum", "foreach"), True,
                      "linearized Bregman iterations, optional momentum (Algorithms 1, 2)"),
        OptimizerInfo("adabreg", AdaBreg, ("lr", "delta", "betas", "eps", "foreach"), True,
                      "Bregman iterations with Adam moments (Algorithm 3)"),
        OptimizerInfo("proxsgd", ProxSGD, ("lr", "foreach"), True, "proximal SGD (eq. 1.5)"),
    )
}


def create_optimizer(name: str, params: Iterable, **hparams: Any) -> torch.optim.Optimizer:
    """Build a registered optimizer; param groups may carry a ``reg`` key.

    Hyperparameters the optimizer does not take are dropped (so one config can drive every
    optimizer); for the unregularized torch optimizers the groups' ``reg`` keys are dropped too.
    """
    try:
        info = OPTIMIZERS[name.lower()]
    except KeyError:
        raise ValueError(f"Unknown optimizer {name!r}; known: {sorted(OPTIMIZERS)}") from None
    kwargs = {k: v for k, v in hparams.items() if k in info.hparams}
    if info.regularized:
        kwargs.update({k: v for k, v in hparams.items() if k == "reg"})
        return info.cls(params, **kwargs)
    groups = list(params)
    if groups and isinstance(groups[0], dict):
        groups = [{k: v for k, v in g.items() if k != "reg"} for g in groups]
    return info.cls(groups, **kwargs)
