"""The typed configuration of a run: what is computed (:class:`Experiment`) and how it executes
(:class:`Runtime`), one frozen :class:`Config` with the fields of both; TOML presets and overrides.

A preset is a flat TOML file whose keys are ``Config`` fields (``src/bregman/configs/<name>.toml``);
``load_config`` reads one by name or by path, ``apply_overrides`` applies ``key=value`` strings (the
CLI's ``--set``), ``save_config`` writes the resolved config back as TOML. Every entry point goes
through the same checks (:mod:`bregman.train.validate`): an unknown key is an error that names the
nearest valid key, a value of the wrong type names the key, the value and the expected type, and
choices, ranges and the rules between fields are checked whenever a ``Config`` is built.

The split matters on resume: a resumed run must repeat the experiment; its runtime settings
(``RUNTIME``) may change. TOML has no null: an optional field is set to ``None`` with the string
``"none"`` (or ``"null"``), on the command line as in files. Sweep files (a base preset, seeds and
labelled runs) are read by :mod:`bregman.train.sweep`.

Example:
    >>> cfg = apply_overrides(load_config("mnist-mlp"), ["lam=0.01", "epochs=5"])
    >>> cfg.lam, cfg.epochs
    (0.01, 5)
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bregman._atomic import write_text_atomic
from bregman.train.toml_files import configs_dir, list_toml, read_toml, to_toml
from bregman.train.validate import ConfigError, check_config, did_you_mean, field_types, parse

__all__ = ["Config", "ConfigError", "Experiment", "Runtime", "RUNTIME", "apply_overrides", "build_config",
           "config_from_dict", "config_to_dict", "config_to_toml", "list_presets", "load_config", "save_config"]


@dataclass(frozen=True)
class Experiment:
    """What a run computes: data, model, optimizer, regularizer, initialization, schedule, baselines,
    seed. A field group of :class:`Config` (build a ``Config``: it checks every field)."""

    # --- what to train on what
    name: str  # experiment name, e.g. "mnist-mlp"; names the run directory
    model: str  # key of bregman.models.MODELS: mlp | convnet | resnet18 | denoise_mlp | charlm_gpt
    dataset: str  # mnist | fashion-mnist | cifar10 | mnist-denoise | stdlib-text (the dataset fixes the task)
    split: str = "paper"  # train/val split: "paper" (55k/5k on MNIST) | "code" (95/5, as the code)
    split_seed: int = 42  # seed of the train/val split (the authors' code: 42)
    noise_std: float = 0.05  # mnist-denoise only: std of the additive Gaussian noise
    augment: bool = True  # cifar10 only: random crop (pad 4) + horizontal flip of training images

    # --- loop
    epochs: int = 100  # passes over the training split
    batch_size: int = 128  # training minibatch size
    seed: int = 0  # seed of initialization, shuffling and augmentation
    amp: str = "none"  # none | bf16 (autocast; changes results: an option, mainly for GPUs)

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


@dataclass(frozen=True)
class Runtime:
    """How a run executes, never what it computes (up to the order of floating-point sums): where
    the data is read from and how it is checked, device, threads, speed options, progress,
    checkpointing. A resumed run may change any of them. A field group of :class:`Config`."""

    # --- where the data is read from and how it is checked
    data_root: str | None = None  # None → $BREGMAN_DATA → per-user cache
    # check every data file's md5 against the official release; false only for files you made
    # yourself (the tests' fabricated CIFAR-10 batches)
    verify_data: bool = True

    # --- execution
    eval_batch_size: int = 1000  # batch size for validation and test (no effect on results)
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
    foreach: bool = True  # optimizer fast path: foreach ops and torch's fused SGD/Adam kernels (false: the single-tensor reference)
    progress: str = "auto"  # progress bar: auto (on a terminal) | on | off
    checkpoint_every: int = 1  # save a resumable checkpoint every N epochs; 0 = only at the end
    # a step whose loss or gradient is not finite: stop the run there (the last checkpoint stays
    # intact) | skip that step's update, as torch.amp.GradScaler does (counted in metrics.jsonl)
    nonfinite: str = "stop"


@dataclass(frozen=True)
class Config(Runtime, Experiment):
    """One run, fully specified: the fields of :class:`Experiment`, then those of :class:`Runtime`,
    flat (``cfg.lr``, ``cfg.device``) as in presets, overrides and saved configs. Build it with
    ``load_config``/``apply_overrides`` or directly; ``dataclasses.replace`` re-runs every check."""

    def __post_init__(self) -> None:
        check_config(self)


#: the runtime settings (the fields of :class:`Runtime`): a resumed run may change them
RUNTIME = frozenset(f.name for f in dataclasses.fields(Runtime))
_HEADER = "bregman experiment config (resolved; load with bregman.train.config.load_config)"


def _unknown_key(key: str, where: str = "") -> ConfigError:
    keys = [f.name for f in dataclasses.fields(Config)]
    hint = did_you_mean(key, keys)
    suffix = f"; {hint}" if hint else f"; valid keys: {', '.join(keys)}"
    return ConfigError(f"unknown config key {key!r}{where}{suffix}")


def build_config(base: Config | None, values: Mapping[str, Any], where: str = "") -> Config:
    """``base`` with ``values`` (typed) replaced, or a new Config when ``base`` is None; ``where``
    (e.g. ``" in exp.toml"``) is added to every error message."""
    names = {f.name for f in dataclasses.fields(Config)}
    for key in values:
        if key not in names:
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
    types_ = field_types(Config)
    values: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        if key not in types_:
            raise _unknown_key(key)
        values[key] = parse(key, text, types_[key])
    return build_config(cfg, values)


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """JSON-able dict of every field (tuples become lists); the inverse of ``config_from_dict``."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def config_from_dict(d: Mapping[str, Any]) -> Config:
    """Build a Config from a dict such as ``config_to_dict`` writes; missing keys take defaults."""
    return build_config(None, d)


def list_presets() -> list[str]:
    """Names of the shipped presets (``load_config`` accepts each)."""
    return list_toml(configs_dir())


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
    """The config as flat TOML, every field in declaration order (``None`` as ``"none"``)."""
    return to_toml(config_to_dict(cfg), _HEADER)


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write ``cfg`` as TOML to ``path`` (parents created, atomically: never a torn config.toml);
    ``load_config(path) == cfg``."""
    return write_text_atomic(path, config_to_toml(cfg))
