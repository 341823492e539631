"""Reader for CIFAR-10's python-pickle batches.

The official release (``cifar-10-batches-py/``) holds six pickled dicts, ``data_batch_1`` ..
``data_batch_5`` (the 50,000 training images) and ``test_batch`` (10,000). Each dict has the keys
``b"data"``, a uint8 array N x 3072 whose rows are 1024 red, 1024 green, then 1024 blue values of a
32 x 32 image in row-major order, and ``b"labels"``, N ints in 0..9. So a row reshaped to
3 x 32 x 32 is the image in channel-first layout.

Unpickling can run arbitrary code, so the unpickler here only builds dicts, lists, bytes and numpy
arrays; anything else in a file is refused.
"""
from __future__ import annotations

import codecs
import io
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from .checksums import CIFAR10_MD5, read_verified
from .errors import DataError

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct

TRAIN_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
TEST_BATCH = "test_batch"
IMAGE_SHAPE = (3, 32, 32)
NUM_CLASSES = 10

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Python 3 pickles bytes with protocol 2 as _codecs.encode(str, "latin1").
    ("_codecs", "encode"): codecs.encode,
}


def missing_message(directory: Path) -> str:
    """What to do when the CIFAR-10 batches are not in ``directory``."""
    return (
        f"CIFAR-10 not found: expected the official python batches "
        f"{', '.join(TRAIN_BATCHES)} and {TEST_BATCH} in {directory}. No package registry ships "
        f"CIFAR-10, so `bregman data fetch cifar10` cannot get it offline. Put the official "
        f"batches there (extracting cifar-10-python.tar.gz into {directory.parent} creates "
        f"{directory.name}/), or run `bregman data fetch cifar10 --download` where the internet "
        f"is reachable."
    )


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return _ALLOWED[(module, name)]


def parse_cifar_batch(data: bytes, *, source: Path | str = "<bytes>", fix: str = "") -> tuple[torch.Tensor, torch.Tensor]:
    """Images (uint8, N x 3 x 32 x 32) and labels (int64, N) of one pickled batch."""
    try:
        batch = _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as err:  # a corrupt pickle can raise almost anything
        raise DataError(f"{source} is not a CIFAR-10 python batch ({err}). {fix}") from None
    images = batch.get(b"data") if isinstance(batch, dict) else None
    labels = batch.get(b"labels") if isinstance(batch, dict) else None
    if isinstance(labels, (list, tuple, np.ndarray)):
        try:  # the official batches hold a list of Python ints
            labels = np.asarray(labels)
        except ValueError:  # ragged
            labels = None
    else:
        labels = None
    if (
        not isinstance(images, np.ndarray)
        or images.dtype != np.uint8
        or images.ndim != 2
        or images.shape[1] != 3 * 32 * 32
        or labels is None
        or labels.shape != (images.shape[0],)
    ):
        raise DataError(
            f"{source} is not a CIFAR-10 python batch: expected a dict with b'data' (uint8, "
            f"N x 3072) and b'labels' (a list of N ints). {fix}"
        )
    if labels.size and labels.dtype.kind not in "iu":  # a float label such as 1.7 is refused, not made 1
        raise DataError(f"{source}: labels of type {labels.dtype}, not integers. {fix}")
    if labels.size and not (0 <= int(labels.min()) and int(labels.max()) < NUM_CLASSES):
        raise DataError(f"{source}: labels outside 0..{NUM_CLASSES - 1}. {fix}")
    return torch.from_numpy(images.reshape(-1, *IMAGE_SHAPE).copy()), torch.from_numpy(labels.astype(np.int64))


def read_cifar_batch(
    path: str | os.PathLike[str], *, md5: str | None = None, fix: str = ""
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one batch file; ``md5`` (if given) is checked before anything is unpickled."""
    path = Path(path)
    return parse_cifar_batch(read_verified(path, md5, fix=fix), source=path, fix=fix)


def read_cifar10(
    directory: str | os.PathLike[str], *, verify: bool = True, fix: str = ""
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``((train_images, train_labels), (test_images, test_labels))`` from ``cifar-10-batches-py/``.

    With ``verify`` (the default) every batch must match its official md5; pass ``verify=False``
    only for files you made yourself (tests write small batches in the same format).
    """
    directory = Path(directory)
    missing = [n for n in (*TRAIN_BATCHES, TEST_BATCH) if not (directory / n).is_file()]
    if missing:
        raise DataError(missing_message(directory) + f" Missing: {', '.join(missing)}.")

    def read(name: str) -> tuple[torch.Tensor, torch.Tensor]:
        return read_cifar_batch(directory / name, md5=CIFAR10_MD5[name] if verify else None, fix=fix)

    train = [read(n) for n in TRAIN_BATCHES]
    train_images = torch.cat([images for images, _ in train])
    train_labels = torch.cat([labels for _, labels in train])
    return (train_images, train_labels), read(TEST_BATCH)
