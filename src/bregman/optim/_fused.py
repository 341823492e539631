r"""A one-pass CPU kernel for the Bregman step: dual update and prox fused, all tensors in one call.

The torch ops of a LinBreg step walk each weight two or three times (``v -= τg``; the prox, plus
the group norms for group sparsity) and pay a dispatch per tensor and op, which on the paper's MLP
costs more than the arithmetic. The kernel takes many tensors in one call (LinBreg without
momentum: all param groups at once, :class:`Batch`) and does each in one pass. It leaves zero
groups of θ unwritten when they are zero already (a sparse net's usual case), so a dirty cache
line is written back only for the active groups; for ℓ1, while θ is still the kernel's own
prox of v, an entry that is zero and stays zero is not even read (:class:`Batch`), so on a
sparse net the step moves little more memory than SGD's.

Each tensor is cut into ``m`` contiguous groups of ``n`` entries, J(θ) = Σ_g t‖θ_g‖₂
(:meth:`~bregman.regularizers.Regularizer.contiguous_groups`):

.. math::
    v_g \leftarrow v_g - \tau g_g \ (\text{if } g \text{ is given}), \qquad
    \theta_g = \delta\, v_g \max(1 - t/\lVert v_g \rVert_2,\ 0).

With ``n = 1`` this is soft shrinkage, θ = δ·shrink(v, t) (ℓ1 with t = λ; no penalty with t = 0),
and the kernel computes exactly what torch's ops do, bit for bit up to the sign of zero:
``v + (−τ)·g`` as one fused multiply-add, ``x ∓ t`` beyond the threshold and ``x·0`` inside it
(so NaN passes through).
Groups need ``n ≥`` :data:`MIN_GROUP` (rows of wide linear layers); their norms are accumulated in
double, so float32 results differ from the torch ops by rounding only. Shorter groups (3×3 or 5×5
kernels) stay with torch's vectorized norms, which are faster there.

The kernel is C, compiled at first use with the machine's C compiler (:mod:`bregman._ckernel`: a
per-user cache, torch's OpenMP threads). Where no compiler works, or with ``BREGMAN_FUSED=0``,
:func:`available` is False and the optimizers run torch ops.
"""
from __future__ import annotations

import ctypes
import functools

from typing import Sequence

import torch
from torch import Tensor

from bregman import _ckernel
from bregman.regularizers import Regularizer

__all__ = ["available", "step_", "Batch", "Plan", "MIN_GROUP"]

#: Shorter groups (other than n = 1) go through the torch ops: per group the kernel pays a square
#: root, a division and short loops, which for 3×3 or 5×5 kernels costs more than torch's vectorized
#: norm saves (measured on ResNet-18 and the ConvNet); the rows of wide linear layers gain.
MIN_GROUP = 64

_DTYPES = (torch.float32, torch.float64)

