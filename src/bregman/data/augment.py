"""CIFAR-10's training augmentation, vectorized over the batch.

``RandomCrop(32, padding=4)`` followed by ``RandomHorizontalFlip()``: pad each image with 4 zero
pixels on every side, cut out a 32 x 32 window whose top-left corner (i, j) is uniform in
{0..8}^2, and mirror it left-right with probability 1/2. For image b::

    out[b, c, h, w] = padded[b, c, i_b + h, j_b + w]              if not flip_b
    out[b, c, h, w] = padded[b, c, i_b + h, j_b + W - 1 - w]      if flip_b

The whole batch is one gather with per-sample row and column indices; no loop over samples.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def draw_crop_flip(n: int, generator: torch.Generator | None = None, *, padding: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Random parameters for ``n`` images: offsets (n x 2, int64, rows then columns, in
    0..2*padding) and flips (n, bool). Drawn on the generator's device in that order."""
    device = generator.device if generator is not None else None
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator, device=device)
    flips = torch.rand(n, generator=generator, device=device) < 0.5
    return offsets, flips


def crop_flip(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, *, padding: int = 4) -> torch.Tensor:
    """Zero-pad ``x`` (B x C x H x W, any dtype) by ``padding``, crop at ``offsets``, mirror where ``flips``."""
    b, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (padding, padding, padding, padding))
    offsets, flips = offsets.to(dev), flips.to(dev)
    rows = offsets[:, 0, None] + torch.arange(h, device=dev)
    cols = offsets[:, 1, None] + torch.arange(w, device=dev)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    return padded[
        torch.arange(b, device=dev)[:, None, None, None],
        torch.arange(c, device=dev)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


def cifar_augment(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """RandomCrop(32, padding=4) + RandomHorizontalFlip on a batch ``x`` (B x C x H x W)."""
    return crop_flip(x, *draw_crop_flip(len(x), generator))
