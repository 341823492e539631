r"""Convolutions that compute only on their weight's kernel support (exact, for sparse conv nets).

A Bregman-trained conv net keeps most 2-D kernels :math:`W_{o,i}\in\mathbb R^{k\times k}` exactly
zero (Sec. 4.1 starts from 1 % of them). Let :math:`O` be the output channels with a non-zero
kernel and :math:`I` the input channels with one. Then, for :math:`y = W * x + b`,

.. math::
    y_{o} = b_o + \sum_{i\in I} W_{o,i} * x_i \quad (o\in O), \qquad y_o = b_o \quad (o\notin O),

    \frac{\partial L}{\partial x_i} = \sum_{o\in O} W_{o,i} \star \frac{\partial L}{\partial y_o}
    \quad (i\in I), \qquad \frac{\partial L}{\partial x_i} = 0 \quad (i\notin I),

so the forward pass and the input gradient need only the dense sub-convolution
:math:`W_{O,I}` on :math:`x_I`: a fraction :math:`|O|\,|I| / (C_{out} C_{in})` of the work. The
weight gradient :math:`\partial L/\partial W_{o,i} = \sum_{n,p} \partial_{y} L_{n,o,p}\,
x_{n,i,p+\cdot}` stays dense on purpose: LinBreg and AdaBreg accumulate it for the zero kernels
too (the dual variable :math:`v` is how a kernel becomes active), so it is computed in full.

For finite inputs the results equal ``F.conv2d``'s up to the order of floating-point summation
(the dense convolution adds exact zeros); where the input holds inf or NaN, which outputs turn
non-finite may differ (``0·inf`` is formed in other places). Where the support is large (more
than ``max_fraction`` of the kernel pairs) the dense convolution runs unchanged.

``ConvNet(support_conv=True)`` and ``ResNet18(support_conv=True)`` build their convolutions as
:class:`SupportConv2d` (same parameters, names and ``state_dict``); ``bregman train`` asks for it
on CPU (``Config.support_conv``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SupportConv2d", "support_conv2d", "kernel_support", "MAX_FRACTION"]

#: use the sub-convolution only when it has at most this fraction of the kernel pairs (at 48 of 64
#: output channels it still saved ~8 % of the ConvNet conv2 forward + backward; measured)
MAX_FRACTION = 0.75


def kernel_support(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(O, I)``: indices of the output and input channels of ``weight`` (``C_out×C_in×k×k``)
    that have at least one non-zero kernel entry."""
    alive = weight.detach().flatten(2).ne(0).any(2)  # C_out × C_in
    return alive.any(1).nonzero().flatten(), alive.any(0).nonzero().flatten()


def _channels_last(t: torch.Tensor) -> bool:
    """Whether a 4-D tensor is laid out channels-last (also when it has a single channel)."""
    return t.stride(1) == 1 and t.shape[2] * t.shape[3] > 1


def _wants_channels_last(x: torch.Tensor, weight: torch.Tensor) -> bool:
    # as oneDNN's convolution: a channels-last output when the input or the weight is channels-last
    return _channels_last(x) or _channels_last(weight)


