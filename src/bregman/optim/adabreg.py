"""AdaBreg: Bregman iterations with Adam's moments on the dual variable (PAPER.md §1.4)."""
from __future__ import annotations

import functools
import math
from typing import Any, Iterable

import torch
from torch import Tensor

from bregman.optim import _fused
from bregman.optim._base import (RegularizedOptimizer, check_beta, check_delta, check_eps, check_lr,
                                 group_by_device_and_dtype)
from bregman.regularizers import Regularizer, is_dense

__all__ = ["AdaBreg", "adabreg"]


def _check_betas(betas: Any) -> None:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"Invalid betas: {betas!r} (must be a pair (β1, β2))")
    check_beta(betas[0], "beta1 (betas[0])")
    check_beta(betas[1], "beta2 (betas[1])")


class AdaBreg(RegularizedOptimizer):
    r"""Adamized Bregman iterations (Algorithm 3 of Bungert et al., JMLR 2022).

    .. math::
        \begin{aligned}
        &\textbf{input}: \theta_0, \tau \text{ (lr)}, J \text{ (reg)}, \delta \text{ (delta)},
            \beta_1, \beta_2 \text{ (betas)}, \varepsilon \text{ (eps)} \\
        &\textbf{init}: v_0 = \theta_0/\delta + p_0,\ p_0 \in \partial J(\theta_0),\ m_1 = m_2 = 0 \\
        &\textbf{for } k = 1, 2, \dots: \\
        &\quad g = \nabla L(\theta; B),\quad m_1 \leftarrow \beta_1 m_1 + (1-\beta_1) g,
            \quad m_2 \leftarrow \beta_2 m_2 + (1-\beta_2) g^2 \\
        &\quad \hat m_1 = m_1/(1-\beta_1^k),\quad \hat m_2 = m_2/(1-\beta_2^k) \\
        &\quad v \leftarrow v - \tau\, \hat m_1 / (\sqrt{\hat m_2} + \varepsilon),
            \quad \theta = \operatorname{prox}_{\delta J}(\delta v)
        \end{aligned}

    With J = 0 and δ = 1 this is exactly ``torch.optim.Adam``. (The authors' 2021 code dropped
    the first-moment bias correction; this follows the paper and their fixed 2024 code.)

    Args:
        params: parameters or param groups; each group may set ``lr``, ``reg``, ``delta``,
            ``betas``, ``eps``.
        lr: τ. reg: J (``None`` = Null). delta: δ > 0. betas: (β1, β2) ∈ [0, 1)². eps: ε ≥ 0.
        foreach: use the multi-tensor path (default: yes); on CPU, for float32/float64 tensors of
            one memory layout, that is torch's fused Adam kernel applied to v (the same update).
    """

    _checks = {"lr": check_lr, "delta": check_delta, "betas": _check_betas, "eps": check_eps}

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        reg: Regularizer | None = None,
        delta: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        *,
        foreach: bool | None = None,
    ) -> None:
        betas = tuple(betas) if isinstance(betas, list) else betas
        super().__init__(params, dict(lr=lr, reg=reg, delta=delta, betas=betas, eps=eps, foreach=foreach))

    def _init_group(self, group, params, grads, duals, exp_avgs, exp_avg_sqs, steps) -> None:
        for p, state, fresh in self._with_grads(group, params, grads):
            if fresh:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
            duals.append(state["v"])
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])

    @torch.no_grad()
    def step(self, closure=None):
        """One AdaBreg step on every parameter that has a gradient; returns the closure's loss."""
        loss = self._closure_loss(closure)
        for group in self.param_groups:
            lists: tuple[list, ...] = ([], [], [], [], [], [])
            self._init_group(group, *lists)
            if lists[0]:
                adabreg(*lists, lr=group["lr"], delta=group["delta"], betas=group["betas"],
                        eps=group["eps"], reg=group["reg"], foreach=self._use_foreach(group))
        return loss


def adabreg(params: list[Tensor], grads: list[Tensor], duals: list[Tensor], exp_avgs: list[Tensor],
            exp_avg_sqs: list[Tensor], steps: list[int], *, lr: float, delta: float,
            betas: tuple[float, float], eps: float, reg: Regularizer, foreach: bool) -> None:
    """Functional AdaBreg: updates moments, ``duals`` (v) and ``params`` (θ) in place."""
    impl = _multi_tensor_adabreg if foreach else _single_tensor_adabreg
    impl(params, grads, duals, exp_avgs, exp_avg_sqs, steps, lr=lr, delta=delta, betas=betas, eps=eps, reg=reg)


