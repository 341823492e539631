"""Optimizer step time on a CIFAR ResNet-18's parameters: the Bregman optimizers vs SGD / Adam.

Every optimizer gets its own copy of the 11.2 M parameters of a CIFAR ResNet-18 (kuangliu
layout), with conv and linear weights 5 % non-zero (the paper's sparse start), and the same
fixed, precomputed float32 gradients. Param groups follow real training: conv weights under the
regularizer, the linear weight under ℓ1, BN weights and biases unregularized. After ``--warmup``
steps (so v and the moments look as after a few steps), the optimizers are stepped round-robin
(the order rotated every round), so that noise from other processes hits all of them alike; the
table shows median ms per step, the ratio to the baseline measured in the same run, the target,
and the optimizer state's bytes per parameter byte.

    python benchmarks/optimizer_step.py [--steps 50] [--warmup 5] [--threads N] [--json PATH]

Exit status is 0 even when a target is missed (timings on a shared machine are noisy); the
PASS/FAIL column and ``--json`` carry the verdict.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
try:
    import bregman  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))

from bregman import AdaBreg, LinBreg, ProxSGD  # noqa: E402
from bregman.regularizers import L1, GroupL12, Null, Regularizer  # noqa: E402

DENSITY = 0.05  # fraction of non-zero conv / linear weights
LR = 0.1
LAM = 1.0  # λ ≫ accumulated τ·g below, so the 5 % support stays put during the run
GRAD_SCALE = 1e-3


# -- the parameter shapes ------------------------------------------------------------------------
def resnet18_shapes() -> list[tuple[str, tuple[int, ...]]]:
    """(kind, shape) of every parameter of a kuangliu CIFAR ResNet-18, kind ∈ {conv, linear, other}."""
    out: list[tuple[str, tuple[int, ...]]] = []

    def conv_bn(cin: int, cout: int, k: int) -> None:
        out.extend([("conv", (cout, cin, k, k)), ("other", (cout,)), ("other", (cout,))])

    conv_bn(3, 64, 3)
    cin = 64
    for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for s in (stride, 1):
            conv_bn(cin, planes, 3)
            conv_bn(planes, planes, 3)
            if s != 1 or cin != planes:
                conv_bn(cin, planes, 1)
            cin = planes
    out.extend([("linear", (10, 512)), ("other", (10,))])
    return out


def model_shapes() -> tuple[list[tuple[str, tuple[int, ...]]], str]:
    """The shapes from ``bregman.models.create_model("resnet18")``, or the hard-coded list."""
    try:
        from bregman import param_groups
        from bregman.models import create_model

        model = create_model("resnet18")
        shapes = []
        for g in param_groups(model, linear=L1(1.0), conv=L1(1.0)):
            shapes += [(g["name"], tuple(p.shape)) for p in g["params"]]
        return shapes, "bregman.models.create_model('resnet18')"
    except Exception as e:  # noqa: BLE001 - the models package is optional here
        return resnet18_shapes(), f"hard-coded shapes ({type(e).__name__}: {e})"


# -- the problem: parameters, gradients, param groups -------------------------------------------
def make_inputs(shapes, seed: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Sparse initial values (5 % of conv/linear weights non-zero) and fixed float32 gradients."""
    gen = torch.Generator().manual_seed(seed)
    init, grads = [], []
    for kind, shape in shapes:
        x = torch.randn(shape, generator=gen) * 0.05
        if kind in ("conv", "linear"):
            x *= torch.rand(shape, generator=gen) < DENSITY
        init.append(x.contiguous())
        grads.append((torch.randn(shape, generator=gen) * GRAD_SCALE).contiguous())
    return init, grads


def make_params(shapes, init, grads, *, conv: Regularizer | None, linear: Regularizer | None):
    """A fresh set of leaf parameters (grads attached) and its param groups."""
    groups = {k: [] for k in ("conv", "linear", "other")}
    params = []
    for (kind, _shape), x, g in zip(shapes, init, grads):
        p = x.clone().requires_grad_(True)
        p.grad = g  # shared, read-only: no optimizer here writes into its gradients
        groups[kind].append(p)
        params.append(p)
    regs = {"conv": conv, "linear": linear, "other": Null()}
    if conv is None and linear is None:  # torch optimizers: no `reg` key
        return params, [{"params": ps, "name": k} for k, ps in groups.items() if ps]
    return params, [{"params": ps, "name": k, "reg": regs[k] or Null()} for k, ps in groups.items() if ps]


@dataclass
class Case:
    name: str
    build: Callable[[list], torch.optim.Optimizer]
    conv: Regularizer | None = None
    linear: Regularizer | None = None
    baseline: str | None = None  # name of the case this one is compared with
    target: float | None = None  # max ratio vs baseline
    times: list[float] = field(default_factory=list)
    opt: torch.optim.Optimizer | None = None
    params: list | None = None


