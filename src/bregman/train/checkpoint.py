"""Checkpoints as plain dicts, written atomically (temporary file, fsync, rename).

An interrupted write (Ctrl-C, a crash, a full disk) leaves the previous checkpoint intact.
Everything in a checkpoint loads with ``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from bregman._atomic import write_atomic

__all__ = ["save_atomic", "load_checkpoint", "load_snapshot", "RESUME_KEYS"]

#: the keys ``bregman.train.loop.train`` needs to resume a run
RESUME_KEYS = ("config", "model", "optimizer", "scheduler", "loader", "rng", "history", "best", "wall_time")

_NOT_OURS = "not a checkpoint written by `bregman train`"


def save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    return write_atomic(path, lambda f: torch.save(obj, f))


def load_snapshot(path: str | os.PathLike, map_location: Any = "cpu", *, fix: str) -> Any:
    """``torch.load(path, weights_only=True)``; a missing, truncated or foreign file is a
    ``RuntimeError`` that names it and ends with ``fix`` (what to do instead)."""
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated or foreign file raises almost anything
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RuntimeError(f"{path} cannot be read ({first}): {fix}") from e


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", *, keys: Iterable[str] = ("config",),
                    fix: str = "point at a run directory written by `bregman train`") -> dict[str, Any]:
    """The checkpoint dict at ``path``, checked to hold ``keys``.

    Raises:
        FileNotFoundError: no file at ``path``.
        RuntimeError: the file cannot be read, is not a dict, or lacks one of ``keys``; the message
            names the file and ends with ``fix``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: {fix}")
    ck = load_snapshot(path, map_location, fix=fix)
    if not isinstance(ck, dict):
        raise RuntimeError(f"{path} is {_NOT_OURS} (it holds a {type(ck).__name__}, not a dict): {fix}")
    missing = [k for k in keys if k not in ck]
    if missing:
        raise RuntimeError(f"{path} is {_NOT_OURS} (it lacks {', '.join(missing)}): {fix}")
    return ck
