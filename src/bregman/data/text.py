r"""Character-level text that every Python installation has: the standard library's own source.

The corpus is every ``*.py`` file under ``sysconfig.get_paths()["stdlib"]`` (``site-packages``
and ``dist-packages`` left out), read as bytes. Characters are ASCII codes; the few non-ASCII
bytes become code 127 (DEL, which source files do not use), so the vocabulary has 128 symbols.

Split by file, never inside one: a file goes to validation when
:math:`\operatorname{crc32}(\text{path relative to the stdlib}) \bmod 20 = 0`, to test when it is 1,
else to training (about 90 / 5 / 5 %). The rule depends on the path only, so the split is the same
on every machine with the same Python version (the corpus differs between versions: record it).

A sample is a window of ``context`` characters and, as its target, the same window shifted by
one: ``x = text[o : o+T]``, ``y = text[o+1 : o+T+1]``. Training windows start at ``train_windows``
offsets drawn once, uniformly, from a generator seeded by ``seed`` (an epoch is one pass over
them, so its length does not depend on the size of the corpus); validation and test windows start
at ``eval_windows`` evenly spaced offsets of their text. Inputs are uint8, targets int64.

Example:
    >>> train, val, test = stdlib_splits()
    >>> train.images.shape, train.images.dtype, train.labels.dtype
    (torch.Size([8192, 64]), torch.uint8, torch.int64)
"""
from __future__ import annotations

import sysconfig
import zlib
from pathlib import Path

import torch

from .arrays import ArrayDataset, Splits

__all__ = ["VOCAB", "CONTEXT", "stdlib_files", "split_of", "encode", "decode", "windows", "stdlib_splits"]

VOCAB = 128  # ASCII; every other byte is mapped to 127
CONTEXT = 64  # characters per window (the model's context must be at least this)
_SKIP = {"site-packages", "dist-packages", "__pycache__"}


def stdlib_files(root: str | Path | None = None) -> list[Path]:
    """The ``*.py`` files of the standard library at ``root`` (default: this Python's), sorted."""
    root = Path(sysconfig.get_paths()["stdlib"] if root is None else root)
    files = sorted(p for p in root.rglob("*.py") if not _SKIP & set(p.relative_to(root).parts) and p.is_file())
    if not files:
        raise FileNotFoundError(f"no *.py files under {root}: the text data set needs Python's standard "
                                f"library sources (some minimal installs ship only .pyc files)")
    return files


def split_of(relative: str) -> str:
    """``"val"``, ``"test"`` or ``"train"`` for a file, by the crc32 of its relative path."""
    return {0: "val", 1: "test"}.get(zlib.crc32(relative.encode()) % 20, "train")


def encode(data: bytes) -> torch.Tensor:
    """Bytes → uint8 codes in [0, 128): non-ASCII bytes become 127."""
    if not data:
        return torch.empty(0, dtype=torch.uint8)
    t = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    return t.masked_fill(t >= VOCAB, VOCAB - 1)


def decode(codes: torch.Tensor) -> str:
    """uint8 / int64 codes → text (127 shows as ``\\x7f``)."""
    return bytes(codes.to(torch.uint8).tolist()).decode("ascii")


def windows(text: torch.Tensor, offsets: torch.Tensor, context: int) -> ArrayDataset:
    """``x = text[o:o+T]`` (uint8) and ``y = text[o+1:o+T+1]`` (int64) for every offset ``o``."""
    index = offsets[:, None] + torch.arange(context)
    return ArrayDataset(text[index], text[index + 1].long())


def stdlib_splits(root: str | Path | None = None, *, seed: int = 42, context: int = CONTEXT,
                  train_windows: int = 8192, eval_windows: int = 2048) -> Splits:
    """Train / validation / test windows over the standard library's source (see the module doc)."""
    root = Path(sysconfig.get_paths()["stdlib"] if root is None else root)
    parts: dict[str, list[bytes]] = {"train": [], "val": [], "test": []}
    for path in stdlib_files(root):
        parts[split_of(path.relative_to(root).as_posix())].append(path.read_bytes())
    texts = {k: encode(b"\n".join(v)) for k, v in parts.items()}
    for k, t in texts.items():
        if len(t) <= context:
            raise ValueError(f"the {k} split of {root} has {len(t)} characters, fewer than one window of "
                             f"{context + 1}; the corpus is too small for this split")
    g = torch.Generator().manual_seed(seed)
    train = windows(texts["train"], torch.randint(0, len(texts["train"]) - context, (train_windows,), generator=g),
                    context)

    def spaced(t: torch.Tensor) -> ArrayDataset:
        n = min(eval_windows, len(t) - context)
        return windows(t, torch.linspace(0, len(t) - context - 1, n).long(), context)

    return Splits(train, spaced(texts["val"]), spaced(texts["test"]))
