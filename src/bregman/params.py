r"""Which parameter is what: the one classification of a model's parameters, and param groups from it.

Every parameter gets one *kind* (:data:`KINDS`), decided by the module that owns it and its name:

=============  ====================================================================  ================
kind           parameters                                                            regularized by
=============  ====================================================================  ================
``linear``     ``weight`` of ``nn.Linear`` (out × in) and ``nn.Bilinear``           ``linear``
``conv``       ``weight`` of ``nn.Conv1d/2d/3d`` and ``nn.ConvTranspose1d/2d/3d``    ``conv``
``attention``  ``nn.MultiheadAttention``: ``in_proj_weight`` (Q, K, V stacked,       ``attention``
               3E × E) or ``q/k/v_proj_weight``, and ``out_proj.weight``             (default: linear)
``recurrent``  ``weight_ih_l*``, ``weight_hh_l*``, ``weight_hr_l*`` of                ``recurrent``
               ``nn.RNN/LSTM/GRU`` and the ``weight_ih/hh`` of their cells            (default: linear)
``embedding``  ``weight`` of ``nn.Embedding`` / ``nn.EmbeddingBag`` (a row per token)  ``embedding``
                                                                                      (default: none)
``unknown``    any other parameter with dim ≥ 2 (a module this table does not know)  a rule only
``other``      biases, normalization layers, every other parameter with dim < 2      never
=============  ====================================================================  ================

The *weights* are every kind but ``other``: they are what the metrics count
(:mod:`bregman.metrics`), what sparse initialization masks (:mod:`bregman.init`) and what a
regularizer may act on. Groupings that mean something per kind (``GroupL12(λ, groups)``): rows =
output units for linear-like weights (``linear``, ``attention``, ``recurrent``; a row of an
embedding is one token), ``"heads"`` for attention (one group per head: ``in_proj_weight`` of
E = H·d splits into exactly 3H blocks of d rows; ``out_proj.weight`` into H blocks of d columns,
the weights that read one head, which ``param_groups`` picks by itself as ``"head_inputs"``), and
``"kernels"`` / ``"filters"`` for convs of every dimension.

Where the defaults do not fit, *rules* ``[(pattern, regularizer), ...]`` override them by
parameter name: ``pattern`` is a shell-style glob (:func:`fnmatch.fnmatchcase`) on the full name
(``"encoder.layers.*.self_attn.in_proj_weight"``), the first matching rule wins, and ``None`` means
unregularized. A rule that matches no parameter, or a regularizer that does not fit a parameter's
shape, is an error naming the rule or the parameter. :func:`describe` prints what each parameter
gets, so nothing is left out silently.

Example:
    >>> from torch import nn
    >>> from bregman.regularizers import L1, GroupL12
    >>> model = nn.Sequential(nn.Embedding(50, 16), nn.TransformerEncoderLayer(16, 4, 32), nn.Linear(16, 50))
    >>> groups = param_groups(model, linear=GroupL12(0.1, "rows"), attention=GroupL12(0.1, "heads"))
    >>> [g["name"] for g in groups]
    ['attention', 'attention:head_inputs', 'linear', 'embedding', 'other']
    >>> print(describe(model, linear=L1(0.1)).splitlines()[2])
    0.weight                     embedding  none         (50, 16)   800
"""
from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from bregman.regularizers import HEAD_BLOCKS, GroupL12, Null, Regularizer

__all__ = ["KINDS", "WEIGHT_KINDS", "ParamInfo", "classify", "weights", "param_groups", "describe",
           "LINEAR_TYPES", "CONV_TYPES", "RECURRENT_TYPES", "EMBEDDING_TYPES", "NORM_TYPES"]

LINEAR_TYPES: tuple[type, ...] = (nn.Linear, nn.Bilinear)
CONV_TYPES: tuple[type, ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d,
                                nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
RECURRENT_TYPES: tuple[type, ...] = (nn.RNNBase, nn.RNNCellBase)
EMBEDDING_TYPES: tuple[type, ...] = (nn.Embedding, nn.EmbeddingBag)
NORM_TYPES: tuple[type, ...] = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm,
                                nn.LocalResponseNorm)

