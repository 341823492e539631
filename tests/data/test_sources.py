"""fetch(): idempotence, atomic installs, the local-mirror download path and the offline routes.

The download tests point ``mirror=`` at a local http.server on 127.0.0.1; nothing leaves the machine.
"""
import gzip
import io
import tarfile
from pathlib import Path

import pytest

from bregman.data import DataError, data_root, fetch, load_dataset
from bregman.data import sources


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def _serve_gz(www: Path, plain_dir: Path) -> None:
    for path in plain_dir.iterdir():
        (www / f"{path.name}.gz").write_bytes(gzip.compress(path.read_bytes()))


def test_download_from_a_local_mirror_is_verified_and_idempotent(tmp_path, http_server, mnist_like, capsys):
    www, url = http_server
    sums = mnist_like(tmp_path / "src")
    _serve_gz(www, tmp_path / "src")
    root = tmp_path / "root"
    dest = fetch("mnist", root, download=True, mirror=url, checksums=sums)
    assert dest == root / "MNIST" / "raw"
    assert _files(dest) == sorted(f"{n}.gz" for n in sums)
    assert "4 file(s)" in capsys.readouterr().out
    for path in www.iterdir():  # a second fetch must not need the server
        path.unlink()
    assert fetch("mnist", root, download=True, mirror=url, checksums=sums) == dest
    assert capsys.readouterr().out == ""
    train, val, test = load_dataset("mnist", root, split="code", verify=False)
    assert (len(train), len(val), len(test)) == (38, 2, 10)


def test_checksum_mismatch_from_the_server_leaves_nothing_behind(tmp_path, http_server, mnist_like):
    www, url = http_server
    sums = mnist_like(tmp_path / "src")
    _serve_gz(www, tmp_path / "src")
    sums["train-images-idx3-ubyte"] = "0" * 32
    root = tmp_path / "root"
    with pytest.raises(DataError, match=r"(?s)train-images-idx3-ubyte\.gz.*expected md5 0{32}"):
        fetch("mnist", root, download=True, mirror=url.rstrip("/"), checksums=sums)
    assert not any("train-images" in name for name in _files(root / "MNIST" / "raw"))
    assert not any(name.endswith(".part") for name in _files(root / "MNIST" / "raw"))


def test_unreachable_file_is_a_data_error(tmp_path, http_server, mnist_like):
    _, url = http_server  # serves nothing
    sums = mnist_like(tmp_path / "src")
    with pytest.raises(DataError, match=r"Cannot download http://127\.0\.0\.1:\d+/train-images"):
        fetch("mnist", tmp_path / "root", download=True, mirror=url, checksums=sums)


def test_a_corrupt_file_is_replaced(tmp_path, http_server, mnist_like):
    www, url = http_server
    sums = mnist_like(tmp_path / "src")
    _serve_gz(www, tmp_path / "src")
    dest = tmp_path / "root" / "MNIST" / "raw"
    mnist_like(dest)  # valid plain files ...
    (dest / "t10k-labels-idx1-ubyte").write_bytes(b"garbage")  # ... except one
    fetch("mnist", tmp_path / "root", download=True, mirror=url, checksums=sums)
    assert "t10k-labels-idx1-ubyte" not in _files(dest)
    assert "t10k-labels-idx1-ubyte.gz" in _files(dest)
    assert "train-images-idx3-ubyte.gz" not in _files(dest)  # valid files are left alone
    load_dataset("mnist", tmp_path / "root", split="code", verify=False)


def _cifar_archive(batch_dir: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(batch_dir.iterdir()):
            tar.add(path, arcname=f"cifar-10-batches-py/{path.name}")
    return buffer.getvalue()


def test_cifar_download_from_a_local_mirror(tmp_path, http_server, cifar_like, md5):
    www, url = http_server
    src = tmp_path / "src"
    cifar_like(src)
    archive = _cifar_archive(src)
    (www / "cifar-10-python.tar.gz").write_bytes(archive)
    sums = {p.name: md5(p.read_bytes()) for p in src.iterdir()}
    with pytest.raises(DataError, match="Checksum mismatch for .*cifar-10-python.tar.gz"):
        fetch("cifar10", tmp_path / "root", download=True, mirror=url, checksums=sums)  # official archive md5
    assert _files(tmp_path / "root" / "cifar-10-batches-py") == []
    sums["cifar-10-python.tar.gz"] = md5(archive)
    dest = fetch("cifar10", tmp_path / "root", download=True, mirror=url, checksums=sums)
    assert _files(dest) == sorted(sums.keys() - {"cifar-10-python.tar.gz"})
    assert len(load_dataset("cifar10", tmp_path / "root", split="code", verify=False).test) == 4


def test_fashion_mnist_from_the_installed_debian_package(tmp_path, monkeypatch, mnist_like):
    installed = tmp_path / "usr-share-datasets-fashion-mnist"
    sums = mnist_like(installed, gz=True)
    monkeypatch.setattr(sources, "DEBIAN_DIR", installed)
    dest = fetch("fmnist", tmp_path / "root", checksums=sums)
    assert dest == tmp_path / "root" / "FashionMNIST" / "raw"
    assert _files(dest) == _files(installed)
    assert len(load_dataset("fashion-mnist", tmp_path / "root", split="code", verify=False).train) == 38


def test_unknown_name_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown data set 'svhn'; known: mnist, fashion-mnist \(alias fmnist"):
        fetch("svhn", tmp_path)


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("BREGMAN_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("BREGMAN_DATA")
    assert data_root() == tmp_path / "xdg" / "bregman"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data_root() == Path.home() / ".cache" / "bregman"
