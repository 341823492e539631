"""ProxSGD: proximal stochastic gradient descent, the paper's baseline (PAPER.md §1.5, eq. 1.5)."""
from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor

from bregman.optim._base import RegularizedOptimizer, group_by_device_and_dtype, to_float
from bregman.regularizers import Regularizer

__all__ = ["ProxSGD", "proxsgd"]


class ProxSGD(RegularizedOptimizer):
    r"""Proximal SGD: :math:`\theta_{k+1} = \operatorname{prox}_{\tau J}(\theta_k - \tau\nabla L(\theta_k; B_k))`.

    No dual variable, τ (not δ) inside the prox. From a sparse start it densifies first and
    sparsifies later; accuracy and sparsity are not monotone (the paper's contrast to LinBreg).
    Non-finite gradient entries propagate into θ as in a plain gradient step, on every path alike.

    Args:
        params: parameters or param groups; each group may set ``lr``, ``reg``, ``maximize``, ``foreach``.
        lr: τ ≥ 0 (a float, or a 1-element tensor). reg: J (``None`` = Null, i.e. plain SGD).
        maximize: ascend L instead of descending it. foreach: multi-tensor path (default: yes).
    """

    def __init__(self, params: Iterable, lr: float | Tensor, reg: Regularizer | None = None, *,
                 maximize: bool = False, foreach: bool | None = None) -> None:
        super().__init__(params, dict(lr=lr, reg=reg, maximize=maximize, foreach=foreach))

    def _init_state(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """No state: θ is all there is."""

    def _init_group(self, group: dict[str, Any], params: list, grads: list) -> None:
        for _state in self._collect(group, params, grads):
            pass

    @torch.no_grad()
    def step(self, closure=None):
        """One ProxSGD step on every parameter that has a gradient; returns the closure's loss."""
        self._check_groups()
        loss = self._closure_loss(closure)
        for group in self.param_groups:
            params, grads = [], []
            self._init_group(group, params, grads)
            if params:
                proxsgd(params, grads, lr=group["lr"], reg=group["reg"], maximize=group["maximize"],
                        foreach=self._use_foreach(group))
        return loss


def proxsgd(params: list[Tensor], grads: list[Tensor], *, lr: float | Tensor, reg: Regularizer,
            maximize: bool = False, foreach: bool = True) -> None:
    """Functional ProxSGD: a gradient step, then the prox with step τ, in place."""
    impl = _multi_tensor_proxsgd if foreach and not torch.compiler.is_compiling() else _single_tensor_proxsgd
    impl(params, grads, lr=lr, reg=reg, maximize=maximize)


def _single_tensor_proxsgd(params, grads, *, lr, reg, maximize) -> None:
    for p, g in zip(params, grads):
        p.add_(g, alpha=lr if maximize else -lr)
        reg.prox_(p, to_float(lr))  # (the prox takes τ as a number)


def _multi_tensor_proxsgd(params, grads, *, lr, reg, maximize) -> None:
    lr = to_float(lr)
    for p_, g_ in group_by_device_and_dtype([params, grads]):
        torch._foreach_add_(p_, g_, alpha=lr if maximize else -lr)
        for p in p_:
            reg.prox_(p, lr)
