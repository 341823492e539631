"""ProxSGD: proximal stochastic gradient descent, the paper's baseline (PAPER.md §1.5, eq. 1.5)."""
from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor

from bregman.optim._base import RegularizedOptimizer, check_lr, group_by_device_and_dtype
from bregman.regularizers import Regularizer

__all__ = ["ProxSGD", "proxsgd"]


class ProxSGD(RegularizedOptimizer):
    r"""Proximal SGD: :math:`\theta_{k+1} = \operatorname{prox}_{\tau J}(\theta_k - \tau\nabla L(\theta_k; B_k))`.

    No dual variable, τ (not δ) inside the prox. From a sparse start it densifies first and
    sparsifies later; accuracy and sparsity are not monotone (the paper's contrast to LinBreg).

    Args:
        params: parameters or param groups; each group may set ``lr`` and ``reg``.
        lr: τ. reg: J (``None`` = Null, i.e. plain SGD). foreach: multi-tensor path (default: yes).
    """

    _checks = {"lr": check_lr}

    def __init__(self, params: Iterable, lr: float, reg: Regularizer | None = None, *,
                 foreach: bool | None = None) -> None:
        super().__init__(params, dict(lr=lr, reg=reg, foreach=foreach))

    @torch.no_grad()
    def step(self, closure=None):
        """One ProxSGD step on every parameter that has a gradient; returns the closure's loss."""
        loss = self._closure_loss(closure)
        for group in self.param_groups:
            params, grads = [], []
            for i, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                if not self.state[p]:
                    group["reg"].check(p.shape, self._param_name(group, i, p))
                    self.state[p]["checked"] = True
                grads.append(self._grad_of(p))
                params.append(p)
            if params:
                proxsgd(params, grads, lr=group["lr"], reg=group["reg"], foreach=self._use_foreach(group))
        return loss


def proxsgd(params: list[Tensor], grads: list[Tensor], *, lr: float, reg: Regularizer, foreach: bool) -> None:
    """Functional ProxSGD: a gradient step, then the prox with step τ, in place."""
    if foreach:
        for p_, g_ in group_by_device_and_dtype([params, grads]):
            torch._foreach_add_(p_, g_, alpha=-lr)
    else:
        for p, g in zip(params, grads):
            p.add_(g, alpha=-lr)
    for p in params:
        reg.prox_(p, lr)
