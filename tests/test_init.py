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


@pytest.mark.parametrize("scale", [0, 0.0, -1.0, float("nan"), float("inf")])
def test_weight_scale_zero_or_not_finite_is_refused(scale):
    model = nn.Sequential(nn.Linear(4, 3))
    before = model[0].weight.detach().clone()
    with pytest.raises(ValueError, match=r"Invalid weight_scale: .* \(must be a finite number > 0, or None for 1/√r\)"):
        init.sparse_init_(model, 0.5, weight_scale=scale)
    assert torch.equal(model[0].weight, before)  # refused before anything is drawn
    with pytest.raises(ValueError, match="Invalid scale"):
        init.sparse_(torch.empty(3, 4), 0.5, scale=scale)


def test_transposed_convs_are_initialized_and_counted():
    model = nn.Sequential(nn.ConvTranspose2d(16, 32, 3), nn.ConvTranspose1d(8, 16, 5), nn.ConvTranspose3d(4, 8, 2))
    for m in model:
        nn.init.ones_(m.weight)
    init.sparse_init_(model, 0.25, exact=True, generator=torch.Generator().manual_seed(0))
    for m in model:  # whole kernels kept: exactly round(r · kernels) of them, each filled
        kernels = m.weight.flatten(2).ne(0).any(2)
        assert int(kernels.sum()) == round(0.25 * kernels.numel())
        assert torch.equal(m.weight.flatten(2).ne(0).all(2), kernels)
        assert (m.bias >= 0).all()
    n = sum(m.weight.shape[0] * m.weight.shape[1] for m in model)
    assert metrics.n_conv(model) == sum(round(0.25 * m.weight.shape[0] * m.weight.shape[1]) for m in model) / n


def test_every_kind_takes_its_own_mask_unit():
    model = nn.ModuleDict({"emb": nn.Embedding(100, 8), "attn": nn.MultiheadAttention(16, 2),
                           "rnn": nn.GRU(4, 6), "fc": nn.Linear(16, 50)})
    emb_before = model["emb"].weight.detach().clone()
    init.sparse_init_(model, 0.5, linear="rows", recurrent="dense", generator=torch.Generator().manual_seed(0))
    assert torch.equal(model["emb"].weight, emb_before)  # embeddings: kept unless asked
    w = model["attn"].in_proj_weight  # attention follows linear: whole rows
    assert torch.equal(w.ne(0).any(1), w.ne(0).all(1)) and 0 < int(w.ne(0).any(1).sum()) < 48
    assert metrics.density(model["rnn"].weight_ih_l0) == 1.0 and metrics.density(model["rnn"].weight_hh_l0) == 1.0
    init.sparse_init_(model, 0.5, embedding="rows", generator=torch.Generator().manual_seed(0))
    e = model["emb"].weight
    assert torch.equal(e.ne(0).any(1), e.ne(0).all(1)) and 0 < int(e.ne(0).any(1).sum()) < 100
    with pytest.raises(ValueError, match="Invalid embedding init 'sparse'"):
        init.sparse_init_(model, 0.5, embedding="sparse")
