"""pytorch's optimizer tests (``test/test_optim.py``, ``torch.testing._internal.common_optimizers``),
ported to LinBreg, LinBreg with momentum, AdaBreg and ProxSGD × every regularizer kind × {default,
``foreach=False``} (their error inputs are in ``test_errors.py``): foreach against the for-loop over 0-d, empty, zero-size,
transposed, sliced and channels-last tensors in four dtypes; state-dict round trips; hooks; closures;
every LR scheduler with a float and a tensor lr; complex parameters; ``torch.compile``; and the
findings of issue 11: after every kind of change a user makes between steps, the default path equals
the single-tensor reference (≤ 1e-6 in float32, the same support).
"""
from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler as S
from torch.optim.optimizer import register_optimizer_step_post_hook

from bregman import AdaBreg, LinBreg, ProxSGD
from bregman.regularizers import L1, GroupL12, Null

OPTS = {
    "linbreg": lambda params, **kw: LinBreg(params, **{"lr": 0.1, **kw}),
    "linbreg-momentum": lambda params, **kw: LinBreg(params, **{"lr": 0.1, "momentum": 0.9, **kw}),
    "adabreg": lambda params, **kw: AdaBreg(params, **{"lr": 0.01, **kw}),
    "proxsgd": lambda params, **kw: ProxSGD(params, **{"lr": 0.1, **kw}),
}
#: regularizer kind → (regularizer, the shapes (and layouts) it is tested on)
REGS = {
    "null": Null(),
    "l1": L1(0.05),
    "rows": GroupL12(0.05, "rows"),
    "columns": GroupL12(0.05, "columns"),
    "kernels": GroupL12(0.02, "kernels"),
    "filters": GroupL12(0.02, "filters"),
}
OPT_IDS, REG_IDS = sorted(OPTS), sorted(REGS)


# -- tensors of every layout -----------------------------------------------------------------------
def _layouts(ndim: int | None) -> dict[str, callable]:
    """name → f(generator, dtype) making a tensor of that layout; 2-D or 4-D only, or all (None)."""
    def randn(*shape):
        return lambda g, dt: (torch.randn(shape, generator=g, dtype=torch.float64) * 0.3).to(dt)

    two = {
        "matrix": randn(6, 5),
        "transposed": lambda g, dt: randn(5, 6)(g, dt).t(),
        "sliced": lambda g, dt: randn(6, 10)(g, dt)[:, ::2],
        "zero-rows": randn(5, 0),
        "zero-cols": randn(0, 5),
    }
    four = {
        "conv": randn(4, 3, 3, 3),
        "channels_last": lambda g, dt: randn(4, 3, 3, 3)(g, dt).to(memory_format=torch.channels_last),
        "sliced-conv": lambda g, dt: randn(4, 6, 3, 3)(g, dt)[:, ::2],
        "zero-in": randn(4, 0, 3, 3),
        "zero-kernel": randn(4, 4, 0, 0),
        "zero-out": randn(0, 3, 3, 3),
    }
    if ndim == 2:
        return two
    if ndim == 4:
        return four
    return {"scalar": randn(), "empty": randn(0), "vector": randn(7), **two, **four}


def _reg_ndim(reg) -> int | None:
    return {"rows": 2, "columns": 2, "kernels": 4, "filters": 4}.get(getattr(reg, "groups", None))


def _params(reg, dtype, seed=0, complex_=False):
    g = torch.Generator().manual_seed(seed)
    out = []
    for make in _layouts(_reg_ndim(reg)).values():
        t = make(g, dtype)
        if complex_:
            t = torch.complex(t, make(g, dtype))
        out.append(nn.Parameter(t))
    return out


def _grads(params, g, step):
    """Gradients for ``params``: the parameter's layout on even steps, contiguous on odd ones."""
    out = []
    for p in params:
        x = torch.randn(p.shape, generator=g, dtype=torch.float64)
        x = (torch.complex(x, torch.randn(p.shape, generator=g, dtype=torch.float64)) if p.is_complex() else x)
        x = x.to(p.dtype)
        out.append(torch.empty_like(p).copy_(x) if step % 2 == 0 else x.contiguous())
    return out


