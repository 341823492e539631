"""One classification of parameters: every weight of the usual torch layers is classified,
regularized as its kind says, counted by the metrics and masked by the sparse init (issue 16)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bregman import LinBreg, init, metrics, params
from bregman.models import MODELS, create_model
from bregman.params import classify, describe, param_groups
from bregman.regularizers import L1, GroupL12, Null


class TinyTransformer(nn.Module):
    """Embedding → TransformerEncoder(2 layers, d = 32, 4 heads) → Linear: the issue's example."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 32)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), 2,
                                             enable_nested_tensor=False)
        self.out = nn.Linear(32, 50)

    def forward(self, x):
        return self.out(self.encoder(self.embed(x)))


class LSTMLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(40, 16)
        self.lstm = nn.LSTM(16, 24, num_layers=2, bidirectional=True, batch_first=True)
        self.gru = nn.GRUCell(48, 8)
        self.out = nn.Linear(8, 40)

    def forward(self, x):
        h, _ = self.lstm(self.embed(x))
        return self.out(self.gru(h[:, -1]))


def _conv1d():
    return nn.Sequential(nn.Conv1d(1, 8, 9, stride=2), nn.BatchNorm1d(8), nn.ReLU(), nn.Conv1d(8, 16, 5),
                         nn.ConvTranspose1d(16, 8, 4), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, 3))


