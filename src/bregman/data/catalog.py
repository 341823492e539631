"""The data sets this package knows: one frozen record each, in one registry.

A record says where the files live under the data root, their checksums, the image shape, the
normalization constants and how to read the official train and test sets. Everything that varies
by data set is looked up here, never branched on by name elsewhere.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import torch

from .checksums import CIFAR10_MD5, FASHION_MNIST_MD5, MNIST_MD5
from .cifar import read_cifar10
from .errors import DataError
from .idx import read_idx
from .paths import data_root, find_file

Pair = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class DatasetInfo:
    """One data set.

    Normalization comes in two clearly separate pairs: ``norm_mean``/``norm_std`` are the constants
    the authors' code normalizes inputs with (the models use these, so results stay comparable),
    while ``pixel_mean``/``pixel_std`` describe the training images (scaled to [0, 1]) as measured.
    They agree for MNIST and differ for Fashion-MNIST, whose code constants are (0.5, 0.5).
    """

    name: str  # canonical name, as in `bregman data fetch <name>`
    title: str  # human name used in messages
    aliases: tuple[str, ...]
    folder: str  # directory under the data root, torchvision's layout
    md5: Mapping[str, str]  # file name -> md5 of its decompressed bytes
    image_shape: tuple[int, int, int]  # C, H, W
    num_classes: int
    norm_mean: tuple[float, ...]
    norm_std: tuple[float, ...]
    pixel_mean: tuple[float, ...]
    pixel_std: tuple[float, ...]
    fix: str  # how to get good files; ends every error message about this data set
    reader: Callable[[DatasetInfo, Path, bool], tuple[Pair, Pair]]

    def directory(self, root: str | os.PathLike[str] | None = None) -> Path:
        """Where this data set's files live under :func:`~bregman.data.paths.data_root`."""
        return data_root(root) / self.folder

    def read(self, root: str | os.PathLike[str] | None = None, *, verify: bool = True) -> tuple[Pair, Pair]:
        """``((train_images, train_labels), (test_images, test_labels))``, images uint8 N x C x H x W."""
        return self.reader(self, self.directory(root), verify)


def _read_idx_sets(info: DatasetInfo, directory: Path, verify: bool) -> tuple[Pair, Pair]:
    def read(file: str) -> torch.Tensor:
        path = find_file(directory, file)
        if path is None:
            raise DataError(f"{info.title} file {file} (or {file}.gz) not found in {directory}. {info.fix}")
        return read_idx(path, md5=info.md5[file] if verify else None, fix=info.fix)

    def read_set(prefix: str) -> Pair:
        images = read(f"{prefix}-images-idx3-ubyte")
        labels = read(f"{prefix}-labels-idx1-ubyte")
        if images.dim() != 3 or labels.dim() != 1 or len(images) != len(labels):
            raise DataError(
                f"{info.title} {prefix} files in {directory} do not match: images of shape "
                f"{tuple(images.shape)}, labels of shape {tuple(labels.shape)}. {info.fix}"
            )
        # Cheap checks that run even without checksums (verify=False): the models take uint8
        # images, the loss integer labels in 0..C-1.
        if images.dtype != torch.uint8:
            raise DataError(f"{info.title} {prefix} images in {directory} are {images.dtype}, not uint8 "
                            f"(IDX type 0x08). {info.fix}")
        return images.unsqueeze(1), check_labels(labels, info.num_classes, f"{info.title} {prefix} labels in "
                                                 f"{directory}", info.fix)

    return read_set("train"), read_set("t10k")


def check_labels(labels: torch.Tensor, num_classes: int, source: str, fix: str) -> torch.Tensor:
    """``labels`` as int64 after checking they are integers in ``0..num_classes - 1`` (one pass)."""
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise DataError(f"{source} are {labels.dtype}, not integers. {fix}")
    if labels.numel() and not (0 <= int(labels.min()) and int(labels.max()) < num_classes):
        raise DataError(f"{source} lie in {int(labels.min())}..{int(labels.max())}, outside the classes "
                        f"0..{num_classes - 1}. {fix}")
    return labels.long()


def _read_cifar_sets(info: DatasetInfo, directory: Path, verify: bool) -> tuple[Pair, Pair]:
    return read_cifar10(directory, verify=verify, fix=info.fix)


def _idx_fix(name: str, folder: str) -> str:
    return (
        f"Fix: run `bregman data fetch {name}` (it replaces missing or bad files), or point "
        f"$BREGMAN_DATA (or root=) at a directory that holds {folder}/."
    )


DATASETS: Mapping[str, DatasetInfo] = MappingProxyType({
    info.name: info
    for info in (
        DatasetInfo(
            name="mnist", title="MNIST", aliases=(), folder="MNIST/raw",
            md5=MappingProxyType(MNIST_MD5), image_shape=(1, 28, 28), num_classes=10,
            norm_mean=(0.1307,), norm_std=(0.3081,), pixel_mean=(0.1307,), pixel_std=(0.3081,),
            fix=_idx_fix("mnist", "MNIST/raw"), reader=_read_idx_sets,
        ),
        DatasetInfo(
            name="fashion-mnist", title="Fashion-MNIST", aliases=("fmnist", "fashionmnist"),
            folder="FashionMNIST/raw", md5=MappingProxyType(FASHION_MNIST_MD5),
            image_shape=(1, 28, 28), num_classes=10,
            norm_mean=(0.5,), norm_std=(0.5,), pixel_mean=(0.2860,), pixel_std=(0.3530,),
            fix=_idx_fix("fashion-mnist", "FashionMNIST/raw"), reader=_read_idx_sets,
        ),
        DatasetInfo(
            name="cifar10", title="CIFAR-10", aliases=("cifar-10",), folder="cifar-10-batches-py",
            md5=MappingProxyType(CIFAR10_MD5), image_shape=(3, 32, 32), num_classes=10,
            norm_mean=(0.4914, 0.4822, 0.4465), norm_std=(0.2023, 0.1994, 0.2010),
            # Not measured here (no registry ships CIFAR-10); the widely reported per-channel
            # values over all training pixels. The code's std above is a per-image average.
            pixel_mean=(0.4914, 0.4822, 0.4465), pixel_std=(0.2470, 0.2435, 0.2616),
            fix=(
                "Fix: replace the batches with the official ones (`bregman data fetch cifar10` "
                "says how), or point $BREGMAN_DATA (or root=) at a directory that holds "
                "cifar-10-batches-py/."
            ),
            reader=_read_cifar_sets,
        ),
    )
})


def get_info(name: str) -> DatasetInfo:
    """The record of data set ``name`` (case-insensitive; ``_`` and ``-`` are the same; aliases ok)."""
    key = name.strip().lower().replace("_", "-")
    for info in DATASETS.values():
        if key == info.name or key in info.aliases:
            return info
    known = ", ".join(
        info.name + (f" (alias {', '.join(info.aliases)})" if info.aliases else "") for info in DATASETS.values()
    )
    raise ValueError(f"Unknown data set {name!r}; known: {known}")