_SOURCE = r"""
#include <math.h>
#include <stdint.h>
#include <stddef.h>

/* v + a*g as torch computes it: one fused multiply-add (inlined with -march=native). */
#define FMA_float fmaf
#define FMA_double fma
#define LANES 32
#define ABS_float fabsf
#define ABS_double fabs
/* shrink(x, t): x ∓ t beyond the threshold, as torch computes it; x·0 inside keeps NaN. */
#define SHRINK1(T, x, t) ((x) > (t) ? (x) - (t) : ((x) < -(t) ? (x) + (t) : (x) * 0))

/* Soft shrinkage, element by element (SHRINK1), then δ. With
   fresh set, p holds the prox of the v before this update (the kernel wrote it, and nothing has
   written p since): an entry inside the threshold before and after is zero and stays zero, and is
   neither read nor written, so for a sparse net the pass moves about what SGD's update moves. */
#define SHRINK(T)                                                                              \
static void shrink_##T(T *restrict p, T *restrict v, const T *restrict g, int64_t m, T a, T t,  \
                       double delta, int fresh) {                                              \
    const T d = (T)delta; const int scale = delta != 1.0;                                      \
    if (g && fresh) {                                                                          \
        _Pragma("omp for simd schedule(simd:static) nowait")                                   \
        for (int64_t i = 0; i < m; i++) {                                                      \
            const T x0 = v[i], x = FMA_##T(a, g[i], x0); v[i] = x;                             \
            if (!(ABS_##T(x0) <= t && ABS_##T(x) <= t)) { T y = SHRINK1(T, x, t); p[i] = scale ? y * d : y; } \
        }                                                                                      \
    } else if (g) {                                                                            \
        _Pragma("omp for simd schedule(simd:static) nowait")                                   \
        for (int64_t i = 0; i < m; i++) {                                                      \
            T x = FMA_##T(a, g[i], v[i]); v[i] = x;                                            \
            T y = SHRINK1(T, x, t); p[i] = scale ? y * d : y;                                  \
        }                                                                                      \
    } else {                                                                                   \
        _Pragma("omp for simd schedule(simd:static) nowait")                                   \
        for (int64_t i = 0; i < m; i++) { T y = SHRINK1(T, v[i], t); p[i] = scale ? y * d : y; } \
    }                                                                                          \
}

/* Groups of n >= MIN_GROUP entries. Zero groups of a sparse net stay zero step after step: their
   entries of p are read, not rewritten, so their cache lines are never dirtied. */
#define GROUPS(T)                                                                              \
static void groups_##T(T *restrict p, T *restrict v, const T *restrict g, int64_t m, int64_t n,  \
                       T a, double t, double delta) {                                          \
    _Pragma("omp for schedule(static) nowait")                                                 \
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
                    T x = FMA_##T(a, gi[j + k], vi[j + k]); vi[j + k] = x; acc[k] += (double)x * x; \
                }                                                                              \
            }                                                                                  \
            for (; j < n; j++) { T x = FMA_##T(a, gi[j], vi[j]); vi[j] = x; acc[0] += (double)x * x; } \
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

/* All k tensors in one parallel region: every thread takes its static share of each tensor
   (no barrier between tensors: they are independent). */
#define STEP(T)                                                                                \
SHRINK(T)                                                                                      \
GROUPS(T)                                                                                      \
void bregman_step_##T(int64_t k, T *const *p, T *const *v, const T *const *g, const int64_t *numel, \
                      const int64_t *group, const double *thresh, const uint8_t *fresh,        \
                      double lr, double delta, int64_t total) {                                \
    const T a = (T)(-lr);                                                                      \
    _Pragma("omp parallel if (total > 32768)")                                                 \
    for (int64_t j = 0; j < k; j++) {                                                          \
        const T *gj = g ? g[j] : NULL;                                                         \
        if (group[j] == 1) shrink_##T(p[j], v[j], gj, numel[j], a, (T)thresh[j], delta, fresh && fresh[j]); \
        else groups_##T(p[j], v[j], gj, numel[j] / group[j], group[j], a, thresh[j], delta);   \
    }                                                                                          \
}

STEP(float)
STEP(double)
"""


@functools.lru_cache(maxsize=None)
def _library() -> ctypes.CDLL | None:
    """The compiled kernel library, or None where it cannot be had (no compiler, disabled)."""
    i64, dbl, ptr = ctypes.c_int64, ctypes.c_double, ctypes.c_void_p
    sig = [i64, ptr, ptr, ptr, ptr, ptr, ptr, ptr, dbl, dbl, i64]
    return _ckernel.load("bregman_fused", _SOURCE, {"bregman_step_float": sig, "bregman_step_double": sig},
                         _self_test)


def _kernel(lib: ctypes.CDLL, dtype: torch.dtype):
    return lib.bregman_step_float if dtype is torch.float32 else lib.bregman_step_double


