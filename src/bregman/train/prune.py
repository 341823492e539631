r"""Iterative magnitude pruning with retraining (Han et al. 2015): the "Pruning" rows of Tables 1–2.

Masks are plain data, ``{param name: bool tensor}`` (``True`` = kept), over the conv and linear
weights only; biases and normalization parameters are never pruned.

*Unstructured* (Table 1): all conv + linear weights are ranked together by :math:`|w|` and the
largest ``round(density · N)`` are kept, so N_total = ``density`` exactly.

*Kernel-structured* (Table 2, ``prune_structured``): every conv kernel :math:`K_{i,j}` is scored by
:math:`\|K_{i,j}\|_2 / \sqrt{n_g}` (n_g = k·k, the group weight of eq. 1.14; for equal kernel
sizes this ranks exactly as the ℓ2 norm) and the largest ``round(density · #kernels)`` kernels are
kept over all conv layers together; linear weights are pruned unstructured among themselves to the
same density. So N_conv = N_linear = ``density``. (A single ranking of kernels against single
weights would compare a 25-entry norm with one entry; two rankings avoid that.)

Schedule [?] (the paper says only "pruning amount per step tuned to hit the target"): with E
epochs and S = ``prune_steps`` rounds, the first D = ⌊E/2⌋ epochs train dense; the remaining
R = E − D epochs are cut into S equal retraining phases, round k = 1..S prunes at the end of epoch

.. math:: e_k = D + \lfloor (k-1) R / S \rfloor \qquad (e_k = 0: \text{before training})

to density :math:`d_k = \text{target}^{k/S}` (geometric: every round removes the same fraction of
what is left) and the following epochs retrain with the mask enforced. E = 100, S = 5: dense until
epoch 50, prune after epochs 50, 60, 70, 80, 90 to 54.9 %, 30.2 %, 16.6 %, 9.1 %, 5 % (target 5 %),
retrain 10 epochs after each. Rounds that fall on the same epoch (few epochs) are done at once, to
the density of the last of them. A weight once pruned is never revived (it ranks last).

Enforcing a mask: before every optimizer step the masked gradients are zeroed, after it the
masked weights and every optimizer state tensor of the weight's shape (SGD momentum, Adam moments,
Bregman dual variables) are zeroed, so a pruned weight stays exactly zero. :class:`Pruner` does
this through ``Optimizer.register_step_pre_hook`` / ``register_step_post_hook``, so the training
step itself knows nothing about pruning.

Example:
    >>> from bregman.models import create_model
    >>> model = create_model("mlp")
    >>> masks = magnitude_mask(model, 0.1)
    >>> apply_masks_(model, masks)
    >>> from bregman import metrics
    >>> round(metrics.n_total(model), 3)
    0.1
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from bregman import metrics

__all__ = ["magnitude_mask", "masks_from_weights", "apply_masks_", "prune_schedule", "Pruner"]

Masks = dict[str, Tensor]


def _kernel_scores(w: Tensor) -> Tensor:
    """‖K_{i,j}‖₂ / √n_g per kernel of a conv weight (c_out × c_in × k…): shape c_out × c_in."""
    dims = tuple(range(2, w.ndim))
    n_g = max(1, w[0, 0].numel()) if w.ndim > 2 else 1
    return w.float().pow(2).sum(dim=dims).div_(n_g).sqrt_() if dims else w.float().abs()


def _top_mask(scores: list[Tensor], density: float) -> tuple[list[Tensor], float]:
    """Keep the largest ``round(density · N)`` of all ``scores`` together; masks shaped like each
    score tensor, and the smallest kept score (0.0 when nothing is kept)."""
    flat = torch.cat([s.reshape(-1) for s in scores])
    k = min(flat.numel(), round(density * flat.numel()))
    keep = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    smallest = 0.0
    if k > 0:
        top = torch.topk(flat, k, sorted=False)
        keep[top.indices] = True
        smallest = max(float(top.values.min()), 0.0)
    return list(keep.split([s.numel() for s in scores])), smallest


def masks_from_weights(weights: list[tuple[str, str, Tensor]], density: float, *, structured: bool = False,
                       previous: Mapping[str, Tensor] | None = None) -> tuple[Masks, Any]:
    """Magnitude masks for ``[(name, kind, weight)]`` (kind ``"conv"`` or ``"linear"``, as
    :func:`bregman.metrics.weights` yields them) and the threshold: the smallest kept score, a
    float (unstructured) or ``{"conv": kernel score, "linear": |w|}`` (structured).

    ``previous`` masks (same names) rank their pruned entries last, so they are never revived
    while the density decreases.
    """
    if not 0.0 <= density <= 1.0:
        raise ValueError(f"Invalid density: {density!r} (must be in [0, 1])")
    previous = previous or {}

    def scores(name: str, kind: str, w: Tensor) -> Tensor:
        s = _kernel_scores(w) if structured and kind == "conv" else w.float().abs()
        old = previous.get(name)
        if old is not None:  # a pruned entry (or kernel) ranks below every zero weight
            kept = old if s.shape == old.shape else old.flatten(2).any(dim=2)
            s = torch.where(kept.to(s.device), s, torch.full_like(s, -1.0))
        return s

    pools = {"all": weights} if not structured else {  # "linear": every other kind of weight
        "conv": [t for t in weights if t[1] == "conv"], "linear": [t for t in weights if t[1] != "conv"]}
    masks: Masks = {}
    thresholds: dict[str, float] = {}
    for pool, items in pools.items():
        if not items:
            continue
        keep, thresholds[pool] = _top_mask([scores(*t) for t in items], density)
        for (name, kind, w), m in zip(items, keep):
            if structured and kind == "conv":
                m = m.reshape(*w.shape[:2], *([1] * (w.ndim - 2))).expand(w.shape)
            masks[name] = m.reshape(w.shape).contiguous()
    return masks, thresholds["all"] if not structured else thresholds


def magnitude_mask(model: nn.Module, density: float, structured: bool = False,
                   previous: Mapping[str, Tensor] | None = None) -> Masks:
    """``{weight name: bool mask}`` keeping the ``density`` largest conv + linear weights of
    ``model`` (globally; ``structured``: whole conv kernels, see the module docstring)."""
    return masks_from_weights(list(metrics.weights(model)), density, structured=structured,
                              previous=previous)[0]


@torch.no_grad()
def apply_masks_(model: nn.Module, masks: Mapping[str, Tensor]) -> None:
    """Zero the masked entries of ``model``'s weights in place."""
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        params[name].mul_(mask)


