r"""A trained sparse net → a smaller dense net with the same outputs (eval mode).

A Bregman-trained net keeps whole neurons and conv filters exactly zero (row and kernel sparsity,
eqs. 1.13–1.14). :func:`compact` removes them. Take a *channel* :math:`j` of a hidden tensor: the
output :math:`j` of its producing layers (rows of ``nn.Linear``, filters of ``nn.Conv2d``, entries
of the ``nn.BatchNorm`` that follows, everything a residual addition couples to it) and the
input :math:`j` of its consuming layers (columns :math:`W_{:,j}`). Two cases make it removable:

* **unread**: every consumer has :math:`W_{:,j} = 0`. Nothing downstream depends on the channel;
  its producers' rows and the consumers' columns go, with no change to any output.
* **constant**: every producer row is zero, so the channel carries
  :math:`c_j = \sigma(\mathrm{BN}(b_j))` (bias, batch norm, activation, pooling of a constant) for
  every input. A linear consumer :math:`y = Wx + b` becomes
  :math:`y = W_{:,K}\,x_K + (b + W_{:,j}\,c_j)` on the kept channels :math:`K`; a convolution
  without padding gets :math:`b_o \leftarrow b_o + c_j \sum_{u,v} W_{o,j,u,v}`. A zero-padded
  convolution sees :math:`c_j` only inside the image, so its contribution is not a bias near the
  border: there the channel is removed only when :math:`c_j = 0`, and kept otherwise.

Removing channels can make more rows zero (a row whose only non-zeros read removed channels), so
the passes repeat until nothing changes. Which layers couple to a channel (residual additions,
concatenations, flatten → linear) is not traced here: ``torch-pruning``'s ``DependencyGraph``
does it, and removes the channels consistently. Our part is deciding what is dead from the zeros,
reading :math:`c_j` off the example inputs (and checking it is the same for all of them), folding
it exactly, and checking the result: :func:`compact` compares the outputs on the example inputs
and raises :class:`CompactionError` when they differ by more than ``tol``, or when a layer it does
not know how to follow (a custom conv subclass, a layer norm, …) is in the way. Never a silent
approximation.

What stays is dense, except where ``sparse_below`` asks for :class:`SparseLinear`: linear layers
with at most that fraction of non-zero weights stored and run in ``torch.sparse_csr`` (on this
project's CPU it pays below about 10 % density, see ``benchmarks/inference.py``).

``torch-pruning`` is an optional dependency (``pip install bregman[export]``), imported only when
:func:`compact` runs.

Example:
    >>> import torch
    >>> from bregman.compact import compact
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2)).eval()
    >>> with torch.no_grad():
    ...     net[0].weight[:4] = 0                      # neurons 0–3 constant: ReLU(b_j)
    >>> small = compact(net, torch.randn(5, 8))
    >>> small[0].out_features, small[2].in_features
    (2, 2)
"""
from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from bregman._extras import require

__all__ = ["compact", "CompactionError", "SparseLinear", "sparse_linears_", "require_extra", "count_parameters"]

#: the layers whose channels compaction follows: exactly these types (a subclass may compute
#: something else in ``forward``, e.g. a fused or support convolution, and is refused)
_WEIGHTED = (nn.Linear, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d)


class CompactionError(RuntimeError):
    """The model cannot be compacted with provably equal outputs; the message says why."""


def require_extra(module: str) -> Any:
    """Import an optional dependency of the ``export`` extra, or fail with the install command."""
    return require(module, "compaction and export", extra="export")


def count_parameters(model: nn.Module) -> int:
    """Number of parameter entries (a sparse CSR weight counts its stored values)."""
    n = sum(p.numel() for p in model.parameters())
    return n + sum(m.weight.values().numel() for m in model.modules() if isinstance(m, SparseLinear))


# ----------------------------------------------------------------------------------- checking
def _as_tuple(example_inputs: Tensor | Sequence[Tensor]) -> tuple[Tensor, ...]:
    return (example_inputs,) if isinstance(example_inputs, Tensor) else tuple(example_inputs)


