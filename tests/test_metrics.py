"""Sparsity measures on hand-built weights with known counts."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from bregman import init, metrics
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


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_empty_layers_do_not_crash_and_add_nothing():
    m = nn.Sequential(nn.Linear(0, 4), nn.Linear(4, 0), nn.Conv2d(0, 3, 3), nn.Conv1d(2, 2, 3), nn.Linear(3, 2))
    with torch.no_grad():
        m[3].weight.zero_()
        m[4].weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]]))
    rep = metrics.sparsity_report(m)
    assert rep["N_linear"] == 2 / 6 and rep["N_total"] == 2 / (6 + 12)  # empty layers add 0 / 0
    assert rep["N_conv"] == 0 / 4
    assert rep["active_neurons"] == {"0.weight": 0, "1.weight": 0, "4.weight": 2}
    assert rep["layers"]["0.weight"] == 0.0 and rep["layers"]["2.weight"] == 0.0  # no non-zero entry
    assert metrics.n_total(nn.Sequential(nn.Linear(0, 3))) is None  # no entries at all: undefined
    init.sparse_init_(m, 0.5)  # nothing to draw for the empty ones


def test_weights_of_other_kinds_are_counted():
    m = nn.ModuleDict({"emb": nn.Embedding(10, 4), "attn": nn.MultiheadAttention(4, 2), "lstm": nn.LSTM(4, 4)})
    names = {n: k for n, k, _ in metrics.weights(m)}
    assert names == {"emb.weight": "embedding", "attn.in_proj_weight": "attention",
                     "attn.out_proj.weight": "attention", "lstm.weight_ih_l0": "recurrent",
                     "lstm.weight_hh_l0": "recurrent"}
    with torch.no_grad():
        m["emb"].weight.zero_()
    kinds = metrics.n_kinds(m)
    assert kinds["embedding"] == 0.0 and kinds["attention"] == 1.0
    assert metrics.n_total(m) == pytest.approx(1 - 40 / (40 + 48 + 16 + 64 + 64))
    assert metrics.n_linear(m) is None