TOL = {torch.float64: 1e-12, torch.float32: 1e-6, torch.bfloat16: 2e-2, torch.float16: 2e-3}


def _assert_same(fast, ref, dtype=torch.float32, support=True):
    for a, b in zip(fast, ref):
        a, b = a.detach(), b.detach()
        torch.testing.assert_close(a, b, rtol=TOL[dtype] if dtype in (torch.bfloat16, torch.float16) else 0,
                                   atol=TOL[dtype], equal_nan=True)
        if support:
            assert torch.equal(a != 0, b != 0), "the supports differ"


class Twin:
    """The same parameters under the default path and under ``foreach=False``, stepped alike."""

    def __init__(self, opt, params, reg=None, groups=None, **kw):
        self.params = [params, [nn.Parameter(p.detach().clone()) for p in params]]
        self.opts = []
        for ps, foreach in zip(self.params, (None, False)):
            gs = groups(ps) if groups else [{"params": ps, "reg": reg}]
            own = {k: v.clone() if torch.is_tensor(v) else v for k, v in kw.items()}  # a tensor lr each
            self.opts.append(OPTS[opt](gs, foreach=foreach, **own))
        self.gen = torch.Generator().manual_seed(1)
        self.k = 0

    def step(self, n=1):
        for _ in range(n):
            grads = _grads(self.params[0], self.gen, self.k)
            for ps, opt in zip(self.params, self.opts):
                for p, g in zip(ps, grads):
                    p.grad = g.clone()
                opt.step()
            self.k += 1
        return self

    def both(self, fn):
        """Apply ``fn(params, opt)`` to each side (a change a user makes between steps)."""
        for ps, opt in zip(self.params, self.opts):
            fn(ps, opt)
        return self

    def check(self, dtype=torch.float32, support=True):
        _assert_same(*self.params, dtype=dtype, support=support)


# -- foreach against the for-loop ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16],
                         ids=["f64", "f32", "bf16", "f16"])
@pytest.mark.parametrize("reg", REG_IDS)
@pytest.mark.parametrize("opt", OPT_IDS)
def test_foreach_matches_forloop(opt, reg, dtype):
    """0-d, empty, zero-size, transposed, sliced and channels-last tensors, where the regularizer fits."""
    low = dtype in (torch.bfloat16, torch.float16)
    kw = {"eps": 1e-3} if opt == "adabreg" and low else {}  # ε = 1e-8 is 0 in float16: m₁/√m₂ overflows
    twin = Twin(opt, _params(REGS[reg], dtype), REGS[reg], **kw).step(4)
    twin.check(dtype, support=not low)
    for p in twin.params[0]:
        assert not p.isnan().any()


# -- state dicts, hooks, closures ------------------------------------------------------------------
@pytest.mark.parametrize("reg", ["l1", "rows"])
@pytest.mark.parametrize("opt", OPT_IDS)
def test_state_dict_round_trip_then_identical_training(opt, reg):
    ps = _params(REGS[reg], torch.float32)
    a = OPTS[opt]([{"params": ps, "reg": REGS[reg]}])
    gen = torch.Generator().manual_seed(2)
    grads = [_grads(ps, gen, k) for k in range(6)]

    def steps(params, o, gs):
        for g in gs:
            for p, x in zip(params, g):
                p.grad = x.clone()
            o.step()

    steps(ps, a, grads[:3])
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    qs = [nn.Parameter(p.detach().clone()) for p in ps]
    b = OPTS[opt]([{"params": qs, "reg": Null()}], lr=123.0)
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert b.param_groups[0]["reg"] == REGS[reg] and b.param_groups[0]["lr"] == a.param_groups[0]["lr"]
    c = copy.deepcopy(a)
    rs = list(c.param_groups[0]["params"])
    steps(ps, a, grads[3:])
    steps(qs, b, grads[3:])
    steps(rs, c, grads[3:])
    for p, q, r in zip(ps, qs, rs):
        assert torch.equal(p, q) and torch.equal(p, r)


