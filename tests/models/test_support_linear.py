"""Support linear layers equal ``F.linear`` (values and all three gradients) on row-sparse weights."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bregman.models.support_linear import MAX_FRACTION, SupportLinear, support_linear


def _row_sparse(out_features: int, in_features: int, rows: int, dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.zeros(out_features, in_features, dtype=dtype)
    idx = torch.randperm(out_features, generator=g)[:rows]
    w[idx] = torch.randn(rows, in_features, generator=g, dtype=dtype)
    return w


def _both(x, w, b):
    """(output, dx, dw, db, raw output) of F.linear and of support_linear for one upstream gradient."""
    out = []
    for f in (F.linear, support_linear):
        xx, ww = x.clone().requires_grad_(), w.clone().requires_grad_()
        bb = None if b is None else b.clone().requires_grad_()
        y = f(xx, ww, bb)
        y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(9), dtype=y.dtype))
        out.append((y.detach(), xx.grad, ww.grad, None if bb is None else bb.grad, y))
    return out


@pytest.mark.parametrize(("out_features", "in_features", "rows"), [(784, 784, 8), (200, 784, 40), (10, 80, 1)])
@pytest.mark.parametrize("bias", [True, False])
def test_equals_linear(out_features, in_features, rows, bias):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, in_features, generator=g, dtype=torch.float64)
    w = _row_sparse(out_features, in_features, rows)
    b = torch.randn(out_features, generator=g, dtype=torch.float64) if bias else None
    (y0, dx0, dw0, db0, _), (y1, dx1, dw1, db1, raw) = _both(x, w, b)
    assert "SupportLinear" in type(raw.grad_fn).__name__  # the row subset ran, not the dense fallback
    torch.testing.assert_close(y1, y0)
    torch.testing.assert_close(dx1, dx0)
    torch.testing.assert_close(dw1, dw0)  # dense: the zero rows get their gradient too
    assert dw1.ne(0).any(1).sum() > rows
    if bias:
        torch.testing.assert_close(db1, db0)


def test_module_float32_equals_nn_linear():
    torch.manual_seed(0)
    plain, fast = nn.Linear(784, 784), SupportLinear(784, 784)
    with torch.no_grad():
        plain.weight.copy_(_row_sparse(784, 784, 8, torch.float32, seed=2))
    fast.load_state_dict(plain.state_dict())
    x = torch.rand(128, 784)
    outs = []
    for m in (plain, fast):
        xx = x.clone().requires_grad_()
        y = m(xx)
        y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(3)))
        outs.append((y.detach(), xx.grad, m.weight.grad, m.bias.grad))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_dense_zero_and_batched_inputs_run_the_dense_linear():
    x = torch.randn(4, 16)
    many = _row_sparse(16, 16, int(MAX_FRACTION * 16) + 1, torch.float32)
    for w in (torch.randn(16, 16), many):
        y = support_linear(x, w.requires_grad_())
        assert "SupportLinear" not in type(y.grad_fn).__name__
        torch.testing.assert_close(y, F.linear(x, w))
    w = _row_sparse(16, 16, 2, torch.float32)
    torch.testing.assert_close(support_linear(x.view(2, 2, 16), w), F.linear(x.view(2, 2, 16), w))
    zero = support_linear(x, torch.zeros(16, 16), torch.ones(16))  # no row: the bias alone
    torch.testing.assert_close(zero, torch.ones(4, 16))


def test_nan_weight_row_spreads_as_in_linear():
    w = _row_sparse(16, 8, 2, torch.float32)
    w[5, 3] = float("nan")
    x = torch.randn(3, 8)
    assert torch.equal(support_linear(x, w).isnan(), F.linear(x, w).isnan())


def test_inference_mode():
    x, w = torch.randn(8, 64), _row_sparse(64, 64, 4, torch.float32)
    with torch.inference_mode():
        torch.testing.assert_close(support_linear(x, w), F.linear(x, w))


def test_rows_whose_squares_underflow_still_count():
    w = _row_sparse(16, 8, 2, torch.float32)
    w[7] = 1e-30  # its 2-norm underflows to 0 in float32; the row is not zero
    x, b = torch.full((3, 8), 1e10), torch.zeros(16)
    y = support_linear(x, w.requires_grad_(), b)
    assert "SupportLinear" in type(y.grad_fn).__name__
    torch.testing.assert_close(y, F.linear(x, w, b))
    assert (y[:, 7] != 0).all()
