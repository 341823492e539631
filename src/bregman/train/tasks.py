"""What is learned: the loss and the validation score of each kind of experiment.

The data set decides the task: classification (cross-entropy; score = accuracy) for MNIST,
Fashion-MNIST and CIFAR-10, denoising (MSE; score = SSIM on the test set) for ``mnist-denoise``,
next-character prediction (cross-entropy per character in nats; score = the fraction of
characters predicted right) for ``stdlib-text``.
Scores accumulate as on-device tensor sums, so a training step never syncs with the host.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Task", "TASKS", "DATASET_TASKS", "task_for", "ssim"]


def _gaussian_1d(size: int = 11, sigma: float = 1.5, *, dtype=torch.float32, device=None) -> Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(x: Tensor, y: Tensor, *, data_range: float = 1.0, window: int = 11, sigma: float = 1.5) -> Tensor:
    r"""Per-image structural similarity (Wang et al. 2004) with an 11×11 Gaussian window, σ = 1.5.

    SSIM = mean over valid windows of
    :math:`\frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}{(\mu_x^2+\mu_y^2+C_1)(\sigma_x^2+\sigma_y^2+C_2)}`,
    :math:`C_1 = (0.01 L)^2`, :math:`C_2 = (0.03 L)^2` (the standard constants, as in
    scikit-image's ``gaussian_weights=True`` and torchmetrics). Inputs N×C×H×W; returns N values.
    """
    c = x.shape[1]
    g = _gaussian_1d(window, sigma, dtype=x.dtype, device=x.device)
    col, row = g.view(1, 1, -1, 1).expand(c, 1, window, 1), g.view(1, 1, 1, -1).expand(c, 1, 1, window)

    def blur(t: Tensor) -> Tensor:  # the 2-D Gaussian is separable: two 1-D passes, 5× cheaper
        return F.conv2d(F.conv2d(t, col, groups=c), row, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)


@dataclass(frozen=True)
class Task:
    """loss(output, target) is the batch mean; score_sum(output, target) a tensor sum over the batch."""

    name: str
    loss: Callable[[Tensor, Tensor], Tensor]
    score_sum: Callable[[Tensor, Tensor], Tensor]
    score_name: str  # how the score is logged: "acc" (fraction correct) or "ssim"
    train_score: bool = True  # also score training batches (SSIM per step would cost ~15 % of an epoch)


TASKS = {
    "classify": Task("classify", F.cross_entropy, lambda out, y: (out.argmax(1) == y).sum(), "acc"),
    "denoise": Task("denoise", F.mse_loss, lambda out, y: ssim(out.float().clamp(0, 1), y.float()).sum(), "ssim",
                    train_score=False),
    # out: B × T × vocab logits, y: B × T next tokens; the score sums per-window accuracies
    "next_char": Task("next_char", lambda out, y: F.cross_entropy(out.flatten(0, 1), y.flatten()),
                      lambda out, y: (out.argmax(-1) == y).float().mean(1).sum(), "acc"),
}

#: the task each dataset poses (the config's choices of dataset are these keys)
DATASET_TASKS = {"mnist": "classify", "fashion-mnist": "classify", "cifar10": "classify", "mnist-denoise": "denoise",
                 "stdlib-text": "next_char"}


def task_for(dataset: str) -> Task:
    return TASKS[DATASET_TASKS[dataset]]
