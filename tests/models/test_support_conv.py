"""Support convolutions equal ``F.conv2d`` (values and all three gradients) on sparse weights."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bregman.models.support_conv import SupportConv2d, kernel_support, support_conv2d

CL = torch.channels_last


def _sparse_weight(c_out, c_in, k, active, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.zeros(c_out, c_in, k, k, dtype=torch.float64)
    idx = torch.randperm(c_out * c_in, generator=g)[:active]
    w.view(c_out * c_in, k * k)[idx] = torch.randn(active, k * k, generator=g, dtype=torch.float64)
    return w


def _both(x, w, b, **conv):
    """(output, dx, dw, db) of F.conv2d and of support_conv2d for the same upstream gradient."""
    out = []
    for f in (F.conv2d, support_conv2d):
        xx, ww = x.clone().requires_grad_(), w.clone().requires_grad_()
        bb = None if b is None else b.clone().requires_grad_()
        y = f(xx, ww, bb, **conv)
        g = torch.randn(y.shape, generator=torch.Generator().manual_seed(9), dtype=y.dtype)
        y.backward(g)
        out.append((y.detach(), xx.grad, ww.grad, None if bb is None else bb.grad, y))
    return out


@pytest.mark.parametrize("fmt", [CL, torch.contiguous_format])
@pytest.mark.parametrize(("c_out", "c_in", "k", "active", "conv"), [
    (64, 64, 5, 40, {}),                                    # the ConvNet's conv2 at its 1 % start
    (32, 48, 3, 6, {"stride": 2, "padding": 1}),            # a ResNet-18 downsampling conv
    (64, 64, 3, 3, {"padding": 1}),                         # few input channels: they are gathered
    (32, 16, 3, 6, {"padding": (1, 0), "dilation": 2}),
])
@pytest.mark.parametrize("bias", [True, False])
def test_equals_conv2d(fmt, c_out, c_in, k, active, conv, bias):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, c_in, 11, 11, generator=g, dtype=torch.float64).contiguous(memory_format=fmt)
    w = _sparse_weight(c_out, c_in, k, active)
    b = torch.randn(c_out, generator=g, dtype=torch.float64) if bias else None
    (y0, dx0, dw0, db0, _), (y1, dx1, dw1, db1, raw) = _both(x, w, b, **conv)
    assert raw.grad_fn is not None and "SupportConv2d" in type(raw.grad_fn).__name__  # the sparse path ran
    torch.testing.assert_close(y1, y0)
    torch.testing.assert_close(dx1, dx0)
    torch.testing.assert_close(dw1, dw0)  # dense: the zero kernels get their gradient too
    assert dw1.abs().sum((2, 3)).ne(0).sum() > active
    if bias:
        torch.testing.assert_close(db1, db0)
    assert y1.is_contiguous(memory_format=fmt)


def test_dense_and_empty_weights_run_the_dense_convolution():
    x = torch.randn(2, 8, 6, 6)
    for w in (torch.randn(8, 8, 3, 3), torch.zeros(8, 8, 3, 3)):
        y = support_conv2d(x, w.requires_grad_())
        assert "SupportConv2d" not in type(y.grad_fn).__name__
        torch.testing.assert_close(y, F.conv2d(x, w))


def test_kernel_support():
    w = torch.zeros(4, 3, 2, 2)
    w[1, 2, 0, 1] = 1.0
    w[3, 0, 1, 1] = -2.0
    out_idx, in_idx = kernel_support(w)
    assert out_idx.tolist() == [1, 3] and in_idx.tolist() == [0, 2]


def test_float32_channels_last_matches_to_rounding():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(8, 64, 12, 12, generator=g).contiguous(memory_format=CL)
    w = _sparse_weight(64, 64, 5, 44).float()
    (y0, dx0, dw0, _, _), (y1, dx1, dw1, _, _) = _both(x, w, None)
    for a, b in ((y1, y0), (dx1, dx0), (dw1, dw0)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_inference_mode():
    x = torch.randn(2, 64, 8, 8)
    w = _sparse_weight(64, 64, 3, 10).float()
    with torch.inference_mode():
        torch.testing.assert_close(support_conv2d(x, w, padding=1), F.conv2d(x, w, padding=1))


@pytest.mark.parametrize(("c_in", "c_out", "k", "active", "conv"), [
    (64, 64, 5, 40, {}),                                          # the ConvNet's conv2
    (1, 64, 5, 3, {}),                                            # the ConvNet's conv1 (a stem)
    (64, 128, 1, 50, {"stride": 2, "bias": False}),               # a ResNet-18 shortcut
    (128, 128, 3, 90, {"padding": 1, "bias": False}),             # a ResNet-18 layer2 conv
])
@pytest.mark.parametrize("fmt", [CL, torch.contiguous_format])
def test_module_equals_conv2d(c_in, c_out, k, active, conv, fmt):
    """The module on random sparse weights: forward, input gradient, weight (and bias) gradient."""
    torch.manual_seed(0)
    plain = nn.Conv2d(c_in, c_out, k, **conv)
    fast = SupportConv2d(c_in, c_out, k, **conv)
    with torch.no_grad():
        plain.weight.copy_(_sparse_weight(c_out, c_in, k, active, seed=3).float())
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(8, c_in, 12, 12).contiguous(memory_format=fmt)
    outs = []
    for m in (plain, fast):
        xx = x.clone().requires_grad_()
        y = m(xx)
        y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(4)))
        outs.append((y.detach(), xx.grad, m.weight.grad, m.bias.grad if m.bias is not None else None, y))
    (y0, dx0, dw0, db0, _), (y1, dx1, dw1, db1, raw) = outs
    assert "SupportConv2d" in type(raw.grad_fn).__name__  # the sub-convolution ran, not the dense fallback
    for a, b in ((y1, y0), (dx1, dx0), (dw1, dw0), (db1, db0)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
