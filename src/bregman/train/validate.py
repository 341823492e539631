"""The checks of a config's values: types from the field annotations, choices, ranges, cross-field rules.

:func:`check_config` checks a built config: each value against its field's type (a typed value from
Python, TOML or JSON, normalized: int → float, list → tuple), string enums against ``CHOICES``,
bounded numbers against their interval in ``RANGES``, then the rules between fields. :func:`parse`
reads the text of a ``key=value`` override by the field's type. Every failure is a
:class:`ConfigError` that quotes the key, the value and what was expected.

TOML has no null: an optional field is set to ``None`` with the string ``"none"`` (or ``"null"``).
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from bregman.models import MODELS
from bregman.optim import OPTIMIZERS
from bregman.regularizers import GROUPINGS, HEAD_BLOCKS, REGULARIZERS
from bregman.train.tasks import DATASET_TASKS

__all__ = ["ConfigError", "CHOICES", "MODEL_DATASETS", "RANGES", "check_config", "parse", "did_you_mean",
           "field_types"]


class ConfigError(ValueError):
    """A configuration key, value or file is invalid; the message says which and why."""


def _regularizers_for(ndim: int) -> tuple[str, ...]:
    """The registry's regularizers that apply to a ``ndim``-D weight (the head groupings need a head
    size, so they are for attention only)."""
    return tuple(k for k in REGULARIZERS
                 if k not in GROUPINGS or (ndim in GROUPINGS[k][0] and k not in HEAD_BLOCKS))


#: the allowed values of every string enum field; models, optimizers, regularizers and datasets from
#: their registries
CHOICES: dict[str, tuple[str, ...]] = {
    "model": tuple(MODELS),
    "dataset": tuple(DATASET_TASKS),
    "split": ("paper", "code"),
    "optimizer": tuple(OPTIMIZERS),
    "reg_linear": _regularizers_for(2),
    "reg_conv": _regularizers_for(4),
    "reg_attention": ("linear", "none", "l1", "rows", "columns", "heads"),
    "penalty": ("none", "loss"),
    "init_linear": ("entries", "rows", "dense"),
    "init_conv": ("kernels", "entries", "dense"),
    "scheduler": ("plateau", "none"),
    "plateau_metric": ("train_loss", "val_acc"),
    "device": ("auto", "cpu", "cuda"),  # and cuda:<index>
    "amp": ("none", "bf16"),
    "progress": ("auto", "on", "off"),
    "nonfinite": ("stop", "skip"),
    "target_measure": ("N_total", "N_linear", "N_conv"),
    "target_mode": ("exact", "adaptive"),
    "target_schedule": ("ramp", "fixed"),
    "target_every": ("batch", "epoch"),
}

#: the datasets each model accepts (input shape and task must match)
MODEL_DATASETS: dict[str, tuple[str, ...]] = {
    "mlp": ("mnist", "fashion-mnist"),
    "convnet": ("mnist", "fashion-mnist"),
    "resnet18": ("cifar10",),
    "denoise_mlp": ("mnist-denoise",),
    "charlm_gpt": ("stdlib-text",),
}

_INF = math.inf
#: the interval (lo, hi, brackets) of every bounded number; a pair is checked entry by entry, ``None`` skipped
RANGES: dict[str, tuple[float, float, str]] = {
    "noise_std": (0.0, _INF, "[)"), "epochs": (1, _INF, "[)"), "batch_size": (1, _INF, "[)"),
    "eval_batch_size": (1, _INF, "[)"), "lr": (0.0, _INF, "()"), "momentum": (0.0, 1.0, "[)"),
    "betas": (0.0, 1.0, "[)"), "eps": (0.0, _INF, "()"), "delta": (0.0, _INF, "()"), "lam": (0.0, _INF, "[)"),
    "lam_conv": (0.0, _INF, "[)"), "init_density": (0.0, 1.0, "[]"), "weight_scale": (0.0, _INF, "()"),
    "bias_scale": (0.0, _INF, "[)"), "plateau_factor": (0.0, 1.0, "()"), "plateau_patience": (0, _INF, "[)"),
    "plateau_threshold": (0.0, _INF, "[)"), "prune_target": (0.0, 1.0, "()"), "prune_steps": (1, _INF, "[)"),
    "threshold_target": (0.0, 1.0, "(]"), "target_density": (0.0, 1.0, "(]"), "target_ramp_epochs": (1, _INF, "[)"),
    "target_gain": (0.0, _INF, "()"), "threads": (1, _INF, "[)"), "checkpoint_every": (0, _INF, "[)"),
}

_MOMENTUM_OPTIMIZERS = ("sgd", "linbreg")  # the others ignore `momentum` (adam/adabreg use betas)
_PENALTY_OPTIMIZERS = ("sgd", "adam")  # the others apply J through a prox already
_TARGET_OPTIMIZERS = ("linbreg", "adabreg")  # a dual variable v whose prox is θ (bregman.control)
_NONE_WORDS = ("none", "null")


_BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def _parse_bool(text: str) -> bool:
    if text.lower() not in _BOOL_WORDS:
        raise ValueError(text)
    return _BOOL_WORDS[text.lower()]


#: per base type: its name in messages, whether a typed value is one, and the parser of its text
_TYPES: dict[type, tuple[str, Callable[[Any], bool], Callable[[str], Any]]] = {
    bool: ("a bool (true/false)", lambda v: isinstance(v, bool), _parse_bool),
    int: ("an int", lambda v: isinstance(v, int) and not isinstance(v, bool), int),
    float: ("a float", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), float),
    str: ("a string", lambda v: isinstance(v, str), str),
}


def did_you_mean(word: str, known: Sequence[str]) -> str:
    """``"did you mean 'x'?"`` with the nearest of ``known``, or ``""`` when none is near."""
    hint = difflib.get_close_matches(word, known, n=1)
    return f"did you mean {hint[0]!r}?" if hint else ""


def _unwrap(tp: Any) -> tuple[Any, int, bool]:
    """``X | None`` → ``(X, 0, True)``; ``tuple[X, X]`` → ``(X, 2, False)``: base type, tuple length, optional."""
    optional = typing.get_origin(tp) in (typing.Union, types.UnionType)
    if optional:
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        return args[0], len(args), optional
    return tp, 0, optional


def _bad_value(key: str, value: Any, tp: Any, expected: str = "") -> ConfigError:
    base, n, optional = _unwrap(tp)
    if not expected:
        expected = f"{n} comma-separated floats" if n else _TYPES[base][0]
        expected += " or none" if optional else ""
    return ConfigError(f"invalid value for {key!r}: {value!r} (expected {expected})")


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """A typed value checked against the field type ``tp`` and normalized: int → float for float
    fields, list → tuple, the strings "none"/"null" → None where the field is optional."""
    base, n, optional = _unwrap(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in _NONE_WORDS):
        if optional:
            return None
    elif n:
        if isinstance(value, (list, tuple)) and len(value) == n:
            return tuple(_coerce(key, v, base) for v in value)
    elif _TYPES[base][1](value):
        if base is float and not math.isfinite(value):
            raise _bad_value(key, value, tp, "a finite float")
        return base(value)
    raise _bad_value(key, value, tp)


def parse(key: str, text: str, tp: Any) -> Any:
    """The typed value that the text of a ``key=value`` override spells, by the field type ``tp``."""
    base, n, optional = _unwrap(tp)
    s = text.strip()
    if optional and s.lower() in _NONE_WORDS:
        return None
    try:
        if not n:
            return _TYPES[base][2](s)
        items = tuple(base(x) for x in s.strip("()[]").split(","))
        if len(items) == n:
            return items
    except ValueError:
        pass
    raise _bad_value(key, text, tp)


def _range_rule(lo: float, hi: float, brackets: str) -> str:
    if hi == _INF:
        return f"must be {'≥' if brackets[0] == '[' else '>'} {lo}"
    return f"must be in {brackets[0]}{lo}, {hi}{brackets[1]}"


def _in_range(v: float, lo: float, hi: float, brackets: str) -> bool:
    return (lo <= v if brackets[0] == "[" else lo < v) and (v <= hi if brackets[1] == "]" else v < hi)


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """The resolved annotation of every field of the dataclass ``cls``."""
    return typing.get_type_hints(cls)


def check_config(cfg: Any) -> None:
    """Check and normalize (in place, through ``object.__setattr__``) every field of the frozen
    dataclass ``cfg``: type, choice, range; then the rules between fields."""
    types_ = field_types(type(cfg))
    for f in dataclasses.fields(cfg):
        object.__setattr__(cfg, f.name, _coerce(f.name, getattr(cfg, f.name), types_[f.name]))
    for key, allowed in CHOICES.items():
        value = getattr(cfg, key)
        if value not in allowed and not (key == "device" and re.fullmatch(r"cuda:\d+", value)):
            hint = did_you_mean(value, allowed)
            raise ConfigError(f"invalid value for {key!r}: {value!r} (expected one of: {', '.join(allowed)})"
                              + (f"; {hint}" if hint else ""))
    for key, interval in RANGES.items():
        value = getattr(cfg, key)
        values = value if isinstance(value, tuple) else (value,)
        if value is not None and not all(_in_range(v, *interval) for v in values):
            raise ConfigError(f"invalid value for {key!r}: {value!r} ({_range_rule(*interval)})")
    _check_rules(cfg)


def _check_rules(cfg: Any) -> None:
    """The rules between fields: model and dataset fit, options that need a certain optimizer."""
    if not cfg.name.strip():
        raise ConfigError(f"invalid value for 'name': {cfg.name!r} (must not be empty)")
    if cfg.dataset not in MODEL_DATASETS[cfg.model]:
        raise ConfigError(f"model {cfg.model!r} does not fit dataset {cfg.dataset!r} "
                          f"({cfg.model} takes: {', '.join(MODEL_DATASETS[cfg.model])})")
    if cfg.momentum != 0.0 and cfg.optimizer not in _MOMENTUM_OPTIMIZERS:
        raise ConfigError(f"momentum={cfg.momentum} has no effect with optimizer {cfg.optimizer!r} "
                          f"(momentum is for: {', '.join(_MOMENTUM_OPTIMIZERS)}; adam/adabreg use betas)")
    if cfg.penalty == "loss" and cfg.optimizer not in _PENALTY_OPTIMIZERS:
        raise ConfigError(f"penalty='loss' needs optimizer sgd or adam, got {cfg.optimizer!r}, "
                          "which already applies J through its prox")
    if cfg.target_density is not None and cfg.optimizer not in _TARGET_OPTIMIZERS:
        raise ConfigError(f"target_density needs optimizer linbreg or adabreg, got {cfg.optimizer!r} (the target "
                          "moves λ through the Bregman dual variable); set optimizer=linbreg or target_density=none")
    if cfg.target_density is not None and cfg.prune_target is not None:
        raise ConfigError("target_density and prune_target both set the density; choose one (the other = none)")
    if cfg.init_density == 0.0 and cfg.weight_scale is None:
        raise ConfigError("init_density=0 needs an explicit weight_scale (1/√r is infinite)")