def _arrays(ps: Sequence[Tensor], vs: Sequence[Tensor], groups: Sequence[tuple[int, float]]) -> tuple:
    """The kernel's per-tensor arguments: θ and v pointers, sizes, group lengths, thresholds; and
    the total size (it decides whether the call runs on several threads)."""
    k = len(ps)
    ptrs = ctypes.c_void_p * k
    numel = [p.numel() for p in ps]
    n, t = zip(*groups)
    return (ptrs(*[p.data_ptr() for p in ps]), ptrs(*[v.data_ptr() for v in vs]), (ctypes.c_int64 * k)(*numel),
            (ctypes.c_int64 * k)(*n), (ctypes.c_double * k)(*t)), sum(numel)


def _call(lib: ctypes.CDLL, ps: Sequence[Tensor], vs: Sequence[Tensor], gs: Sequence[Tensor] | None,
          groups: Sequence[tuple[int, float]], lr: float, delta: float, written: dict | None = None) -> None:
    k = len(ps)
    (p_arr, v_arr, numel, n, t), total = _arrays(ps, vs, groups)
    fresh = None
    if gs is not None and written:
        get = written.get
        fresh = (ctypes.c_uint8 * k)(*[get(id(p)) == (p._version, id(v), v._version) for p, v in zip(ps, vs)])
    g_arr = None if gs is None else (ctypes.c_void_p * k)(*[g.data_ptr() for g in gs])
    _kernel(lib, ps[0].dtype)(k, p_arr, v_arr, g_arr, numel, n, t, fresh, float(lr), float(delta), total)


def _self_test(lib: ctypes.CDLL) -> bool:
    """The kernel against the closed form on a small case (guards against a broken build)."""
    f64 = dict(dtype=torch.float64)
    v = torch.tensor([[3.0, 4.0], [0.3, 0.4]], **f64)
    g = torch.tensor([[1.0, 0.0], [0.0, 0.0]], **f64)
    p = torch.full_like(v, 7.0)
    w, h, q = torch.tensor([0.5, -2.0, 0.1], **f64), torch.tensor([1.0, 1.0, 0.0], **f64), torch.zeros(3, **f64)
    _call(lib, [p, q], [v, w], [g, h], [(2, 1.0), (1, 0.25)], lr=-1.0, delta=2.0)
    want_v = torch.tensor([[4.0, 4.0], [0.3, 0.4]], **f64)
    want_p = torch.tensor([[4.0, 4.0], [0.0, 0.0]], **f64) * 2 * (1 - 1 / 32 ** 0.5)
    return bool(torch.allclose(v, want_v) and torch.allclose(p, want_p)
                and w.tolist() == [1.5, -1.0, 0.1] and q.tolist() == [2.5, -1.5, 0.0])


def available() -> bool:
    """Whether the fused kernels can run here (compiled on the first call)."""
    return _library() is not None


def _fits(p: Tensor, v: Tensor, g: Tensor | None, reg: Regularizer, dtype: torch.dtype
          ) -> tuple[int, float] | None:
    """``(n, t)`` of ``reg`` where the kernel can do this tensor in a call for ``dtype``, else None.
    (Called per tensor and step: the common case, three contiguous CPU tensors, tested first.)"""
    if v.dtype is not dtype or p.dtype is not dtype or not v.is_cpu:
        return None
    if v.is_contiguous() and p.is_contiguous() and (g is None or g.is_contiguous()):
        shape = v.shape
        if p.shape != shape or (g is not None and (g.dtype is not dtype or g.shape != shape)):
            return None
    elif any(t.dtype is not dtype or t.shape != v.shape or t.stride() != v.stride()
             for t in ((p,) if g is None else (p, g))):
        return None  # n = 1 walks all three in memory order: one layout for all
    if not (p.is_cpu and (g is None or g.is_cpu)):
        return None
    groups = reg.contiguous_groups(v)
    return None if groups is None or 1 < groups[0] < MIN_GROUP else groups


