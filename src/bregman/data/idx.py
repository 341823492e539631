"""Reader for IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a header followed by one big-endian array::

    bytes 0-1   0x00 0x00
    byte  2     type code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3     number of dimensions d
    4 * d       the sizes n_1 .. n_d, each a big-endian uint32
    rest        n_1 * ... * n_d items, big-endian, row-major

Files may be gzip-compressed (``.gz``); the reader decompresses them.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import torch

from .checksums import read_verified
from .errors import DataError

_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
DEFAULT_FIX = "Fetch it again, e.g. `bregman data fetch mnist`."


def parse_idx(data: bytes, *, source: Path | str = "<bytes>", fix: str = DEFAULT_FIX) -> torch.Tensor:
    """The array stored in the IDX bytes ``data``, as a tensor of the native byte order."""
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _TYPES:
        raise DataError(
            f"{source} is not an IDX file: expected a header 00 00 <type> <ndim> with type in "
            f"{{{', '.join(f'{t:#04x}' for t in _TYPES)}}}, found {data[:4].hex(' ') or 'nothing'}. {fix}"
        )
    dtype, ndim = _TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source} is truncated inside its IDX header ({len(data)} bytes). {fix}")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise DataError(
            f"{source} is {state}: an IDX array of shape {tuple(shape)} and type {dtype.name} "
            f"needs {expected} bytes, found {len(data)}. {fix}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    # astype copies into native byte order, which also gives torch a writable buffer.
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))


def read_idx(
    path: str | os.PathLike[str], *, md5: str | None = None, fix: str = DEFAULT_FIX
) -> torch.Tensor:
    """Read the IDX file at ``path`` (plain or ``.gz``).

    Args:
        path: the file.
        md5: if given, the expected md5 of the decompressed bytes; a mismatch is a DataError.
        fix: the sentence that error messages end with, saying how to get a good copy.
    """
    path = Path(path)
    return parse_idx(read_verified(path, md5, fix=fix), source=path, fix=fix)
