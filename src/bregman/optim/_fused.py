r"""A one-pass CPU kernel for the Bregman step with group sparsity: dual update and prox fused.

The torch ops of a LinBreg step with a group regularizer walk each weight three times
(``v -= τg``; the group norms of v; ``θ = δ·v·scale``), and on the paper's 784×784 layers
each pass goes to main memory. The kernel does all of it per group while the group sits in L1
cache, and leaves zero groups of θ unwritten when they are zero already (a sparse net's usual
case), so a dirty cache line is written back only for the active groups.

For a tensor cut into ``m`` contiguous groups of ``n`` entries with threshold ``t = λ√n``:

.. math::
    v_g \leftarrow v_g - \tau g_g \ (\text{if } g \text{ is given}), \qquad
    \theta_g = \delta\, v_g \max(1 - t/\lVert v_g \rVert_2,\ 0).

It applies to groups of at least :data:`MIN_GROUP` entries (rows of wide linear layers); ℓ1 and
small conv kernels stay with torch's vectorized ops, which are faster there. The kernel is C,
compiled at first use with the machine's C compiler (:mod:`bregman._ckernel`: a per-user cache,
torch's OpenMP threads). Where no compiler works, or with ``BREGMAN_FUSED=0``, :func:`available`
is False and the optimizers run torch ops. Group norms
are accumulated in double, so float32 results differ from the torch ops by rounding only.
"""
from __future__ import annotations

import ctypes
import functools

import torch
from torch import Tensor

from bregman import _ckernel

__all__ = ["available", "prox_groups_", "MIN_NUMEL", "MIN_GROUP"]

#: Tensors smaller than this go through the torch ops (a ctypes call costs about a torch op).
MIN_NUMEL = 4096
#: Shorter groups go through the torch ops: per group the kernel pays a square root, a division and
#: short loops, which for ℓ1 (n = 1) and 3×3 or 5×5 kernels costs more than torch's vectorized
#: norm saves (measured on ResNet-18 and the ConvNet); the rows of wide linear layers gain.
MIN_GROUP = 64

_SOURCE = r"""
#include <math.h>
#include <stdint.h>
#include <stddef.h>

/* Zero groups of a sparse net stay zero step after step: their entries of p are read, not
   rewritten, so their cache lines are never dirtied (a write costs a read and a write-back). */

#define LANES 32
#define GROUPS(NAME, T)                                                                        \
void NAME(T *restrict p, T *restrict v, const T *restrict g, int64_t m, int64_t n, double lr, double t, double delta) {  \
    const T a = (T)lr;                                                                         \
    _Pragma("omp parallel for schedule(static) if (m * n > 32768)")                            \
    for (int64_t i = 0; i < m; i++) {                                                          \
        T *vi = v + i * n, *pi = p + i * n;                                                    \
        /* ‖v_g‖² in double, in LANES independent partial sums (one sum would be a chain of   \
           dependent adds: latency-bound); the last n mod LANES entries go to acc[0]. */       \
        double acc[LANES] = {0};                                                               \
        int64_t j = 0;                                                                         \
        if (g) {                                                                               \
            const T *gi = g + i * n;                                                           \
            for (; j + LANES <= n; j += LANES) {                                               \
                _Pragma("omp simd")                                                            \
                for (int k = 0; k < LANES; k++) {                                              \
                    T x = vi[j + k] - a * gi[j + k]; vi[j + k] = x; acc[k] += (double)x * x;   \
                }                                                                              \
            }                                                                                  \
            for (; j < n; j++) { T x = vi[j] - a * gi[j]; vi[j] = x; acc[0] += (double)x * x; } \
        } else {                                                                               \
            for (; j + LANES <= n; j += LANES) {                                               \
                _Pragma("omp simd")                                                            \
                for (int k = 0; k < LANES; k++) acc[k] += (double)vi[j + k] * vi[j + k];       \
            }                                                                                  \
            for (; j < n; j++) acc[0] += (double)vi[j] * vi[j];                                \
        }                                                                                      \
        double ss = 0.0;                                                                       \
        for (int k = 0; k < LANES; k++) ss += acc[k];                                          \
        double norm = sqrt(ss);                                                                \
        if (norm > t) {                                                                        \
            const T s = (T)(delta * (norm - t) / norm);                                        \
            _Pragma("omp simd")                                                                \
            for (int64_t j = 0; j < n; j++) pi[j] = vi[j] * s;                                 \
        } else {                                                                               \
            _Pragma("omp simd")                                                                \
            for (int64_t j = 0; j < n; j++) if (pi[j] != 0) pi[j] = 0;                         \
        }                                                                                      \
    }                                                                                          \
}

GROUPS(bregman_groups_f32, float)
GROUPS(bregman_groups_f64, double)
"""

@functools.lru_cache(maxsize=None)
def _library() -> ctypes.CDLL | None:
    """The compiled kernel library, or None where it cannot be had (no compiler, disabled)."""
    i64, dbl, ptr = ctypes.c_int64, ctypes.c_double, ctypes.c_void_p
    sig = [ptr, ptr, ptr, i64, i64, dbl, dbl, dbl]
    return _ckernel.load("bregman_fused", _SOURCE, {"bregman_groups_f32": sig, "bregman_groups_f64": sig},
                         _self_test)


def _self_test(lib: ctypes.CDLL) -> bool:
    """The kernel against the closed form on a small case (guards against a broken build)."""
    v = torch.tensor([[3.0, 4.0], [0.3, 0.4]], dtype=torch.float64)
    g = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    p = torch.full_like(v, 7.0)
    lib.bregman_groups_f64(p.data_ptr(), v.data_ptr(), g.data_ptr(), 2, 2, -1.0, 1.0, 2.0)
    want_v = torch.tensor([[4.0, 4.0], [0.3, 0.4]], dtype=torch.float64)
    want_p = torch.tensor([[4.0, 4.0], [0.0, 0.0]], dtype=torch.float64) * 2 * (1 - 1 / 32 ** 0.5)
    return bool(torch.allclose(v, want_v) and torch.allclose(p, want_p))


def available() -> bool:
    """Whether the fused kernels can run here (compiled on the first call)."""
    return _library() is not None


def prox_groups_(p: Tensor, v: Tensor, g: Tensor | None, *, lr: float, group: int, thresh: float,
                 delta: float) -> bool:
    """``v ← v − lr·g`` (when ``g`` is given), then ``p ← prox_{δJ}(δv)`` for contiguous groups of
    ``group`` entries with threshold ``thresh``, in one pass.

    Returns False, touching nothing, where the kernel does not apply (not compiled, not CPU,
    not float32/float64, tensors not contiguous or too small, groups shorter than
    :data:`MIN_GROUP`); the caller then uses torch ops.
    """
    tensors = (p, v) if g is None else (p, v, g)
    if (group < MIN_GROUP or v.numel() < MIN_NUMEL or v.dtype not in (torch.float32, torch.float64)
            or any(t.device.type != "cpu" or t.dtype != v.dtype or not t.is_contiguous()
                   or t.shape != v.shape for t in tensors)):
        return False
    lib = _library()  # compiled on the first tensor the kernel applies to, not before
    if lib is None:
        return False
    fn = lib.bregman_groups_f32 if v.dtype == torch.float32 else lib.bregman_groups_f64
    fn(p.data_ptr(), v.data_ptr(), None if g is None else g.data_ptr(), v.numel() // group, group,
       float(lr), float(thresh), float(delta))
    # Written behind autograd's back: bump the version counters as an in-place torch op would.
    torch.autograd.graph.increment_version(p if g is None else (p, v))
    return True
