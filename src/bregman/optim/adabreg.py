"""AdaBreg: Bregman iterations with Adam's moments on the dual variable (PAPER.md §1.4)."""
from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor

from bregman.optim._base import (COMMON_CHECKS, RegularizedOptimizer, check_beta, check_delta, check_eps,
                                 fused_ok, group_by_device_and_dtype, to_float)
from bregman.regularizers import Regularizer

__all__ = ["AdaBreg", "adabreg"]


def _check_betas(betas: Any) -> None:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"Invalid betas: {betas!r} (must be a pair of floats (β1, β2))")
    check_beta(betas[0], "beta1 (betas[0])")
    check_beta(betas[1], "beta2 (betas[1])")


def _step_dtype() -> torch.dtype:
    """The dtype of the ``step`` counter, as torch.optim.Adam keeps it."""
    return torch.float64 if torch.get_default_dtype() is torch.float64 else torch.float32


class AdaBreg(RegularizedOptimizer):
    r"""Adamized Bregman iterations (Algorithm 3 of Bungert et al., JMLR 2022).

    .. math::
        \begin{aligned}
        &\textbf{input}: \theta_0, \tau \text{ (lr)}, J \text{ (reg)}, \delta \text{ (delta)},
            \beta_1, \beta_2 \text{ (betas)}, \varepsilon \text{ (eps)} \\
        &\textbf{init}: v_0 = \theta_0/\delta + p_0,\ p_0 \in \partial J(\theta_0),\ m_1 = m_2 = 0 \\
        &\textbf{for } k = 1, 2, \dots: \\
        &\quad g = \nabla L(\theta; B) \ (-\nabla L \text{ with maximize}),\quad
            m_1 \leftarrow \beta_1 m_1 + (1-\beta_1) g,
            \quad m_2 \leftarrow \beta_2 m_2 + (1-\beta_2) g^2 \\
        &\quad \hat m_1 = m_1/(1-\beta_1^k),\quad \hat m_2 = m_2/(1-\beta_2^k) \\
        &\quad v \leftarrow v - \tau\, \hat m_1 / (\sqrt{\hat m_2} + \varepsilon),
            \quad \theta = \operatorname{prox}_{\delta J}(\delta v)
        \end{aligned}

    With J = 0 and δ = 1 this is exactly ``torch.optim.Adam``, whose conventions it follows: the
    step count k is a float tensor in the state; complex parameters are updated as real views
    (``view_as_real``: m₂ holds the squares of real and imaginary parts; J acts on the complex
    tensor); ``lr`` may be a 1-element tensor; ``maximize``; ``torch.compile`` of a function that
    calls ``step()`` traces it. (The authors' 2021 code dropped the first-moment bias correction;
    this follows the paper and their fixed 2024 code.)

    Non-finite numbers propagate, on every path alike: a NaN or ±inf gradient entry makes the
    moments and v non-finite there, and θ is the prox of that v (ℓ1: that entry; a group
    regularizer: the whole group is NaN). Nothing is skipped or zeroed.

    Args:
        params: parameters or param groups; each group may set ``lr``, ``reg``, ``delta``,
            ``betas``, ``eps``, ``maximize``, ``foreach``.
        lr: τ ≥ 0 (a float, or a 1-element tensor). reg: J (``None`` = Null). delta: δ > 0.
        betas: (β1, β2) ∈ [0, 1)². eps: ε ≥ 0. maximize: ascend L instead of descending it.
        foreach: use the multi-tensor path (default: yes); on CPU, for float32/float64 tensors of
            one memory layout, that is torch's fused Adam kernel (what ``Adam(fused=True)`` calls)
            applied to v: the same update in one pass.
    """

    _checks = {**COMMON_CHECKS, "delta": check_delta, "betas": _check_betas, "eps": check_eps}

    def __init__(
        self,
        params: Iterable,
        lr: float | Tensor = 1e-3,
        reg: Regularizer | None = None,
        delta: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        betas = tuple(betas) if isinstance(betas, list) else betas
        super().__init__(params, dict(lr=lr, reg=reg, delta=delta, betas=betas, eps=eps, maximize=maximize,
                                      foreach=foreach))

    def _init_state(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        super()._init_state(p, state, group)
        state["step"] = torch.tensor(0.0, dtype=_step_dtype())
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _init_group(self, group, params, grads, duals, exp_avgs, exp_avg_sqs, state_steps) -> None:
        for state in self._collect(group, params, grads):
            duals.append(state["v"])
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            state_steps.append(state["step"])

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for s in self.state.values():  # state dicts of earlier versions counted steps in an int
            if "step" in s and not torch.is_tensor(s["step"]):
                s["step"] = torch.tensor(float(s["step"]), dtype=_step_dtype())

    @torch.no_grad()
    def step(self, closure=None):
        """One AdaBreg step on every parameter that has a gradient; returns the closure's loss."""
        self._check_groups()
        loss = self._closure_loss(closure)
        for group in self.param_groups:
            params, grads, duals, exp_avgs, exp_avg_sqs, state_steps = [], [], [], [], [], []
            self._init_group(group, params, grads, duals, exp_avgs, exp_avg_sqs, state_steps)
            if params:
                adabreg(params, grads, duals, exp_avgs, exp_avg_sqs, state_steps, lr=group["lr"],
                        delta=group["delta"], betas=group["betas"], eps=group["eps"], reg=group["reg"],
                        maximize=group["maximize"], foreach=self._use_foreach(group))
        return loss


def adabreg(params: list[Tensor], grads: list[Tensor], duals: list[Tensor], exp_avgs: list[Tensor],
            exp_avg_sqs: list[Tensor], state_steps: list[Tensor], *, lr: float | Tensor, delta: float,
            betas: tuple[float, float], eps: float, reg: Regularizer, maximize: bool = False,
            foreach: bool = True) -> None:
    """Functional AdaBreg: counts the steps, updates the moments, ``duals`` (v) and ``params`` (θ) in place.

    Under ``torch.compile`` the single-tensor code is traced (the compiler fuses it itself).
    """
    impl = _multi_tensor_adabreg if foreach and not torch.compiler.is_compiling() else _single_tensor_adabreg
    impl(params, grads, duals, exp_avgs, exp_avg_sqs, state_steps, lr=lr, delta=delta, betas=betas, eps=eps,
         reg=reg, maximize=maximize)


def _value(x: Tensor) -> float | Tensor:
    """A step count as a Python number (kept a tensor while compiling: reading it would break the graph)."""
    return x if torch.compiler.is_compiling() else x.item()


def _single_tensor_adabreg(params, grads, duals, exp_avgs, exp_avg_sqs, state_steps, *, lr, delta, betas, eps,
                           reg, maximize):
    beta1, beta2 = betas
    for p, g, v, m1, m2, step in zip(params, grads, duals, exp_avgs, exp_avg_sqs, state_steps):
        g = -g if maximize else g
        w = v
        if torch.is_complex(v):
            g, w, m1, m2 = (torch.view_as_real(x) for x in (g, v, m1, m2))
        step += 1
        k = _value(step)
        m1.lerp_(g, 1 - beta1)
        m2.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (m2.sqrt() / (1 - beta2**k) ** 0.5).add_(eps)
        w.addcdiv_(m1, denom, value=-lr / (1 - beta1**k))
        reg.dual_prox_(p, v, delta)


def _multi_tensor_adabreg(params, grads, duals, exp_avgs, exp_avg_sqs, state_steps, *, lr, delta, betas, eps,
                          reg, maximize):
    beta1, beta2 = betas
    lr = to_float(lr)
    lists = [params, grads, duals, exp_avgs, exp_avg_sqs, state_steps]
    for p_, g_, v_, m1_, m2_, k_ in group_by_device_and_dtype(lists):
        w_ = v_
        if torch.is_complex(v_[0]):  # one dtype per bucket
            g_, w_, m1_, m2_ = ([torch.view_as_real(x) for x in xs] for xs in (g_, v_, m1_, m2_))
        # (a CPU tensor 1, wrapped once: a Python 1 would be wrapped per tensor)
        torch._foreach_add_(k_, torch.tensor(1.0), alpha=1.0)
        if fused_ok([w_, g_, m1_, m2_]):
            # Moments and v in one pass: torch's fused Adam kernel (what Adam(fused=True) calls) on
            # (v, g, m1, m2), the same update as below (Adam's, on v instead of θ).
            torch._fused_adam_(w_, g_, m1_, m2_, [], k_, lr=lr, beta1=beta1, beta2=beta2, weight_decay=0.0,
                               eps=eps, amsgrad=False, maximize=maximize)
        else:
            if maximize:
                g_ = torch._foreach_neg(g_)
            torch._foreach_lerp_(m1_, g_, 1 - beta1)
            torch._foreach_mul_(m2_, beta2)
            torch._foreach_addcmul_(m2_, g_, g_, 1 - beta2)
            # v − τ/bc1 · m1/(√m2/c + ε) = v − (τc/bc1) · m1/(√m2 + εc) with c = √bc2: the bias
            # corrections folded into per-tensor scalars, one full-size pass fewer.
            ks = [k.item() for k in k_]
            cs = [(1 - beta2**k) ** 0.5 for k in ks]
            denom = torch._foreach_sqrt(m2_)
            torch._foreach_add_(denom, [eps * c for c in cs])
            torch._foreach_addcdiv_(w_, m1_, denom, [-lr * c / (1 - beta1**k) for c, k in zip(cs, ks)])
            del denom
        reg.dual_prox_all_(p_, v_, delta)
