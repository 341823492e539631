"""The fast paths (fused kernels where exact, foreach otherwise) agree with the single-tensor reference."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from bregman import AdaBreg, LinBreg, ProxSGD
from bregman.regularizers import L1, GroupL12


def _params(dtype, channels_last=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(8, 4, 3, 3), (8,), (10, 32), (10,)]
    ps = []
    for s in shapes:
        t = torch.randn(s, generator=g, dtype=dtype) * (torch.rand(s, generator=g, dtype=dtype) < 0.3)
        if channels_last and len(s) == 4:
            t = t.to(memory_format=torch.channels_last)
        ps.append(nn.Parameter(t))
    return ps


def _groups(ps):
    return [{"params": [ps[0]], "reg": GroupL12(0.1, "kernels")}, {"params": [ps[2]], "reg": L1(0.05)},
            {"params": [ps[1], ps[3]]}]


def _run(make, dtype, foreach, channels_last=False, contiguous_grads=False, steps=20):
    ps = _params(dtype, channels_last)
    opt = make(_groups(ps), foreach)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p in ps:
            grad = torch.randn(p.shape, generator=g, dtype=dtype)
            p.grad = grad.contiguous() if contiguous_grads else grad.to(memory_format=torch.preserve_format)
            if not contiguous_grads and p.ndim == 4 and channels_last:
                p.grad = p.grad.to(memory_format=torch.channels_last)
        opt.step()
    return [p.detach().clone() for p in ps]


CASES = {
    # lr·(1 − β) exact in binary: the fused kernel's coefficient equals ours, so the fused path runs
    "linbreg-momentum-exact": lambda gr, fe: LinBreg(gr, lr=0.5, momentum=0.5, foreach=fe),
    "linbreg-momentum": lambda gr, fe: LinBreg(gr, lr=0.1, momentum=0.9, delta=2.0, foreach=fe),
    "linbreg": lambda gr, fe: LinBreg(gr, lr=0.1, foreach=fe),
    "adabreg": lambda gr, fe: AdaBreg(gr, lr=1e-2, delta=1.5, foreach=fe),
    "proxsgd": lambda gr, fe: ProxSGD(gr, lr=0.1, foreach=fe),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("channels_last,contiguous_grads", [(False, False), (True, False), (True, True)],
                         ids=["contiguous", "channels_last", "mixed-layouts"])
def test_fast_path_equals_reference_float64(name, channels_last, contiguous_grads):
    ref = _run(CASES[name], torch.float64, False, channels_last, contiguous_grads)
    fast = _run(CASES[name], torch.float64, True, channels_last, contiguous_grads)
    for a, b in zip(ref, fast):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fast_path_equals_reference_float32(name):
    ref = _run(CASES[name], torch.float32, False)
    fast = _run(CASES[name], torch.float32, True)
    for a, b in zip(ref, fast):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_group_of_mixed_dtypes_is_split_and_equals_reference(name):
    """One param group with float32 and float64 tensors: the foreach path splits it by dtype."""
    def run(foreach):
        g = torch.Generator().manual_seed(3)
        ps = [nn.Parameter(torch.randn(6, 5, generator=g, dtype=dt)) for dt in (torch.float32, torch.float64)]
        opt = CASES[name]([{"params": ps, "reg": L1(0.05)}], foreach)
        for _ in range(5):
            for p in ps:
                p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
            opt.step()
        return ps
    for a, b in zip(run(False), run(True)):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
