"""The typed experiment configuration: one frozen dataclass, TOML presets and overrides.

A preset is a flat TOML file whose keys are ``Config`` fields (``src/bregman/configs/<name>.toml``);
``load_config`` reads one by name or by path, ``apply_overrides`` applies ``key=value`` strings (the
CLI's ``--set``), ``save_config`` writes the resolved config back as TOML. Every entry point goes
through the same checks: an unknown key is an error that names the nearest valid key, a value of the
wrong type names the key, the value and the expected type, a string enum must be one of
``CHOICES[key]``, and ranges and cross-field rules are checked when a ``Config`` is built.

TOML has no null: an optional field is set to ``None`` with the string ``"none"`` (or ``"null"``),
on the command line as in files.

Sweep files (a base preset, seeds and labelled runs) are read by :mod:`bregman.train.sweep`.

Example:
    >>> cfg = apply_overrides(load_config("mnist-mlp"), ["lam=0.01", "epochs=5"])
    >>> cfg.lam, cfg.epochs
    (0.01, 5)
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from bregman.models import MODELS
from bregman.optim import OPTIMIZERS
from bregman.regularizers import GROUPINGS, HEAD_BLOCKS, REGULARIZERS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(ValueError):
    """A configuration key, value or file is invalid; the message says which and why."""


@dataclass(frozen=True)
class Config:
    """One experiment, fully specified. Build it with ``load_config``/``apply_overrides`` or
    directly; ``dataclasses.replace`` re-runs every check."""

    # --- what to train on what
    name: str  # experiment name, e.g. "mnist-mlp"; names the run directory
    model: str  # key of bregman.models.MODELS: mlp | convnet | resnet18 | denoise_mlp | charlm_gpt
    dataset: str  # mnist | fashion-mnist | cifar10 | mnist-denoise | stdlib-text (the dataset fixes the task)
    data_root: str | None = None  # None → $BREGMAN_DATA → per-user cache
    # check every data file's md5 against the official release; false only for files you made
    # yourself (the tests' fabricated CIFAR-10 batches)
    verify_data: bool = True
    split: str = "paper"  # train/val split: "paper" (55k/5k on MNIST) | "code" (95/5, as the code)
    split_seed: int = 42  # seed of the train/val split (the authors' code: 42)
    noise_std: float = 0.05  # mnist-denoise only: std of the additive Gaussian noise
    augment: bool = True  # cifar10 only: random crop (pad 4) + horizontal flip of training images

    # --- loop
    epochs: int = 100  # passes over the training split
    batch_size: int = 128  # training minibatch size
    eval_batch_size: int = 1000  # batch size for validation and test (no effect on results)
    seed: int = 0  # seed of initialization, shuffling and augmentation

    # --- optimizer (Algorithms 1–3, eq. 1.5)
    optimizer: str = "linbreg"  # sgd | adam | adamw | linbreg | adabreg | proxsgd
    lr: float = 0.1  # learning rate τ
    momentum: float = 0.0  # LinBreg β (Alg. 2) / SGD momentum; 0 = none
    betas: tuple[float, float] = (0.9, 0.999)  # (β1, β2) of AdaBreg (Alg. 3) / Adam
    eps: float = 1e-8  # ε of AdaBreg / Adam
    delta: float = 1.0  # δ of the elastic net J_δ = J + ‖θ‖²/(2δ) (eq. 2.6); LinBreg/AdaBreg only

    # --- regularizer J (eqs. 1.1, 1.2, 1.13, 1.14); biases and BatchNorm are never regularized
    lam: float = 0.1  # λ on linear weights
    lam_conv: float | None = None  # λ on conv weights; None → lam
    reg_linear: str = "l1"  # none | l1 | rows (group ℓ1,2 per neuron) | columns (per input)
    reg_conv: str = "l1"  # none | l1 | kernels (group ℓ1,2 per k×k kernel) | filters (per output)
    # attention projections (bregman.params): linear (= reg_linear) | none | l1 | rows | columns |
    # heads (group ℓ1,2 per attention head); λ = lam
    reg_attention: str = "linear"
    # none: J only acts through the optimizer (prox); loss: add λ·J(θ) to the loss and differentiate
    # through it (Lasso / Group Lasso trained by sgd/adam, Tables 1–3)
    penalty: str = "none"

    # --- sparse initialization (Sec. 4.1)
    init_density: float = 1.0  # r: expected fraction of non-zero weights (or groups); 1.0 = dense
    init_linear: str = "entries"  # linear masks: entries | rows (one coin per neuron) | dense
    init_conv: str = "kernels"  # conv masks: kernels (one coin per kernel) | entries | dense
    # weights = He-normal · weight_scale; None → 1/√r (the variance rule, eq. 4.3). The authors'
    # code used 7 (MLP), 10 (ConvNet), 5 (ResNet, autoencoder)
    weight_scale: float | None = None
    bias_scale: float = 1.0  # biases ~ U(0, bias_scale/√fan_in): positive, dense (Sec. 4.1)

    # --- learning-rate schedule
    scheduler: str = "plateau"  # plateau (ReduceLROnPlateau) | none
    # plateau on the summed training loss (authors' code) or on validation accuracy (paper text)
    plateau_metric: str = "train_loss"  # train_loss | val_acc
    plateau_factor: float = 0.5  # multiply τ by this on a plateau
    plateau_patience: int = 5  # epochs without improvement before decaying
    plateau_threshold: float = 0.01  # relative improvement that counts

    # --- baselines: pruning and thresholding
    prune_target: float | None = None  # iterative magnitude pruning to this density; None = off
    prune_structured: bool = False  # prune whole conv kernels instead of single weights
    prune_steps: int = 5  # number of prune–retrain rounds (schedule: bregman.train.prune)
    # post-hoc magnitude thresholding of the best model to this density, reported beside the
    # unthresholded result (bregman.train.threshold); None = off
    threshold_target: float | None = None
    threshold_structured: bool = False  # threshold whole conv kernels (by ℓ2 norm) instead of single weights

    # --- target density (bregman.control): λ moved so that the density follows a target
    # fraction of non-zero weights in (0, 1], e.g. 0.05; None = off (λ stays as configured, the
    # paper's setting). LinBreg / AdaBreg only; lam / lam_conv become the starting λ and their ratio
    target_density: float | None = None
    target_measure: str = "N_total"  # N_total | N_linear | N_conv (non-zero conv kernels)
    # exact: λ = the quantile of the dual scores that leaves exactly the target active each step;
    # adaptive: λ follows the density gap (Aloradi et al. 2026), weights never jump
    target_mode: str = "exact"
    # ramp: cubic (Zhu & Gupta 2017) from the start density to the target, reached from below as
    # the Bregman path grows; fixed: the target from the first step
    target_schedule: str = "ramp"
    target_ramp_epochs: int | None = None  # epochs the ramp takes; None → half of `epochs`, fixed at the start
    target_every: str = "batch"  # step the controller after every batch | once per epoch
    target_gain: float = 10.0  # adaptive: change of log λ per epoch at a 100 % density gap (κ × steps/epoch)

    # --- execution: how, not what, is computed
    device: str = "auto"  # auto | cpu | cuda | cuda:<index>
    threads: int | None = None  # torch.set_num_threads; None = leave torch's default
    # channels-last activations for conv nets (stem conv weights channels-last, the rest contiguous)
    channels_last: bool = True
    # keep freed memory in the process (glibc mallopt) instead of refaulting big activation buffers
    # every step (~20 % of a ConvNet step on CPU); false = the C library's defaults
    retain_memory: bool = True
    # CPU convolutions compute the forward pass and the input gradient on the weight's non-zero
    # kernels only (bregman.models.support_conv): exact; pays on sparse conv nets
    support_conv: bool = True
    # CPU linear layers compute the forward pass and the input gradient on the weight's non-zero
    # rows only (bregman.models.support_linear): exact; built where the linear weights are
    # regularized or initialized by rows (entry-wise sparsity leaves no row all zero)
    support_linear: bool = True
    compile: bool = False  # torch.compile the model (falls back to eager; slower on CPU here)
    amp: str = "none"  # none | bf16 (autocast; changes results: an option, mainly for GPUs)
    foreach: bool = True  # optimizer fast path: foreach ops, fused torch kernels, one-pass CPU prox kernels
    progress: str = "auto"  # progress bar: auto (on a terminal) | on | off
    checkpoint_every: int = 1  # save a resumable checkpoint every N epochs; 0 = only at the end
    # a step whose loss or gradient is not finite: stop the run there (the last checkpoint stays
    # intact) | skip that step's update, as torch.amp.GradScaler does (counted in metrics.jsonl)
    nonfinite: str = "stop"

    def __post_init__(self) -> None:
        types_ = _field_types()
        for f in dataclasses.fields(self):
            value = _check_type(f.name, getattr(self, f.name), types_[f.name])
            object.__setattr__(self, f.name, value)
        _check_values(self)

    @property
    def task(self) -> str:
        """``"classification"`` (cross-entropy, accuracy) or ``"denoising"`` (MSE, SSIM)."""
        return DATASET_TASKS[self.dataset]

    @property
    def effective_lam_conv(self) -> float:
        """λ on conv weights: ``lam_conv``, or ``lam`` when it is ``None``."""
        return self.lam if self.lam_conv is None else self.lam_conv

    @property
    def effective_weight_scale(self) -> float:
        """Factor on the He-normal weights: ``weight_scale``, or 1/√r when it is ``None``."""
        if self.weight_scale is None:
            return 1.0 / math.sqrt(self.init_density)
        return self.weight_scale


#: The runtime settings: how a run executes, never what it computes (up to the order of floating-point
#: sums): the execution section of :class:`Config` but ``amp``, and where the data is read from and
#: how it is checked. A resumed run may change them; every other field is the experiment and must match.
RUNTIME = frozenset({"device", "threads", "channels_last", "retain_memory", "support_conv", "support_linear",
                     "compile", "foreach", "progress", "checkpoint_every", "nonfinite", "data_root",
                     "verify_data", "eval_batch_size"})


def _regularizers_for(ndim: int) -> tuple[str, ...]:
    """The registry's regularizers that apply to a ``ndim``-D weight (the head groupings need a head
    size, so they are for attention only)."""
    return tuple(k for k in REGULARIZERS
                 if k not in GROUPINGS or (ndim in GROUPINGS[k][0] and k not in HEAD_BLOCKS))


#: the allowed values of every string enum field; models, optimizers and regularizers from their registries
CHOICES: dict[str, tuple[str, ...]] = {
    "model": tuple(MODELS),
    "dataset": ("mnist", "fashion-mnist", "cifar10", "mnist-denoise", "stdlib-text"),
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
    "device": ("auto", "cpu", "cuda"),
    "amp": ("none", "bf16"),
    "progress": ("auto", "on", "off"),
    "nonfinite": ("stop", "skip"),
    "target_measure": ("N_total", "N_linear", "N_conv"),
    "target_mode": ("exact", "adaptive"),
    "target_schedule": ("ramp", "fixed"),
    "target_every": ("batch", "epoch"),
}

#: the task each dataset poses (the trainer picks loss and metrics from it)
DATASET_TASKS: dict[str, str] = {
    "mnist": "classification",
    "fashion-mnist": "classification",
    "cifar10": "classification",
    "mnist-denoise": "denoising",
    "stdlib-text": "next-character prediction",
}

#: the datasets each model accepts (input shape and task must match)
MODEL_DATASETS: dict[str, tuple[str, ...]] = {
    "mlp": ("mnist", "fashion-mnist"),
    "convnet": ("mnist", "fashion-mnist"),
    "resnet18": ("cifar10",),
    "denoise_mlp": ("mnist-denoise",),
    "charlm_gpt": ("stdlib-text",),
}

_MOMENTUM_OPTIMIZERS = ("sgd", "linbreg")  # the others ignore `momentum` (adam/adabreg use betas)
_PENALTY_OPTIMIZERS = ("sgd", "adam")  # the others apply J through a prox already
_TARGET_OPTIMIZERS = ("linbreg", "adabreg")  # a dual variable v whose prox is θ (bregman.control)
_NONE_WORDS = ("none", "null")
_TRUE_WORDS = ("true", "1", "yes", "on")
_FALSE_WORDS = ("false", "0", "no", "off")


def _ge(lo: float) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v >= lo), f"must be ≥ {lo}"


def _gt(lo: float) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v > lo), f"must be > {lo}"


def _in(lo: float, hi: float, closed: str) -> tuple[Callable[[Any], bool], str]:
    left, right = closed
    test = {
        "[]": lambda v: lo <= v <= hi,
        "[)": lambda v: lo <= v < hi,
        "(]": lambda v: lo < v <= hi,
        "()": lambda v: lo < v < hi,
    }[closed]
    return test, f"must be in {left}{lo}, {hi}{right}"


#: range rules per field (skipped when an optional field is None)
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "name": ((lambda v: bool(v.strip())), "must not be empty"),
    "noise_std": _ge(0.0),
    "epochs": _ge(1),
    "batch_size": _ge(1),
    "eval_batch_size": _ge(1),
    "lr": _gt(0.0),
    "momentum": _in(0.0, 1.0, "[)"),
    "betas": ((lambda v: all(0.0 <= b < 1.0 for b in v)), "must both be in [0, 1)"),
    "eps": _gt(0.0),
    "delta": _gt(0.0),
    "lam": _ge(0.0),
    "lam_conv": _ge(0.0),
    "init_density": _in(0.0, 1.0, "[]"),
    "weight_scale": _gt(0.0),
    "bias_scale": _ge(0.0),
    "plateau_factor": _in(0.0, 1.0, "()"),
    "plateau_patience": _ge(0),
    "plateau_threshold": _ge(0.0),
    "prune_target": _in(0.0, 1.0, "()"),
    "prune_steps": _ge(1),
    "threshold_target": _in(0.0, 1.0, "(]"),
    "target_density": _in(0.0, 1.0, "(]"),
    "target_ramp_epochs": _ge(1),
    "target_gain": _gt(0.0),
    "threads": _ge(1),
    "checkpoint_every": _ge(0),
}


@functools.cache
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(Config)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` → ``(X, True)``; anything else → ``(tp, False)``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(tp))
    return tp, False


def _type_name(tp: Any) -> str:
    base, optional = _unwrap_optional(tp)
    if typing.get_origin(base) is tuple:
        args = typing.get_args(base)
        name = f"{len(args)} comma-separated floats"
    else:
        name = {bool: "a bool (true/false)", int: "an int", float: "a float", str: "a string"}[base]
    return f"{name} or none" if optional else name


def _bad_value(key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"invalid value for {key!r}: {value!r} (expected {expected})")


def _check_type(key: str, value: Any, tp: Any) -> Any:
    """Check a typed value (Python, TOML or JSON) against the field type and normalize it:
    int → float for float fields, list → tuple, the strings "none"/"null" → None where allowed."""
    base, optional = _unwrap_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in _NONE_WORDS):
        if optional:
            return None
        raise _bad_value(key, value, _type_name(tp))
    if typing.get_origin(base) is tuple:
        n = len(typing.get_args(base))
        if isinstance(value, (list, tuple)) and len(value) == n:
            return tuple(_check_type(key, v, float) for v in value)
    elif base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value):
                return float(value)
            raise _bad_value(key, value, "a finite float")
    elif base is str:
        if isinstance(value, str):
            return value
    raise _bad_value(key, value, _type_name(tp))


def _parse_text(key: str, text: str, tp: Any) -> Any:
    """Parse the text of a ``key=value`` override into a typed value for ``_check_type``."""
    base, optional = _unwrap_optional(tp)
    s = text.strip()
    if optional and s.lower() in _NONE_WORDS:
        return None
    try:
        if typing.get_origin(base) is tuple:
            items = tuple(float(x) for x in s.strip("()[]").split(","))
            if len(items) != len(typing.get_args(base)):
                raise ValueError
            return items
        if base is bool:
            if s.lower() in _TRUE_WORDS:
                return True
            if s.lower() in _FALSE_WORDS:
                return False
            raise ValueError
        if base is int:
            return int(s)
        if base is float:
            return float(s)
    except ValueError:
        raise _bad_value(key, text, _type_name(tp)) from None
    return s


def _check_values(cfg: Config) -> None:
    """Choices, ranges and cross-field rules of a built ``Config``."""
    for key, allowed in CHOICES.items():
        value = getattr(cfg, key)
        if value in allowed or (key == "device" and re.fullmatch(r"cuda:\d+", value)):
            continue
        hint = difflib.get_close_matches(value, allowed, n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ConfigError(
            f"invalid value for {key!r}: {value!r} (expected one of: {', '.join(allowed)}){extra}"
        )
    for key, (ok, rule) in _RULES.items():
        value = getattr(cfg, key)
        if value is not None and not ok(value):
            raise ConfigError(f"invalid value for {key!r}: {value!r} ({rule})")
    if cfg.dataset not in MODEL_DATASETS[cfg.model]:
        raise ConfigError(
            f"model {cfg.model!r} does not fit dataset {cfg.dataset!r} "
            f"({cfg.model} takes: {', '.join(MODEL_DATASETS[cfg.model])})"
        )
    if cfg.momentum != 0.0 and cfg.optimizer not in _MOMENTUM_OPTIMIZERS:
        raise ConfigError(
            f"momentum={cfg.momentum} has no effect with optimizer {cfg.optimizer!r} "
            f"(momentum is for: {', '.join(_MOMENTUM_OPTIMIZERS)}; adam/adabreg use betas)"
        )
    if cfg.penalty == "loss" and cfg.optimizer not in _PENALTY_OPTIMIZERS:
        raise ConfigError(
            f"penalty='loss' needs optimizer sgd or adam, got {cfg.optimizer!r}, "
            "which already applies J through its prox"
        )
    if cfg.target_density is not None and cfg.optimizer not in _TARGET_OPTIMIZERS:
        raise ConfigError(
            f"target_density needs optimizer linbreg or adabreg, got {cfg.optimizer!r} (the target moves λ "
            "through the Bregman dual variable); set optimizer=linbreg or target_density=none"
        )
    if cfg.target_density is not None and cfg.prune_target is not None:
        raise ConfigError("target_density and prune_target both set the density; choose one (the other = none)")
    if cfg.init_density == 0.0 and cfg.weight_scale is None:
        raise ConfigError("init_density=0 needs an explicit weight_scale (1/√r is infinite)")


# ----------------------------------------------------------------------------------------- building


def _unknown_key(key: str, where: str = "") -> ConfigError:
    keys = [f.name for f in dataclasses.fields(Config)]
    hint = difflib.get_close_matches(key, keys, n=1)
    suffix = f"; did you mean {hint[0]!r}?" if hint else f"; valid keys: {', '.join(keys)}"
    return ConfigError(f"unknown config key {key!r}{where}{suffix}")


def build_config(base: Config | None, values: Mapping[str, Any], where: str = "") -> Config:
    """``base`` with ``values`` (typed) replaced, or a new Config when ``base`` is None."""
    types_ = _field_types()
    for key in values:
        if key not in types_:
            raise _unknown_key(key, where)
    try:
        if base is None:
            missing = [k for k in ("name", "model", "dataset") if k not in values]
            if missing:
                raise ConfigError(f"missing required key(s): {', '.join(missing)}")
            return Config(**values)
        return dataclasses.replace(base, **values)
    except ConfigError as err:
        if where:
            raise ConfigError(f"{err}{where}") from None
        raise


def apply_overrides(cfg: Config, overrides: Iterable[str] | Mapping[str, Any]) -> Config:
    """``cfg`` with overrides applied: ``["key=value", ...]`` (values parsed from text by the
    field's type) or a mapping of typed values (as in a TOML table).

    Raises:
        ConfigError: unknown key (naming the nearest valid one), unparsable or invalid value.
    """
    if isinstance(overrides, Mapping):
        return build_config(cfg, overrides)
    if isinstance(overrides, str):
        overrides = [overrides]
    types_ = _field_types()
    values: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        if key not in types_:
            raise _unknown_key(key)
        values[key] = _parse_text(key, text, types_[key])
    return build_config(cfg, values)


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """JSON-able dict of every field (tuples become lists); the inverse of ``config_from_dict``."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def config_from_dict(d: Mapping[str, Any]) -> Config:
    """Build a Config from a dict such as ``config_to_dict`` writes; missing keys take defaults."""
    return build_config(None, d)


# --------------------------------------------------------------------------------------------- TOML


def configs_dir() -> Any:
    """The shipped ``configs`` folder (a Traversable: works from a wheel as from a checkout)."""
    return resources.files("bregman.configs")


def is_toml_path(name_or_path: str | Path) -> bool:
    s = str(name_or_path)
    return isinstance(name_or_path, Path) or s.endswith(".toml") or "/" in s or "\\" in s


def list_toml(folder: Any) -> list[str]:
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def list_presets() -> list[str]:
    """Names of the shipped presets (``load_config`` accepts each)."""
    return list_toml(configs_dir())


def read_toml(name_or_path: str | Path, kind: str) -> tuple[dict[str, Any], str, Path | None]:
    """(table, display name, file path or None for a shipped resource) of a preset or sweep."""
    if is_toml_path(name_or_path):
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(f"{kind} file not found: {str(path)!r}")
        text, where, file = path.read_text(encoding="utf-8"), str(path), path.resolve()
    else:
        folder = configs_dir() if kind == "preset" else configs_dir().joinpath("sweeps")
        resource = folder.joinpath(f"{name_or_path}.toml")
        if not resource.is_file():
            known = list_toml(folder)
            hint = difflib.get_close_matches(str(name_or_path), known, n=1)
            extra = f"did you mean {hint[0]!r}? " if hint else ""
            raise ConfigError(
                f"unknown {kind} {str(name_or_path)!r}; {extra}known: {', '.join(known)}"
            )
        text, where, file = resource.read_text(encoding="utf-8"), f"{name_or_path}.toml", None
    try:
        return tomllib.loads(text), where, file
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{where}: invalid TOML: {err}") from None


def load_config(name_or_path: str | Path) -> Config:
    """Load a preset by name (``src/bregman/configs/<name>.toml``) or a TOML file by path (any
    ``*.toml`` or anything containing a slash). A missing ``name`` key defaults to the file stem.

    Raises:
        ConfigError: unknown preset or missing file, invalid TOML, unknown key (with the file name),
            bad value.
    """
    table, where, _ = read_toml(name_or_path, "preset")
    table.setdefault("name", Path(where).stem)
    return build_config(None, table, f" in {where}")


def config_to_toml(cfg: Config) -> str:
    """The config as flat TOML (written by ``tomli_w``), every field in declaration order (``None``
    as ``"none"``: TOML has no null)."""
    import tomli_w

    values = {k: "none" if v is None else v for k, v in config_to_dict(cfg).items()}
    return "# bregman experiment config (resolved; load with bregman.train.config.load_config)\n" + tomli_w.dumps(values)


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write ``cfg`` as TOML to ``path`` (parents created); ``load_config(path) == cfg``."""
    from bregman._atomic import write_text_atomic

    return write_text_atomic(path, config_to_toml(cfg))  # atomic: never a torn config.toml


__all__ = [
    "CHOICES",
    "RUNTIME",
    "DATASET_TASKS",
    "MODEL_DATASETS",
    "Config",
    "ConfigError",
    "apply_overrides",
    "build_config",
    "configs_dir",
    "is_toml_path",
    "list_toml",
    "read_toml",
    "config_from_dict",
    "config_to_dict",
    "config_to_toml",
    "list_presets",
    "load_config",
    "save_config",
]