def _check_layers(model: nn.Module) -> None:
    """Refuse modules whose computation compaction cannot follow, before any work is done."""
    for name, m in model.named_modules():
        direct = list(m.parameters(recurse=False))
        if isinstance(m, _WEIGHTED) and type(m) not in _WEIGHTED:
            raise CompactionError(
                f"module {name!r} is a {type(m).__name__}, a subclass of nn.{type(m).__mro__[1].__name__} "
                f"with its own forward: compaction follows the plain torch layers only; build the model "
                f"without speed settings (e.g. bregman.models.create_model) and load the weights into it")
        if direct and type(m) not in _WEIGHTED:
            raise CompactionError(
                f"module {name!r} ({type(m).__name__}) holds parameters of its own: compaction follows "
                f"nn.Linear, nn.Conv2d and nn.BatchNorm only")
        if type(m) is nn.Conv2d and (m.groups != 1 or m.padding_mode != "zeros"):
            raise CompactionError(f"convolution {name!r} has groups={m.groups}, padding_mode="
                                  f"{m.padding_mode!r}: compaction follows groups=1, zero padding only")


def _outputs(model: nn.Module, inputs: tuple[Tensor, ...]) -> list[Tensor]:
    with torch.no_grad():
        out = model(*(x.clone() for x in inputs))  # the model may write into its input (Normalize)
    return [t.detach().clone() for t in (out if isinstance(out, (tuple, list)) else (out,))]


def _max_difference(a: list[Tensor], b: list[Tensor]) -> float:
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        return float("inf")
    return max((x.double() - y.double()).abs().max().item() if x.numel() else 0.0 for x, y in zip(a, b))


# -------------------------------------------------------------------------- dead channels
@dataclass
class _Plan:
    """One dependency group's channels to remove, and the bias changes that fold them."""
    root: nn.Module
    prune_fn: Any
    dead: list[int]
    folds: list[tuple[nn.Module, Tensor]] = field(default_factory=list)


def _rows_zero(m: nn.Module, idx: list[int]) -> Tensor:
    """Per output channel in ``idx``: whether its weights (row, filter) are all zero."""
    return m.weight.detach()[idx].flatten(1).eq(0).all(1)


def _cols_zero(m: nn.Module, idx: list[int]) -> Tensor:
    """Per input channel in ``idx``: whether no weight reads it (a zero column)."""
    return m.weight.detach()[:, idx].transpose(0, 1).flatten(1).eq(0).all(1)


def _constant(x: Tensor, idx: list[int], conv: bool) -> tuple[Tensor, Tensor]:
    """Per channel of ``idx`` in a recorded consumer input ``x`` (a convolution's N×C×H×W, a linear
    layer's …×C): its first value, and whether it takes that value everywhere (over the batch, and
    over the positions of a convolution's input)."""
    v = x.detach()[:, idx].transpose(0, 1).flatten(1) if conv else x.detach()[..., idx].reshape(-1, len(idx)).t()
    return v[:, 0], (v == v[:, :1]).all(1)