def prune_schedule(epochs: int, steps: int) -> list[int]:
    """The epochs e_1 ≤ … ≤ e_S after which round k prunes (0 = before the first epoch)."""
    if epochs < 1 or steps < 1:
        raise ValueError(f"Invalid schedule: epochs={epochs!r}, prune_steps={steps!r} (both must be ≥ 1)")
    dense = epochs // 2
    rest = epochs - dense
    return [dense + (k - 1) * rest // steps for k in range(1, steps + 1)]


class Pruner:
    """Iterative magnitude pruning of ``model`` to density ``target`` in ``steps`` rounds.

    The training loop calls :meth:`update` with epoch 0 before training and with every finished
    epoch, and :meth:`attach` once on the optimizer; :attr:`done` is true once the last round has
    pruned (models before that are not candidates for the best model). :meth:`state_dict` holds
    the round, the masks and the schedule (tensors and ints: loads with ``weights_only=True``); a
    resumed run keeps the schedule it started with, so extending ``epochs`` on resume lengthens
    the last retraining phase instead of moving the rounds.

    Args:
        model: the network; its conv and linear weights are pruned.
        target: the final density d_S, in (0, 1).
        steps: the number of rounds S.
        epochs: the planned number of epochs E (fixes the schedule).
        structured: prune whole conv kernels (linear layers stay unstructured).
    """

    def __init__(self, model: nn.Module, target: float, steps: int, epochs: int, *, structured: bool = False):
        if not 0.0 < target < 1.0:
            raise ValueError(f"Invalid prune target: {target!r} (must be in (0, 1))")
        self.model, self.target, self.steps, self.structured = model, target, steps, structured
        self.schedule = prune_schedule(epochs, steps)
        self.round = 0
        self.masks: Masks = {}
        self._params = dict(model.named_parameters())
        self._opt: torch.optim.Optimizer | None = None

    @property
    def done(self) -> bool:
        return self.round == self.steps

    def density(self, round_: int) -> float:
        """d_k = target^(k/S); d_0 = 1."""
        return self.target ** (round_ / self.steps)

    def update(self, epoch: int) -> bool:
        """Prune if rounds are due after ``epoch``; returns whether it pruned."""
        due = sum(e <= epoch for e in self.schedule)
        if due <= self.round:
            return False
        self.round = due
        self.masks = magnitude_mask(self.model, self.density(due), self.structured, previous=self.masks)
        self.enforce_()
        return True

    # -- mask enforcement ------------------------------------------------------------------------
    @torch.no_grad()
    def enforce_(self) -> None:
        """Zero the masked weights and the matching entries of the optimizer's state."""
        apply_masks_(self.model, self.masks)
        if self._opt is None:
            return
        for name, mask in self.masks.items():
            for v in self._opt.state.get(self._params[name], {}).values():
                if torch.is_tensor(v) and v.shape == mask.shape:
                    v.mul_(mask)

    @torch.no_grad()
    def _zero_grads(self, *_: Any) -> None:
        for name, mask in self.masks.items():
            g = self._params[name].grad
            if g is not None:
                g.mul_(mask)

    def attach(self, opt: torch.optim.Optimizer) -> list[Any]:
        """Enforce the masks around every ``opt.step()``; returns the hook handles."""
        self._opt = opt
        return [opt.register_step_pre_hook(self._zero_grads),
                opt.register_step_post_hook(lambda *_: self.enforce_())]

    # -- checkpointing ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"round": self.round, "schedule": list(self.schedule),
                "masks": {k: m.clone() for k, m in self.masks.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        unknown = set(state["masks"]) - set(self._params)
        if unknown:
            raise ValueError(f"pruner state has masks for unknown parameters: {sorted(unknown)}")
        self.round = int(state["round"])
        self.schedule = [int(e) for e in state["schedule"]]
        device = next(iter(self._params.values())).device
        self.masks = {k: m.to(device) for k, m in state["masks"].items()}