def test_old_state_dicts_load():
    """Earlier versions counted AdaBreg's steps in an int and had no ``maximize`` key."""
    p = nn.Parameter(torch.randn(3, 4))
    opt = AdaBreg([p], reg=L1(0.1))
    p.grad = torch.ones_like(p)
    opt.step()
    sd = opt.state_dict()
    sd["state"][0]["step"] = 1
    del sd["param_groups"][0]["maximize"]
    new = AdaBreg([nn.Parameter(p.detach().clone())], reg=L1(0.1))
    new.load_state_dict(sd)
    assert torch.is_tensor(new.state_dict()["state"][0]["step"]) and new.param_groups[0]["maximize"] is False
    new.param_groups[0]["params"][0].grad = torch.ones_like(p)
    new.step()
    assert new.state_dict()["state"][0]["step"].item() == 2


@pytest.mark.parametrize("opt", OPT_IDS)
def test_step_hooks_run_in_order_around_the_update(opt):
    p = nn.Parameter(torch.randn(4, 3))
    o = OPTS[opt]([p], reg=L1(0.01))
    seen = []

    def pre(optimizer, args, kwargs):
        seen.append(("pre", p.detach().clone()))
        p.grad.mul_(0)  # a pre-hook may rewrite the gradients (as pruning masks do)

    def post(optimizer, args, kwargs):
        seen.append(("post", p.detach().clone()))

    handles = [o.register_step_pre_hook(pre), o.register_step_post_hook(post),
               register_optimizer_step_post_hook(lambda *a: seen.append(("global", None)))]
    p.grad = torch.ones_like(p)
    o.step()
    for h in handles:
        h.remove()
    assert [s[0] for s in seen] == ["pre", "post", "global"]
    if opt != "proxsgd":  # a zero gradient leaves v, so θ = prox(δv₀) = θ₀ (ProxSGD shrinks θ)
        torch.testing.assert_close(seen[1][1], seen[0][1], rtol=0, atol=1e-7)
    p.grad = torch.ones_like(p)
    o.step()
    assert len(seen) == 3, "removed hooks must not run"


