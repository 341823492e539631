"""The optional extras, imported on demand: ``experiments`` (matplotlib, tqdm) and ``export``
(torch-pruning, onnx, onnxscript, onnxruntime).

``import bregman`` never imports them; what needs one calls :func:`require` first, so a missing
extra is a one-line error that says how to install it, before any work is done.
"""
from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtra", "require"]


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message says how to install it."""


def require(module: str, purpose: str, *, instead: str = "", extra: str = "experiments") -> ModuleType:
    """``import module``, or raise :class:`MissingExtra` naming ``purpose``, the install command of
    ``extra`` and ``instead`` (another way, e.g. ``"or --set progress=off"``)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{purpose} needs {module}, which is not installed: pip install 'bregman[{extra}]'"
                           + (f" ({instead})" if instead else "")) from None