#: kind → what it is; the order is the order of :func:`describe` and of the param groups.
KINDS: dict[str, str] = {
    "attention": "Q/K/V and output projections of nn.MultiheadAttention",
    "linear": "nn.Linear / nn.Bilinear weights",
    "conv": "weights of nn.Conv1d/2d/3d and nn.ConvTranspose1d/2d/3d",
    "recurrent": "input and hidden weights of nn.RNN/LSTM/GRU and their cells",
    "embedding": "nn.Embedding / nn.EmbeddingBag tables",
    "unknown": "a parameter with dim >= 2 of a module this classification does not know",
    "other": "biases, normalization parameters, other parameters with dim < 2",
}

#: the kinds that are weights: counted by the metrics, masked by sparse initialization
WEIGHT_KINDS: tuple[str, ...] = tuple(k for k in KINDS if k != "other")


@dataclass(frozen=True)
class ParamInfo:
    """One parameter of a model and what it is.

    ``head_dim`` and ``head_axis`` (0: rows, 1: columns) are set for attention projections:
    the size and the axis of one head's block. ``bias`` names the parameter that is this
    weight's bias (initialized with it), if any.
    """

    name: str
    kind: str
    param: nn.Parameter
    head_dim: int | None = None
    head_axis: int | None = None
    bias: str | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.param.shape)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _attention(mname: str, m: nn.MultiheadAttention) -> dict[str, tuple[int, int, str | None]]:
    """``{param name: (head_dim, head_axis, bias name)}`` for one attention module's projections."""
    d = m.head_dim
    bias = _join(mname, "in_proj_bias") if m.in_proj_bias is not None else None
    names = ("in_proj_weight",) if m.in_proj_weight is not None else ("q_proj_weight", "k_proj_weight",
                                                                      "v_proj_weight")
    out = {_join(mname, n): (d, 0, bias if n == "in_proj_weight" else None) for n in names}
    out[_join(mname, "out_proj.weight")] = (d, 1, _join(mname, "out_proj.bias") if m.out_proj.bias is not None
                                             else None)
    return out


def _kind(module: nn.Module, pname: str, p: Tensor) -> str:
    if isinstance(module, NORM_TYPES) or p.dim() < 2 or pname.startswith("bias"):
        return "other"
    if pname == "weight" and isinstance(module, LINEAR_TYPES):
        return "linear"
    if pname == "weight" and isinstance(module, CONV_TYPES):
        return "conv"
    if pname == "weight" and isinstance(module, EMBEDDING_TYPES):
        return "embedding"
    if pname.startswith("weight_") and isinstance(module, RECURRENT_TYPES):
        return "recurrent"
    return "unknown"


def classify(model: nn.Module) -> list[ParamInfo]:
    """Every parameter of ``model`` once (shared ones under their first name), with its kind.

    Frozen parameters (``requires_grad=False``) are listed too: they count in the metrics.
    """
    attention: dict[str, tuple[int, int, str | None]] = {}
    for mname, m in model.named_modules():
        if isinstance(m, nn.MultiheadAttention):
            attention.update(_attention(mname, m))
    out: list[ParamInfo] = []
    seen: set[int] = set()
    for mname, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            name = _join(mname, pname)
            if name in attention:
                head_dim, axis, bias = attention[name]
                out.append(ParamInfo(name, "attention", p, head_dim, axis, bias))
                continue
            kind = _kind(module, pname, p)
            bias = pname.replace("weight", "bias", 1) if kind in WEIGHT_KINDS else None
            has_bias = bias is not None and getattr(module, bias, None) is not None
            out.append(ParamInfo(name, kind, p, bias=_join(mname, bias) if has_bias else None))
    return out