def _group_plan(dg, group, recorded: dict[nn.Module, Tensor], names: dict[nn.Module, str]) -> _Plan | None:
    tp = require_extra("torch_pruning")
    types = tp.ops.OPTYPE
    channel_ops = {types.ELEMENTWISE, types.RESHAPE, types.CONCAT, types.SPLIT, types.SLICE, types.OUTPUT,
                   types.EXPAND, types.UNBIND}
    root_dep = group[0].dep
    n = len(group[0].idxs)
    producers, consumers = [], []
    for item in group:
        dep, node = item.dep, item.dep.target
        m = node.module
        if node.type in (types.CONV, types.LINEAR):
            (producers if dg.is_out_channel_pruning_fn(dep.handler) else consumers).append((m, item))
        elif node.type == types.OUTPUT:  # the channel is an output of the model itself
            return None
        elif node.type != types.BN and node.type not in channel_ops:
            raise CompactionError(f"layer {names.get(m, m)!r} ({node.type.name}) is coupled to the channels "
                                  f"of {names.get(root_dep.target.module)!r}: compaction cannot follow it")
    if not consumers:  # nothing reads it inside the model: an output layer
        return None
    no_input = torch.ones(n, dtype=torch.bool)
    unread = torch.ones(n, dtype=torch.bool)
    for m, item in producers:
        no_input &= _scatter(n, item.root_idxs, _rows_zero(m, item.idxs), all_=True)
    for m, item in consumers:
        unread &= _scatter(n, item.root_idxs, _cols_zero(m, item.idxs), all_=True)
    constant = no_input & ~unread
    folds = []
    if constant.any():
        columns = []
        for m, item in consumers:
            value, same = _constant(recorded[m], item.idxs, isinstance(m, nn.Conv2d))
            bad = constant[item.root_idxs] & ~same
            if bad.any():
                j = item.root_idxs[int(bad.nonzero()[0])]
                raise CompactionError(
                    f"channel {j} of {names.get(root_dep.target.module)!r} has zero weights in every "
                    f"producer but is not one constant at {names.get(m)!r} (it varies with the input or "
                    f"over positions): compaction cannot follow the model's structure")
            contribution = _per_column(m.weight.detach()[:, item.idxs]) * value.to(m.weight.dtype)  # out × k
            if isinstance(m, nn.Conv2d) and any(p != 0 for p in m.padding):
                # the zero border sees 0, not c_j: the channel's effect is not a bias unless c_j = 0
                constant &= ~_scatter(n, item.root_idxs, value.ne(0), all_=False)
            if m.bias is None:  # nothing to fold into
                constant &= ~_scatter(n, item.root_idxs, contribution.ne(0).any(0), all_=False)
            columns.append((m, item, contribution))
        for m, item, contribution in columns:
            sel = [k for k, j in enumerate(item.root_idxs) if constant[j]]
            if sel and m.bias is not None:
                folds.append((m, contribution[:, sel].sum(1)))
    idx = (unread | constant).nonzero().flatten().tolist()
    if len(idx) == n:  # keep one channel: zero-width layers do not export
        idx = idx[1:]
    if not idx:
        return None
    return _Plan(root_dep.target.module, root_dep.handler, idx, folds)


def _per_column(w: Tensor) -> Tensor:
    """A consumer's weight columns as ``out × k``: a convolution's kernels summed over their taps,
    which is what a spatially constant input channel meets (without padding)."""
    return w.flatten(2).sum(2) if w.dim() > 2 else w


def _scatter(n: int, root_idxs: list[int], flags: Tensor, *, all_: bool) -> Tensor:
    """Per root channel: whether all (``all_``) or any of its entries in ``flags`` hold."""
    out = torch.full((n,), all_, dtype=torch.bool)
    idx = torch.as_tensor(root_idxs, dtype=torch.long)
    return out.scatter_reduce_(0, idx, flags, reduce="amin" if all_ else "amax")


def _record_inputs(model: nn.Module, inputs: tuple[Tensor, ...]) -> dict[nn.Module, Tensor]:
    """The input of every linear and conv layer on ``inputs`` (as the layer saw it)."""
    seen: dict[nn.Module, Tensor] = {}

    def hook(m, args):
        seen[m] = args[0].detach().clone()

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if type(m) in (nn.Linear, nn.Conv2d)]
    try:
        _outputs(model, inputs)
    finally:
        for h in handles:
            h.remove()
    return seen


def _compact_pass(net: nn.Module, inputs: tuple[Tensor, ...]) -> int:
    """One pass: find every group's dead channels on the current weights, fold, remove. Returns
    how many channels were removed."""
    tp = require_extra("torch_pruning")
    dg = tp.DependencyGraph().build_dependency(net, example_inputs=[x.clone() for x in inputs], verbose=False)
    recorded = _record_inputs(net, inputs)
    names = {m: name for name, m in net.named_modules()}
    plans = [p for g in dg.get_all_groups() if (p := _group_plan(dg, g, recorded, names)) is not None]
    with torch.no_grad():
        for plan in plans:
            for m, delta in plan.folds:
                m.bias.add_(delta.to(m.bias.dtype))
    for plan in plans:
        dg.get_pruning_group(plan.root, plan.prune_fn, plan.dead).prune()
    return sum(len(p.dead) for p in plans)


