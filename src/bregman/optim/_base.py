"""What the Bregman optimizers share: hyperparameter checks, gradient collection, lazy dual variables.

Parameters sharded by FSDP2 (``torch.distributed.fsdp.fully_shard``: DTensors split along dim 0) are
stepped on their local shards: ℓ1 acts entry by entry and the groups of rows, kernels and filters lie
inside one dim-0 slice, so the shard-local step is the unsharded step restricted to the shard. A
grouping that spans a sharded dim (columns, the head groupings) is refused with an error.

Each optimizer file follows torch.optim's four layers: the class (validates, packs ``defaults``),
``_init_group`` (creates state lazily, collects flat lists), a public functional that dispatches,
and two implementations (``_single_tensor_*`` reference loop, ``_multi_tensor_*`` foreach path).

A step is a function of what it reads at that call: the state, the param groups' current values
(tensor values included), the parameters and their gradients. Nothing from an earlier call decides
what a step computes; so a λ changed between steps, a tensor lr moved by a scheduler, a write
through ``p.data`` or a tensor swapped into a group all give what the single-tensor reference gives.

Hyperparameters are checked where they enter: the constructor, ``add_param_group``,
``load_state_dict``, and (for values changed in ``param_groups`` by hand) at every ``step()``.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import Tensor
from torch.optim import Optimizer

from bregman.optim._hooks import hooked_step
from bregman.regularizers import GROUPINGS, HEAD_BLOCKS, Null, Regularizer, from_dict

#: The tensor types that are never DTensors (checked first: ``hasattr`` on a missing attribute is slow)
_PLAIN = (Tensor, torch.nn.Parameter)

#: Keys that torch or its schedulers put in param groups, allowed in addition to ``defaults``.
_FOREIGN_KEYS = frozenset({"params", "name", "param_names", "initial_lr"})


def _bad(what: str, value: Any, need: str) -> ValueError:
    return ValueError(f"Invalid {what}: {value!r} ({need})")


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# Each check below starts with one comparison chain for a float in range (NaN fails it), the case of
# every step; anything else takes the full check with its message.


def check_lr(lr: Any) -> None:
    """τ: a finite number ≥ 0, or a 1-element tensor holding one (its value is read on the CPU only:
    elsewhere, and while compiling, reading it would be a device sync)."""
    if isinstance(lr, Tensor):
        if lr.numel() != 1:
            raise ValueError(f"Tensor lr must be 1-element, got shape {tuple(lr.shape)}")
        if not lr.is_cpu or torch.compiler.is_compiling():
            return
        lr = lr.item()
    if type(lr) is float and 0.0 <= lr < math.inf:
        return
    if not _is_number(lr) or lr < 0:
        raise _bad("learning rate", lr, "must be a finite number >= 0")


def check_delta(delta: Any) -> None:
    if type(delta) is float and 0.0 < delta < math.inf:
        return
    if not _is_number(delta) or delta <= 0:
        raise _bad("delta", delta, "the elastic-net parameter δ must be > 0")


def check_beta(beta: Any, name: str) -> None:
    if type(beta) is float and 0.0 <= beta < 1.0:
        return
    if not _is_number(beta) or not 0.0 <= beta < 1.0:
        raise _bad(name, beta, "must be in [0, 1)")


def check_eps(eps: Any) -> None:
    if type(eps) is float and 0.0 <= eps < math.inf:
        return
    if not _is_number(eps) or eps < 0:
        raise _bad("eps", eps, "must be a finite number >= 0")


def check_maximize(value: Any) -> None:
    if not isinstance(value, bool):
        raise _bad("maximize", value, "must be True or False")


def check_foreach(value: Any) -> None:
    if value is not None and not isinstance(value, bool):
        raise _bad("foreach", value, "must be None, True or False")


def check_reg(reg: Any) -> None:
    if not isinstance(reg, Regularizer):
        raise TypeError(
            f"Invalid reg: {reg!r}; pass a bregman.regularizers object such as L1(0.1), "
            f"GroupL12(0.1, 'kernels') or Null() (None means Null() when a group is added)"
        )


#: Checks every optimizer runs on its groups: key → check(value), raising ValueError / TypeError.
COMMON_CHECKS: dict[str, Callable[[Any], None]] = {
    "lr": check_lr, "reg": check_reg, "maximize": check_maximize, "foreach": check_foreach}


class RegularizedOptimizer(Optimizer):
    """torch.optim.Optimizer with a regularizer per param group.

    Subclasses set ``_checks`` (group key → ``check(value)``), implement ``_init_state``
    (the state of a parameter seen for the first time) and ``step``. Unknown group keys are an
    error that names them; ``state_dict`` stores each regularizer as a plain dict, so it loads
    with ``torch.load(..., weights_only=True)``.
    """

    _checks: dict[str, Callable[[Any], None]] = COMMON_CHECKS

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "step" in cls.__dict__:  # torch.optim's hooks and profiler label, the label only while profiling
            cls.step = hooked_step(cls.step)

    def __init__(self, params: Iterable, defaults: dict[str, Any]) -> None:
        defaults = dict(defaults)
        if defaults.get("reg") is None:
            defaults["reg"] = Null()
        self._validate(defaults, lambda key: f"argument {key}")
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any], where: Callable[[str], str]) -> None:
        """Run the checks on ``group``; an error names the optimizer and ``where(key)``."""
        for key, check in self._checks.items():
            if key in group:
                try:
                    check(group[key])
                except (ValueError, TypeError) as e:
                    raise type(e)(f"{type(self).__name__}: {where(key)}: {e}") from None

    def _check_groups(self) -> None:
        """Hyperparameters changed in ``param_groups`` since the last step, checked before any update
        (a few comparisons per group)."""
        for i, group in enumerate(self.param_groups):
            self._validate(group, lambda key: f"param_groups[{i}][{key!r}]")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        unknown = sorted(set(param_group) - set(self.defaults) - _FOREIGN_KEYS)
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: unknown param-group key(s) {unknown}; "
                f"valid keys are {sorted(set(self.defaults) | {'params', 'name'})}"
            )
        if "reg" in param_group and param_group["reg"] is None:
            param_group["reg"] = Null()
        n = len(self.param_groups)
        self._validate(param_group, lambda key: f"param group {n} being added, key {key!r}")
        super().add_param_group(param_group)

    # -- per-step helpers ------------------------------------------------------------------
    def _collect(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]
                 ) -> Iterator[dict[str, Any]]:
        """The one way gradients are collected: for each parameter of ``group`` with a gradient,
        append it and its gradient to ``params`` / ``grads`` and yield its state (created on
        first sight by ``_init_state``). ``group['reg']`` is checked against every shape, every
        step (cheap), so a regularizer changed between steps is checked too."""
        reg: Regularizer = group["reg"]
        any_shape = type(reg).check is Regularizer.check  # (the base check accepts every shape)
        for i, p in enumerate(group["params"]):
            g = p.grad
            if g is None:
                continue
            if g.is_sparse:
                raise RuntimeError(
                    f"{type(self).__name__} does not support sparse gradients ({self._param_name(group, i, p)}); "
                    f"use dense gradients, e.g. nn.Embedding(..., sparse=False)"
                )
            if not any_shape:
                try:
                    reg.check(p.shape)
                except ValueError:  # again, with the parameter's name in the message
                    reg.check(p.shape, self._param_name(group, i, p))
            state = self.state[p]  # keyed by the parameter itself, also when it is a DTensor shard
            if type(p) not in _PLAIN and hasattr(p, "to_local"):  # a DTensor (FSDP2): step on this shard
                _check_shard_local(reg, p, lambda: f"{type(self).__name__}: {self._param_name(group, i, p)}")
                p, g = p.to_local(), g.to_local()
            if not state:
                self._init_state(p, state, group)
            params.append(p)
            grads.append(g)
            yield state

    def _init_state(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """The dual variable v₀ = θ₀/δ + p₀ with p₀ ∈ ∂J(θ₀), so that prox_{δJ}(δ v₀) = θ₀ (PAPER.md §1.6)."""
        state["v"] = (p / group["delta"]).add_(group["reg"].subgradient(p)).detach()

    @staticmethod
    def _param_name(group: dict[str, Any], i: int, p: Tensor) -> str:
        names = group.get("param_names")
        return f"parameter {names[i]!r}" if names else f"parameter of shape {tuple(p.shape)}"

    @staticmethod
    def _use_foreach(group: dict[str, Any]) -> bool:
        return group["foreach"] is not False

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
            dict(g, reg=from_dict(g["reg"]) if isinstance(g.get("reg"), dict) else g.get("reg", Null()))
            for g in state_dict["param_groups"]
        ]
        for i, g in enumerate(sd["param_groups"]):
            self._validate(g, lambda key: f"load_state_dict: param_groups[{i}][{key!r}]")
        super().load_state_dict(sd)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:  # state dicts of earlier versions
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)


def _check_shard_local(reg: Regularizer, p: Tensor, where: Callable[[], str]) -> None:
    """Refuse a DTensor ``p`` whose regularizer has groups that span one of its sharded dims: the
    group norms would be those of the shards' pieces (an entrywise regularizer is always local)."""
    groups = getattr(reg, "groups", None)
    if groups is None:
        return
    sharded = {pl.dim for pl in p.placements if pl.is_shard()}
    spans = set(range(p.dim())) if groups in HEAD_BLOCKS else set(GROUPINGS[groups][1](p.dim()))
    if sharded & spans:
        raise ValueError(f"{where()} is sharded along dim {sorted(sharded)} and GroupL12(groups={groups!r}) "
                         f"groups span that dim, so a shard-local step is wrong; use a grouping inside dim-0 "
                         f"slices (rows, kernels, filters) or ℓ1, or leave this layer unsharded")


