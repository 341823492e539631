"""Where data sets live on disk.

The layout is torchvision's, so a user who already has torchvision data can point at it::

    ROOT/MNIST/raw/train-images-idx3-ubyte[.gz]
    ROOT/FashionMNIST/raw/train-images-idx3-ubyte[.gz]
    ROOT/cifar-10-batches-py/data_batch_1 ... test_batch
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "BREGMAN_DATA"


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The data root: ``root`` if given, else ``$BREGMAN_DATA``, else a per-user cache directory.

    The cache directory is ``$XDG_CACHE_HOME/bregman``, or ``~/.cache/bregman`` when
    ``XDG_CACHE_HOME`` is unset. Nothing is created here; :func:`bregman.data.fetch` creates what
    it writes.
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "bregman"


def find_file(directory: Path, name: str) -> Path | None:
    """``directory/name`` if it exists, else ``directory/name.gz`` if that exists, else ``None``."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None
