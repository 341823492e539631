"""Sparsity measures on hand-built weights with known counts."""
from __future__ import annotations

import torch
from torch import nn

from bregman import metrics
from bregman.params import param_groups
from bregman.regularizers import L1, GroupL12, Null


def _model():
    m = nn.Sequential(nn.Conv2d(2, 3, 2), nn.Flatten(), nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 2))
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        m[0].weight[0, 0, 0, 0] = 1.0  # one non-zero kernel of 6, one entry of 24
        m[0].weight[1, 1] = 2.0  # a second kernel, 4 entries
        m[2].weight[1, :] = 1.0  # 4 entries in one row
        m[4].weight[0, 0] = -3.0
        m[3].weight.fill_(1.0)  # normalization: never counted
    return m


def test_measures():
    m = _model()
    assert metrics.n_conv(m) == 2 / 6
    assert metrics.n_linear(m) == 5 / (20 + 10)
    assert metrics.n_total(m) == (5 + 5) / (24 + 30)
    assert metrics.active_neurons(m) == {"2.weight": 1, "4.weight": 1}
    assert metrics.l1_norm(m) == 1 + 8 + 4 + 3
    assert metrics.density(m[2].weight) == 4 / 20
    assert metrics.sparsity(m[2].weight) == 1 - 4 / 20
    rep = metrics.sparsity_report(m)
    assert set(rep) == {"N_total", "N_linear", "N_conv", "l1_norm", "active_neurons", "layers"}
    assert rep["layers"]["0.weight"] == 5 / 24


def test_no_conv_layers_gives_none():
    assert metrics.n_conv(nn.Linear(3, 3)) is None


def test_param_groups_cover_every_parameter_once():
    m = _model()
    groups = param_groups(m, linear=L1(0.1), conv=GroupL12(0.1, "kernels"))
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in m.parameters()) and len(ids) == len(set(ids))
    by = {g["name"]: g for g in groups}
    assert by["linear"]["reg"] == L1(0.1) and by["conv"]["reg"] == GroupL12(0.1, "kernels")
    assert by["other"]["reg"] == Null()
    assert by["linear"]["param_names"] == ["2.weight", "4.weight"]
    assert "3.weight" in by["other"]["param_names"] and "0.bias" in by["other"]["param_names"]
