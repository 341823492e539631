r"""The stem of a 1-channel conv net, convolution and 2×2 max-pooling fused into one CPU kernel.

For an input :math:`x\in\mathbb R^{N\times 1\times H\times W}`, a ``C×1×k×k`` weight :math:`W` and
bias :math:`b`,

.. math::
    P_{n,o,q} = \max_{s\in\{0,1,2,3\}} \Big(b_o + \sum_{t} W_{o,t}\, x_{n,\,2q + s + t}\Big),
    \qquad
    \frac{\partial L}{\partial W_{o,t}} = \sum_{n,q} \frac{\partial L}{\partial P_{n,o,q}}\,
    x_{n,\,2q + s^*_{n,o,q} + t},

with :math:`s^*` the window slot of the maximum (the first on ties, as ``F.max_pool2d``). torch
computes this as a convolution whose ``N×C×(H−k+1)×(W−k+1)`` output (19 MB for the paper's
ConvNet at batch 128) is written, pooled, then, in the backward pass, zero-filled, scattered into
and convolved again: a 1-input-channel convolution, for which oneDNN reaches a fraction of the
machine's speed. The kernel keeps the four window slots in registers, writes only the pooled
map (channels-last) and a byte per output for :math:`s^*`, and computes the weight gradient from
those (a quarter of the convolution's work). No input gradient: it runs only where the input needs
none (the data). Results equal the torch ops' up to rounding (the weight gradient is summed per
sample in float, over samples in double, in a fixed order).

:func:`fuse_conv_pool_` puts it into a model (``Config.fuse_conv_pool``); :func:`conv_pool2d`
falls back to ``F.max_pool2d(F.conv2d(...), 2)`` wherever the kernel does not apply.
"""
from __future__ import annotations

import ctypes
import functools

import torch
import torch.nn.functional as F
from torch import nn

from bregman import _ckernel

__all__ = ["conv_pool2d", "ConvPool2d", "fuse_conv_pool_", "fusable"]

