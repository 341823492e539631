"""Sparse initialization statistics (PAPER.md §3, §5 item 8)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bregman import init, metrics


def test_density_and_variance_per_entry():
    w = torch.empty(1000, 800)
    init.sparse_(w, 0.05, generator=torch.Generator().manual_seed(0))
    r, n = 0.05, w.numel()
    assert abs(metrics.density(w) - r) < 4 * math.sqrt(r * (1 - r) / n)
    assert w.var().item() == pytest.approx(2 / 800, rel=0.05)  # Var W = α (He)
    assert w[w != 0].var().item() == pytest.approx(2 / 800 / r, rel=0.05)  # Var W̃ = α/r


def test_glorot_variance():
    w = torch.empty(600, 400)
    init.sparse_(w, 0.1, scheme="glorot", generator=torch.Generator().manual_seed(0))
    assert w.var().item() == pytest.approx(2 / 1000, rel=0.06)


def test_row_and_kernel_masks():
    w = torch.empty(2000, 50)
    init.sparse_(w, 0.1, groups="rows", generator=torch.Generator().manual_seed(0))
    rows = (w.abs().amax(1) > 0).double().mean().item()
    assert rows == pytest.approx(0.1, abs=0.03)
    assert metrics.density(w) == pytest.approx(rows, abs=1e-9)  # whole rows kept
    k = torch.empty(64, 64, 5, 5)
    init.sparse_(k, 0.05, groups="kernels", exact=True, generator=torch.Generator().manual_seed(0))
    conv = nn.Conv2d(64, 64, 5)
    conv.weight.data = k
    assert metrics.n_conv(conv) == round(0.05 * 64 * 64) / (64 * 64)


def test_exact_density():
    w = torch.empty(100, 37)
    init.sparse_(w, 0.1, exact=True)
    assert torch.count_nonzero(w).item() == round(0.1 * 100 * 37)


def test_seeded_generator_reproduces():
    a, b = torch.empty(50, 50), torch.empty(50, 50)
    init.sparse_(a, 0.2, generator=torch.Generator().manual_seed(7))
    init.sparse_(b, 0.2, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_model_init_positive_biases_and_untouched_norms():
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.Flatten(), nn.Linear(16 * 4, 10))
    init.sparse_init_(model, 0.1, generator=torch.Generator().manual_seed(0))
    assert (model[0].bias >= 0).all() and (model[3].bias >= 0).all()
    assert (model[3].bias <= 1 / math.sqrt(64)).all()
    assert torch.equal(model[1].weight, torch.ones(16))
    assert metrics.n_linear(model) < 0.3


def test_dense_layers_option():
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.Flatten(), nn.Linear(16, 10))
    init.sparse_init_(model, 0.01, linear="dense")
    assert metrics.density(model[2].weight) == 1.0
