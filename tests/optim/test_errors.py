"""Bad input gets an error that names the problem (table-driven, as torch's optimizer tests)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from bregman import AdaBreg, LinBreg, ProxSGD, create_optimizer, init, regularizers
from bregman.regularizers import L1, GroupL12


def _p(*shape):
    return [nn.Parameter(torch.randn(*shape))]


def _step_with(opt_cls, reg, shape, **kw):
    p = nn.Parameter(torch.randn(*shape))
    opt = opt_cls([p], lr=0.1, reg=reg, **kw)
    p.grad = torch.ones_like(p)
    opt.step()


def _sparse_grad_step():
    emb = nn.Embedding(10, 3, sparse=True)
    opt = LinBreg(emb.parameters(), lr=0.1, reg=L1(0.1))
    emb(torch.tensor([1, 2])).sum().backward()
    opt.step()


CASES = [
    ("negative lr", lambda: LinBreg(_p(3), lr=-1.0), ValueError, "Invalid learning rate: -1.0"),
    ("nan lr", lambda: ProxSGD(_p(3), lr=float("nan")), ValueError, "Invalid learning rate: nan"),
    ("adabreg negative lr", lambda: AdaBreg(_p(3), lr=-1e-3), ValueError, "Invalid learning rate: -0.001"),
    ("delta zero", lambda: LinBreg(_p(3), lr=0.1, delta=0.0), ValueError, "Invalid delta: 0.0"),
    ("delta negative", lambda: AdaBreg(_p(3), delta=-1.0), ValueError, "Invalid delta: -1.0"),
    ("lam negative", lambda: L1(-0.1), ValueError, "Invalid regularization strength lam: -0.1"),
    ("group lam negative", lambda: GroupL12(-1.0), ValueError, "Invalid regularization strength lam: -1.0"),
    ("unknown groups", lambda: GroupL12(0.1, "blocks"), ValueError, "Invalid groups: 'blocks'"),
    ("momentum one", lambda: LinBreg(_p(3), lr=0.1, momentum=1.0), ValueError, "Invalid momentum: 1.0"),
    ("momentum negative", lambda: LinBreg(_p(3), lr=0.1, momentum=-0.1), ValueError, "Invalid momentum: -0.1"),
    ("beta1 out of range", lambda: AdaBreg(_p(3), betas=(1.0, 0.999)), ValueError, "Invalid beta1 (betas[0]): 1.0"),
    ("beta2 out of range", lambda: AdaBreg(_p(3), betas=(0.9, -0.5)), ValueError, "Invalid beta2 (betas[1]): -0.5"),
    ("betas not a pair", lambda: AdaBreg(_p(3), betas=0.9), ValueError, "Invalid betas: 0.9"),
    ("eps negative", lambda: AdaBreg(_p(3), eps=-1e-8), ValueError, "Invalid eps: -1e-08"),
    ("reg not a regularizer", lambda: LinBreg(_p(3), lr=0.1, reg="l1"), TypeError, "Invalid reg: 'l1'"),
    ("unknown group key", lambda: LinBreg([{"params": _p(3), "lamda": 0.1}], lr=0.1), ValueError,
     "unknown param-group key(s) ['lamda']"),
    ("bad lr in a group", lambda: LinBreg([{"params": _p(3), "lr": -2.0}], lr=0.1), ValueError,
     "Invalid learning rate: -2.0"),
    ("kernels on a 2-D weight", lambda: _step_with(LinBreg, GroupL12(0.1, "kernels"), (3, 4)), ValueError,
     "shape (3, 4)"),
    ("rows on a conv weight", lambda: _step_with(AdaBreg, GroupL12(0.1, "rows"), (2, 3, 3, 3)), ValueError,
     "shape (2, 3, 3, 3)"),
    ("columns on a bias", lambda: _step_with(ProxSGD, GroupL12(0.1, "columns"), (5,)), ValueError, "shape (5,)"),
    ("sparse gradients", _sparse_grad_step, RuntimeError, "does not support sparse gradients"),
    ("unknown optimizer", lambda: create_optimizer("lbfgs", _p(3), lr=0.1), ValueError, "Unknown optimizer 'lbfgs'"),
    ("unknown regularizer", lambda: regularizers.get("l2", 0.1), ValueError, "Unknown regularizer 'l2'"),
    ("init density zero", lambda: init.sparse_(torch.empty(3, 3), 0.0), ValueError, "Invalid density: 0.0"),
    ("init unknown scheme", lambda: init.sparse_(torch.empty(3, 3), 0.5, scheme="xavier"), ValueError,
     "Unknown init scheme 'xavier'"),
    ("kernel mask on linear", lambda: init.sparse_(torch.empty(3, 3), 0.5, groups="kernels"), ValueError,
     "mask groups 'kernels' need a conv weight"),
]


@pytest.mark.parametrize("make,exc,msg", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_has_a_clear_error(make, exc, msg):
    with pytest.raises(exc) as info:
        make()
    assert msg in str(info.value)


def test_at_least_fifteen_cases():
    assert len(CASES) >= 15
