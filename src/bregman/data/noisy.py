"""Fixed noisy copies of images, for the denoising autoencoder experiment.

Each clean image u (uint8, scaled to [0, 1]) gets one noisy copy, drawn once and kept::

    f = clip(u + sigma * n, 0, 1),   n ~ N(0, I),   sigma = noise_std (default 0.05)

as the authors' notebook does (noise added once to the whole set, std 0.05 on the [0, 1] scale).
The notebook does not clip; we clip by default so inputs stay in the image range the models'
normalization assumes (with sigma = 0.05 this moves only pixels within a few sigma of 0 or 1,
mostly the black background). Pass ``clamp=False`` for the notebook's exact inputs.

The result is an :class:`~bregman.data.datasets.ArrayDataset` whose ``images`` are the noisy
inputs (float32) and whose ``labels`` are the clean images (uint8), so it plugs into
:class:`~bregman.data.loader.BatchLoader` unchanged: both come out as float32 in [0, 1].
"""
from __future__ import annotations

import torch

from .datasets import ArrayDataset, Splits


def add_gaussian_noise(
    dataset: ArrayDataset,
    noise_std: float = 0.05,
    *,
    generator: torch.Generator | None = None,
    clamp: bool = True,
) -> ArrayDataset:
    """``(noisy images, clean images)`` from ``dataset.images`` (uint8); labels are dropped."""
    if noise_std < 0:
        raise ValueError(f"Invalid noise_std: {noise_std}")
    clean = dataset.images
    if clean.dtype != torch.uint8:
        raise ValueError(f"expected uint8 images, got {clean.dtype}")
    noisy = torch.randn(clean.shape, generator=generator, device=clean.device)
    noisy.mul_(noise_std).add_(clean, alpha=1 / 255)
    if clamp:
        noisy.clamp_(0, 1)
    return ArrayDataset(noisy, clean)


def noisy_splits(splits: Splits, noise_std: float = 0.05, *, seed: int = 0, clamp: bool = True) -> Splits:
    """Noisy copies of train, val and test, drawn in that order from one generator seeded ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return Splits(*(add_gaussian_noise(part, noise_std, generator=g, clamp=clamp) for part in splits))
