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


OPTS = {"linbreg": lambda ps, **kw: LinBreg(ps, **{"lr": 0.1, **kw}),
        "adabreg": lambda ps, **kw: AdaBreg(ps, **kw),
        "proxsgd": lambda ps, **kw: ProxSGD(ps, **{"lr": 0.1, **kw})}


def _step_after(opt_name, change, **kw):
    """Build, step once, apply ``change(opt)`` to the param groups, step again (the check is at the step)."""
    ps = _p(3, 4)
    opt = OPTS[opt_name]([{"params": ps, "reg": L1(0.1)}], **kw)
    ps[0].grad = torch.ones_like(ps[0])
    opt.step()
    change(opt)
    opt.step()


def _set(key, value):
    return lambda opt: opt.param_groups[0].__setitem__(key, value)


def _load_with(opt_name, key, value):
    opt = OPTS[opt_name](_p(3))
    sd = opt.state_dict()
    sd["param_groups"][0][key] = value
    opt.load_state_dict(sd)


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
    *[(f"{o}: 2-element tensor lr", lambda o=o: OPTS[o](_p(3), lr=torch.tensor([0.1, 0.2])), ValueError,
       "Tensor lr must be 1-element") for o in OPTS],
    *[(f"{o}: negative tensor lr", lambda o=o: OPTS[o](_p(3), lr=torch.tensor(-0.1)), ValueError,
       "Invalid learning rate: -0.1") for o in OPTS],
    *[(f"{o}: nan lr set between steps", lambda o=o: _step_after(o, _set("lr", float("nan"))), ValueError,
       "param_groups[0]['lr']: Invalid learning rate: nan") for o in OPTS],
    *[(f"{o}: lr nan in a loaded state dict", lambda o=o: _load_with(o, "lr", float("nan")), ValueError,
       "load_state_dict: param_groups[0]['lr']: Invalid learning rate: nan") for o in OPTS],
    *[(f"{o}: reg not a regularizer set between steps", lambda o=o: _step_after(o, _set("reg", "l1")), TypeError,
       "param_groups[0]['reg']: Invalid reg: 'l1'") for o in OPTS],
    *[(f"{o}: maximize not a bool", lambda o=o: OPTS[o](_p(3), maximize="yes"), ValueError,
       "Invalid maximize: 'yes'") for o in OPTS],
    *[(f"{o}: foreach not a bool", lambda o=o: OPTS[o](_p(3), foreach=1), ValueError, "Invalid foreach: 1")
      for o in OPTS],
    ("negative delta set between steps", lambda: _step_after("linbreg", _set("delta", -1.0)), ValueError,
     "param_groups[0]['delta']: Invalid delta: -1.0"),
    ("momentum 1.5 set between steps", lambda: _step_after("linbreg", _set("momentum", 1.5)), ValueError,
     "param_groups[0]['momentum']: Invalid momentum: 1.5"),
    ("betas (1, .9) set between steps", lambda: _step_after("adabreg", _set("betas", (1.0, 0.9))), ValueError,
     "param_groups[0]['betas']: Invalid beta1 (betas[0]): 1.0"),
    ("eps inf set between steps", lambda: _step_after("adabreg", _set("eps", float("inf"))), ValueError,
     "param_groups[0]['eps']: Invalid eps: inf"),
    ("delta 0 in a loaded state dict", lambda: _load_with("adabreg", "delta", 0.0), ValueError,
     "load_state_dict: param_groups[0]['delta']: Invalid delta: 0.0"),
    ("a group added with lr -1", lambda: LinBreg(_p(3), lr=0.1).add_param_group({"params": _p(3), "lr": -1.0}),
     ValueError, "param group 1 being added, key 'lr': Invalid learning rate: -1.0"),
    ("kernels set for a 2-D weight between steps",
     lambda: _step_after("linbreg", _set("reg", GroupL12(0.1, "kernels"))), ValueError,
     "but parameter of shape (3, 4)"),
]


@pytest.mark.parametrize("make,exc,msg", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_has_a_clear_error(make, exc, msg):
    with pytest.raises(exc) as info:
        make()
    assert msg in str(info.value)
    assert "\n" not in str(info.value), "one line"


def test_at_least_fifteen_cases():
    assert len(CASES) >= 15
