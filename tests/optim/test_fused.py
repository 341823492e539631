"""The one-pass CPU kernels (``bregman.optim._fused``) against the torch-ops reference path."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from bregman import AdaBreg, LinBreg
from bregman.optim import _fused
from bregman.regularizers import L1, GroupL12, Null

needs_kernel = pytest.mark.skipif(not _fused.available(), reason="no C compiler: the kernels cannot be built")

# The kernel runs on rows (n = 64), filters (n = 72), ℓ1 and no penalty (n = 1); conv kernels
# (n = 25) take torch ops in the same step.
SHAPES = {"kernels": (32, 16, 5, 5), "rows": (96, 64), "filters": (24, 8, 3, 3), "l1": (80, 64), "none": (72, 64)}


def _reg(kind: str):
    return {"l1": L1(0.05), "none": Null()}.get(kind) or GroupL12(0.08, kind)


def _model(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    ps = {}
    for kind, shape in SHAPES.items():
        keep = torch.rand(shape[0], *([1] * (len(shape) - 1)), generator=g, dtype=dtype) < 0.2  # sparse start
        ps[kind] = nn.Parameter(torch.randn(shape, generator=g, dtype=dtype) * keep)
    return ps


def _run(make, dtype, foreach, steps=25, scramble=False):
    ps = _model(dtype)
    opt = make([{"params": [p], "reg": _reg(k)} for k, p in ps.items()], foreach)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p in ps.values():
            p.grad = torch.randn(p.shape, generator=g, dtype=dtype) * 0.03
            if scramble:  # whatever θ holds before a step, the step recomputes it from v
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=g, dtype=dtype))
        opt.step()
    return {k: p.detach().clone() for k, p in ps.items()}


CASES = {
    "linbreg": lambda gr, fe: LinBreg(gr, lr=0.3, foreach=fe),
    "linbreg-delta": lambda gr, fe: LinBreg(gr, lr=0.2, delta=1.7, foreach=fe),
    # a learning rate per group: one kernel call per (lr, δ) in LinBreg's batched step
    "linbreg-group-lr": lambda gr, fe: LinBreg([dict(g, lr=0.1 * (1 + i % 2)) for i, g in enumerate(gr)], lr=0.3,
                                               foreach=fe),
    "linbreg-momentum": lambda gr, fe: LinBreg(gr, lr=0.3, momentum=0.9, foreach=fe),
    "adabreg": lambda gr, fe: AdaBreg(gr, lr=2e-3, delta=1.5, foreach=fe),
}


@needs_kernel
@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)], ids=["f64", "f32"])
def test_kernel_path_equals_torch_ops(name, dtype, tol):
    ref = _run(CASES[name], dtype, foreach=False)
    fast = _run(CASES[name], dtype, foreach=True)
    for kind in SHAPES:
        torch.testing.assert_close(fast[kind], ref[kind], rtol=tol, atol=tol, msg=kind)
        # Same support: a group (entry) is zero on one path exactly when it is zero on the other.
        assert torch.equal(fast[kind] != 0, ref[kind] != 0), kind
    nonzero = {k: (v != 0).float().mean().item() for k, v in fast.items()}
    assert 0 < nonzero["rows"] < 1 and 0 < nonzero["l1"] < 1  # sparse, not trivially all-zero


@needs_kernel
def test_kernel_recomputes_theta_whatever_it_held():
    """Zero groups are not rewritten when θ is already zero there; where θ holds something else
    (here: random values written between steps) the kernel still zeroes them."""
    assert _fused.MIN_GROUP <= 64  # the rows of SHAPES go through the kernel
    ref = _run(CASES["linbreg"], torch.float64, foreach=False, scramble=True)
    fast = _run(CASES["linbreg"], torch.float64, foreach=True, scramble=True)
    for kind in SHAPES:
        torch.testing.assert_close(fast[kind], ref[kind], rtol=1e-12, atol=1e-12, msg=kind)


@needs_kernel
def test_entries_that_stay_zero_are_not_rewritten():
    """After the kernel wrote θ = prox(δv), an ℓ1 entry that stays inside the threshold is neither
    read nor written by the next step. Writes through ``p.data`` are invisible to the version
    counters, so a value put there survives (the documented contract); tracked writes do not."""
    p = nn.Parameter(torch.zeros(64, 64))
    opt = LinBreg([p], lr=0.1, reg=L1(1.0))
    p.grad = torch.full_like(p, 1e-3)
    opt.step()  # |v| stays far below λ = 1: θ stays 0
    p.data[0, 0] = 7.0  # untracked: the next step does not know θ changed
    opt.step()
    assert p[0, 0].item() == 7.0 and p.count_nonzero().item() == 1
    with torch.no_grad():
        p[1, 1] = 5.0  # tracked (p's version moves): the next step rewrites all of θ
    opt.step()
    assert p.count_nonzero().item() == 0


@needs_kernel
def test_kernel_declines_what_it_cannot_do():
    v, p, g = torch.randn(64, 128), torch.zeros(64, 128), torch.randn(64, 128)
    rows, l1 = GroupL12(0.1, "rows"), L1(0.1)
    assert _fused.step_([p], [v.t()], None, rows, lr=0.0, delta=1.0) == [0]  # strided groups
    assert _fused.step_([p], [v.t()], None, l1, lr=0.0, delta=1.0) == [0]  # p and v: two layouts
    assert _fused.step_([p], [v], [g.t().contiguous().t()], l1, lr=0.1, delta=1.0) == [0]  # g: another
    assert _fused.step_([p[:, ::2]], [v[:, ::2]], None, l1, lr=0.0, delta=1.0) == [0]  # not dense
    assert _fused.step_([p.half()], [v.half()], None, l1, lr=0.0, delta=1.0) == [0]
    assert _fused.step_([p], [v.double()], None, l1, lr=0.0, delta=1.0) == [0]  # mixed dtypes
    assert _fused.step_([p.view(512, 16)], [v.view(512, 16)], None, rows, lr=0.0, delta=1.0) == [0]  # short
    assert torch.equal(p, torch.zeros(64, 128))
    # Mixed lists: it does what it can in one call and hands back the rest, in order.
    q = torch.zeros(8, 8, dtype=torch.float64)
    assert _fused.step_([p, q, p.t()], [v, q.clone(), v], None, l1, lr=0.0, delta=1.0) == [1, 2]
    assert torch.equal(p, torch.nn.functional.softshrink(v, 0.1))
    cl = torch.randn(16, 8, 5, 5).to(memory_format=torch.channels_last)
    assert GroupL12(0.1, "kernels").contiguous_groups(cl) is None  # kernels are not runs of memory
    assert GroupL12(0.1, "columns").contiguous_groups(v) is None
    assert GroupL12(0.1, "rows").contiguous_groups(v) == (128, pytest.approx(0.1 * 128 ** 0.5))
    assert L1(0.1).contiguous_groups(cl) == (1, 0.1) and Null().contiguous_groups(v.t()) == (1, 0.0)
    assert L1(0.1).contiguous_groups(v[:, ::2]) is None


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reg", [L1(0.3), Null()], ids=["l1", "none"])
@pytest.mark.parametrize("delta", [1.0, 1.7])
def test_elementwise_kernel_is_exact(dtype, reg, delta):
    """For ℓ1 and no penalty (n = 1) the kernel computes what torch's ops compute, bit for bit up
    to the sign of zero (torch's own vector and scalar loops differ there): v + (−τ)g as one fused
    multiply-add, soft shrinkage that passes NaN through, then δ."""
    g = torch.Generator().manual_seed(0)
    v = torch.randn(70, 90, generator=g, dtype=dtype)
    grad = torch.randn(70, 90, generator=g, dtype=dtype)
    v.view(-1)[:6] = torch.tensor([float("nan"), -0.0, 0.0, 0.3, -0.3, float("inf")], dtype=dtype)
    grad.view(-1)[:6] = 0.0
    for layout in (lambda t: t, lambda t: t.t().contiguous().t()):  # row-major and transposed
        vk, gk, pk = layout(v.clone()), layout(grad), layout(torch.full_like(v, 5.0))
        vt, pt = v.clone(), torch.empty_like(v)
        assert _fused.step_([pk], [vk], [gk], reg, lr=0.37, delta=delta) == []
        vt.add_(grad, alpha=-0.37)
        reg.dual_prox_(pt, vt, delta)
        for a, b in ((vk, vt), (pk, pt)):
            assert torch.equal(a.isnan(), b.isnan()) and a.isnan().any()
            assert torch.equal(a.nan_to_num(), b.nan_to_num())
        assert torch.equal(vk.signbit(), vt.signbit())


def test_without_a_compiler_the_optimizers_use_torch_ops(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("BREGMAN_CACHE", str(tmp_path / "cache"))
    _fused._library.cache_clear()
    try:
        assert not _fused.available()
        out = _run(CASES["linbreg"], torch.float64, foreach=True, steps=3)
        ref = _run(CASES["linbreg"], torch.float64, foreach=False, steps=3)
        for kind in SHAPES:
            torch.testing.assert_close(out[kind], ref[kind], rtol=0, atol=1e-12)
    finally:
        _fused._library.cache_clear()


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("BREGMAN_FUSED", "0")
    _fused._library.cache_clear()
    try:
        assert not _fused.available()
    finally:
        monkeypatch.delenv("BREGMAN_FUSED")
        _fused._library.cache_clear()


@needs_kernel
def test_replayed_steps_follow_every_change_to_the_optimizer_and_the_weights():
    """LinBreg replays its last kernel call while nothing changed (``_fused.Plan``); after each
    kind of change (learning rate, a tracked write to θ, a missing gradient, a state-dict load, a
    new param group) it must step exactly like the reference path."""
    def make(foreach):
        g = torch.Generator().manual_seed(0)
        w = nn.Parameter(torch.randn(48, 40, generator=g, dtype=torch.float64) * 0.1)
        b = nn.Parameter(torch.zeros(48, dtype=torch.float64))
        opt = LinBreg([{"params": [w], "reg": L1(0.05)}, {"params": [b]}], lr=0.3, foreach=foreach)
        return [w, b], opt

    (ps, fast), (qs, ref) = make(True), make(False)
    g = torch.Generator().manual_seed(1)
    extra, planned = {}, []
    for k in range(14):
        grads = [torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.05 for p in ps]
        for xs in (ps, qs):
            for x, gr in zip(xs, grads):
                x.grad = gr.clone()
        if k == 3:  # a scheduler's new learning rate
            for opt in (fast, ref):
                for group in opt.param_groups:
                    group["lr"] = 0.1
        if k == 5:  # a tracked write to θ
            for xs in (ps, qs):
                with torch.no_grad():
                    xs[0][0, :5] = 1.0
        if k == 7:  # no gradient for the bias this step
            ps[1].grad = qs[1].grad = None
        if k == 9:  # a state-dict round trip
            for opt in (fast, ref):
                opt.load_state_dict(opt.state_dict())
        if k == 11:  # a new param group
            for name, xs, opt in (("fast", ps, fast), ("ref", qs, ref)):
                extra[name] = nn.Parameter(torch.ones(30, 30, dtype=torch.float64))
                opt.add_param_group({"params": [extra[name]], "reg": L1(0.5)})
        for name in extra:
            extra[name].grad = torch.full((30, 30), 0.01 * k, dtype=torch.float64)
        fast.step()
        ref.step()
        planned.append(fast.__dict__.get("_plan") is not None)
        for a, b in zip(ps, qs):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=f"step {k}")
        if extra:
            torch.testing.assert_close(extra["fast"], extra["ref"], rtol=1e-12, atol=1e-12)
    # replaying in between; after k = 11 two learning rates make two kernel calls: no plan
    assert all(planned[:7]) and all(planned[8:11]) and not planned[7] and not any(planned[11:])
