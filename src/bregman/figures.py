"""The paper's image figures: Fig. 1 (first-layer conv kernels at a few epochs, zero kernels left
blank) and Fig. 5 (noisy, denoised and clean test images).

The training loop saves the first conv layer's weight of conv nets into ``run_dir/kernels.pt``
(``{epoch: {weight name: tensor}}`` for epochs 0, 5, 20 and the last; see
:func:`bregman.train.loop.train`), so the figure of a finished run is
``kernels_from_run("runs/fmnist-cnn/seed0", "fig1.png")`` (``bregman figure kernels``); Fig. 5 is
:func:`denoising_from_runs` (``bregman figure denoise``).

matplotlib is imported only when a figure is drawn, and only its object-oriented API (no pyplot,
no global backend switch).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from bregman._atomic import save_figure

__all__ = ["kernel_grid", "plot_kernels", "kernels_from_run", "plot_denoising", "denoising_from_runs", "MAX_IMAGES"]

#: images per row of Fig. 5 (1.2 inches each): more is no figure, and takes minutes to draw
MAX_IMAGES = 64


def kernel_grid(weight: Tensor, pad: int = 1) -> Tensor:
    """All kernels K_{i,j} of a conv weight (c_out × c_in × k × k) tiled on a near-square grid
    (the ConvNet's 64 kernels of 5×5: 8×8), separated by ``pad`` NaN pixels (drawn white)."""
    if weight.ndim != 4:
        raise ValueError(f"expected a 2-d conv weight (c_out × c_in × k × k), got shape {tuple(weight.shape)}")
    kernels = weight.detach().float().cpu().reshape(-1, *weight.shape[2:])
    n, kh, kw = kernels.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = torch.full((rows * (kh + pad) + pad, cols * (kw + pad) + pad), float("nan"))
    for k in range(n):
        r, c = divmod(k, cols)
        y, x = pad + r * (kh + pad), pad + c * (kw + pad)
        grid[y:y + kh, x:x + kw] = kernels[k]
    return grid


def plot_kernels(state_dicts_by_epoch: Mapping[int, Mapping[str, Tensor] | Tensor], layer_name: str,
                 out_path: str | Path) -> Path:
    """One panel per epoch (ascending) showing every kernel of ``layer_name`` (a weight name in each
    state dict; a bare tensor per epoch works too). The diverging colour scale is symmetric about 0
    and shared by all panels, so a zero kernel is a blank (near-white) square; each title gives the
    epoch and the number of non-zero kernels.

    Returns ``out_path`` (PNG, or whatever format its suffix names).
    """
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib import colormaps

    if not state_dicts_by_epoch:
        raise ValueError("no epochs to plot")
    weights = {int(e): (s if isinstance(s, Tensor) else s[layer_name]) for e, s in sorted(state_dicts_by_epoch.items())}
    vmax = max(float(w.abs().max()) for w in weights.values()) or 1.0
    cmap = colormaps["RdBu_r"].with_extremes(bad="white")
    fig = Figure(figsize=(3.0 * len(weights), 3.4), layout="constrained")
    axes = fig.subplots(1, len(weights), squeeze=False)[0]
    for ax, (epoch, w) in zip(axes, weights.items()):
        nonzero = int(torch.count_nonzero(w.detach().flatten(2).abs().amax(dim=2)))
        total = w.shape[0] * w.shape[1]
        ax.imshow(kernel_grid(w).numpy(), cmap=cmap, norm=Normalize(-vmax, vmax), interpolation="nearest")
        ax.set_title(f"epoch {epoch}: {nonzero}/{total} kernels", fontsize=9)
        ax.set_axis_off()
    fig.suptitle(layer_name, fontsize=10)
    return save_figure(fig, out_path, dpi=120)


def kernels_from_run(run_dir: str | Path, out_path: str | Path) -> Path:
    """:func:`plot_kernels` of a conv-net run's ``kernels.pt`` (its first conv layer's snapshots,
    ``{epoch: {weight name: c_out × c_in × k × k tensor}}``).

    Raises:
        FileNotFoundError: no ``kernels.pt`` in ``run_dir``.
        ValueError: the file holds no such snapshots (empty, another layout, not 4-d weights).
    """
    from bregman.train.checkpoint import load_snapshot

    path = Path(run_dir) / "kernels.pt"
    fix = "kernels.pt is written by conv-net training runs (bregman train); train one, or point at its run directory"
    if not path.exists():
        raise FileNotFoundError(f"no {path}: kernel snapshots are saved by conv-net runs")
    snaps = load_snapshot(path, fix=fix)
    ok = isinstance(snaps, dict) and snaps and all(
        isinstance(e, int) and isinstance(s, dict) and len(s) == 1
        and all(isinstance(w, Tensor) and w.ndim == 4 and w.numel() for w in s.values()) for e, s in snaps.items())
    if not ok:
        raise ValueError(f"{path} holds no kernel snapshots ({{epoch: {{weight name: 4-d conv weight}}}} expected): {fix}")
    layer = next(iter(next(iter(snaps.values()))))
    return plot_kernels(snaps, layer, out_path)


def plot_denoising(noisy: Tensor, denoised: Tensor | Mapping[str, Tensor], clean: Tensor, out_path: str | Path, *,
                   n: int = 8) -> Path:
    """Rows of ``n`` test images: the noisy input, each network's output (``denoised``: one tensor,
    or ``{row label: tensor}`` for several networks), the clean target (the paper's Fig. 5)."""
    from matplotlib.figure import Figure

    outputs = {"denoised": denoised} if isinstance(denoised, Tensor) else dict(denoised)
    rows = [("noisy", noisy), *outputs.items(), ("clean", clean)]
    fig = Figure(figsize=(1.2 * n, 1.35 * len(rows)))
    for r, (name, images) in enumerate(rows):
        for i in range(n):
            ax = fig.add_subplot(len(rows), n, r * n + i + 1)
            ax.imshow(images[i].detach().float().reshape(28, 28).clamp(0, 1).cpu().numpy(), cmap="gray",
                      vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out_path, dpi=100)


def denoising_from_runs(run_dirs: Mapping[str, str | Path], out_path: str | Path, *, n: int = 8,
                        data_root: str | None = None) -> Path:
    """:func:`plot_denoising` of finished denoising runs: each run's best-validation model (from its
    ``checkpoint.pt``) applied to the first ``n`` noisy test images, one row per ``{label: run dir}``.

    Raises:
        ValueError: ``n`` outside 1..``MAX_IMAGES`` or above the number of test images (checked
            before anything is loaded), or a run is not a denoising one.
    """
    from bregman.data import load_dataset, noisy_splits
    from bregman.data.loader import to_float
    from bregman.train.checkpoint import load_checkpoint
    from bregman.train.config import config_from_dict
    from bregman.train.build import build_model

    if not 1 <= n <= MAX_IMAGES:
        raise ValueError(f"-n {n}: images per row must be in 1..{MAX_IMAGES}")
    outputs, noisy, clean = {}, None, None
    for label, run_dir in run_dirs.items():
        ck = load_checkpoint(Path(run_dir) / "checkpoint.pt", keys=("config", "model"),
                             fix="point at the run directory of a `bregman train mnist-denoise` run")
        cfg = config_from_dict(ck["config"])
        if cfg.dataset != "mnist-denoise":
            raise ValueError(f"{run_dir} is a {cfg.dataset!r} run, not a denoising one (dataset 'mnist-denoise')")
        model = build_model(cfg, torch.device("cpu"))
        best = ck.get("best")
        model.load_state_dict(best["state"] if isinstance(best, dict) and best.get("state") else ck["model"])
        if noisy is None:
            splits = noisy_splits(load_dataset("mnist", data_root or cfg.data_root, split=cfg.split,
                                               seed=cfg.split_seed, verify=cfg.verify_data),
                                  cfg.noise_std, seed=cfg.split_seed)
            if not 1 <= n <= len(splits.test):
                raise ValueError(f"-n {n}: the test set has {len(splits.test)} images; ask for 1..{len(splits.test)}")
            noisy, clean = to_float(splits.test.images[:n]), to_float(splits.test.labels[:n])  # [0, 1]
        model.eval()
        with torch.inference_mode():
            outputs[label] = model(noisy)
    return plot_denoising(noisy, outputs, clean, out_path, n=n)