def _hook_log(make):
    """What every kind of step hook sees around two steps of ``make([p])``, the first with a pre-hook
    that replaces the step's arguments (a closure passed as a keyword)."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    p = nn.Parameter(torch.ones(3))
    o = make([p])
    log = []

    def rec(kind):
        return lambda opt, args, kwargs: log.append((kind, opt is o, args[0] is o, len(args), sorted(kwargs)))

    def swap(opt, args, kwargs):
        log.append(("swap", opt is o, args[0] is o, len(args), sorted(kwargs)))
        return (args[0],), {"closure": lambda: log.append("closure") or torch.tensor(1.0)}

    handles = [register_optimizer_step_pre_hook(rec("global-pre")), o.register_step_pre_hook(swap),
               o.register_step_post_hook(rec("post")), register_optimizer_step_post_hook(rec("global-post"))]
    try:
        p.grad = torch.ones(3)
        loss = o.step()
        handles[1].remove()
        o.step(None)
    finally:
        for h in handles:
            h.remove()
    return log, loss


@pytest.mark.parametrize("opt", OPT_IDS)
def test_step_hooks_see_what_torchs_step_wrapper_gives_them(opt):
    """Our step wrapper (``bregman.optim._hooks``) calls torch's global and per-optimizer hooks in
    torch's order, with torch's arguments, and honours a pre-hook's new arguments: as SGD's."""
    ours = _hook_log(lambda ps: OPTS[opt](ps, reg=L1(0.01)))
    torchs = _hook_log(lambda ps: torch.optim.SGD(ps, lr=0.1))
    assert ours[0] == torchs[0] and ours[1].item() == torchs[1].item() == 1.0


def test_a_pre_hook_returning_something_else_is_refused_as_by_torch():
    p = nn.Parameter(torch.ones(3))
    for o in (LinBreg([p], lr=0.1), torch.optim.SGD([p], lr=0.1)):
        o.register_step_pre_hook(lambda *a: "bad")
        with pytest.raises(RuntimeError, match="must return None or a tuple of"):
            o.step()


@pytest.mark.parametrize("opt", OPT_IDS)
def test_profiler_sees_the_step_as_torch_names_it_and_torch_does_not_wrap_it_again(opt):
    p = nn.Parameter(torch.ones(3))
    o = OPTS[opt]([p], reg=L1(0.01))
    step = type(o).step
    assert step.hooked and step.__code__.co_filename.endswith("_hooks.py"), "torch wrapped our step again"
    p.grad = torch.ones(3)
    with torch.profiler.profile() as prof:
        o.step()
    assert f"Optimizer.step#{type(o).__name__}.step" in {e.name for e in prof.events()}
    assert not torch.autograd._profiler_enabled()


@pytest.mark.parametrize("opt", OPT_IDS)
def test_closure_runs_once_with_grad_and_its_loss_is_returned(opt):
    p = nn.Parameter(torch.randn(5))
    o = OPTS[opt]([p], reg=L1(0.01))
    calls = []

    def closure():
        calls.append(torch.is_grad_enabled())
        o.zero_grad()
        loss = (p ** 2).sum()
        loss.backward()
        return loss

    before = p.detach().clone()
    loss = o.step(closure)
    assert calls == [True] and loss.item() == pytest.approx((before ** 2).sum().item())
    assert not torch.equal(before, p.detach())


@pytest.mark.parametrize("opt", OPT_IDS)
def test_no_gradient_no_change_and_no_state(opt):
    p, q = nn.Parameter(torch.randn(3)), nn.Parameter(torch.randn(3))
    o = OPTS[opt]([p, q], reg=L1(0.01))
    p.grad = torch.ones(3)
    before = q.detach().clone()
    o.step()
    assert torch.equal(q, before) and not o.state.get(q)


@pytest.mark.parametrize("opt", OPT_IDS)
def test_maximize_equals_minimizing_the_negative(opt):
    twin_max = Twin(opt, _params(REGS["l1"], torch.float64), REGS["l1"], maximize=True)
    neg = Twin(opt, _params(REGS["l1"], torch.float64), REGS["l1"])
    for k in range(4):
        grads = _grads(twin_max.params[0], torch.Generator().manual_seed(k), k)
        for side, sign in ((twin_max, 1), (neg, -1)):
            for ps, o in zip(side.params, side.opts):
                for p, g in zip(ps, grads):
                    p.grad = sign * g
                o.step()
    twin_max.check(torch.float64)
    _assert_same(twin_max.params[0], neg.params[0], torch.float64)


# -- LR schedulers, float and tensor lr ------------------------------------------------------------
SCHEDULERS = {
    "StepLR": lambda o: S.StepLR(o, step_size=2, gamma=0.5),
    "MultiStepLR": lambda o: S.MultiStepLR(o, milestones=[1, 3], gamma=0.3),
    "ExponentialLR": lambda o: S.ExponentialLR(o, gamma=0.7),
    "CosineAnnealingLR": lambda o: S.CosineAnnealingLR(o, T_max=4),
    "CosineAnnealingWarmRestarts": lambda o: S.CosineAnnealingWarmRestarts(o, T_0=2),
    "OneCycleLR": lambda o: S.OneCycleLR(o, max_lr=0.2, total_steps=8, cycle_momentum=False),
    "CyclicLR": lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.2, step_size_up=2, cycle_momentum=False),
    "LinearLR": lambda o: S.LinearLR(o, start_factor=0.2, total_iters=4),
    "ConstantLR": lambda o: S.ConstantLR(o, factor=0.5, total_iters=2),
    "PolynomialLR": lambda o: S.PolynomialLR(o, total_iters=5, power=2.0),
    "LambdaLR": lambda o: S.LambdaLR(o, lambda k: 1 / (k + 1)),
    "MultiplicativeLR": lambda o: S.MultiplicativeLR(o, lambda k: 0.8),
    "SequentialLR": lambda o: S.SequentialLR(o, [S.ConstantLR(o, factor=0.5, total_iters=2),
                                                 S.ExponentialLR(o, gamma=0.8)], milestones=[2]),
    "ReduceLROnPlateau": lambda o: S.ReduceLROnPlateau(o, factor=0.5, patience=0),
}


@pytest.mark.parametrize("tensor_lr", [False, True], ids=["float-lr", "tensor-lr"])
@pytest.mark.parametrize("sched", sorted(SCHEDULERS))
@pytest.mark.parametrize("opt", OPT_IDS)
def test_every_lr_scheduler(opt, sched, tensor_lr):
    lr = 0.1 if opt != "adabreg" else 0.01
    twin = Twin(opt, _params(REGS["l1"], torch.float32), REGS["l1"], lr=torch.tensor(lr) if tensor_lr else lr)
    scheds = [SCHEDULERS[sched](o) for o in twin.opts]
    lrs = []
    for _ in range(6):
        twin.step()
        for s in scheds:
            s.step(1.0) if isinstance(s, S.ReduceLROnPlateau) else s.step()
        lrs.append(float(twin.opts[0].param_groups[0]["lr"]))
        assert isinstance(twin.opts[0].param_groups[0]["lr"], torch.Tensor) == tensor_lr
    assert len(set(lrs)) > 1, "the schedule must move lr"
    twin.check()
    if tensor_lr:  # the same run with a float lr moved by the same schedule
        floats = Twin(opt, _params(REGS["l1"], torch.float32), REGS["l1"], lr=lr)
        fscheds = [SCHEDULERS[sched](o) for o in floats.opts]
        for _ in range(6):
            floats.step()
            for s in fscheds:
                s.step(1.0) if isinstance(s, S.ReduceLROnPlateau) else s.step()
        _assert_same(twin.params[0], floats.params[0])


def test_issue11_tensor_lr_moved_in_place_by_steplr():
    w = [nn.Parameter(torch.randn(1000, generator=torch.Generator().manual_seed(0)))]
    twin = Twin("linbreg", w, L1(0.1), lr=torch.tensor(0.1))
    scheds = [S.StepLR(o, 1, 0.1) for o in twin.opts]
    for _ in range(6):
        twin.step()
        for s in scheds:
            s.step()
    twin.check()


# -- complex parameters ------------------------------------------------------------------------------
@pytest.mark.parametrize("foreach", [None, False], ids=["default", "for-loop"])
def test_adabreg_on_complex_is_adam_on_the_real_view(foreach):
    g = torch.Generator().manual_seed(0)
    z = nn.Parameter(torch.randn(4, 3, dtype=torch.complex64, generator=g))
    r = nn.Parameter(torch.view_as_real(z.detach()).clone())
    a, b = AdaBreg([z], lr=0.01, foreach=foreach), torch.optim.Adam([r], lr=0.01, foreach=foreach)
    for _ in range(5):
        grad = torch.randn(4, 3, dtype=torch.complex64, generator=g)
        z.grad, r.grad = grad, torch.view_as_real(grad).clone()
        a.step()
        b.step()
    torch.testing.assert_close(torch.view_as_real(z.detach()), r.detach(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("reg", REG_IDS)
@pytest.mark.parametrize("opt", OPT_IDS)
def test_complex_foreach_matches_forloop(opt, reg):
    twin = Twin(opt, _params(REGS[reg], torch.float64, complex_=True), REGS[reg]).step(4)
    twin.check(torch.float64)


def test_complex_l1_shrinks_moduli():
    z = torch.tensor([3 + 4j, 0.3 + 0.4j, 0j], dtype=torch.complex128)
    torch.testing.assert_close(L1(1.0).prox(z, 1.0), torch.tensor([3 + 4j, 0, 0], dtype=torch.complex128) * 0.8)
    torch.testing.assert_close(L1(1.0).subgradient(z), torch.tensor([0.6 + 0.8j, 0.6 + 0.8j, 0]).to(z.dtype))


# -- torch.compile ------------------------------------------------------------------------------------
@pytest.mark.parametrize("opt", ["linbreg", "linbreg-momentum", "adabreg"])
def test_torch_compile_of_a_function_that_steps(opt):
    torch._dynamo.reset()
    twin = Twin(opt, [nn.Parameter(torch.randn(4, 3)), nn.Parameter(torch.randn(3))], L1(0.05))
    # aot_eager: dynamo's trace and AOT autograd's functionalization, without inductor's minute of
    # C++ compilation on this machine (inductor was checked by hand: equal to 3e-8 after 3 steps)
    compiled = torch.compile(twin.opts[0].step, backend="aot_eager", fullgraph=True)
    gen = torch.Generator().manual_seed(3)
    for k in range(3):
        grads = _grads(twin.params[0], gen, k)
        for ps, step in zip(twin.params, (compiled, twin.opts[1].step)):
            for p, g in zip(ps, grads):
                p.grad = g.clone()
            step()
    twin.check()
    if opt == "adabreg":
        assert torch.is_tensor(twin.opts[0].state[twin.params[0][0]]["step"])


# -- issue 11: every change a user makes between steps ----------------------------------------------
def test_issue11_raising_lambda_between_steps_shrinks_the_support():
    w = [nn.Parameter(torch.randn(1000, generator=torch.Generator().manual_seed(0)))]
    twin = Twin("linbreg", w, L1(0.1)).step()
    twin.both(lambda ps, o: o.param_groups[0].__setitem__("reg", L1(1.0))).step()
    twin.check()
    assert (twin.params[0][0] != 0).sum() < 500


REG_CHANGES = {
    "lambda up": (L1(0.01), L1(0.5)),
    "lambda down": (L1(0.5), L1(0.01)),
    "null to l1": (Null(), L1(0.1)),
    "rows to l1": (GroupL12(0.05, "rows"), L1(0.1)),
    "l1 to columns": (L1(0.1), GroupL12(0.2, "columns")),
}


@pytest.mark.parametrize("change", sorted(REG_CHANGES))
@pytest.mark.parametrize("opt", OPT_IDS)
def test_changing_reg_between_steps(opt, change):
    before, after = REG_CHANGES[change]
    twin = Twin(opt, [nn.Parameter(torch.randn(8, 6) * 0.3)], before).step(2)
    twin.both(lambda ps, o: o.param_groups[0].__setitem__("reg", after)).step(3)
    twin.check()


@pytest.mark.parametrize("opt", OPT_IDS)
def test_load_state_dict_with_another_lambda(opt):
    twin = Twin(opt, [nn.Parameter(torch.randn(8, 6) * 0.3)], L1(0.01)).step(2)

    def reload(ps, o):
        sd = o.state_dict()
        sd["param_groups"][0]["reg"] = L1(0.4).to_dict()
        o.load_state_dict(sd)

    twin.both(reload).step(2)
    twin.check()
    assert twin.opts[0].param_groups[0]["reg"] == L1(0.4)


def _lookahead(ps, o):
    """Lookahead's write-back: θ ← slow + α(θ − slow), through ``.data``."""
    for p in ps:
        slow = torch.zeros_like(p)
        p.data.copy_(slow + 0.5 * (p.data - slow))


