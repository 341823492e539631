"""The in-memory data set (two tensors) and the train / validation / test triple that every reader
returns."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

__all__ = ["ArrayDataset", "Splits"]


@dataclass(frozen=True, eq=False)
class ArrayDataset:
    """A data set held as two tensors with the same first dimension.

    For classification ``images`` is uint8 N x C x H x W and ``labels`` int64 N. Other targets fit
    too: for denoising, ``images`` are the noisy inputs and ``labels`` the clean images.
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise ValueError(
                f"images and labels differ in length: {len(self.images)} vs {len(self.labels)}"
            )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]

    def subset(self, indices: torch.Tensor) -> ArrayDataset:
        """The samples at ``indices``, in that order (a copy)."""
        return ArrayDataset(self.images[indices], self.labels[indices])

    def to(self, device: torch.device | str | None) -> ArrayDataset:
        """Both tensors on ``device`` (no copy of a tensor already there)."""
        return ArrayDataset(self.images.to(device), self.labels.to(device))


class Splits(NamedTuple):
    """Train, validation and test sets; unpacks as ``train, val, test``."""

    train: ArrayDataset
    val: ArrayDataset
    test: ArrayDataset
