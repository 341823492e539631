"""Each prox solves its minimization problem (property tests), values and registry round trips."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bregman import regularizers
from bregman.regularizers import L1, REGULARIZERS, GroupL12, Null

SHAPES = {"l1": (5, 4), "none": (5, 4), "rows": (5, 4), "columns": (5, 4), "kernels": (3, 2, 3, 3), "filters": (3, 2, 3, 3),
          "heads": (6, 4), "head_inputs": (5, 6)}


def _get(name, lam):
    """The registry's regularizer; the head groupings with head_dim 2 (param_groups sets it per module)."""
    reg = regularizers.get(name, lam)
    return dataclasses.replace(reg, head_dim=2) if name in regularizers.HEAD_BLOCKS else reg


def _objective(reg, x, y, t):
    return 0.5 * ((y - x) ** 2).sum() + t * reg.value(y)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(REGULARIZERS)), lam=st.floats(0.0, 2.0), t=st.floats(0.01, 3.0),
       seed=st.integers(0, 2**31 - 1), scale=st.floats(0.01, 5.0))
def test_prox_minimizes_its_objective(name, lam, t, seed, scale):
    """y = prox_{tJ}(x) satisfies (x − y)/t ∈ ∂J(y) and beats random perturbations."""
    reg = _get(name, lam)
    g = torch.Generator().manual_seed(seed)
    x = scale * torch.randn(SHAPES[name], generator=g, dtype=torch.float64)
    y = reg.prox(x, t)
    f = _objective(reg, x, y, t)
    for _ in range(10):
        d = torch.randn(x.shape, generator=g, dtype=torch.float64)
        for eps in (1e-1, 1e-3):
            assert f <= _objective(reg, x, y + eps * d, t) + 1e-12
    p = (x - y) / t  # optimality: p ∈ ∂J(y)
    if isinstance(reg, L1):
        assert (p.abs() <= lam + 1e-9).all()
        nz = y != 0
        torch.testing.assert_close(p[nz], lam * y[nz].sign(), rtol=0, atol=1e-9)
    elif isinstance(reg, GroupL12):
        dims, sqrt_n = reg._dims(y)
        assert (torch.linalg.vector_norm(reg._view(p), dim=dims) <= lam * sqrt_n + 1e-9).all()


@pytest.mark.parametrize("name", sorted(REGULARIZERS))
def test_in_place_prox_matches_prox(name):
    reg = _get(name, 0.3)
    x = torch.randn(SHAPES[name], dtype=torch.float64)
    expected = reg.prox(x, 0.7)
    torch.testing.assert_close(reg.prox_(x.clone(), 0.7), expected, rtol=0, atol=1e-15)


def test_values():
    x = torch.tensor([[3.0, -4.0], [0.0, 0.0]])
    assert L1(0.5).value(x).item() == pytest.approx(3.5)
    assert GroupL12(0.5, "rows").value(x).item() == pytest.approx(0.5 * math.sqrt(2) * 5)
    assert GroupL12(1.0, "columns").value(x).item() == pytest.approx(math.sqrt(2) * 7)
    assert Null().value(x).item() == 0


def test_value_carries_gradient():
    x = torch.randn(4, 3, requires_grad=True)
    GroupL12(0.1, "rows").value(x).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(REGULARIZERS))
def test_to_dict_round_trip(name):
    reg = _get(name, 0.25)
    assert regularizers.from_dict(reg.to_dict()) == reg


def test_channels_last_weights_are_updated_in_place():
    reg = GroupL12(0.5, "kernels")
    v = torch.randn(8, 4, 3, 3).to(memory_format=torch.channels_last)
    p = torch.empty_like(v)
    reg.dual_prox_(p, v, 1.0)
    torch.testing.assert_close(p, reg.prox(v.contiguous(), 1.0))