def _conv3d():
    return nn.Sequential(nn.Conv3d(2, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.ReLU(), nn.Conv3d(8, 8, 3, groups=2),
                         nn.ConvTranspose3d(8, 4, 2, stride=2))


def _transformer():
    return nn.Transformer(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=32,
                          batch_first=True)


def _mha_separate_qkv():
    return nn.ModuleDict({"attn": nn.MultiheadAttention(16, 4, kdim=8, vdim=12, bias=False), "proj": nn.Linear(16, 4)})


MODELS_UNDER_TEST = {
    "tiny-transformer": TinyTransformer,
    "nn.Transformer": _transformer,
    "lstm-lm": LSTMLM,
    "conv1d": _conv1d,
    "conv3d": _conv3d,
    "mha-kdim-vdim": _mha_separate_qkv,
    **{f"paper-{name}": (lambda name=name: create_model(name)) for name in MODELS},
}

#: one regularizer per kind, each of a grouping that fits the kind
REGS = {"linear": GroupL12(0.1, "rows"), "conv": GroupL12(0.1, "kernels"), "attention": GroupL12(0.2, "heads"),
        "recurrent": L1(0.3), "embedding": GroupL12(0.4, "rows")}


@pytest.mark.parametrize("name", list(MODELS_UNDER_TEST))
def test_every_weight_is_classified_regularized_counted_and_initialized(name):
    torch.manual_seed(0)
    model = MODELS_UNDER_TEST[name]()
    infos = {i.name: i for i in classify(model)}
    named = dict(model.named_parameters())
    assert set(infos) == set(named)  # every parameter, once
    big = {n for n, p in named.items() if p.dim() >= 2 and "bias" not in n.rsplit(".", 1)[-1]}
    assert {n for n, i in infos.items() if i.kind in params.WEIGHT_KINDS} == big
    assert not [n for n, i in infos.items() if i.kind == "unknown"]  # standard layers only
    assert {i.kind for i in infos.values()} <= set(params.KINDS)
    # attention projections are attention, Linear weights elsewhere linear
    for n in big:
        owner = n.rsplit(".", 1)[0]
        if "self_attn" in owner or "multihead_attn" in owner or owner.startswith("attn"):
            assert infos[n].kind == "attention", n

    # regularized as the kind says
    groups = param_groups(model, **REGS)
    regs = {n: g["reg"] for g in groups for n in g["param_names"]}
    assert set(regs) == set(named)
    for n, info in infos.items():
        want = REGS.get(info.kind, Null())
        got = regs[n]
        if info.kind == "attention":
            assert got.lam == want.lam and got.head_dim == info.head_dim
            assert got.groups == ("heads" if info.head_axis == 0 else "head_inputs")
        else:
            assert got == want, n

    # counted by the metrics: N_total is over exactly these entries
    counted = {n for n, _, _ in metrics.weights(model)}
    assert counted == big
    init.sparse_init_(model, 0.1, embedding="entries", generator=torch.Generator().manual_seed(1))
    total = sum(named[n].numel() for n in big)
    nonzero = sum(int(torch.count_nonzero(named[n])) for n in big)
    assert metrics.n_total(model) == pytest.approx(nonzero / total)
    # sparsified by the init: every weight is masked (density about 0.1; the smallest layers vary)
    for n in big:
        p = named[n]
        d = metrics.density(p)
        assert d < 1.0, n
        if p.shape[0] * (p.shape[1] if p.dim() > 1 else 1) >= 400:
            assert abs(d - 0.1) < 5 * math.sqrt(0.1 * 0.9 / p.shape[0] / p.shape[1]) + 0.02, (n, d)
    # and a step of LinBreg with these groups works on every kind
    opt = LinBreg(groups, lr=0.01)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt.step()


def test_in_proj_weight_splits_into_three_groups_per_head():
    model = TinyTransformer()
    groups = param_groups(model, attention=GroupL12(1.0, "heads"))
    g = next(g for g in groups if "encoder.layers.0.self_attn.in_proj_weight" in g["param_names"])
    reg = g["reg"]
    w = model.encoder.layers[0].self_attn.in_proj_weight.detach()
    assert w.shape == (96, 32) and reg.head_dim == 8
    # one entry per block of 8 rows: J = λ √n_g · #groups, and there are exactly 3 × 4 of them
    x = torch.zeros_like(w)
    x[::8, 0] = 1.0
    assert reg.value(x).item() == pytest.approx(math.sqrt(8 * 32) * 3 * 4)
    x[1::8, 0] = 1.0  # a second entry in the same blocks adds no group
    assert reg.value(x).item() == pytest.approx(math.sqrt(2) * math.sqrt(8 * 32) * 3 * 4)
    # the prox keeps or kills whole heads' rows: Q of head 0 and V of head 3 survive
    v = 0.01 * torch.randn_like(w)
    v[0:8] += 1.0
    v[88:96] += 1.0
    theta = reg.prox(v, 0.1)
    alive = theta.reshape(12, 8 * 32).ne(0).any(1)
    assert alive.tolist() == [True] + [False] * 10 + [True]
    # out_proj: 4 groups of 8 columns
    o = next(g for g in groups if "encoder.layers.0.self_attn.out_proj.weight" in g["param_names"])["reg"]
    assert (o.groups, o.head_dim) == ("head_inputs", 8)


def test_defaults_and_the_old_signature():
    model = TinyTransformer()
    groups = param_groups(model, linear=L1(0.1), conv=GroupL12(0.1, "kernels"))
    by = {g["name"]: g for g in groups}
    # attention projections follow `linear` unless asked otherwise; embeddings stay unregularized
    assert by["attention"]["reg"] == L1(0.1) and len(by["attention"]["params"]) == 4
    assert by["embedding"]["reg"] == Null() and by["embedding"]["param_names"] == ["embed.weight"]
    assert by["linear"]["param_names"][-1] == "out.weight"
    nothing = param_groups(model, linear=L1(0.1), attention=None)
    assert {g["name"]: g["reg"] for g in nothing}["attention"] == Null()
    with_opts = param_groups(model, linear=L1(0.1), lr=0.5)
    assert all(g["lr"] == 0.5 for g in with_opts)


def test_rules_first_match_wins_and_none_means_unregularized():
    model = TinyTransformer()
    rules = [("encoder.layers.1.*", None), ("encoder.*.linear1.weight", L1(0.7)), ("*.weight", L1(0.9)),
             ("embed.weight", GroupL12(0.2, "rows"))]
    with pytest.raises(ValueError, match=r"\['embed.weight'\] never apply: every parameter they match is taken"):
        param_groups(model, linear=L1(0.1), rules=rules)
    groups = param_groups(model, linear=L1(0.1), rules=rules[:3])
    regs = {n: g["reg"] for g in groups for n in g["param_names"]}
    assert regs["encoder.layers.0.linear1.weight"] == L1(0.7)
    assert regs["encoder.layers.1.linear1.weight"] == Null()
    assert regs["encoder.layers.1.self_attn.in_proj_weight"] == Null()
    assert regs["embed.weight"] == L1(0.9)  # "*.weight" came first
    assert regs["encoder.layers.0.linear2.weight"] == L1(0.9)
    assert regs["encoder.layers.0.self_attn.in_proj_weight"] == L1(0.1)  # no rule: its kind's default
    assert {g["name"] for g in groups} >= {"rule encoder.layers.1.*", "rule *.weight", "attention"}


def test_bad_rules_name_the_problem():
    model = TinyTransformer()
    with pytest.raises(ValueError, match=r"\['decoder\.\*'\] match no parameter"):
        param_groups(model, rules=[("decoder.*", L1(0.1))])
    with pytest.raises(ValueError, match="encoder.layers.0.linear1.weight has shape"):
        param_groups(model, rules=[("*.linear1.weight", GroupL12(0.1, "kernels"))])
    with pytest.raises(ValueError, match="encoder.layers.0.linear1.weight .kind .linear., shape .64, 32.. has no heads"):
        param_groups(model, linear=GroupL12(0.1, "heads"))
    with pytest.raises(ValueError, match="embed.weight has shape"):
        param_groups(model, embedding=GroupL12(0.1, "filters"))
    with pytest.raises(TypeError, match="Invalid rule"):
        param_groups(model, rules=[("out.weight", 0.1)])


class _Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.table = nn.Parameter(torch.randn(6, 5))
        self.gain = nn.Parameter(torch.ones(5))
        self.fc = nn.Linear(5, 2)


def test_describe_lists_every_parameter_and_flags_unknown_ones():
    model = _Custom()
    text = describe(model, linear=L1(0.1))
    lines = text.splitlines()
    assert lines[0].split() == ["parameter", "kind", "regularizer", "shape", "size"]
    assert lines[2].split() == ["table", "unknown", "none", "(6,", "5)", "30"]
    assert lines[3].split() == ["gain", "other", "none", "(5,)", "5"]
    assert lines[4].split() == ["fc.weight", "linear", "L1(0.1)", "(2,", "5)", "10"]
    assert "unknown (dim >= 2" in text and text.rstrip().endswith("table")
    assert "total: linear 10, unknown 30, other 7" in text
    # an unknown matrix is counted by the metrics and can be regularized by a rule
    assert "table" in {n for n, _, _ in metrics.weights(model)}
    regs = {n: g["reg"] for g in param_groups(model, rules=[("table", L1(0.5))]) for n in g["param_names"]}
    assert regs["table"] == L1(0.5)
    with_rule = describe(model, rules=[("table", L1(0.5))])
    assert "L1(0.5)" in with_rule.splitlines()[2]
    model.fc.weight.requires_grad_(False)
    assert "frozen" in describe(model).splitlines()[4]
    assert "fc.weight" not in {n for g in param_groups(model) for n in g["param_names"]}


def test_shared_parameters_are_listed_once():
    model = TinyTransformer()
    model.out.weight = model.embed.weight  # tied input and output embeddings
    infos = classify(model)
    assert [i.name for i in infos].count("embed.weight") == 1 and "out.weight" not in {i.name for i in infos}
    ids = [id(p) for g in param_groups(model) for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))


def test_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="Unknown parameter kind"):
        list(params.weights(nn.Linear(2, 2), "dense"))
