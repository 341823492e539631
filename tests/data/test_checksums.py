import os

import pytest

from bregman.data import DataError, get_info
from bregman.data import checksums


def test_tables_are_32_hex_digits():
    for table in (checksums.MNIST_MD5, checksums.FASHION_MNIST_MD5, checksums.CIFAR10_MD5):
        for name, digest in table.items():
            assert len(digest) == 32 and int(digest, 16) >= 0, name
    assert set(get_info("mnist").md5) == set(get_info("fmnist").md5)


def test_read_verified_and_cache_follows_the_file(tmp_path, md5):
    path = tmp_path / "f"
    path.write_bytes(b"hello")
    assert checksums.read_verified(path, md5(b"hello"), fix="FIX") == b"hello"
    assert checksums.file_md5(path, fix="FIX") == md5(b"hello")
    path.write_bytes(b"hellO")  # same size: the cache key must still change (mtime)
    os.utime(path, ns=(0, 0))
    with pytest.raises(DataError, match=rf"(?s){path}.*expected md5 {md5(b'hello')}, found {md5(b'hellO')}.*FIX"):
        checksums.read_verified(path, md5(b"hello"), fix="FIX")
    assert checksums.read_verified(path, None, fix="FIX") == b"hellO"