def _ema(ps, o):
    """An EMA swapped in for evaluation and its weights written back through ``.data``."""
    for p in ps:
        p.data = 0.9 * p.data + 0.1 * torch.ones_like(p)


def _numpy(ps, o):
    for p in ps:
        p.data.numpy()[...] = 0.25


WRITES = {
    "data.copy_": lambda ps, o: [p.data.copy_(torch.full_like(p, 0.3)) for p in ps],
    "nn.init on .data": lambda ps, o: [nn.init.kaiming_uniform_(p.data, generator=torch.Generator().manual_seed(5))
                                       for p in ps if p.dim() >= 2],
    "numpy view": _numpy,
    "vector_to_parameters": lambda ps, o: nn.utils.vector_to_parameters(
        torch.linspace(-1, 1, sum(p.numel() for p in ps)), ps),
    "lookahead write-back": _lookahead,
    "ema write-back": _ema,
    "no_grad copy_": lambda ps, o: [p.copy_(torch.full_like(p, -0.2)) for p in ps],
}


@pytest.mark.parametrize("write", sorted(WRITES))
@pytest.mark.parametrize("opt", OPT_IDS)
def test_writes_to_parameters_between_steps(opt, write):
    """Whatever is written to θ between steps, the next step gives what the reference gives."""
    twin = Twin(opt, [nn.Parameter(torch.randn(8, 6) * 0.3), nn.Parameter(torch.randn(6) * 0.3)], L1(0.05))
    twin.step(2)
    with torch.no_grad():
        twin.both(WRITES[write])
    twin.step(3)
    twin.check()


