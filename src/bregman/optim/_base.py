"""What the Bregman optimizers share: hyperparameter checks, param-group keys, lazy dual variables.

Each optimizer file follows torch.optim's four layers: the class (validates, packs ``defaults``),
``_init_group`` (creates state lazily, collects flat lists), a public functional that dispatches,
and two implementations (``_single_tensor_*`` reference loop, ``_multi_tensor_*`` foreach path).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import torch
from torch import Tensor
from torch.optim import Optimizer

from bregman.regularizers import Null, Regularizer, from_dict

#: Keys that torch or its schedulers put in param groups, allowed in addition to ``defaults``.
_FOREIGN_KEYS = frozenset({"params", "name", "param_names", "initial_lr"})


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def check_lr(lr: Any) -> None:
    if isinstance(lr, Tensor):
        lr = lr.item()
    if not _is_number(lr) or lr < 0:
        raise ValueError(f"Invalid learning rate: {lr!r} (must be a finite number >= 0)")


def check_delta(delta: Any) -> None:
    if not _is_number(delta) or delta <= 0:
        raise ValueError(f"Invalid delta: {delta!r} (the elastic-net parameter δ must be > 0)")


def check_beta(beta: Any, name: str) -> None:
    if not _is_number(beta) or not 0.0 <= beta < 1.0:
        raise ValueError(f"Invalid {name}: {beta!r} (must be in [0, 1))")


def check_eps(eps: Any) -> None:
    if not _is_number(eps) or eps < 0:
        raise ValueError(f"Invalid eps: {eps!r} (must be a finite number >= 0)")


def check_reg(reg: Any) -> Regularizer:
    if reg is None:
        return Null()
    if not isinstance(reg, Regularizer):
        raise TypeError(
            f"Invalid reg: {reg!r}; pass a bregman.regularizers object such as L1(0.1), "
            f"GroupL12(0.1, 'kernels') or Null() (None means Null())"
        )
    return reg


class RegularizedOptimizer(Optimizer):
    """torch.optim.Optimizer with a regularizer per param group.

    Subclasses set ``_checks`` (group key → validator) and implement ``step``. Unknown group
    keys are an error that names them; ``state_dict`` stores each regularizer as a plain dict,
    so it loads with ``torch.load(..., weights_only=True)``.
    """

    _checks: dict[str, Callable[[Any], None]] = {}

    def __init__(self, params: Iterable, defaults: dict[str, Any]) -> None:
        defaults = dict(defaults, reg=check_reg(defaults.get("reg")))
        self._validate(defaults, where="defaults")
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any], where: str) -> None:
        for key, check in self._checks.items():
            if key in group:
                check(group[key])

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        unknown = sorted(set(param_group) - set(self.defaults) - _FOREIGN_KEYS)
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: unknown param-group key(s) {unknown}; "
                f"valid keys are {sorted(set(self.defaults) | {'params', 'name'})}"
            )
        if "reg" in param_group:
            param_group["reg"] = check_reg(param_group["reg"])
        self._validate(param_group, where="param group")
        super().add_param_group(param_group)

    # -- per-step helpers ------------------------------------------------------------------
    def _grad_of(self, p: Tensor) -> Tensor:
        if p.grad.is_sparse:
            raise RuntimeError(
                f"{type(self).__name__} does not support sparse gradients (parameter of shape "
                f"{tuple(p.shape)}); use dense gradients, e.g. nn.Embedding(..., sparse=False)"
            )
        return p.grad

    def _with_grads(self, group: dict[str, Any], params: list, grads: list):
        """Yield ``(p, state, fresh)`` for each parameter with a gradient, appending it and its
        gradient to ``params`` / ``grads``; ``fresh`` says its dual variable v was just created."""
        for i, p in enumerate(group["params"]):
            if p.grad is None:
                continue
            state = self.state[p]
            fresh = "v" not in state
            self._new_state(group, i, p)
            grads.append(p.grad)
            params.append(p)
            yield p, state, fresh

    def _new_state(self, group: dict[str, Any], i: int, p: Tensor) -> Tensor:
        """``p``'s dual variable v, created on first use; an error for a sparse gradient."""
        self._grad_of(p)
        state = self.state[p]
        if "v" not in state:
            state["v"] = self._init_dual(p, group, self._param_name(group, i, p))
        return state["v"]

    def _init_dual(self, p: Tensor, group: dict[str, Any], name: str) -> Tensor:
        """v₀ = θ₀/δ + p₀ with p₀ ∈ ∂J(θ₀), so that prox_{δJ}(δ v₀) = θ₀ (PAPER.md §1.6)."""
        reg: Regularizer = group["reg"]
        reg.check(p.shape, name)
        return (p / group["delta"]).add_(reg.subgradient(p)).detach()

    def _param_name(self, group: dict[str, Any], i: int, p: Tensor) -> str:
        names = group.get("param_names")
        return f"parameter {names[i]!r}" if names else f"parameter of shape {tuple(p.shape)}"

    def _use_foreach(self, group: dict[str, Any]) -> bool:
        return True if group.get("foreach") is None else bool(group["foreach"])

    @staticmethod
    def _closure_loss(closure: Callable[[], Any] | None) -> Any:
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()

    # -- state dicts with plain values only --------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        for g in sd["param_groups"]:
            g["reg"] = g["reg"].to_dict()
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        sd = dict(state_dict)
        sd["param_groups"] = [
            dict(g, reg=from_dict(g["reg"]) if isinstance(g["reg"], dict) else g["reg"])
            for g in state_dict["param_groups"]
        ]
        super().load_state_dict(sd)


def group_by_device_and_dtype(tensorlists: list[list[Tensor]]) -> Iterable[list[list[Tensor]]]:
    """Split parallel tensor lists so each foreach call sees one device and dtype."""
    grouped = Optimizer._group_tensors_by_device_and_dtype(tensorlists)
    for (_device, _dtype), (lists, _indices) in grouped.items():
        yield lists