def test_head_groups_are_blocks_of_rows_or_columns():
    """in_proj_weight (3E × E, H heads): 3H groups of head_dim rows; out_proj: H groups of columns."""
    e, h = 8, 4
    w = torch.randn(3 * e, e, dtype=torch.float64)
    heads = GroupL12(1.0, "heads", head_dim=e // h)
    norms = torch.linalg.vector_norm(w.reshape(3 * h, -1), dim=1)
    assert heads.value(w).item() == pytest.approx(math.sqrt(2 * e) * norms.sum().item())
    y = heads.prox(w, 0.3)
    for g in range(3 * h):  # each block shrunk as one vector
        block = w[2 * g: 2 * g + 2]
        factor = max(1 - 0.3 * math.sqrt(2 * e) / block.norm().item(), 0.0)
        torch.testing.assert_close(y[2 * g: 2 * g + 2], block * factor)
    p = heads.subgradient(w)  # λ√n_g θ_g/‖θ_g‖ per block: the identity prox_{δJ}(δ(θ/δ + p)) = θ
    torch.testing.assert_close(heads.prox(w + p, 1.0), w)
    cols = GroupL12(1.0, "head_inputs", head_dim=2)
    torch.testing.assert_close(cols.prox(w.t(), 0.3), y.t())  # columns of Wᵀ = rows of W
    with pytest.raises(ValueError, match="head_dim"):
        GroupL12(1.0, "heads").prox(w, 0.1)  # no head_dim: no groups
    with pytest.raises(ValueError, match="blocks of head_dim"):
        GroupL12(1.0, "heads", head_dim=5).check(w.shape, "attn.in_proj_weight")
    with pytest.raises(ValueError, match="Invalid head_dim"):
        GroupL12(1.0, "rows", head_dim=2)


@pytest.mark.parametrize("shape", [(4, 3, 5), (4, 3, 5, 5), (4, 3, 2, 3, 3)], ids=["1d", "2d", "3d"])
def test_kernels_and_filters_of_every_conv_dimension(shape):
    w = torch.randn(shape, dtype=torch.float64)
    kernels = GroupL12(0.5, "kernels").prox(w, 1.0)
    n = math.prod(shape[2:])
    norms = w.flatten(2).norm(dim=2, keepdim=True)
    factor = (1 - 0.5 * math.sqrt(n) / norms).clamp_min(0)
    torch.testing.assert_close(kernels, (w.flatten(2) * factor).reshape(shape))
    assert GroupL12(0.5, "filters").prox(w, 1.0).shape == shape


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_subgradient_of_a_zero_group_is_zero_for_any_lam(dtype):
    """∂J at a zero group is taken as 0, also when λ√n_g / (the smallest normal number) overflows."""
    x = torch.zeros(4, 2304, dtype=dtype)
    x[1, :3] = torch.tensor([3.0, 4.0, 0.0], dtype=dtype)
    p = GroupL12(0.5, "rows").subgradient(x)  # λ√n_g = 24
    assert torch.isfinite(p).all() and not p[[0, 2, 3]].any()
    torch.testing.assert_close(p[1, :2], torch.tensor([0.6, 0.8], dtype=dtype) * 24, rtol=1e-2, atol=0)
    heads = GroupL12(0.5, "heads", head_dim=2).subgradient(x)
    assert torch.isfinite(heads).all() and not heads[2:].any()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape,dims", [((64, 32, 3, 3), (2, 3)), ((2, 15000, 3, 3), (2, 3)), ((1000, 4), (1,)),
                                        ((3, 5, 2, 2, 1), (2, 3, 4))], ids=["kernels", "blocks", "rows", "3d"])
def test_short_groups_norms_equal_torch_norm(monkeypatch, shape, dims, dtype):
    """Groups shorter than a cache line take the squares·1 product (in blocks; 30 000 kernels are two
    blocks); its norms equal torch's, non-finite entries included."""
    calls = []
    short = regularizers._short_row_norms
    monkeypatch.setattr(regularizers, "_short_row_norms", lambda x: calls.append(x.shape) or short(x))
    x = torch.randn(shape, dtype=dtype)
    x.view(-1)[:3] = torch.tensor([math.nan, math.inf, -math.inf], dtype=dtype)
    x.view(-1)[-5:] = 0.0
    n = math.prod(shape[d] for d in dims)
    expected = torch.linalg.vector_norm(x, dim=dims, keepdim=True)
    torch.testing.assert_close(regularizers._group_norms(x, dims), expected, rtol=1e-6, atol=0, equal_nan=True)
    assert calls == ([(x.numel() // n, n)] if n * x.element_size() < 64 else [])


@pytest.mark.parametrize("make", [
    lambda: torch.randn(4, 3, 3, 3).to(memory_format=torch.channels_last),
    lambda: torch.randn(4, 3, 3, 3, requires_grad=True),
    lambda: torch.randn(4, 3, 3, 3, dtype=torch.float16),
    lambda: torch.randn(4, 3, 1, 1),
    lambda: torch.randn(4, 0, 3, 3),
    lambda: torch.randn(4, 3, 3, 3, dtype=torch.complex64),
], ids=["channels_last", "autograd", "float16", "one-entry", "zero-size", "complex"])
def test_other_groups_use_torch_norm(monkeypatch, make):
    monkeypatch.setattr(regularizers, "_short_row_norms", lambda x: pytest.fail("short-row path taken"))
    x = make()
    got = regularizers._group_norms(x, (2, 3))
    assert torch.equal(got, torch.linalg.vector_norm(x, dim=(2, 3), keepdim=True))
    if x.requires_grad:
        got.sum().backward()
        assert x.grad is not None