def _single_tensor_adabreg(params, grads, duals, exp_avgs, exp_avg_sqs, steps, *, lr, delta, betas, eps, reg):
    beta1, beta2 = betas
    for p, g, v, m1, m2, k in zip(params, grads, duals, exp_avgs, exp_avg_sqs, steps):
        m1.lerp_(g, 1 - beta1)
        m2.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (m2.sqrt() / math.sqrt(1 - beta2**k)).add_(eps)
        v.addcdiv_(m1, denom, value=-lr / (1 - beta1**k))
        reg.dual_prox_(p, v, delta)


def _multi_tensor_adabreg(params, grads, duals, exp_avgs, exp_avg_sqs, steps, *, lr, delta, betas, eps, reg):
    beta1, beta2 = betas
    steps_by_param = {id(p): k for p, k in zip(params, steps)}
    for p_, g_, v_, m1_, m2_ in group_by_device_and_dtype([params, grads, duals, exp_avgs, exp_avg_sqs]):
        ks = [steps_by_param[id(p)] for p in p_]
        if _fused_adam_ok(g_, v_, m1_, m2_, lr):
            # Moments and v in one pass: torch's fused Adam kernel on (v, g, m1, m2), the same
            # update as below (Adam's, on v instead of θ).
            k_ = [torch.tensor(float(k), dtype=torch.float64) for k in ks]  # exact step counts
            torch._fused_adam_(v_, g_, m1_, m2_, [], k_, lr=lr, beta1=beta1, beta2=beta2, weight_decay=0.0,
                               eps=eps, amsgrad=False, maximize=False)
        else:
            torch._foreach_lerp_(m1_, g_, 1 - beta1)
            torch._foreach_mul_(m2_, beta2)
            torch._foreach_addcmul_(m2_, g_, g_, 1 - beta2)
            # v − τ/bc1 · m1/(√m2/c + ε) = v − (τc/bc1) · m1/(√m2 + εc) with c = √bc2: the bias
            # corrections folded into per-tensor scalars, one full-size pass fewer.
            cs = [math.sqrt(1 - beta2**k) for k in ks]
            denom = torch._foreach_sqrt(m2_)
            torch._foreach_add_(denom, [eps * c for c in cs])
            torch._foreach_addcdiv_(v_, m1_, denom, [-lr * c / (1 - beta1**k) for c, k in zip(cs, ks)])
            del denom
        for i in _fused.step_(p_, v_, None, reg, lr=0.0, delta=delta):  # the prox: the CPU kernel where it applies
            reg.dual_prox_(p_[i], v_[i], delta)


@functools.lru_cache(maxsize=None)
def _fused_adam_works(device_type: str) -> bool:
    """Whether ``torch._fused_adam_`` exists for this device and computes what we rely on."""
    if device_type != "cpu" or not hasattr(torch, "_fused_adam_"):
        return False
    f64 = dict(dtype=torch.float64)
    v, g, m1, m2 = torch.zeros(3, **f64), torch.ones(3, **f64), torch.zeros(3, **f64), torch.zeros(3, **f64)
    try:
        # β1 = 1/2, β2 = 3/4, step 1: m1 = 1/2, m2 = 1/4, v = 0 − (1/(1/2))·(1/2)/(√(1/4)/√(1/4) + 0) = −1.
        torch._fused_adam_([v], [g], [m1], [m2], [], [torch.tensor(1.0, **f64)], lr=1.0, beta1=0.5, beta2=0.75,
                           weight_decay=0.0, eps=0.0, amsgrad=False, maximize=False)
    except Exception:  # noqa: BLE001 - any failure means: use the foreach ops
        return False
    return (m1.tolist() == [0.5] * 3 and m2.tolist() == [0.25] * 3 and v.tolist() == [-1.0] * 3
            and g.tolist() == [1.0] * 3)


def _fused_adam_ok(grads, duals, exp_avgs, exp_avg_sqs, lr) -> bool:
    """Fused kernel only for float32 / float64 CPU tensors with one dense memory layout (it walks them linearly)."""
    v0 = duals[0]
    if (isinstance(lr, Tensor) or v0.dtype not in (torch.float32, torch.float64)
            or not _fused_adam_works(v0.device.type)):
        return False
    return all(
        is_dense(v) and g.stride() == v.stride() and m1.stride() == v.stride() and m2.stride() == v.stride()
        for g, v, m1, m2 in zip(grads, duals, exp_avgs, exp_avg_sqs)
    )
