"""The paper's invariants (PAPER.md §5, items 1–8) as tests."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from bregman import AdaBreg, LinBreg, ProxSGD
from bregman.regularizers import L1, GroupL12, Null



@pytest.fixture(autouse=True)
def _float64():
    """Exactness checks run in float64; the default is restored for other test modules."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def _batches(n=15, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(32, 8, generator=g), torch.randn(32, 4, generator=g)) for _ in range(n)]


def _train(model, opt, batches):
    out = []
    for x, y in batches:
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        out.append([p.detach().clone() for p in model.parameters()])
    return out


@pytest.mark.parametrize("delta", [1.0, 0.5, 3.0])
def test_null_linbreg_is_sgd_with_lr_times_delta(delta):
    a, b = _mlp(), _mlp()
    ta = _train(a, LinBreg(a.parameters(), lr=0.05, reg=Null(), delta=delta), _batches())
    tb = _train(b, torch.optim.SGD(b.parameters(), lr=0.05 * delta), _batches())
    for pa, pb in zip(ta, tb):
        for x, y in zip(pa, pb):
            torch.testing.assert_close(x, y, rtol=0, atol=1e-12)


@pytest.mark.parametrize("foreach", [False, True])
def test_null_adabreg_is_adam(foreach):
    a, b = _mlp(), _mlp()
    ta = _train(a, AdaBreg(a.parameters(), lr=1e-2, foreach=foreach), _batches())
    tb = _train(b, torch.optim.Adam(b.parameters(), lr=1e-2, foreach=foreach), _batches())
    for pa, pb in zip(ta, tb):
        for x, y in zip(pa, pb):
            torch.testing.assert_close(x, y, rtol=0, atol=1e-12)


def test_momentum_zero_is_plain_linbreg():
    a, b = _mlp(), _mlp()
    ta = _train(a, LinBreg(a.parameters(), lr=0.05, reg=L1(0.01), momentum=0.0), _batches())
    tb = _train(b, LinBreg(b.parameters(), lr=0.05, reg=L1(0.01)), _batches())
    assert all(torch.equal(x, y) for pa, pb in zip(ta, tb) for x, y in zip(pa, pb))


REGS = [(L1(0.3), (6, 5)), (GroupL12(0.4, "rows"), (6, 5)), (GroupL12(0.4, "kernels"), (4, 3, 3, 3)),
        (GroupL12(0.2, "columns"), (6, 5)), (GroupL12(0.3, "filters"), (4, 3, 3, 3))]


def _sparse_tensor(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * (torch.rand(shape, generator=g) < 0.4)


@pytest.mark.parametrize("opt_cls", [LinBreg, AdaBreg])
@pytest.mark.parametrize("reg,shape", REGS, ids=lambda r: getattr(r, "groups", type(r).__name__))
@pytest.mark.parametrize("delta", [1.0, 2.5])
def test_first_prox_reproduces_init(opt_cls, reg, shape, delta):
    theta0 = _sparse_tensor(shape)
    p = nn.Parameter(theta0.clone())
    opt = opt_cls([p], lr=0.0, reg=reg, delta=delta)
    p.grad = torch.zeros_like(p)
    opt.step()
    torch.testing.assert_close(p.detach(), theta0, rtol=0, atol=1e-15)


def _run_regularized(reg, shape, delta, momentum=0.0, steps=30):
    """LinBreg on ½‖Aθ − b‖² from a sparse start; yields (θ, v) after each step."""
    g = torch.Generator().manual_seed(3)
    n = math.prod(shape)
    A, b = torch.randn(20, n, generator=g), torch.randn(20, generator=g)
    p = nn.Parameter(_sparse_tensor(shape, seed=4))
    opt = LinBreg([p], lr=0.05, reg=reg, delta=delta, momentum=momentum)
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * ((A @ p.reshape(-1) - b) ** 2).sum() / A.shape[0]).backward()
        opt.step()
        yield p.detach().clone(), opt.state[p]["v"].clone()


def _group_norms(x, reg):
    dims, sqrt_n = reg._dims(x)
    return torch.linalg.vector_norm(x, dim=dims), sqrt_n


@pytest.mark.parametrize("reg,shape", REGS, ids=lambda r: getattr(r, "groups", type(r).__name__))
@pytest.mark.parametrize("delta", [1.0, 2.0])
def test_support_rule_and_subgradient_invariant(reg, shape, delta):
    for theta, v in _run_regularized(reg, shape, delta, momentum=0.5):
        p = v - theta / delta  # must lie in ∂J(θ)
        if isinstance(reg, L1):
            assert torch.equal(theta != 0, v.abs() > reg.lam)
            assert (p.abs() <= reg.lam + 1e-12).all()
            nz = theta != 0
            torch.testing.assert_close(p[nz], reg.lam * theta[nz].sign(), rtol=0, atol=1e-12)
        else:
            vn, sqrt_n = _group_norms(v, reg)
            tn, _ = _group_norms(theta, reg)
            assert torch.equal(tn > 0, vn > reg.lam * sqrt_n)
            pn, _ = _group_norms(p, reg)
            assert (pn <= reg.lam * sqrt_n + 1e-12).all()
            nz = _expand(tn, theta, reg) > 0  # non-zero groups: p_g = λ√n θ_g/‖θ_g‖
            torch.testing.assert_close(p[nz], reg.subgradient(theta)[nz], rtol=0, atol=1e-12)


