"""Execution settings that change how fast, not what, a model trains (the ``Config`` fields
``channels_last``, ``retain_memory``, ``fuse_conv_pool``, ``support_conv``, ``compile``,
``threads``, ``foreach``, ``amp``).

Measured on the paper's models on a 2-core AVX-512 CPU (``benchmarks/training_speed.py``):

* **channels-last activations, contiguous weights** (:func:`channels_last_`). oneDNN's channels-last
  convolutions and, above all, channels-last max-pooling are much faster than NCHW (ConvNet step
  ≈ 1.3× faster). Only the *stem* convolutions (the ones fed by the input) get channels-last
  weights; that makes their output channels-last, and every later layer follows the format of its
  input. All other weights stay contiguous, so the optimizer's per-parameter work (ℓ1,2 group
  norms over kernel dims above all, 15× slower on channels-last weights) runs on plain memory.
* **Keeping freed memory in the process** (:func:`retain_freed_memory`). With glibc's defaults
  the large activation buffers of a conv net go back to the kernel after every step and come back
  as fresh zero pages: ~10,000 page faults per ConvNet step, ~160,000 per ResNet-18 step, about
  20 % of the ConvNet's step time. Raising the mmap and trim thresholds keeps them in the heap.
* **a fused stem** (``fuse_conv_pool``, :func:`fuse_conv_pool_`): a 1-input-channel convolution
  and the 2×2 max-pool after it (the ConvNet's conv1 + pool1) run as one C kernel that never
  writes the 19 MB pre-pool map and computes the weight gradient from the pooled positions only;
  switching it off makes the ConvNet's LinBreg epoch 1.2× slower (``benchmarks/speed_settings.py``).
  Its output is channels-last, and it writes no large buffer, so on the ConvNet channels-last
  and ``retain_memory`` no longer change the epoch measurably.
* **support convolutions** (``support_conv``, :func:`support_convs_`, CPU only): each convolution's
  forward pass and input gradient run on the output channels (and, when few, input channels) that
  have a non-zero kernel; the weight gradient stays dense (LinBreg needs it for the zero kernels).
  Exact; it pays on a Bregman net's sparse kernels (ConvNet epoch 1.29× slower without it from
  the 1 % start, 1.07× with epoch-20 weights) and dense weights (SGD's) run the dense convolution.
* **one-pass Bregman steps** (``foreach``, the optimizers' fast path): on CPU the dual update and
  the prox run in one pass per tensor (:mod:`bregman.optim._fused`: ℓ1, no penalty, row groups),
  in one C kernel call per step for all of LinBreg's param groups (without momentum); zero groups
  of θ are not rewritten, and ℓ1 entries that stay zero are not even read, which cuts the LinBreg
  step on the denoising MLP's 784×784 layers by about a third.
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

from bregman.models.conv_pool import fuse_conv_pool_
from bregman.models.support_conv import support_convs_

__all__ = ["channels_last_", "retain_freed_memory", "compile_or_eager", "stem_convs", "fuse_conv_pool_",
           "support_convs_"]

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


def stem_convs(model: nn.Module) -> list[nn.Module]:
    """The 2-D convolutions that see the model's input: the first one in registration order and
    any other with at most 4 input channels (a stem's; their weights are tiny)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return [m for i, m in enumerate(convs) if i == 0 or m.in_channels <= 4]


def channels_last_(model: nn.Module) -> nn.Module:
    """Channels-last activations for a conv net, in place: the stem convolutions' weights (and
    their gradients, optimizer state) become channels-last, all other parameters stay contiguous.

    A convolution with a channels-last weight returns a channels-last output whatever its input
    (for a 1-channel input the two formats coincide, which is why the weight, not the input, is
    converted); pooling, batch norm, ReLU and the residual additions keep it, and each later
    convolution follows its channels-last input. ``torch.empty_like`` + ``copy_`` rather than
    ``.contiguous(memory_format=...)``: the latter keeps NCHW strides for a ``C_in = 1`` weight,
    which is already "channels-last contiguous", so the conv would still pick NCHW.
    """
    for conv in stem_convs(model):
        w = conv.weight
        if w.ndim == 4:
            cl = torch.empty_like(w, memory_format=torch.channels_last).copy_(w.detach())
            w.data = cl
    return model


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