def _padded(n: int, limit: int, multiple: int = 16) -> int:
    """``n`` rounded up to a multiple of 16 (oneDNN's channel block: one AVX-512 register of
    float32, two of AVX2), at most ``limit``."""
    return min(limit, -(-n // multiple) * multiple)


def _selection(idx: torch.Tensor, size: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """``size × width`` 0/1 matrix with ``M[idx[j], j] = 1``: ``A @ M`` gathers columns ``idx`` of
    ``A`` (zero columns pad it to ``width``), ``B @ M.T`` scatters them back, both exactly."""
    m = torch.zeros(size, width, dtype=like.dtype, device=like.device)
    m[idx, torch.arange(idx.numel(), device=idx.device)] = 1
    return m


def _rows(t: torch.Tensor) -> torch.Tensor:
    """A channels-last ``N×C×H×W`` tensor as its ``(N·H·W)×C`` matrix (a view)."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])


def _unrows(m: torch.Tensor, n: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`_rows`: a ``(N·H·W)×C`` matrix as a channels-last ``N×C×H×W`` tensor."""
    return m.view(n, h, w, m.shape[1]).permute(0, 3, 1, 2)


class _SupportConv2d(torch.autograd.Function):
    """The sub-convolution ``W[O, I] * x[I]`` (``in_idx=None``: all input channels, no gather),
    with ``n_o × n_i`` channels (padded) and channels-last activations where ``cl``.

    Channels-last activations: channel gathers and scatters are exact 0/1 matmuls on the
    ``(N·H·W)×C`` rows, and the sub-convolution's channels are padded to multiples of 16.
    Contiguous activations: ``index_select`` / ``index_add_`` along the channel dimension."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, out_idx, in_idx, cl, n_o, n_i):
        c_out, c_in = weight.shape[:2]
        fmt = torch.channels_last if cl else torch.contiguous_format
        w_sub = weight.new_zeros((n_o, n_i, *weight.shape[2:]))
        w_rows = weight.detach().index_select(0, out_idx)
        w_sub[:out_idx.numel(), :n_i if in_idx is None else in_idx.numel()] = \
            w_rows if in_idx is None else w_rows.index_select(1, in_idx)
        w_sub = w_sub.contiguous(memory_format=fmt)
        x = x.contiguous(memory_format=fmt)
        gather = scatter = None
        if in_idx is None:
            x_sub = x
        elif cl:
            gather = _selection(in_idx, c_in, n_i, x)
            x_sub = _unrows(_rows(x) @ gather, x.shape[0], x.shape[2], x.shape[3])
        else:
            x_sub = x.index_select(1, in_idx)
        y_sub = F.conv2d(x_sub, w_sub, None, stride, padding, dilation).contiguous(memory_format=fmt)
        n, _, h, w = y_sub.shape
        if cl:
            scatter = _selection(out_idx, c_out, n_o, x).T
            rows = _rows(y_sub)
            y = _unrows(rows @ scatter if bias is None else torch.addmm(bias.detach(), rows, scatter), n, h, w)
        else:
            y = x.new_zeros((n, c_out, h, w)) if bias is None else \
                bias.detach().view(1, c_out, 1, 1).expand(n, c_out, h, w).contiguous()
            y.index_add_(1, out_idx, y_sub)
        ctx.conv = (stride, padding, dilation, None if bias is None else list(bias.shape), fmt)
        ctx.save_for_backward(x, weight, x_sub, w_sub, out_idx, in_idx, gather, scatter)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, x_sub, w_sub, out_idx, in_idx, gather, scatter = ctx.saved_tensors
        stride, padding, dilation, bias_sizes, fmt = ctx.conv
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        dx = dw = db = None
        dy = dy.contiguous(memory_format=fmt)
        if need_w or need_b:  # dense: the optimizer needs the gradient of the zero kernels too
            _, dw, db = torch.ops.aten.convolution_backward(
                dy, x, weight, bias_sizes, stride, padding, dilation, False, [0, 0], 1, [False, need_w, need_b])
        if need_x:
            n, _, h, w = dy.shape
            dy_sub = dy.index_select(1, out_idx) if scatter is None else _unrows(_rows(dy) @ scatter.T, n, h, w)
            dx_sub = torch.ops.aten.convolution_backward(
                dy_sub.contiguous(memory_format=fmt), x_sub, w_sub, None, stride, padding, dilation, False, [0, 0],
                1, [True, False, False])[0]
            if in_idx is None:
                dx = dx_sub
            elif gather is not None:
                dx = _unrows(_rows(dx_sub.contiguous(memory_format=fmt)) @ gather.T, x.shape[0], x.shape[2],
                             x.shape[3])
            else:
                dx = torch.zeros_like(x)
                dx.index_copy_(1, in_idx, dx_sub)
        return dx, dw, db, None, None, None, None, None, None, None, None


def support_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride=1, padding=0,
                   dilation=1, max_fraction: float = MAX_FRACTION) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride, padding, dilation)`` (``groups=1``, integer padding),
    computed on the kernel support of ``weight``; densely when the sub-convolution would have
    more than ``max_fraction`` of the kernel pairs. Differentiable in ``x``, ``weight``, ``bias``.

    The sub-convolution keeps the output channels ``O`` and, when at most half of them are
    active, the input channels ``I`` (below that, gathering them costs more than it saves)."""
    out_idx, in_idx = kernel_support(weight)
    c_out, c_in = weight.shape[:2]
    if x.dim() != 4 or in_idx.numel() == 0:
        return F.conv2d(x, weight, bias, stride, padding, dilation)
    cl = _wants_channels_last(x, weight)
    n_o = _padded(out_idx.numel(), c_out) if cl else out_idx.numel()
    n_i = _padded(in_idx.numel(), c_in) if cl else in_idx.numel()
    if 2 * n_i > c_in:
        in_idx, n_i = None, c_in
    if n_o * n_i > max_fraction * c_out * c_in:
        return F.conv2d(x, weight, bias, stride, padding, dilation)
    pair = nn.modules.utils._pair
    return _SupportConv2d.apply(x, weight, bias, pair(stride), pair(padding), pair(dilation), out_idx, in_idx, cl,
                                n_o, n_i)


class SupportConv2d(nn.Conv2d):
    """``nn.Conv2d`` that runs :func:`support_conv2d`: the forward pass and the input gradient on
    the weight's non-zero kernels only. Same parameters, same ``state_dict``; layers with groups,
    string padding or a non-zero padding mode run the dense convolution."""

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.groups != 1 or self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super()._conv_forward(input, weight, bias)
        return support_conv2d(input, weight, bias, self.stride, self.padding, self.dilation)

