"""Checkpoints as plain dicts, written atomically (temporary file, fsync, rename).

An interrupted write (Ctrl-C, a crash, a full disk) leaves the previous checkpoint intact.
Everything in a checkpoint loads with ``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from bregman._atomic import write_atomic

__all__ = ["save_atomic", "load_checkpoint", "write_text_atomic"]


def save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    return write_atomic(path, lambda f: torch.save(obj, f))


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    return write_atomic(path, lambda f: f.write(text.encode()))


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; start the run without --resume")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise RuntimeError(f"checkpoint {path} cannot be read ({e}); delete it to start afresh") from e