_SOURCE = r"""
#include <math.h>
#include <stdint.h>
#include <stddef.h>

/* conv (1 input channel, k x k, stride 1, no padding) + bias, then 2x2 max-pool (stride 2).
   x: N x H x W;  wt: k*k x C (the weight transposed);  b: C;
   out: N x PH x PW x C (channels-last);  arg: the same shape, uint8 window slot 0..3 of the max
   (row-major in the window; the first one on ties and NaN wins, as torch's max_pool2d). */
#define CB 16
void stem_fwd_f32(const float *restrict x, const float *restrict wt, const float *restrict b,
                  float *restrict out, uint8_t *restrict arg,
                  int64_t N, int64_t H, int64_t W, int64_t C, int64_t k, int64_t PH, int64_t PW) {
    /* C is a multiple of CB (the caller pads); 2 pooled positions x 4 window slots x CB channels
       are accumulated at once: 8 independent FMA chains per channel block. */
    #pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < N; n++) {
      for (int64_t qy = 0; qy < PH; qy++) {
        const float *xn = x + n * H * W;
        for (int64_t cb = 0; cb < C; cb += CB) {
          for (int64_t qx = 0; qx < PW; qx += 2) {
            const int two = (qx + 1 < PW) ? 2 : 1;
            float acc[8][CB];
            for (int j = 0; j < 8; j++)
                for (int o = 0; o < CB; o++) acc[j][o] = b[cb + o];
            for (int64_t ky = 0; ky < k; ky++) {
              for (int64_t kx = 0; kx < k; kx++) {
                const float *w = wt + (ky * k + kx) * C + cb;
                const float *r = xn + (2 * qy + ky) * W + 2 * qx + kx;
                float xv[8];
                for (int p = 0; p < 2; p++) {
                  xv[4 * p + 0] = r[2 * p]; xv[4 * p + 1] = r[2 * p + 1];
                  xv[4 * p + 2] = r[2 * p + W]; xv[4 * p + 3] = r[2 * p + W + 1];
                }
                for (int j = 0; j < 8; j++) {
                  #pragma omp simd
                  for (int o = 0; o < CB; o++) acc[j][o] += w[o] * xv[j];
                }
              }
            }
            for (int p = 0; p < two; p++) {
              float *po = out + ((n * PH + qy) * PW + qx + p) * C + cb;
              uint8_t *pa = arg + ((n * PH + qy) * PW + qx + p) * C + cb;
              #pragma omp simd
              for (int o = 0; o < CB; o++) {
                float m = acc[4 * p][o]; uint8_t i = 0;
                for (int s = 1; s < 4; s++) {
                  float v = acc[4 * p + s][o];
                  if (v > m || (v != v && m == m)) { m = v; i = (uint8_t)s; }
                }
                po[o] = m; pa[o] = i;
              }
            }
          }
        }
      }
    }
}

/* Per sample n: part[n][t*C + o] = sum_q dout[n,q,o] * x[n, pos(q, arg[n,q,o]) + t] (t < k*k) and
   part[n][k*k*C + o] = sum_q dout[n,q,o], in float; then out[j] = sum_n part[n][j] in double, in
   the order of n: the result does not depend on the number of threads. */
void stem_bwd_f32(const float *restrict x, const float *restrict dout, const uint8_t *restrict arg,
                  float *restrict part, double *restrict out,
                  int64_t N, int64_t H, int64_t W, int64_t C, int64_t k, int64_t PH, int64_t PW) {
    const int64_t T = k * k, M = T * C + C;
    #pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const float *xn = x + n * H * W;
        float *pw = part + n * M;
        float g[4][C];
        for (int64_t j = 0; j < M; j++) pw[j] = 0.0f;
        for (int64_t qy = 0; qy < PH; qy++) {
            for (int64_t qx = 0; qx < PW; qx++) {
                const float *d = dout + ((n * PH + qy) * PW + qx) * C;
                const uint8_t *a = arg + ((n * PH + qy) * PW + qx) * C;
                #pragma omp simd
                for (int64_t o = 0; o < C; o++) {
                    g[0][o] = a[o] == 0 ? d[o] : 0.0f; g[1][o] = a[o] == 1 ? d[o] : 0.0f;
                    g[2][o] = a[o] == 2 ? d[o] : 0.0f; g[3][o] = a[o] == 3 ? d[o] : 0.0f;
                    pw[T * C + o] += d[o];
                }
                const float *x0 = xn + (2 * qy) * W + 2 * qx;
                for (int64_t ky = 0; ky < k; ky++) {
                    for (int64_t kx = 0; kx < k; kx++) {
                        const float *r = x0 + ky * W + kx;
                        const float v0 = r[0], v1 = r[1], v2 = r[W], v3 = r[W + 1];
                        float *acc = pw + (ky * k + kx) * C;
                        #pragma omp simd
                        for (int64_t o = 0; o < C; o++)
                            acc[o] += g[0][o] * v0 + g[1][o] * v1 + g[2][o] * v2 + g[3][o] * v3;
                    }
                }
            }
        }
    }
    for (int64_t j = 0; j < M; j++) out[j] = 0.0;
    for (int64_t n = 0; n < N; n++) {
        const float *pw = part + n * M;
        #pragma omp simd
        for (int64_t j = 0; j < M; j++) out[j] += (double)pw[j];
    }
}
"""

#: the kernel blocks output channels by 16 (one AVX-512 register of float32)
CHANNEL_BLOCK = 16


@functools.lru_cache(maxsize=None)
def _library() -> ctypes.CDLL | None:
    ptr, i64 = ctypes.c_void_p, ctypes.c_int64
    sig = [ptr] * 5 + [i64] * 7
    return _ckernel.load("bregman_conv_pool", _SOURCE, {"stem_fwd_f32": sig, "stem_bwd_f32": sig}, _self_test)


def _self_test(lib: ctypes.CDLL) -> bool:
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(2, 1, 7, 8, generator=g), torch.randn(16, 1, 3, 3, generator=g), torch.randn(16, generator=g)
    try:
        out, arg = _forward(lib, x, w, b)
        want = F.max_pool2d(F.conv2d(x, w, b), 2)
        return bool(torch.allclose(out, want, atol=1e-5) and arg.max() <= 3)
    except RuntimeError:
        return False


