"""Fixtures for the data tests: the real data roots, and writers of small files in the real formats."""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
import pickle
import struct
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from bregman.data import get_info
from bregman.data.paths import data_root, find_file

_IDX_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">i2"): 0x0B,
              np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def _idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array`` (big-endian, as the format requires)."""
    big = array.astype(array.dtype.newbyteorder(">")) if array.dtype.itemsize > 1 else array
    header = bytes([0, 0, _IDX_CODES[big.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + big.tobytes()


def _cifar_batch_bytes(images: np.ndarray, labels: list[int]) -> bytes:
    """A batch in the official format: a pickled dict with bytes keys, data N x 3072 uint8."""
    batch = {b"batch_label": b"testing batch", b"labels": labels,
             b"data": images.reshape(len(images), -1), b"filenames": [b"x.png"] * len(images)}
    return pickle.dumps(batch, protocol=2)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def idx_bytes():
    return _idx_bytes


@pytest.fixture
def md5():
    return _md5


@pytest.fixture
def mnist_like(tmp_path):
    """Writes a small MNIST-format set (n_train, n_test images of 28 x 28) into ``folder``.

    Returns ``write(folder, n_train, n_test, gz=False) -> {file name: md5 of the plain bytes}``.
    """
    def write(folder: Path, n_train: int = 40, n_test: int = 10, *, gz: bool = False, seed: int = 0) -> dict[str, str]:
        rng = np.random.default_rng(seed)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {
            "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
            "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
        }
        sums = {}
        for name, array in arrays.items():
            data = _idx_bytes(array)
            sums[name] = _md5(data)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
        return sums

    return write


@pytest.fixture
def cifar_like():
    """Writes six small batches (``n`` images each) into ``folder``; returns (images, labels) per file."""
    def write(folder: Path, n: int = 4, *, seed: int = 0) -> dict[str, tuple[np.ndarray, list[int]]]:
        rng = np.random.default_rng(seed)
        folder.mkdir(parents=True, exist_ok=True)
        content = {}
        for name in get_info("cifar10").md5:
            images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
            labels = rng.integers(0, 10, n).tolist()
            (folder / name).write_bytes(_cifar_batch_bytes(images, labels))
            content[name] = (images, labels)
        return content

    return write


@pytest.fixture
def cifar_batch_bytes():
    return _cifar_batch_bytes


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving ``tmp_path / "www"``; yields (directory, base URL)."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _real_root(name: str, *, required_if_env: bool) -> Path:
    info = get_info(name)
    root = data_root()
    if all(find_file(info.directory(root), f) for f in info.md5):
        return root
    if required_if_env and os.environ.get("BREGMAN_DATA"):
        pytest.fail(f"BREGMAN_DATA={os.environ['BREGMAN_DATA']} is set but {info.title} is not in it: "
                    f"run `bregman data fetch {info.name}` first")
    pytest.skip(f"{info.title} not found under {root}: run `bregman data fetch {info.name}` "
                f"(or `make data`) and set BREGMAN_DATA")


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The real MNIST's data root; skipped only when BREGMAN_DATA is unset and nothing is there."""
    return _real_root("mnist", required_if_env=True)


@pytest.fixture(scope="session")
def fmnist_root() -> Path:
    """The real Fashion-MNIST's data root; skipped when absent (CI fetches only MNIST)."""
    return _real_root("fashion-mnist", required_if_env=False)
