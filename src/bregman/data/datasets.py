"""Whole data sets as tensors in memory, and the train/validation split.

The official training set is split into train and validation by one seeded permutation; the
official test set is the test set. The permutation is ``torch.randperm(n)`` drawn from a
``torch.Generator`` seeded with ``seed``, train takes its first ``n_train`` entries and validation
the rest: exactly what ``torch.utils.data.random_split`` does, so with ``split="code"`` and the
default seed 42 the split equals the authors' code's to the index.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from types import MappingProxyType

import torch

from .arrays import ArrayDataset, Splits
from .catalog import get_info


def paper_train_size(n: int) -> int:
    """The paper's split: 5,000 validation images (MNIST: 55,000 / 5,000; CIFAR-10: 45,000 / 5,000).

    Small sets (fewer than 50,000 images: only made-up test data) keep 10 % (at least one image)
    for validation, so neither part is empty from two images on.
    """
    return n - min(5000, max(1, n // 10))


def code_train_size(n: int) -> int:
    """The authors' code's split, ``int(0.95 * n)`` for training (MNIST 57,000 / 3,000; CIFAR 47,500 / 2,500)."""
    return int(0.95 * n)


SPLITS: Mapping[str, Callable[[int], int]] = MappingProxyType({
    "paper": paper_train_size,
    "code": code_train_size,
})


def split_indices(n: int, n_train: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train, val)`` indices into ``range(n)``: a seeded permutation cut after ``n_train``."""
    if not 0 < n_train <= n:
        raise ValueError(f"Invalid training size {n_train} for {n} samples")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[:n_train], perm[n_train:]


def load_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    split: str = "paper",
    seed: int = 42,
    verify: bool = True,
) -> Splits:
    """Read data set ``name`` from disk (checksums verified) and split it.

    Args:
        name: ``mnist``, ``fashion-mnist`` (``fmnist``) or ``cifar10``.
        root: the data root (default: ``$BREGMAN_DATA`` or the user cache, see ``data_root``).
        split: ``"paper"`` (5,000 validation images) or ``"code"`` (95 / 5, as the authors' code).
        seed: seed of the train/validation permutation.
        verify: check every file's md5; ``False`` only for files you made yourself.

    Raises DataError (with the fix) when files are missing or corrupt; nothing is downloaded here.

    ``stdlib-text`` is the character-level text of :mod:`bregman.data.text` (split by file, by its
    own rule; ``seed`` draws the training windows; ``root``, ``split`` and ``verify`` do not apply).
    """
    if name == "stdlib-text":
        from .text import stdlib_splits

        return stdlib_splits(seed=seed)
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; known: {', '.join(SPLITS)}")
    (train_images, train_labels), (test_images, test_labels) = get_info(name).read(root, verify=verify)
    official_train = ArrayDataset(train_images, train_labels)
    train_idx, val_idx = split_indices(len(official_train), SPLITS[split](len(official_train)), seed)
    return Splits(
        official_train.subset(train_idx), official_train.subset(val_idx), ArrayDataset(test_images, test_labels)
    )
