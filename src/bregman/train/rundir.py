"""A run directory: the files a training run writes into it, and its one owner.

A run directory holds at most one run. Whoever writes into it (``bregman train``, ``bregman
threshold``) first takes an exclusive lock: ``fcntl.flock`` on ``RUN_DIR/.lock``, a file that
holds the holder's PID and host. A second process that asks for the lock while the first holds
it is refused at once with an error naming the holder; the lock goes with the process (a killed
process leaves a stale ``.lock`` file, which the next one simply takes over). ``flock`` is
advisory and local: processes on two hosts sharing a run directory over NFS are not kept apart.

The run's own files (``ARTEFACTS``) are what makes a directory "hold a run": starting afresh
where any of them exists needs ``--resume`` (continue) or ``--overwrite`` (replace them). Files a
sweep writes beside a run (``requested.toml``, ``paper.json``, ``train.log``) are not artefacts.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

from bregman._atomic import writable_dir

__all__ = ["ARTEFACTS", "LOCK_FILE", "RunDirBusy", "RunLock", "artefacts", "remove_artefacts"]

#: the files a training run writes (``bregman.train.loop.train``)
ARTEFACTS = ("config.toml", "metrics.jsonl", "checkpoint.pt", "summary.json", "kernels.pt")
LOCK_FILE = ".lock"


class RunDirBusy(RuntimeError):
    """Another process holds the run directory's lock."""


def artefacts(run_dir: str | os.PathLike) -> list[str]:
    """The names of ``ARTEFACTS`` present in ``run_dir``."""
    return [name for name in ARTEFACTS if (Path(run_dir) / name).exists()]


def remove_artefacts(run_dir: str | os.PathLike) -> None:
    """Delete the run's files from ``run_dir`` (``--overwrite``); the sweep's files stay."""
    for name in ARTEFACTS:
        (Path(run_dir) / name).unlink(missing_ok=True)


class RunLock:
    """An exclusive lock on ``run_dir`` for one process (a context manager).

    ``acquire`` creates the directory if needed (so an unwritable ``--out`` is an error before any
    work), then locks ``run_dir/.lock`` without waiting.

    Raises:
        RunDirBusy: another process holds the lock; the message names its PID, host and command.
        bregman._atomic.WriteError: ``run_dir`` is a file or cannot be written.
    """

    def __init__(self, run_dir: str | os.PathLike, *, flag: str = "--out", purpose: str = "train"):
        self.run_dir, self.flag, self.purpose = Path(run_dir), flag, purpose
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self.run_dir / LOCK_FILE

    def acquire(self) -> RunLock:
        import fcntl

        writable_dir(self.run_dir, self.flag)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise RunDirBusy(f"{self.run_dir} is in use by {holder} (lock file {self.path}): wait until it "
                             f"has finished, or choose another {self.flag}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"PID {os.getpid()} on {socket.gethostname()} ({self.purpose})\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