@pytest.mark.parametrize("opt", OPT_IDS)
def test_tensor_swapped_into_a_param_group(opt):
    twin = Twin(opt, [nn.Parameter(torch.randn(8, 6) * 0.3)], L1(0.01)).step(2)
    swapped = nn.Parameter(torch.zeros(5))

    def swap(ps, o):
        new = nn.Parameter(swapped.detach().clone())
        o.param_groups[0]["params"][0] = new
        ps[0] = new

    twin.both(swap)
    twin.gen = torch.Generator().manual_seed(7)
    twin.step(3)
    twin.check()
    assert twin.params[0][0].abs().max() > 0, "the swapped-in tensor is stepped"


@pytest.mark.parametrize("opt", OPT_IDS)
def test_param_group_added_between_steps(opt):
    twin = Twin(opt, [nn.Parameter(torch.randn(8, 6) * 0.3)], L1(0.01)).step(2)
    extra = torch.randn(4, 4) * 0.3

    def add(ps, o):
        p = nn.Parameter(extra.clone())
        o.add_param_group({"params": [p], "reg": GroupL12(0.05, "rows"), "lr": 0.05})
        ps.append(p)

    twin.both(add).step(3)
    twin.check()


@pytest.mark.parametrize("opt", OPT_IDS)
def test_hyperparameters_changed_between_steps(opt):
    twin = Twin(opt, [nn.Parameter(torch.randn(8, 6) * 0.3)], L1(0.05)).step(2)
    keys = {"lr": 0.03, "maximize": True}
    keys.update({"delta": 2.0} if opt != "proxsgd" else {})
    keys.update({"momentum": 0.5} if opt.startswith("linbreg") else {})
    keys.update({"betas": (0.8, 0.99), "eps": 1e-3} if opt == "adabreg" else {})
    twin.both(lambda ps, o: o.param_groups[0].update(keys)).step(3)
    twin.check()


