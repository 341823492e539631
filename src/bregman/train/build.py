"""Building a run from its :class:`~bregman.train.config.Config`: the device, the model (with the
paper's sparse initialization, Sec. 4.1), the param groups with their regularizers, the optimizer, the
target-density controller, the learning-rate scheduler and the data loaders.

The training loop (:mod:`bregman.train.loop`), thresholding after training
(:mod:`bregman.train.threshold`) and the figures all build through here, so a model or a loader is
built one way only.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bregman import init, regularizers
from bregman.control import DensityController
from bregman.optim import create_optimizer
from bregman.params import param_groups
from bregman.train import distributed as dist_util
from bregman.train import speed
from bregman.train.config import Config

__all__ = ["TrainingError", "resolve_device", "build_model", "regularizer_groups", "build_optimizer",
           "build_controller", "build_scheduler", "build_loaders", "clean_train_loader"]


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, a checkpoint that does not fit the config)."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {name!r} requested but CUDA is not available; use --set device=cpu")
    return dev


def build_model(cfg: Config, device: torch.device) -> nn.Module:
    """The model with the paper's (sparse) initialization, seeded by ``cfg.seed``."""
    from bregman.models import SPEED_OPTIONS, create_model

    torch.manual_seed(cfg.seed)
    # Execution settings, built into the layers: how fast, never what, the model computes. The
    # support layers are CPU-only; rows of a linear weight are all zero only in nets sparse by rows.
    cpu = device.type == "cpu"
    options = {"channels_last": cfg.channels_last, "support_conv": cfg.support_conv and cpu,
               "support_linear": cfg.support_linear and cpu and "rows" in (cfg.reg_linear, cfg.init_linear)}
    takes = SPEED_OPTIONS.get(cfg.model, frozenset())
    model = create_model(cfg.model, **{k: v for k, v in options.items() if k in takes})
    init.sparse_init_(model, cfg.init_density, linear=cfg.init_linear, conv=cfg.init_conv,
                      weight_scale=cfg.weight_scale, bias_scale=cfg.bias_scale,
                      generator=torch.Generator().manual_seed(cfg.seed))
    model.to(device)
    if cfg.retain_memory:  # no page faults on the big activation buffers, step after step
        speed.retain_freed_memory()
    return model


def regularizer_groups(cfg: Config, model: nn.Module) -> list[dict[str, Any]]:
    lam_conv = cfg.lam if cfg.lam_conv is None else cfg.lam_conv
    attention = cfg.reg_linear if cfg.reg_attention == "linear" else cfg.reg_attention
    return param_groups(model, linear=regularizers.get(cfg.reg_linear, cfg.lam),
                        conv=regularizers.get(cfg.reg_conv, lam_conv),
                        attention=regularizers.get(attention, cfg.lam))


def build_optimizer(cfg: Config, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    hp = dict(lr=cfg.lr, momentum=cfg.momentum, betas=tuple(cfg.betas), eps=cfg.eps, delta=cfg.delta,
              foreach=cfg.foreach)
    return create_optimizer(cfg.optimizer, groups, **hp)


#: target_measure → (the param groups it counts, its unit): N_conv counts non-zero kernels
_TARGET_SCOPES = {"N_total": (("linear", "conv"), "entries"), "N_linear": (("linear",), "entries"),
                  "N_conv": (("conv",), "kernels")}


def build_controller(cfg: Config, opt: torch.optim.Optimizer, batches: int) -> DensityController | None:
    """The target-density controller of ``cfg`` (None without ``target_density``). Stepped after every
    ``opt.step()`` by a step hook (``target_every = "batch"``) or by the loop after each epoch."""
    if cfg.target_density is None:
        return None
    names, unit = _TARGET_SCOPES[cfg.target_measure]
    present = [g.get("name") for g in opt.param_groups]
    names = [n for n in names if n in present]
    if not names:
        raise TrainingError(f"target_measure={cfg.target_measure!r}, but model {cfg.model!r} has no such "
                            f"weights; choose another target_measure")
    per_epoch = batches if cfg.target_every == "batch" else 1
    ramp = cfg.target_ramp_epochs or max(cfg.epochs // 2, 1)
    try:
        ctrl = DensityController(opt, cfg.target_density, mode=cfg.target_mode, groups=names, unit=unit,
                                 schedule=cfg.target_schedule, ramp_steps=ramp * per_epoch,
                                 gain=cfg.target_gain / per_epoch)
    except ValueError as e:
        raise TrainingError(f"{e} (config: target_measure={cfg.target_measure!r}, reg_linear={cfg.reg_linear!r}, "
                            f"reg_conv={cfg.reg_conv!r}, lam={cfg.lam!r}, lam_conv={cfg.lam_conv!r})") from None
    if cfg.target_every == "batch":
        opt.register_step_post_hook(lambda *_: ctrl.step())
    return ctrl


def build_scheduler(cfg: Config, opt: torch.optim.Optimizer):
    if cfg.scheduler == "none":
        return None
    mode = "min" if cfg.plateau_metric == "train_loss" else "max"
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode=mode, factor=cfg.plateau_factor, patience=cfg.plateau_patience,
        threshold=cfg.plateau_threshold)


def build_loaders(cfg: Config, device: torch.device, info: dist_util.DistInfo):
    """Train / validation / test loaders over in-memory tensors (data moved to ``device`` once)."""
    from bregman.data import BatchLoader, cifar_augment, load_dataset, noisy_splits

    base = "mnist" if cfg.dataset == "mnist-denoise" else cfg.dataset
    splits = load_dataset(base, cfg.data_root, split=cfg.split, seed=cfg.split_seed, verify=cfg.verify_data)
    if cfg.dataset == "mnist-denoise":
        splits = noisy_splits(splits, cfg.noise_std, seed=cfg.split_seed)
    augment = cifar_augment if cfg.dataset == "cifar10" and cfg.augment else None
    # The models normalize their input first (bregman.models.normalize), so uint8 images go in raw.
    train = BatchLoader(splits.train, cfg.batch_size, shuffle=True, augment=augment, device=device,
                        generator=torch.Generator().manual_seed(cfg.seed), rank=info.rank,
                        world_size=info.world_size, raw_images=True)
    val = BatchLoader(splits.val, cfg.eval_batch_size, device=device, raw_images=True)
    test = BatchLoader(splits.test, cfg.eval_batch_size, device=device, raw_images=True)
    return train, val, test


def clean_train_loader(train_loader, batch_size: int, device: torch.device):
    """The training split of ``train_loader`` in order, unaugmented, unsharded, in batches of
    ``batch_size``: to evaluate a finished model on the data it was trained on."""
    from bregman.data import BatchLoader

    return BatchLoader(train_loader.dataset, batch_size, device=device, raw_images=train_loader.raw_images)