def weights(model: nn.Module, kinds: str | Sequence[str] | None = None) -> Iterator[ParamInfo]:
    """The weights of ``model`` (every kind but ``other``), or those of ``kinds`` only."""
    want = WEIGHT_KINDS if kinds is None else (kinds,) if isinstance(kinds, str) else tuple(kinds)
    unknown = sorted(set(want) - set(KINDS))
    if unknown:
        raise ValueError(f"Unknown parameter kind(s) {unknown}; known: {list(KINDS)}")
    return (info for info in classify(model) if info.kind in want)


# ------------------------------------------------------------------------------------ regularizers
_AS_LINEAR = "same as linear"  # default of `attention` and `recurrent`: they are linear maps too

Rule = tuple[str, "Regularizer | None"]


def _fit(reg: Regularizer, info: ParamInfo) -> Regularizer:
    """``reg`` for this parameter: the head groupings get the module's head_dim and the axis of
    its heads; any regularizer is checked against the shape (a clear error naming the parameter)."""
    if isinstance(reg, GroupL12) and reg.groups in HEAD_BLOCKS:
        if info.head_dim is None:
            raise ValueError(f"GroupL12(groups={reg.groups!r}) is for attention projections, but {info.name} "
                             f"(kind {info.kind!r}, shape {info.shape}) has no heads; use rows, columns or L1 for it")
        groups = next(g for g, axis in HEAD_BLOCKS.items() if axis == info.head_axis)
        reg = dataclasses.replace(reg, groups=groups, head_dim=info.head_dim)
    reg.check(info.param.shape, info.name)
    return reg


def _check_rules(rules: Sequence[Rule]) -> list[Rule]:
    out = []
    for rule in rules:
        if not (isinstance(rule, (tuple, list)) and len(rule) == 2 and isinstance(rule[0], str)
                and (rule[1] is None or isinstance(rule[1], Regularizer))):
            raise TypeError(f"Invalid rule {rule!r}: give (pattern, regularizer), e.g. "
                            f"('encoder.*.in_proj_weight', GroupL12(0.1, 'heads')), or (pattern, None)")
        out.append((rule[0], rule[1] or Null()))
    return out


def _assign(model: nn.Module, regs: dict[str, Regularizer], rules: Sequence[Rule]
            ) -> list[tuple[ParamInfo, Regularizer, str]]:
    """(parameter, its regularizer, the group it goes to) for every parameter of ``model``."""
    rules = _check_rules(rules)
    infos = classify(model)
    used = [False] * len(rules)
    out = []
    for info in infos:
        hit = next((i for i, (pattern, _) in enumerate(rules) if fnmatch.fnmatchcase(info.name, pattern)), None)
        if hit is None:
            reg, group = regs.get(info.kind, Null()), info.kind
        else:
            used[hit] = True
            reg, group = rules[hit][1], f"rule {rules[hit][0]}"
        out.append((info, _fit(reg, info), group))
    names = [info.name for info in infos]
    unused = [pattern for (pattern, _), u in zip(rules, used) if not u]
    nowhere = [pattern for pattern in unused if not fnmatch.filter(names, pattern)]
    if nowhere:
        raise ValueError(f"rule pattern(s) {nowhere} match no parameter of {type(model).__name__}; patterns are "
                         f"shell-style globs on full names such as {names[:4]} (see bregman.params.describe)")
    if unused:
        raise ValueError(f"rule pattern(s) {unused} never apply: every parameter they match is taken by an earlier "
                         f"rule (the first match wins); remove them or move them up")
    return out


def _defaults(linear, conv, attention, recurrent, embedding) -> dict[str, Regularizer]:
    linear = linear or Null()
    return {"linear": linear, "conv": conv or Null(),
            "attention": linear if attention is _AS_LINEAR else attention or Null(),
            "recurrent": linear if recurrent is _AS_LINEAR else recurrent or Null(),
            "embedding": embedding or Null()}