# -- zero-size tensors and non-finite numbers ------------------------------------------------------
@pytest.mark.parametrize("shape,reg", [((5, 0), "rows"), ((0, 5), "columns"), ((4, 0, 3, 3), "filters"),
                                       ((4, 4, 0, 0), "kernels"), ((0, 3, 3, 3), "kernels")])
@pytest.mark.parametrize("opt", OPT_IDS)
def test_zero_size_tensors_with_group_regularizers(opt, shape, reg):
    p, q = nn.Parameter(torch.zeros(shape)), nn.Parameter(torch.ones(3))
    o = OPTS[opt]([{"params": [p], "reg": REGS[reg]}, {"params": [q]}])
    for _ in range(2):
        p.grad, q.grad = torch.zeros(shape), torch.ones(3)
        o.step()
    assert p.shape == shape and not q.isnan().any()


@pytest.mark.parametrize("bad", [math.nan, math.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("reg", REG_IDS)
@pytest.mark.parametrize("opt", OPT_IDS)
def test_non_finite_gradient_entries_propagate_alike_on_every_path(opt, reg, bad):
    twin = Twin(opt, _params(REGS[reg], torch.float32)[:2], REGS[reg]).step()
    gen = torch.Generator().manual_seed(4)
    grads = _grads(twin.params[0], gen, 0)
    grads[0].view(-1)[0] = bad
    for ps, o in zip(twin.params, twin.opts):
        for p, g in zip(ps, grads):
            p.grad = g.clone()
        o.step()
    twin.step()
    twin.check(support=False)
    theta = twin.params[0][0].detach()
    assert not theta.view(-1)[0].isfinite(), "a non-finite gradient is not turned into a finite weight"


def test_nan_gradient_with_rows_gives_a_nan_row_not_zeros():
    p = nn.Parameter(torch.randn(4, 6))
    o = LinBreg([p], lr=0.1, reg=GroupL12(0.01, "rows"))
    g = torch.zeros(4, 6)
    g[1, 2] = math.nan
    p.grad = g
    o.step()
    assert p[1].isnan().all() and not p[[0, 2, 3]].isnan().any()


# -- the private torch functions we rely on, where torch.optim relies on them too ---------------------
def test_fused_sgd_kernel_computes_what_linbreg_relies_on():
    """``torch._fused_sgd_`` (SGD(fused=True)) on (v, g, m) with lr = 1, dampening = 1 − c:
    m ← βm + c·g, v ← v − m; bit for bit the foreach update when c is exact in the dtype."""
    for dtype in (torch.float32, torch.float64):
        gen = torch.Generator().manual_seed(0)
        v, g, m = (torch.randn(1000, generator=gen, dtype=dtype) for _ in range(3))
        v2, m2 = v.clone(), m.clone()
        beta, c = 0.5, 0.25
        torch._fused_sgd_([v], [g], [m], weight_decay=0.0, momentum=beta, lr=1.0, dampening=1 - c,
                          nesterov=False, maximize=False, is_first_step=False)
        m2.mul_(beta).add_(g, alpha=c)
        v2.sub_(m2)
        assert torch.equal(m, m2) and torch.equal(v, v2)


def test_fused_adam_kernel_computes_what_adabreg_relies_on():
    """``torch._fused_adam_`` (Adam(fused=True)) reads the already counted step and does Adam's update."""
    f64 = dict(dtype=torch.float64)
    v, g, m1, m2 = torch.zeros(3, **f64), torch.ones(3, **f64), torch.zeros(3, **f64), torch.zeros(3, **f64)
    step = torch.tensor(1.0, **f64)
    # β1 = 1/2, β2 = 3/4, step 1: m1 = 1/2, m2 = 1/4, v = 0 − (1/(1/2))·(1/2)/(√(1/4)/√(1/4) + 0) = −1.
    torch._fused_adam_([v], [g], [m1], [m2], [], [step], lr=1.0, beta1=0.5, beta2=0.75, weight_decay=0.0,
                       eps=0.0, amsgrad=False, maximize=False)
    assert m1.tolist() == [0.5] * 3 and m2.tolist() == [0.25] * 3 and v.tolist() == [-1.0] * 3
    assert step.item() == 1.0, "the kernel must not count the step itself"


def test_group_tensors_by_device_and_dtype_keeps_lists_parallel():
    a, b, c = torch.zeros(2), torch.zeros(3, dtype=torch.float64), torch.ones(4)
    grouped = torch.optim.Optimizer._group_tensors_by_device_and_dtype([[a, b, c], [a + 1, b + 1, c + 1]])
    lists = {dtype: ls for (_dev, dtype), (ls, _idx) in grouped.items()}
    assert [t.shape for t in lists[torch.float32][0]] == [(2,), (4,)]
    assert torch.equal(lists[torch.float32][1][1], c + 1) and lists[torch.float64][0][0] is b


def test_softshrink_with_out_is_the_l1_prox():
    """``torch.nn.functional.softshrink`` takes ``out=`` (it is the generated binding; undocumented)."""
    x = torch.tensor([1.5, -0.2, 0.5, -2.0, math.nan, math.inf])
    dst = torch.empty_like(x)
    out = torch.nn.functional.softshrink(x, 0.5, out=dst)
    assert out is dst
    torch.testing.assert_close(out, torch.tensor([1.0, 0.0, 0.0, -1.5, math.nan, math.inf]), equal_nan=True)
    torch.nn.functional.softshrink(x, 0.5, out=x)  # in place
    torch.testing.assert_close(x, out, equal_nan=True)


def test_foreach_copy_copies_every_pair_in_place():
    """``torch._foreach_copy_`` (torch.optim's ASGD and Rprop use it): Null's θ = v for a whole group."""
    dst, src = [torch.zeros(3), torch.zeros(2, 2)], [torch.arange(3.0), torch.ones(2, 2)]
    ids = [id(t) for t in dst]
    torch._foreach_copy_(dst, src)
    assert [id(t) for t in dst] == ids
    assert all(torch.equal(d, s) for d, s in zip(dst, src))


def test_foreach_norm_gives_each_tensors_l2_norm_and_propagates_nonfinite():
    """``torch._foreach_norm`` (what torch.nn.utils.get_total_norm calls): the training loop's
    non-finite check sums these norms."""
    ts = [torch.tensor([3.0, 4.0]), torch.ones(2, 2, dtype=torch.float64), torch.tensor([1.0, math.nan]),
          torch.tensor([-math.inf])]
    norms = torch._foreach_norm(ts)
    assert [n.dtype for n in norms] == [t.dtype for t in ts] and all(n.dim() == 0 for n in norms)
    assert norms[0].item() == 5.0 and norms[1].item() == 2.0
    assert math.isnan(norms[2].item()) and norms[3].item() == math.inf
