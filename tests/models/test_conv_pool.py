"""The fused stem (1-channel conv + 2×2 max-pool) equals the two torch ops, or falls back to them."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bregman.models import ConvNet, ResNet18
from bregman.models import conv_pool as cp
from bregman.models.conv_pool import ConvPool2d, conv_pool2d, fuse_conv_pool_, fusable

needs_kernel = pytest.mark.skipif(cp._library() is None, reason="no C compiler: the kernel cannot be built")


def _grads(f, x, w, b):
    ww = w.clone().requires_grad_()
    bb = None if b is None else b.clone().requires_grad_()
    y = f(x, ww, bb)
    y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(3)))
    return y.detach(), ww.grad, None if bb is None else bb.grad


def _reference(x, w, b):
    return F.max_pool2d(F.conv2d(x, w, b), 2)


@needs_kernel
@pytest.mark.parametrize(("shape", "c", "k"), [((16, 1, 28, 28), 64, 5), ((3, 1, 9, 12), 16, 3), ((2, 1, 8, 8), 32, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_equals_conv_then_pool(shape, c, k, bias):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=g)
    w = torch.randn(c, 1, k, k, generator=g)
    w[c // 2:] = 0  # dead kernels: constant windows, where the first maximum wins
    b = torch.randn(c, generator=g) if bias else None
    assert fusable(x, w, b)
    y0, dw0, db0 = _grads(_reference, x, w, b)
    y1, dw1, db1 = _grads(conv_pool2d, x, w, b)
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dw1, dw0, rtol=1e-4, atol=1e-4)
    assert dw1[c // 2:].abs().sum() > 0  # the dead kernels get their gradient
    if bias:
        torch.testing.assert_close(db1, db0, rtol=1e-4, atol=1e-4)
    assert y1.is_contiguous(memory_format=torch.channels_last)


@needs_kernel
def test_weight_gradient_does_not_depend_on_threads():
    x, w, b = torch.rand(8, 1, 28, 28), torch.randn(64, 1, 5, 5), torch.randn(64)
    threads = torch.get_num_threads()
    try:
        grads = []
        for t in (1, 2):
            torch.set_num_threads(t)
            grads.append(_grads(conv_pool2d, x, w, b)[1])
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(grads[0], grads[1])


@needs_kernel
def test_nan_propagates_as_in_torch():
    x = torch.rand(2, 1, 10, 10)
    x[0, 0, 3, 3] = float("nan")
    w, b = torch.randn(16, 1, 3, 3), torch.randn(16)
    assert torch.equal(conv_pool2d(x, w, b).isnan(), _reference(x, w, b).isnan())


def test_falls_back_where_the_kernel_does_not_apply():
    w, b = torch.randn(16, 1, 3, 3), torch.randn(16)
    x = torch.rand(2, 1, 8, 8)
    cases = [(x.double(), w.double(), b.double()),           # float64
             (x, torch.randn(10, 1, 3, 3), torch.randn(10)),  # channels not a multiple of 16
             (x.clone().requires_grad_(), w, b)]             # the input needs a gradient
    for xx, ww, bb in cases:
        assert not fusable(xx, ww, bb)
        torch.testing.assert_close(conv_pool2d(xx, ww, bb), _reference(xx, ww, bb))
    xg = x.clone().requires_grad_()
    conv_pool2d(xg, w, b).sum().backward()
    assert xg.grad is not None


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("BREGMAN_FUSED", "0")
    cp._library.cache_clear()
    try:
        assert not fusable(torch.rand(2, 1, 8, 8), torch.randn(16, 1, 3, 3), None)
    finally:
        monkeypatch.delenv("BREGMAN_FUSED")
        cp._library.cache_clear()


def test_fuse_conv_pool_on_the_convnet():
    torch.manual_seed(0)
    model = ConvNet()
    x = torch.rand(4, 1, 28, 28)
    before, keys = model(x), list(model.state_dict())
    assert fuse_conv_pool_(model) == 1
    assert type(model.features.conv1) is ConvPool2d and isinstance(model.features.pool1, nn.Identity)
    assert type(model.features.conv2) is nn.Conv2d  # 64 input channels: not a stem
    assert list(model.state_dict()) == keys
    torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-5)
    assert fuse_conv_pool_(model) == 0


def test_fuse_conv_pool_leaves_other_models_alone():
    model = ResNet18()  # 3-channel stem, no max-pool after it
    assert fuse_conv_pool_(model) == 0
    seq = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.MaxPool2d(2))  # padded: not fused
    assert fuse_conv_pool_(seq) == 0
