"""Execution settings that change how fast, not what, a model trains (the ``Config`` fields
``channels_last``, ``retain_memory``, ``support_conv``, ``support_linear``, ``compile``, ``threads``,
``foreach``, ``amp``), and the process-wide ones of them implemented here.

The layer settings are options of the models, built into their layers when the model is
constructed (``bregman.models.SPEED_OPTIONS``, :mod:`bregman.models.layers`; never a patch of a
built model): channels-last activations (the stem's weight stored channels-last), and on CPU
convolutions and linear layers that run the forward pass and the input gradient on the weight's
non-zero kernels (:mod:`bregman.models.support_conv`) or rows (:mod:`bregman.models.support_linear`)
only. What each one buys on the machine in use: ``benchmarks/speed_settings.py``.

Here:

* **Keeping freed memory in the process** (:func:`retain_freed_memory`). With glibc's defaults
  the large activation buffers of a conv net go back to the kernel after every step and come back
  as fresh zero pages: ~10,000 page faults per ConvNet step, ~160,000 per ResNet-18 step.
  Raising the mmap and trim thresholds keeps them in the heap.
* ``torch.compile`` (inductor, CPU) did not pay on any of the four models (channels-last
  max-pool backward and conv layouts come out slower than eager), so it is off by default;
  :func:`compile_or_eager` falls back to eager execution when compilation fails.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys
import warnings
from typing import Any, Callable

import torch
from torch import nn

__all__ = ["retain_freed_memory", "compile_or_eager"]

_M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
#: allocations up to this size come from the heap and are reused (the largest activation of the
#: paper's models at batch 128 is 32 MiB; evaluation batches of 1,000 reach a few 100 MiB)
_MMAP_THRESHOLD = 1 << 30
_TRIM_THRESHOLD = (1 << 31) - 1  # never give the heap's free top back to the kernel
_retained: bool | None = None


def retain_freed_memory() -> bool:
    """Make the C allocator keep freed memory in the process (glibc ``mallopt``); idempotent.

    Changes only where memory comes from, never a result. Returns whether the setting is active
    (False where the C library is not glibc, e.g. macOS, Windows, musl).
    """
    global _retained
    if _retained is None:
        _retained = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                mallopt = libc.mallopt
                mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
                ok_mmap = mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) or mallopt(_M_MMAP_THRESHOLD, 32 << 20)
                ok_trim = mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
                _retained = bool(ok_mmap and ok_trim)
            except (OSError, AttributeError):  # not glibc
                _retained = False
    return _retained


class _CompiledOrEager:
    """Call the compiled module; on the first failure (no C compiler, an unsupported op, ...)
    warn once and run eagerly from then on. Errors of the model itself re-raise from eager."""

    def __init__(self, model: nn.Module, compiled: Callable[..., Any]) -> None:
        self.model, self.compiled = model, compiled

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - any compiler failure means: run eagerly
                warnings.warn(f"torch.compile failed ({type(e).__name__}: {str(e)[:200]}); "
                              f"running eagerly", RuntimeWarning, stacklevel=2)
                self.compiled = None
        return self.model(*args, **kwargs)


_toolchain_ok: dict[str, bool] = {}


def _compiler_works(device: torch.device) -> bool:
    """Whether torch.compile can build a forward and a backward kernel on ``device`` (a C++
    compiler for CPU, Triton for CUDA): compiles a two-op function once per process."""
    key = device.type
    if key not in _toolchain_ok:
        try:
            x = torch.ones(4, device=device, requires_grad=True)
            torch.compile(lambda t: (t.sin() * 2).sum(), fullgraph=True)(x).backward()
            _toolchain_ok[key] = bool(torch.allclose(x.grad, 2 * torch.ones(4, device=device).cos()))
        except Exception as e:  # noqa: BLE001 - whatever fails, compilation is not usable here
            warnings.warn(f"torch.compile does not work here ({type(e).__name__}: {str(e)[:200]}); "
                          f"running eagerly", RuntimeWarning, stacklevel=3)
            _toolchain_ok[key] = False
    return _toolchain_ok[key]


def compile_or_eager(model: nn.Module, **kwargs: Any) -> Callable[..., Any]:
    """``torch.compile(model)``, or ``model`` itself where compiling does not work: the toolchain
    is probed first (compilation is lazy, so a missing compiler would otherwise surface only in the
    first training step), and a failure on the model's first call also falls back to eager."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if not _compiler_works(device):
        return model
    try:
        compiled = torch.compile(model, **kwargs)
    except Exception as e:  # noqa: BLE001
        warnings.warn(f"torch.compile unavailable ({e}); running eagerly", RuntimeWarning, stacklevel=2)
        return model
    return _CompiledOrEager(model, compiled)
