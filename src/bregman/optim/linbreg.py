"""LinBreg: linearized Bregman iterations, with and without momentum (PAPER.md §1.2–1.3)."""
from __future__ import annotations

import functools
import struct
from typing import Any, Iterable

import torch
from torch import Tensor

from bregman.optim import _fused
from bregman.optim._base import (RegularizedOptimizer, check_beta, check_delta, check_lr,
                                 group_by_device_and_dtype)
from bregman.regularizers import Regularizer, is_dense

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
        &\quad g_k = \nabla L(\theta_k; B_k) \\
        &\quad \text{if } \beta > 0:\ m_{k+1} = \beta m_k + (1-\beta)\tau g_k,\ v_{k+1} = v_k - m_{k+1}
            \quad \text{else}\ v_{k+1} = v_k - \tau g_k \\
        &\quad \theta_{k+1} = \operatorname{prox}_{\delta J}(\delta v_{k+1})
        \end{aligned}

    v is the subgradient of the elastic net J_δ = J + ‖·‖²/(2δ) at θ (eq. 2.9). For ℓ1,
    θᵢ ≠ 0 ⇔ |vᵢ| > λ: weights enter the support only when their accumulated gradient is large
    enough (inverse scale space), so training starts sparse and stays sparse. With J = 0 this is
    SGD with learning rate δτ. Cost per step: SGD's plus one closed-form prox.

    Args:
        params: parameters or param groups; each group may set ``lr``, ``reg``, ``delta``,
            ``momentum``.
        lr: τ. reg: J (``None`` = :class:`~bregman.regularizers.Null`). delta: δ > 0.
        momentum: β ∈ [0, 1) (Algorithm 2; note τ sits inside the buffer and momentum acts on v).
        foreach: use the multi-tensor path (default: yes); with momentum on CPU it uses torch's fused
            SGD kernel for the (m, v) update where that computes exactly the same coefficients.

    Example:
        >>> from bregman import LinBreg
        >>> from bregman.regularizers import L1
        >>> opt = LinBreg(model.parameters(), lr=0.1, reg=L1(0.1))  # doctest: +SKIP
    """

    _checks = {"lr": check_lr, "delta": check_delta, "momentum": lambda b: check_beta(b, "momentum")}

    def __init__(
        self,
        params: Iterable,
        lr: float,
        reg: Regularizer | None = None,
        delta: float = 1.0,
        momentum: float = 0.0,
        *,
        foreach: bool | None = None,
    ) -> None:
        super().__init__(params, dict(lr=lr, reg=reg, delta=delta, momentum=momentum, foreach=foreach))

    def _init_group(self, group: dict[str, Any], params: list, grads: list, duals: list, bufs: list) -> None:
        momentum, state_of = group["momentum"] > 0, self.state
        for i, p in enumerate(group["params"]):
            g = p.grad
            if g is None:
                continue
            state = state_of[p]
            v = state.get("v")
            if v is None or g.is_sparse:
                v = self._new_state(group, i, p)
            if momentum and "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(g)
            duals.append(v)
            bufs.append(state.get("momentum_buffer"))

    @torch.no_grad()
    def step(self, closure=None):
        """One LinBreg step on every parameter that has a gradient; returns the closure's loss."""
        loss = self._closure_loss(closure)
        plan = self.__dict__.get("_plan")
        if plan is not None and plan.replay(self):  # the same kernel call as last step, new gradients
            return loss
        # without momentum: one CPU kernel call for all groups' tensors
        batch = _fused.Batch(self.__dict__.setdefault("_written", {}))
        planned = True
        for group in self.param_groups:
            params, grads, duals, bufs = [], [], [], []
            self._init_group(group, params, grads, duals, bufs)
            foreach = self._use_foreach(group)
            if params and foreach and group["momentum"] == 0:
                rest = batch.add(params, duals, grads, group["reg"], lr=group["lr"], delta=group["delta"])
                params, grads, duals, bufs = ([xs[i] for i in rest] for xs in (params, grads, duals, bufs))
            if params:
                planned = False
                linbreg(params, grads, duals, bufs, lr=group["lr"], delta=group["delta"],
                        momentum=group["momentum"], reg=group["reg"], foreach=foreach)
        batch.run()
        self._plan = _fused.Plan.of(self, batch) if planned else None
        return loss


def linbreg(params: list[Tensor], grads: list[Tensor], duals: list[Tensor], bufs: list[Tensor | None], *,
            lr: float, delta: float, momentum: float, reg: Regularizer, foreach: bool) -> None:
    """Functional LinBreg: updates ``duals`` (v) and ``params`` (θ) in place."""
    impl = _multi_tensor_linbreg if foreach else _single_tensor_linbreg
    impl(params, grads, duals, bufs, lr=lr, delta=delta, momentum=momentum, reg=reg)