def cases() -> list[Case]:
    l1 = L1(LAM)
    kernels = GroupL12(LAM, "kernels")
    return [
        Case("SGD", lambda g: torch.optim.SGD(g, lr=LR, foreach=True)),
        Case("SGD-momentum", lambda g: torch.optim.SGD(g, lr=LR, momentum=0.9, foreach=True)),
        Case("Adam", lambda g: torch.optim.Adam(g, lr=1e-3, foreach=True)),
        Case("LinBreg-l1", lambda g: LinBreg(g, lr=LR), l1, l1, "SGD-momentum", 1.0),
        Case("LinBreg-l1-momentum", lambda g: LinBreg(g, lr=LR, momentum=0.9), l1, l1, "SGD-momentum", 1.3),
        Case("AdaBreg-l1", lambda g: AdaBreg(g, lr=1e-3), l1, l1, "Adam", 1.1),
        Case("LinBreg-kernels", lambda g: LinBreg(g, lr=LR), kernels, l1, "SGD-momentum", 2.0),
        Case("ProxSGD-l1", lambda g: ProxSGD(g, lr=LR), l1, l1, "SGD", None),
    ]


def state_ratio(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> float:
    """Bytes of all tensors in ``opt.state`` per byte of parameters."""
    state = sum(v.nbytes for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor))
    return state / sum(p.nbytes for p in params)


def _loadavg() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def git_revision() -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                           text=True, timeout=10)
        return r.stdout.strip() or None if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=50, help="timed steps per optimizer (default 50)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--json", type=Path, default=None, help="write the results to this JSON file")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        ap.error("--steps must be >= 1 and --warmup >= 0")
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    shapes, source = model_shapes()
    init, grads = make_inputs(shapes, args.seed)
    n_params = sum(math.prod(s) for _, s in shapes)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {n_params / 1e6:.2f} M parameters "
          f"in {len(shapes)} tensors from {source}; {DENSITY:.0%} of weights non-zero")
    load_before = _loadavg()

    todo = cases()
    for c in todo:
        c.params, groups = make_params(shapes, init, grads, conv=c.conv, linear=c.linear)
        c.opt = c.build(groups)
        for _ in range(max(args.warmup, 1)):  # ≥ 1: creates v and the moments
            c.opt.step()

    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(args.steps):
            k = r % len(todo)
            for c in todo[k:] + todo[:k]:  # rotate the order so no case always follows the same one
                t0 = time.perf_counter()
                c.opt.step()
                c.times.append(time.perf_counter() - t0)
    finally:
        if gc_was_enabled:
            gc.enable()

    med = {c.name: statistics.median(c.times) for c in todo}
    rows = []
    for c in todo:
        ratio = med[c.name] / med[c.baseline] if c.baseline else None
        # Paired ratio: the median over rounds of (this step / its baseline's step in the same round).
        paired = (statistics.median(a / b for a, b in zip(c.times, next(x for x in todo if x.name == c.baseline).times))
                  if c.baseline else None)
        verdict = None if c.target is None else ("PASS" if ratio <= c.target else "FAIL")
        rows.append(dict(method=c.name, ms=med[c.name] * 1e3, baseline=c.baseline, ratio=ratio,
                         paired_ratio=paired, target=c.target, verdict=verdict,
                         state_bytes_per_param_byte=state_ratio(c.opt, c.params),
                         min_ms=min(c.times) * 1e3))

    head = f"{'method':<22}{'ms/step':>9}{'vs':>14}{'ratio':>8}{'target':>8}{'':>6}{'state B/B':>11}"
    print(head)
    print("-" * len(head))
    for r in rows:
        vs = r["baseline"] or "-"
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "-"
        target = f"<={r['target']:.1f}x" if r["target"] is not None else "-"
        print(f"{r['method']:<22}{r['ms']:>9.2f}{vs:>14}{ratio:>8}{target:>8}{r['verdict'] or '':>6}"
              f"{r['state_bytes_per_param_byte']:>11.2f}")
    failed = [r["method"] for r in rows if r["verdict"] == "FAIL"]
    print(f"{args.steps} timed steps each (median), after {args.warmup} warm-up steps; "
          + (f"missed: {', '.join(failed)}" if failed else "all targets met"))
    loads = [x for x in (load_before, _loadavg()) if x is not None]
    load = max(loads) if loads else None
    cores = os.cpu_count() or 1
    if load is not None and load > cores:
        print(f"note: load average {load:.1f} on {cores} cores during the run: other processes compete for "
              f"the CPU, so timings (and ratios) are noisy; rerun on a quiet machine to judge the targets")

    if args.json:
        out = dict(benchmark="optimizer_step", torch=torch.__version__, threads=torch.get_num_threads(),
                   git_revision=git_revision(), python=platform.python_version(), machine=platform.machine(),
                   processor=platform.processor() or None, n_params=n_params, n_tensors=len(shapes),
                   cpu_count=os.cpu_count(), load_average=load, shapes_from=source, density=DENSITY,
                   steps=args.steps, warmup=args.warmup, seed=args.seed,
                   results=rows, all_targets_met=not failed)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
