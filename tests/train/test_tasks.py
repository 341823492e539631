"""SSIM (the denoising score) against the definition with a full 2-D Gaussian window."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bregman.train.tasks import ssim


def _ssim_2d(x, y):
    t = torch.arange(11, dtype=x.dtype) - 5
    g = torch.exp(-(t**2) / (2 * 1.5**2))
    g = g / g.sum()
    w = (g[:, None] * g[None, :])[None, None]
    mx, my = F.conv2d(x, w), F.conv2d(y, w)
    sxx, syy, sxy = F.conv2d(x * x, w) - mx**2, F.conv2d(y * y, w) - my**2, F.conv2d(x * y, w) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    return (((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))).flatten(1).mean(1)


def test_ssim_matches_the_definition_and_orders_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 28, 28, generator=g, dtype=torch.float64)
    noisy = (x + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    noisier = (x + 0.3 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    torch.testing.assert_close(ssim(x, noisy), _ssim_2d(x, noisy), rtol=0, atol=1e-12)
    torch.testing.assert_close(ssim(x, x), torch.ones(6, dtype=torch.float64), rtol=0, atol=1e-12)
    assert (ssim(x, noisier) < ssim(x, noisy)).all()