def fusable(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Whether the fused kernel computes ``max_pool2d(conv2d(x, weight, bias), 2)`` here: CPU,
    float32, one input channel, a square kernel, output channels a multiple of 16, an input that
    needs no gradient, and a compiled kernel."""
    return (x.device.type == "cpu" and x.dtype == weight.dtype == torch.float32 and x.dim() == 4
            and x.shape[1] == 1 and weight.dim() == 4 and weight.shape[1] == 1 and weight.shape[2] == weight.shape[3]
            and weight.shape[0] % CHANNEL_BLOCK == 0 and min(x.shape[2], x.shape[3]) >= weight.shape[2] + 1
            and not x.requires_grad and (bias is None or bias.dtype == torch.float32)
            and _library() is not None)


def _forward(lib, x, weight, bias):
    n, _, h, w = x.shape
    c, k = weight.shape[0], weight.shape[2]
    ph, pw = (h - k + 1) // 2, (w - k + 1) // 2
    x = x.detach().contiguous()
    wt = weight.detach().reshape(c, k * k).t().contiguous()
    b = torch.zeros(c) if bias is None else bias.detach().contiguous()
    out = torch.empty(n, ph, pw, c)
    arg = torch.empty(n, ph, pw, c, dtype=torch.uint8)
    lib.stem_fwd_f32(x.data_ptr(), wt.data_ptr(), b.data_ptr(), out.data_ptr(), arg.data_ptr(), n, h, w, c, k, ph, pw)
    return out.permute(0, 3, 1, 2), arg  # N×C×PH×PW, channels-last


class _ConvPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        out, arg = _forward(_library(), x, weight, bias)
        ctx.save_for_backward(x, weight, arg)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, dout):
        x, weight, arg = ctx.saved_tensors
        n, _, h, w = x.shape
        c, k = weight.shape[0], weight.shape[2]
        ph, pw = arg.shape[1], arg.shape[2]
        d = dout.permute(0, 2, 3, 1).contiguous()  # N×PH×PW×C (a view when channels-last)
        part = torch.empty(n, (k * k + 1) * c)
        total = torch.empty((k * k + 1) * c, dtype=torch.float64)
        _library().stem_bwd_f32(x.contiguous().data_ptr(), d.data_ptr(), arg.data_ptr(), part.data_ptr(),
                                total.data_ptr(), n, h, w, c, k, ph, pw)
        total = total.to(weight.dtype)
        dw = torch.empty_like(weight)
        dw.copy_(total[:k * k * c].view(k * k, c).t().reshape(c, 1, k, k))
        db = total[k * k * c:] if ctx.has_bias else None
        return None, dw, db


def conv_pool2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.max_pool2d(F.conv2d(x, weight, bias), 2)`` (stride 1, no padding); one fused CPU
    kernel where :func:`fusable`, the two torch ops otherwise."""
    if fusable(x, weight, bias):
        return _ConvPool.apply(x, weight, bias)
    return F.max_pool2d(F.conv2d(x, weight, bias), 2)


class ConvPool2d(nn.Conv2d):
    """An ``nn.Conv2d`` (1 input channel, stride 1, no padding) that also applies the 2×2
    max-pool that followed it (:func:`conv_pool2d`). Same parameters and ``state_dict``."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return conv_pool2d(input, self.weight, self.bias)


def _stem_conv(m: nn.Module) -> bool:
    return (type(m) is nn.Conv2d and m.in_channels == 1 and m.groups == 1 and tuple(m.stride) == (1, 1)
            and tuple(m.dilation) == (1, 1) and m.padding in ((0, 0), 0) and m.padding_mode == "zeros"
            and m.kernel_size[0] == m.kernel_size[1])


def _pool2(m: nn.Module) -> bool:
    pair = nn.modules.utils._pair
    return (type(m) is nn.MaxPool2d and pair(m.kernel_size) == (2, 2) and pair(m.stride or m.kernel_size) == (2, 2)
            and pair(m.padding) == (0, 0) and pair(m.dilation) == (1, 1) and not m.ceil_mode
            and not m.return_indices)


def fuse_conv_pool_(model: nn.Module) -> int:
    """In every ``nn.Sequential`` of ``model``, fuse a 1-input-channel ``nn.Conv2d`` directly
    followed by ``nn.MaxPool2d(2)``: the convolution becomes a :class:`ConvPool2d`, the pool an
    ``nn.Identity`` (it has no parameters, so the ``state_dict`` is unchanged). In place; returns
    how many pairs were fused."""
    n = 0
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            if _stem_conv(seq._modules[a]) and _pool2(seq._modules[b]):
                seq._modules[a].__class__ = ConvPool2d
                seq._modules[b] = nn.Identity()
                n += 1
    return n