def _split(params: Sequence[Tensor], duals: Sequence[Tensor], grads: Sequence[Tensor] | None, reg: Regularizer
           ) -> tuple[list[int], list[int], list[tuple[int, float]]]:
    """``(take, rest, groups)``: indices the kernel can do (with their ``(n, t)``) and the others."""
    dtype = duals[0].dtype
    fits = [_fits(p, v, None if grads is None else grads[i], reg, dtype)
            for i, (p, v) in enumerate(zip(params, duals))]
    if None not in fits:  # the usual case: all of them
        return list(range(len(params))), [], fits
    take = [i for i, f in enumerate(fits) if f is not None]
    return take, [i for i, f in enumerate(fits) if f is None], [fits[i] for i in take]


def _run(lib: ctypes.CDLL, ps: list[Tensor], vs: list[Tensor], gs: list[Tensor] | None,
         groups: list[tuple[int, float]], lr: float, delta: float, written: dict | None = None) -> None:
    _call(lib, ps, vs, gs, groups, lr, delta, written)
    # Written behind autograd's back: bump the version counters as in-place torch ops would.
    torch.autograd.graph.increment_version(ps if gs is None else [*ps, *vs])
    if written is not None:
        written.update((id(p), (p._version, id(v), v._version)) for p, v in zip(ps, vs))


def step_(params: Sequence[Tensor], duals: Sequence[Tensor], grads: Sequence[Tensor] | None,
          reg: Regularizer, *, lr: float, delta: float) -> list[int]:
    """``v ← v − lr·g`` (when ``grads`` is given), then ``p ← prox_{δJ}(δv)``, in one pass per
    tensor and one kernel call for all the tensors it can do.

    Returns the indices of the tensors it left untouched (all of them where the kernel is not
    compiled, and those not on the CPU, not of the first tensor's dtype (float32 or float64), not
    in one dense layout with their dual and gradient, or with groups that are not runs of
    :data:`MIN_GROUP` or more entries); the caller does those with torch ops.
    """
    lib = _library() if params and duals[0].dtype in _DTYPES else None
    if lib is None:
        return list(range(len(params)))
    take, rest, groups = _split(params, duals, grads, reg)
    if take:
        pick = (lambda xs: xs) if not rest else (lambda xs: [xs[i] for i in take])
        _run(lib, pick(params), pick(duals), None if grads is None else pick(grads), groups, lr, delta)
    return rest


class Batch:
    """The tensors of several param groups, stepped by one kernel call per ``(lr, δ, dtype)`` at
    :meth:`run` (LinBreg without momentum: one call per step for a whole model).

    :meth:`add` takes what the kernel can do from a group (``v ← v − lr·g``, then the prox) and
    returns the indices of the rest, which the caller steps with torch ops; :meth:`run` steps the
    collected tensors and empties the batch.

    ``written`` (the optimizer's, keyed by ``id(p)``: its parameters outlive it) records
    ``(p._version, id(v), v._version)`` just after the kernel wrote ``θ = prox(δv)``. While all
    three still hold, nothing has written ``θ`` or ``v`` since (in-place torch ops, ``copy_``,
    ``load_state_dict`` and ``nn.init`` move the versions; writes through ``p.data`` do not), so
    the next ℓ1 update skips the entries that stay zero: it neither reads nor writes them.
    """

    def __init__(self, written: dict | None = None) -> None:
        self._calls: dict[tuple[float, float, torch.dtype], list[list]] = {}
        self._written = written
        self.last: dict[tuple[float, float, torch.dtype], list[list]] = {}

    def add(self, params: list[Tensor], duals: list[Tensor], grads: list[Tensor], reg: Regularizer,
            *, lr: float, delta: float) -> list[int]:
        lib = _library() if params and duals[0].dtype in _DTYPES else None
        if lib is None:
            return list(range(len(params)))
        take, rest, groups = _split(params, duals, grads, reg)
        if not take:
            return rest
        if rest:
            params, duals, grads = ([xs[i] for i in take] for xs in (params, duals, grads))
        key = (float(lr), float(delta), duals[0].dtype)
        call = self._calls.get(key)
        if call is None:
            self._calls[key] = [params, duals, grads, groups]
        else:
            for mine, new in zip(call, (params, duals, grads, groups)):
                mine += new  # (the first group's lists are the caller's, built for this step)
        return rest

    def run(self) -> None:
        """Step the collected tensors; :attr:`last` keeps what was stepped (for :class:`Plan`)."""
        if self._calls:
            lib = _library()
            for (lr, delta, _), (ps, vs, gs, ns) in self._calls.items():
                if ps:
                    _run(lib, ps, vs, gs, ns, lr, delta, self._written)
        self.last, self._calls = self._calls, {}


