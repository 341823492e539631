"""Checkpoint round trips: 20 steps + save/load(weights_only) + 20 steps == 40 steps."""
from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from bregman import AdaBreg, LinBreg, ProxSGD, param_groups
from bregman.regularizers import L1, GroupL12


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


def _data():
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 5, (16,), generator=g)) for _ in range(40)]


FACTORIES = {
    "linbreg": lambda gr: LinBreg(gr, lr=0.1),
    "linbreg-momentum": lambda gr: LinBreg(gr, lr=0.1, momentum=0.9, delta=2.0),
    "adabreg": lambda gr: AdaBreg(gr, lr=1e-2),
    "proxsgd": lambda gr: ProxSGD(gr, lr=0.1),
}


def _groups(model):
    return param_groups(model, linear=L1(0.01), conv=GroupL12(0.01, "kernels"))


def _steps(model, opt, batches):
    for x, y in batches:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_resume_equals_uninterrupted(name):
    data = _data()
    ref = _model()
    ref_opt = FACTORIES[name](_groups(ref))
    _steps(ref, ref_opt, data)

    a = _model()
    opt = FACTORIES[name](_groups(a))
    _steps(a, opt, data[:20])
    buf = io.BytesIO()
    torch.save({"model": a.state_dict(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)

    b = _model()
    b.load_state_dict(ckpt["model"])
    opt_b = FACTORIES[name](_groups(b))
    opt_b.load_state_dict(ckpt["opt"])
    assert opt_b.param_groups[0]["reg"] == opt.param_groups[0]["reg"]
    _steps(b, opt_b, data[20:])
    for p, q in zip(ref.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_lr_scheduler_drives_group_lr():
    model = _model()
    opt = LinBreg(_groups(model), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    _steps(model, opt, _data()[:1])
    sched.step()
    assert all(g["lr"] == pytest.approx(0.05) for g in opt.param_groups)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    plateau.step(1.0)
    plateau.step(1.0)
    assert all(g["lr"] == pytest.approx(0.025) for g in opt.param_groups)


def test_closure_is_run_and_its_loss_returned():
    model = _model()
    opt = LinBreg(model.parameters(), lr=0.1, reg=L1(0.0))
    x, y = _data()[0]

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    before = copy.deepcopy(model.state_dict())
    loss = opt.step(closure)
    assert torch.is_tensor(loss) and loss.item() > 0
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_params_without_grad_are_skipped():
    a, b = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(3))
    opt = LinBreg([a, b], lr=0.1, reg=L1(0.1))
    a.grad = torch.ones(3)
    opt.step()
    assert b not in opt.state and torch.equal(b, torch.ones(3))