def param_groups(model: nn.Module, *, linear: Regularizer | None = None, conv: Regularizer | None = None,
                 attention: Regularizer | None | str = _AS_LINEAR, recurrent: Regularizer | None | str = _AS_LINEAR,
                 embedding: Regularizer | None = None, rules: Sequence[Rule] = (),
                 **group_options: Any) -> list[dict[str, Any]]:
    """Param groups of ``model``'s trainable parameters, one regularizer per group.

    Args:
        linear: J for ``linear`` weights (None = unregularized).
        conv: J for ``conv`` weights.
        attention: J for ``attention`` projections; default: ``linear``'s. ``GroupL12(λ, "heads")``
            gives a group per head (``head_dim`` and the axis are filled in per module).
        recurrent: J for ``recurrent`` weights; default: ``linear``'s.
        embedding: J for ``embedding`` tables (default: unregularized).
        rules: ``[(glob, J or None), ...]`` by parameter name, before the kinds; first match wins.
        group_options: extra keys for every group (e.g. ``lr``).

    Returns a list of param-group dicts with keys ``params``, ``param_names``, ``reg``, ``name``:
    one group per kind (named by it, in :data:`KINDS` order) and per rule (``"rule <glob>"``);
    a kind whose parameters need different regularizers (heads of different sizes, out_proj's
    head columns) gets one group per regularizer (``"attention:head_inputs"``). Empty groups are
    left out; shared parameters are counted once.

    Raises:
        ValueError: a rule matches no parameter, or a regularizer does not fit a parameter's
            shape (the message names it).
    """
    regs = _defaults(linear, conv, attention, recurrent, embedding)
    groups: dict[tuple[str, Regularizer], dict[str, Any]] = {}
    for info, reg, group in _assign(model, regs, rules):
        if not info.param.requires_grad:
            continue
        g = groups.get((group, reg))
        if g is None:
            suffix = f":{reg.groups}" if any(k[0] == group for k in groups) and isinstance(reg, GroupL12) else ""
            name = group + suffix if all(v["name"] != group + suffix for v in groups.values()) else \
                f"{group}:{len(groups)}"
            g = groups[(group, reg)] = {"name": name, "params": [], "param_names": [], "reg": reg, **group_options}
        g["params"].append(info.param)
        g["param_names"].append(info.name)
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted(groups.values(), key=lambda g: order.get(g["name"].split(":")[0], -1))


def _reg_name(reg: Regularizer) -> str:
    if isinstance(reg, GroupL12):
        head = "" if reg.head_dim is None else f", head_dim={reg.head_dim}"
        return f"GroupL12({reg.lam:g}, {reg.groups}{head})"
    lam = getattr(reg, "lam", None)
    return reg.kind if lam is None else f"{type(reg).__name__}({lam:g})"


def describe(model: nn.Module, *, linear: Regularizer | None = None, conv: Regularizer | None = None,
             attention: Regularizer | None | str = _AS_LINEAR, recurrent: Regularizer | None | str = _AS_LINEAR,
             embedding: Regularizer | None = None, rules: Sequence[Rule] = ()) -> str:
    """A table of every parameter: name, kind, regularizer, shape, size (the arguments of
    :func:`param_groups`), then the totals per kind; ``unknown`` parameters are flagged.
    Frozen parameters show ``frozen`` as their regularizer. Returns the text (print it)."""
    rows = [(info.name, info.kind, "frozen" if not info.param.requires_grad else _reg_name(reg),
             str(info.shape), f"{info.param.numel():,}")
            for info, reg, _ in _assign(model, _defaults(linear, conv, attention, recurrent, embedding), rules)]
    header = ("parameter", "kind", "regularizer", "shape", "size")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(5)]

    def line(r):
        return "  ".join(c.rjust(w) if i == 4 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    out = [line(header), line(["-" * w for w in widths]), *map(line, rows)]
    totals = {}
    for info in classify(model):
        totals[info.kind] = totals.get(info.kind, 0) + info.param.numel()
    out.append("total: " + ", ".join(f"{k} {totals[k]:,}" for k in KINDS if k in totals))
    unknown = [r[0] for r in rows if r[1] == "unknown"]
    if unknown:
        out.append(f"unknown (dim >= 2, module not classified; give a rule to regularize): {', '.join(unknown)}")
    return "\n".join(out)