class Plan:
    """LinBreg's last batched step, ready to run again: one kernel call over the same tensors with
    the pointer arrays, sizes and thresholds already built, only the gradients' pointers new.

    :meth:`replay` runs it when nothing it relies on has changed since (the same param groups,
    learning rates, δ, regularizers and optimizer state; every parameter with a contiguous
    gradient; θ and v untouched since the kernel wrote them, by their version counters and data
    pointers), and returns False, doing nothing, otherwise; the optimizer then takes its full path
    (whose first step, after replays, rewrites all of θ: ``Batch``'s record is not kept up to date
    by replays).
    """

    def __init__(self, opt, ps: list[Tensor], vs: list[Tensor], groups: list[tuple[int, float]],
                 lr: float, delta: float) -> None:
        self.k, self.lr, self.delta, self._garr = len(ps), lr, delta, ctypes.c_void_p * len(ps)
        self.ps, self.vs, self.pvs = ps, vs, [*ps, *vs]
        self.states = [opt.state[p] for p in ps]
        self.state, self.groups = opt.state, [(g, g["params"], len(g["params"]), g["lr"], g["delta"], g["reg"])
                                              for g in opt.param_groups]
        self.pptr = [p.data_ptr() for p in ps]
        self.args, self.total = _arrays(ps, vs, groups)
        self.fresh = (ctypes.c_uint8 * self.k)(*[1] * self.k)
        self.pver, self.vver = [p._version for p in ps], [v._version for v in vs]
        self.fn = _kernel(_library(), ps[0].dtype)

    @classmethod
    def of(cls, opt, batch: Batch) -> Plan | None:
        """The plan of the step ``batch`` just ran, or None where it cannot be replayed (more than
        one kernel call, or tensors left to torch ops)."""
        if len(batch.last) != 1:
            return None
        (lr, delta, _), (ps, vs, _, ns) = next(iter(batch.last.items()))
        if len(ps) != sum(len(g["params"]) for g in opt.param_groups) or not all(
                p.is_contiguous() and v.is_contiguous() for p, v in zip(ps, vs)):
            return None
        return cls(opt, ps, vs, ns, lr, delta)

    def replay(self, opt) -> bool:
        if opt.state is not self.state or len(opt.param_groups) != len(self.groups):
            return False
        for group, (g0, params, n, lr, delta, reg) in zip(opt.param_groups, self.groups):
            if (group is not g0 or group["params"] is not params or len(params) != n or group["lr"] != lr
                    or group["delta"] != delta or group["reg"] is not reg or group["momentum"] != 0
                    or not opt._use_foreach(group)):
                return False
        gptr = []
        try:
            for p, v, st, pv, vv, pp in zip(self.ps, self.vs, self.states, self.pver, self.vver, self.pptr):
                g = p.grad
                if (g is None or p._version != pv or v._version != vv or st.get("v") is not v
                        or p.data_ptr() != pp or not g.is_contiguous()):
                    return False
                gptr.append(g.data_ptr())
        except RuntimeError:  # e.g. a sparse gradient: the full path says what is wrong
            return False
        p_arr, v_arr, numel, n, t = self.args
        self.fn(self.k, p_arr, v_arr, self._garr(*gptr), numel, n, t, self.fresh, self.lr, self.delta, self.total)
        torch.autograd.graph.increment_version(self.pvs)
        self.pver = [x + 1 for x in self.pver]
        self.vver = [x + 1 for x in self.vver]
        return True