def group_by_device_and_dtype(tensorlists: list[list]) -> list[list[list]]:
    """Split parallel tensor lists so each foreach call sees one device and dtype (torch.optim's own
    grouping: under ``torch.compile`` it returns the lists whole). Lists whose parameters (the first
    list) share one device and dtype are yielded as they are: the tensors at one index always share
    them (a gradient has its parameter's, the state is made or loaded in the parameter's)."""
    if len({(t.device, t.dtype) for t in tensorlists[0]}) == 1:
        return [tensorlists]
    return [lists for lists, _indices in Optimizer._group_tensors_by_device_and_dtype(tensorlists).values()]


def fused_ok(tensorlists: list[list[Tensor]]) -> bool:
    """Whether torch's fused CPU kernels (what ``SGD``/``Adam(fused=True)`` call) can take these
    parallel lists, one bucket of :func:`group_by_device_and_dtype` (so one device and dtype): real
    float32/float64 CPU tensors, and at each index, tensors that are dense and in one memory layout
    (contiguous, or channels-last with the same strides), since the kernels walk them linearly."""
    t0 = tensorlists[0][0]
    if t0.dtype not in (torch.float32, torch.float64) or not t0.is_cpu or torch.compiler.is_compiling():
        return False
    # (all contiguous, the common case, first: ``map`` over the C method costs no Python frame per tensor)
    return (all(all(map(Tensor.is_contiguous, ts)) for ts in tensorlists)
            or all(_one_layout(ts) for ts in zip(*tensorlists)))


def _one_layout(tensors: tuple[Tensor, ...]) -> bool:
    t0 = tensors[0]
    stride = t0.stride()
    return ((t0.is_contiguous() or (t0.dim() == 4 and t0.is_contiguous(memory_format=torch.channels_last)))
            and all(t.stride() == stride for t in tensors[1:]))


def to_float(x: float | Tensor) -> float:
    """A hyperparameter as a Python number (a tensor lr is read here, once per group and step)."""
    return x.item() if isinstance(x, Tensor) else x