# ----------------------------------------------------------------------------------- public
def compact(model: nn.Module, example_inputs: Tensor | Sequence[Tensor], *, sparse_below: float | None = None,
            tol: float = 1e-5) -> nn.Module:
    """A smaller copy of ``model`` (in eval mode) that computes the same outputs.

    Removes the unread and the constant channels (module docstring) of every hidden
    ``nn.Linear`` / ``nn.Conv2d`` layer, with their batch-norm entries, until none is left, folding
    the constants into the next layers' biases. ``model`` itself is not changed.

    Args:
        model: a net of plain ``nn.Linear``, ``nn.Conv2d`` (groups 1, zero padding) and
            ``nn.BatchNorm`` layers plus parameter-free modules and functions.
        example_inputs: a batch (or a tuple of the forward's tensors) to trace the structure, to read
            the constant channels off, and to check the result on.
        sparse_below: if given, linear layers with a density (fraction of non-zero weights) of at
            most this are stored as :class:`SparseLinear` (``torch.sparse_csr``).
        tol: the largest allowed ``max |compact(x) − model(x)|`` on the example inputs, relative to
            ``max(1, max |model(x)|)``.

    Raises:
        CompactionError: a layer that cannot be followed, or outputs that differ by more than ``tol``.
        ImportError: torch-pruning is not installed (``pip install 'bregman[export]'``).
    """
    if sparse_below is not None and not 0.0 <= sparse_below <= 1.0:
        raise ValueError(f"Invalid sparse_below: {sparse_below!r} (a density in [0, 1])")
    require_extra("torch_pruning")
    _check_layers(model)
    inputs = _as_tuple(example_inputs)
    net = copy.deepcopy(model).eval()
    for p in net.parameters():
        p.requires_grad_(True)  # the dependency graph is traced through autograd
    reference = _outputs(net, inputs)
    with torch.enable_grad():
        while _compact_pass(net, inputs):
            pass
    wanted = dict((n, p.requires_grad) for n, p in model.named_parameters())
    for n, p in net.named_parameters():
        p.requires_grad_(wanted.get(n, False))
    if sparse_below is not None:
        sparse_linears_(net, sparse_below)
    got = _outputs(net, inputs)
    scale = max([1.0] + [r.abs().max().item() for r in reference if r.numel()])
    diff = _max_difference(reference, got)
    if not diff <= tol * scale:
        raise CompactionError(f"the compacted model's outputs differ from the original's by {diff:.3g} "
                              f"(allowed {tol * scale:.3g}) on the example inputs: the model's structure was "
                              f"not followed; it is left as it is")
    return net


class SparseLinear(nn.Module):
    r"""``y = x Wᵀ + b`` with ``W`` stored in ``torch.sparse_csr``: the work is proportional to the
    non-zeros of ``W``, not to its size. Built from an ``nn.Linear`` by :meth:`from_dense`; the same
    outputs up to the order of summation. The weight is a buffer (inference only)."""

    def __init__(self, weight: Tensor, bias: Tensor | None) -> None:
        super().__init__()
        with warnings.catch_warnings():  # "sparse CSR support is in beta": known, and tested here
            warnings.simplefilter("ignore", UserWarning)
            csr = weight.detach().to_sparse_csr()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        self.register_buffer("weight", csr)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    @classmethod
    def from_dense(cls, linear: nn.Linear) -> "SparseLinear":
        return cls(linear.weight, linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(-1, self.in_features)
        y = torch.sparse.mm(self.weight, flat.t()).t()  # (out×in sparse) · (in×N dense)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        nnz = self.weight.values().numel()
        return f"in_features={self.in_features}, out_features={self.out_features}, nnz={nnz}"


def sparse_linears_(model: nn.Module, max_density: float) -> int:
    """Replace, in place, every ``nn.Linear`` of ``model`` whose fraction of non-zero weights is at
    most ``max_density`` by a :class:`SparseLinear`; returns how many."""
    n = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear and child.weight.count_nonzero().item() <= max_density * child.weight.numel():
                setattr(parent, name, SparseLinear.from_dense(child))
                n += 1
    return n
