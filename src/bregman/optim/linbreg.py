"""LinBreg: linearized Bregman iterations, with and without momentum (PAPER.md §1.2–1.3)."""
from __future__ import annotations

import struct
from typing import Any, Iterable

import torch
from torch import Tensor

from bregman.optim._base import (COMMON_CHECKS, RegularizedOptimizer, check_beta, check_delta, fused_ok,
                                 group_by_device_and_dtype, to_float)
from bregman.regularizers import Regularizer

__all__ = ["LinBreg", "linbreg"]


class LinBreg(RegularizedOptimizer):
    r"""Linearized Bregman iterations (Algorithms 1 and 2 of Bungert et al., JMLR 2022).

    .. math::
        \begin{aligned}
        &\textbf{input}: \theta_0 \text{ (params, sparse init)}, \tau \text{ (lr)}, J \text{ (reg)},
            \delta \text{ (delta)}, \beta \text{ (momentum)} \\
        &\textbf{init (first step)}: v_0 = \theta_0/\delta + p_0,\ p_0 \in \partial J(\theta_0),
            \quad m_0 = 0 \\
        &\textbf{for } k = 0, 1, \dots: \\
        &\quad g_k = \nabla L(\theta_k; B_k) \quad (-\nabla L \text{ with maximize}) \\
        &\quad \text{if } \beta > 0:\ m_{k+1} = \beta m_k + (1-\beta)\tau g_k,\ v_{k+1} = v_k - m_{k+1}
            \quad \text{else}\ v_{k+1} = v_k - \tau g_k \\
        &\quad \theta_{k+1} = \operatorname{prox}_{\delta J}(\delta v_{k+1})
        \end{aligned}

    v is the subgradient of the elastic net J_δ = J + ‖·‖²/(2δ) at θ (eq. 2.9). For ℓ1,
    θᵢ ≠ 0 ⇔ |vᵢ| > λ: weights enter the support only when their accumulated gradient is large
    enough (inverse scale space), so training starts sparse and stays sparse. With J = 0 this is
    SGD with learning rate δτ. Cost per step: SGD's plus one closed-form prox.

    Every step reads the current param groups (``lr``, ``reg``, ``delta``, ``momentum`` may change
    between steps, ``lr`` may be a 1-element tensor moved by a scheduler) and recomputes θ from v,
    so writes to θ between steps (``p.data``, ``nn.init``) last until the next step, as in the
    paper. Complex parameters: the update is complex arithmetic, J acts on the complex tensor.

    Non-finite numbers propagate, on every path alike: a NaN or ±inf gradient entry makes that
    entry of v non-finite for good, and θ is the prox of that v (ℓ1: the entry is NaN or ±inf;
    a group regularizer: the whole group is NaN). Nothing is skipped or zeroed; stopping or
    skipping such a step is the training loop's decision.

    Args:
        params: parameters or param groups; each group may set ``lr``, ``reg``, ``delta``,
            ``momentum``, ``maximize``, ``foreach``.
        lr: τ ≥ 0 (a float, or a 1-element tensor). reg: J (``None`` = :class:`~bregman.regularizers.Null`).
        delta: δ > 0. momentum: β ∈ [0, 1) (Algorithm 2; τ sits inside the buffer and momentum acts on v).
        maximize: ascend L instead of descending it.
        foreach: use the multi-tensor path (default: yes). With momentum, on float32/float64 CPU
            tensors of one layout, it runs torch's fused SGD kernel on (v, g, m) where that computes
            bit for bit the same update (lr = 1, dampening = 1 − (1−β)τ exact in the dtype).

    Example:
        >>> from bregman import LinBreg
        >>> from bregman.regularizers import L1
        >>> opt = LinBreg(model.parameters(), lr=0.1, reg=L1(0.1))  # doctest: +SKIP
    """

    _checks = {**COMMON_CHECKS, "delta": check_delta,
               "momentum": lambda b: check_beta(b, "momentum")}

    def __init__(
        self,
        params: Iterable,
        lr: float | Tensor,
        reg: Regularizer | None = None,
        delta: float = 1.0,
        momentum: float = 0.0,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        super().__init__(params, dict(lr=lr, reg=reg, delta=delta, momentum=momentum, maximize=maximize,
                                      foreach=foreach))

    def _init_group(self, group: dict[str, Any], params: list, grads: list, duals: list, bufs: list) -> None:
        momentum = group["momentum"] > 0
        for state in self._collect(group, params, grads):
            if momentum and "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(state["v"], memory_format=torch.preserve_format)
            duals.append(state["v"])
            bufs.append(state.get("momentum_buffer"))

    @torch.no_grad()
    def step(self, closure=None):
        """One LinBreg step on every parameter that has a gradient; returns the closure's loss."""
        self._check_groups()
        loss = self._closure_loss(closure)
        for group in self.param_groups:
            params, grads, duals, bufs = [], [], [], []
            self._init_group(group, params, grads, duals, bufs)
            if params:
                linbreg(params, grads, duals, bufs, lr=group["lr"], delta=group["delta"],
                        momentum=group["momentum"], reg=group["reg"], maximize=group["maximize"],
                        foreach=self._use_foreach(group))
        return loss


def linbreg(params: list[Tensor], grads: list[Tensor], duals: list[Tensor], bufs: list[Tensor | None], *,
            lr: float | Tensor, delta: float, momentum: float, reg: Regularizer, maximize: bool = False,
            foreach: bool = True) -> None:
    """Functional LinBreg: updates ``duals`` (v), ``bufs`` (m, with momentum) and ``params`` (θ) in place.

    Under ``torch.compile`` the single-tensor code is traced (the compiler fuses it itself).
    """
    impl = _multi_tensor_linbreg if foreach and not torch.compiler.is_compiling() else _single_tensor_linbreg
    impl(params, grads, duals, bufs, lr=lr, delta=delta, momentum=momentum, reg=reg, maximize=maximize)


def _single_tensor_linbreg(params, grads, duals, bufs, *, lr, delta, momentum, reg, maximize) -> None:
    for p, g, v, m in zip(params, grads, duals, bufs):
        g = -g if maximize else g
        if momentum > 0:
            m.mul_(momentum).add_(g, alpha=(1 - momentum) * lr)
            v.sub_(m)
        else:
            v.add_(g, alpha=-lr)
        reg.dual_prox_(p, v, delta)


def _multi_tensor_linbreg(params, grads, duals, bufs, *, lr, delta, momentum, reg, maximize) -> None:
    lr = to_float(lr)
    sign = -1.0 if maximize else 1.0
    lists = [params, grads, duals] + ([bufs] if momentum > 0 else [])
    for p_, g_, v_, *m_ in group_by_device_and_dtype(lists):
        if momentum == 0:
            torch._foreach_add_(v_, g_, alpha=-sign * lr)
        elif _fused_sgd_exact((1 - momentum) * lr, v_[0].dtype) and fused_ok([v_, g_, m_[0]]):
            # m ← βm + (1−β)τg and v ← v − m in one pass: torch's fused SGD kernel (what
            # SGD(fused=True) calls) on (v, g, m) with lr = 1 and dampening = 1 − (1−β)τ.
            torch._fused_sgd_(v_, g_, m_[0], weight_decay=0.0, momentum=momentum, lr=1.0,
                              dampening=1.0 - (1 - momentum) * lr, nesterov=False, maximize=maximize,
                              is_first_step=False)
        else:
            torch._foreach_mul_(m_[0], momentum)
            torch._foreach_add_(m_[0], g_, alpha=sign * (1 - momentum) * lr)
            torch._foreach_sub_(v_, m_[0])
        reg.dual_prox_all_(p_, v_, delta)


def _fused_sgd_exact(coeff: float, dtype: torch.dtype) -> bool:
    """Whether the fused kernel's gradient coefficient, 1 − dampening = 1 − (1 − coeff), equals
    ``coeff`` in ``dtype`` (so its update is the foreach update bit for bit)."""
    if dtype is torch.float64:
        return 1.0 - (1.0 - coeff) == coeff
    if dtype is torch.float32:
        try:
            return _F32.unpack(_F32.pack(1.0 - (1.0 - coeff))) == _F32.unpack(_F32.pack(coeff))
        except (OverflowError, struct.error):  # beyond float32's range
            return False
    return False


_F32 = struct.Struct("f")
