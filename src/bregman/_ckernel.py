"""Small C kernels compiled at first use with the machine's C compiler and loaded with ctypes.

Used by the fused Bregman step (:mod:`bregman.optim._fused`). A library is built once per source, compiler and machine into
a per-user cache (``$BREGMAN_CACHE``, else ``~/.cache/bregman``), atomically (several processes
may build it at once), with ``-march=native`` where the compiler takes it. Its OpenMP threads are
torch's own (the same ``libgomp``), so ``torch.set_num_threads`` governs both. Where no compiler
works, a build fails its self-test, or ``BREGMAN_FUSED=0`` is set, :func:`load` returns None and
the callers run torch ops.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["load", "cache_dir"]

_FLAGS = ["-O3", "-fopenmp", "-shared", "-fPIC", "-std=c99"]


def cache_dir() -> Path:
    root = os.environ.get("BREGMAN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "bregman")
    return Path(root) / "kernels"


def _compile(cc: str, source: str, out: Path) -> bool:
    """Build ``source`` into ``out`` atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        src = Path(tmp) / f"{out.stem}.c"
        src.write_text(source)
        lib = Path(tmp) / out.name
        for arch in (["-march=native"], []):
            res = subprocess.run([cc, *_FLAGS, *arch, str(src), "-o", str(lib), "-lm"],
                                 capture_output=True, text=True, timeout=120)
            if res.returncode == 0:
                os.replace(lib, out)
                return True
    return False


def load(name: str, source: str, signatures: dict[str, list], self_test: Callable[[ctypes.CDLL], bool]
         ) -> ctypes.CDLL | None:
    """The library built from ``source`` with ``signatures`` (``{function: argtypes}``) set, or
    None where it cannot be had (disabled, no compiler, build or ``self_test`` failed)."""
    if os.environ.get("BREGMAN_FUSED", "1") == "0":
        return None
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    key = hashlib.sha256("\0".join([source, *_FLAGS, cc, platform.machine(), platform.node()]).encode()).hexdigest()
    path = cache_dir() / f"{name}_{key[:16]}.so"
    try:
        if not path.exists() and not _compile(cc, source, path):
            return None
        lib = ctypes.CDLL(str(path))
    except (OSError, subprocess.SubprocessError):
        return None
    for fn, argtypes in signatures.items():
        getattr(lib, fn).argtypes = argtypes
    return lib if self_test(lib) else None