def _expand(norms, x, reg):
    dims, _ = reg._dims(x)
    shape = [1 if i in dims else s for i, s in enumerate(x.shape)]
    return norms.reshape(shape).expand_as(x)


@pytest.mark.parametrize("reg,shape", REGS, ids=lambda r: getattr(r, "groups", type(r).__name__))
def test_delta_scales_magnitudes_not_support(reg, shape):
    v = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    t1, t3 = torch.empty(shape), torch.empty(shape)
    reg.dual_prox_(t1, v, 1.0)
    reg.dual_prox_(t3, v, 3.0)
    torch.testing.assert_close(t3, 3.0 * t1, rtol=1e-14, atol=0)
    assert torch.equal(t1 != 0, t3 != 0)


@pytest.mark.parametrize("reg", [L1(0.05), GroupL12(0.05, "rows")], ids=["l1", "rows"])
@pytest.mark.parametrize("delta", [1.0, 2.0])
def test_monotone_loss_decay_on_convex_quadratic(reg, delta):
    g = torch.Generator().manual_seed(0)
    A, b = torch.randn(40, 30, generator=g), torch.randn(40, generator=g)
    L = torch.linalg.matrix_norm(A, ord=2).item() ** 2 / 40  # Lipschitz constant of ∇L
    p = nn.Parameter(_sparse_tensor((5, 6), seed=1))
    opt = LinBreg([p], lr=2.0 / (delta * L), reg=reg, delta=delta)
    losses, prev = [], None
    for _ in range(200):
        opt.zero_grad()
        loss = 0.5 * ((A @ p.reshape(-1) - b) ** 2).sum() / 40
        loss.backward()
        losses.append(loss.item())
        theta, v = p.detach().clone(), (opt.state[p]["v"].clone() if p in opt.state else None)
        opt.step()
        if v is not None:  # ⟨v⁺ − v, θ⁺ − θ⟩ ≥ ‖θ⁺ − θ‖²/δ  (D^sym_J ≥ 0)
            dv, dt = opt.state[p]["v"] - v, p.detach() - theta
            assert (dv * dt).sum() >= (dt * dt).sum() / delta - 1e-12
    assert all(b_ <= a_ + 1e-12 for a_, b_ in zip(losses, losses[1:])), "loss increased"
    assert losses[-1] < 0.5 * losses[0]


LAM = 10.0  # large λ: close to basis pursuit, a slow inverse-scale-space path


def _nnz_trajectory(opt_name, steps=1500):
    g = torch.Generator().manual_seed(0)
    m, n = 40, 200
    A = torch.randn(m, n, generator=g) / math.sqrt(m)
    x_true = torch.zeros(n)
    x_true[torch.randperm(n, generator=g)[:8]] = torch.randn(8, generator=g).sign() * (1 + torch.rand(8, generator=g))
    b = A @ x_true
    init = torch.zeros(n)
    init[torch.randperm(n, generator=g)[:2]] = 0.01  # 1 % non-zeros
    p = nn.Parameter(init)
    lr = 1.0 / torch.linalg.matrix_norm(A, ord=2).item() ** 2  # τ = 1/L
    opt = (LinBreg([p], lr=lr, reg=L1(LAM), delta=1.0) if opt_name == "linbreg"
           else ProxSGD([p], lr=lr, reg=L1(0.01)))
    nnz, res = [], []
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * ((A @ p - b) ** 2).sum()).backward()
        opt.step()
        nnz.append(int((p != 0).sum()))
        res.append(torch.linalg.vector_norm(A @ p.detach() - b).item())
    return nnz, res


def test_inverse_scale_space_linbreg_grows_from_sparse_proxsgd_densifies_first():
    nnz, res = _nnz_trajectory("linbreg")
    assert nnz[0] <= 2, "LinBreg must start from (near) zero non-zeros"
    checkpoints = nnz[::100]
    assert all(b >= a - 2 for a, b in zip(checkpoints, checkpoints[1:])), f"support must grow: {checkpoints}"
    assert checkpoints[-1] >= 10 * checkpoints[0]
    assert max(nnz) <= 50, "LinBreg stays sparse on a sparse problem (n = 200)"
    assert res[-1] < 0.02 * res[0], "iterates fit the data (Aθ → b)"
    p_nnz, _ = _nnz_trajectory("proxsgd")
    assert max(p_nnz[:10]) >= 4 * max(nnz[:10]), "ProxSGD densifies at once"
    assert max(p_nnz) > p_nnz[-1], "ProxSGD adds weights first, then removes them"
