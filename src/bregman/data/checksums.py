"""Checksums of the data files and the functions that verify them.

Every md5 here is of the *decompressed* bytes: Debian recompressed the Fashion-MNIST ``.gz`` files,
so only the decompressed content has one checksum whatever the source. Files are verified on every
load; hashing 47 MB costs about 0.1 s, and the digest is cached in-process keyed by
(path, size, mtime) so repeated loads of an unchanged file hash it once.
"""
from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

from .errors import DataError

MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
# The official python-pickle batches, as listed on the data set's page and by torchvision.
CIFAR10_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"

_digests: dict[tuple[str, int, int], str] = {}


def md5_hex(data: bytes) -> str:
    """The md5 of ``data`` as 32 lowercase hex digits."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def decompress(raw: bytes, *, gz: bool, source: Path | str, fix: str) -> bytes:
    """``raw`` itself, or its gzip decompression when ``gz``; a broken gzip stream is a DataError."""
    if not gz:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(
            f"Cannot decompress {source} ({err}): the file is truncated or corrupt. {fix}"
        ) from None


def read_bytes(path: Path, *, fix: str) -> bytes:
    """The content of ``path``, decompressed when its name ends in ``.gz``."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"Cannot read {path} ({err.strerror}). {fix}") from None
    return decompress(raw, gz=path.suffix == ".gz", source=path, fix=fix)


def check_md5(data: bytes, expected: str, *, source: Path | str, fix: str, found: str | None = None) -> None:
    """Raise a DataError naming ``source`` unless ``md5(data) == expected``."""
    found = found or md5_hex(data)
    if found != expected:
        raise DataError(
            f"Checksum mismatch for {source}: expected md5 {expected}, found {found} "
            f"(md5 of the decompressed bytes). The file is corrupt, truncated or from another "
            f"release. {fix}"
        )


def _key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def read_verified(path: Path, expected: str | None, *, fix: str) -> bytes:
    """The decompressed content of ``path``, checked against ``expected`` unless that is ``None``."""
    data = read_bytes(path, fix=fix)
    if expected is not None:
        key = _key(path)
        found = _digests.get(key) or md5_hex(data)
        check_md5(data, expected, source=path, fix=fix, found=found)
        _digests[key] = found
    return data


def file_md5(path: Path, *, fix: str) -> str:
    """The md5 of the decompressed content of ``path`` (cached by path, size and mtime)."""
    key = _key(path)
    if key not in _digests:
        _digests[key] = md5_hex(read_bytes(path, fix=fix))
    return _digests[key]