def _single_tensor_linbreg(params, grads, duals, bufs, *, lr, delta, momentum, reg) -> None:
    for p, g, v, m in zip(params, grads, duals, bufs):
        if momentum > 0:
            m.mul_(momentum).add_(g, alpha=(1 - momentum) * lr)
            v.sub_(m)
        else:
            v.add_(g, alpha=-lr)
        reg.dual_prox_(p, v, delta)


def _multi_tensor_linbreg(params, grads, duals, bufs, *, lr, delta, momentum, reg) -> None:
    if momentum == 0:
        # v ← v − τg and the prox in one pass per tensor and one call, where the CPU kernel applies
        # (bregman.optim._fused); the others below: one foreach update, then the prox per tensor.
        rest = _fused.step_(params, duals, grads, reg, lr=lr, delta=delta)
        if len(rest) < len(params):
            params, grads, duals = ([xs[i] for i in rest] for xs in (params, grads, duals))
    lists = [params, grads, duals] + ([bufs] if momentum > 0 else [])
    for p_, g_, v_, *m_ in group_by_device_and_dtype(lists) if params else ():
        if momentum == 0:
            torch._foreach_add_(v_, g_, alpha=-lr)
            for p, v in zip(p_, v_):
                reg.dual_prox_(p, v, delta)
            continue
        if _fused_momentum_ok(g_, v_, m_[0], (1 - momentum) * lr):
            # m ← βm + (1−β)τg and v ← v − m in one pass: torch's fused SGD kernel on (v, g, m) with
            # lr = 1 and dampening = 1 − (1−β)τ (used only where that coefficient comes out exact).
            torch._fused_sgd_(v_, g_, m_[0], weight_decay=0.0, momentum=momentum, lr=1.0,
                              dampening=1.0 - (1 - momentum) * lr, nesterov=False, maximize=False,
                              is_first_step=False)
        else:
            torch._foreach_mul_(m_[0], momentum)
            torch._foreach_add_(m_[0], g_, alpha=(1 - momentum) * lr)
            torch._foreach_sub_(v_, m_[0])
        # The prox: one pass per tensor (soft shrinkage / group scaling; the CPU kernel where it applies).
        for i in _fused.step_(p_, v_, None, reg, lr=0.0, delta=delta):
            reg.dual_prox_(p_[i], v_[i], delta)


def _round_to(x: float, dtype: torch.dtype) -> float | None:
    """``x`` rounded to ``dtype`` as a Python float (None if not representable)."""
    if dtype == torch.float64:
        return x
    try:
        return struct.unpack("f", struct.pack("f", x))[0]
    except (OverflowError, struct.error):
        return None


@functools.lru_cache(maxsize=None)
def _fused_sgd_works(device_type: str) -> bool:
    """Whether ``torch._fused_sgd_`` exists for this device and computes what we rely on."""
    if device_type != "cpu" or not hasattr(torch, "_fused_sgd_"):
        return False
    try:
        f64 = dict(dtype=torch.float64)
        v, g, m = torch.zeros(3, **f64), torch.ones(3, **f64), torch.ones(3, **f64)
        # β = 1/2, coefficient 1 − 3/4 = 1/4: m = 1/2 + 1/4 = 3/4, v = 0 − 3/4.
        torch._fused_sgd_([v], [g], [m], weight_decay=0.0, momentum=0.5, lr=1.0, dampening=0.75,
                          nesterov=False, maximize=False, is_first_step=False)
    except Exception:  # noqa: BLE001 - any failure means: use the foreach ops
        return False
    return m.tolist() == [0.75] * 3 and v.tolist() == [-0.75] * 3 and g.tolist() == [1.0] * 3


def _fused_momentum_ok(grads: list[Tensor], duals: list[Tensor], bufs: list[Tensor], coeff: float) -> bool:
    """Whether the fused kernel computes exactly the foreach update for these tensors.

    The kernel takes the gradient's coefficient as ``1 − dampening`` and casts it to the dtype; we
    use it only if that equals ``coeff`` in the dtype (else the foreach path runs), on float32 /
    float64 CPU tensors with one dense memory layout (it walks all of them linearly).
    """
    v0 = duals[0]
    if (not isinstance(coeff, float) or v0.dtype not in (torch.float32, torch.float64)
            or not _fused_sgd_works(v0.device.type)):
        return False
    want = _round_to(coeff, v0.dtype)
    if want is None or _round_to(1.0 - (1.0 - coeff), v0.dtype) != want:
        return False
    return all(is_dense(v) and g.stride() == v.stride() and m.stride() == v.stride()
               for g, v, m in zip(grads, duals, bufs))
