"""Optimizer step time: the Bregman optimizers vs torch.optim.SGD / Adam, on ResNet-18 and MLP shapes.

Every optimizer gets its own copy of a model's parameters (a CIFAR ResNet-18, 11.2 M, and the
paper's MNIST MLP 784-200-80-10, 0.18 M), with conv and linear weights 5 % non-zero (the paper's
sparse start), and the same fixed, precomputed float32 gradients. Param groups follow real
training: conv weights under the regularizer, linear weights under ℓ1, BN weights and biases
unregularized. After ``--warmup`` steps (so v and the moments look as after a few steps), the
optimizers are timed in interleaved rounds (the order rotated every round, so noise from other
processes hits all of them alike): each round times ``--inner`` consecutive steps of each. A
case's ratio is the median over rounds of (its time / its baseline's time in the same round);
the ratio of the medians is printed beside it. The CPU model and its SIMD flags are printed and
saved, since the ratios depend on the machine. Rows ending in ", no fused kernel" (torch's fused
CPU kernels off) and ", torch's wrapper" (the step wrapped as torch.optim wraps SGD's and Adam's,
with a profiler record on every step) show what each of those is worth, against the row above them.

    python benchmarks/optimizer_step.py [--rounds 30] [--threads N] [--clock wall|cpu] [--models resnet18,mlp] [--json PATH]

``--clock cpu`` (with ``--threads 1``) times the CPU time of this thread instead of wall time, so that
time the thread waits while other processes run is not counted (use it on a loaded machine).

Exit status is 0 even when a target is missed (timings on a shared machine are noisy); the
PASS/FAIL column and ``--json`` carry the verdict.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import importlib
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
# the modules (``bregman.optim.linbreg`` the attribute is the functional of that name)
linbreg, adabreg = (importlib.import_module(f"bregman.optim.{m}") for m in ("linbreg", "adabreg"))
from bregman._atomic import write_text_atomic  # noqa: E402
from bregman.regularizers import L1, GroupL12, Null, Regularizer  # noqa: E402

DENSITY = 0.05  # fraction of non-zero conv / linear weights
LR = 0.1
LAM = 1.0  # λ ≫ accumulated τ·g below, so the 5 % support stays put during the run
GRAD_SCALE = 1e-3
#: /proc/cpuinfo flags that say which vector instructions the CPU has
SIMD_PREFIXES = ("sse", "ssse", "avx", "fma", "f16c", "amx", "neon", "asimd", "sve")
#: model → its shapes' source and the steps timed back to back per round (small steps: more)
MODELS = {"resnet18": 1, "mlp": 20}


# -- the machine ---------------------------------------------------------------------------------
def cpu_info() -> dict[str, object]:
    """CPU model name and SIMD flags from /proc/cpuinfo (platform's answer where there is none)."""
    model, flags = platform.processor() or platform.machine(), []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model in (platform.processor(), platform.machine()):
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = sorted(f for f in value.split() if f.startswith(SIMD_PREFIXES))
    except OSError:
        pass
    return {"model": model, "simd_flags": flags, "cores": os.cpu_count()}


#: the files whose uncommitted changes would make the revision's figures not the revision's
MEASURED = ("src/bregman/optim", "src/bregman/regularizers.py", "benchmarks/optimizer_step.py")


def git_revision() -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                           text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *MEASURED], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (r.stdout.strip() + ("+dirty" if dirty else "")) or None if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


# -- the parameter shapes ------------------------------------------------------------------------
def _kind(shape: tuple[int, ...]) -> str:
    return {4: "conv", 2: "linear"}.get(len(shape), "other")


def resnet18_shapes() -> list[tuple[int, ...]]:
    """Every parameter shape of a kuangliu CIFAR ResNet-18 (the fallback to the models package)."""
    out: list[tuple[int, ...]] = []

    def conv_bn(cin: int, cout: int, k: int) -> None:
        out.extend([(cout, cin, k, k), (cout,), (cout,)])

    conv_bn(3, 64, 3)
    cin = 64
    for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for s in (stride, 1):
            conv_bn(cin, planes, 3)
            conv_bn(planes, planes, 3)
            if s != 1 or cin != planes:
                conv_bn(cin, planes, 1)
            cin = planes
    return out + [(10, 512), (10,)]


def mlp_shapes() -> list[tuple[int, ...]]:
    sizes = (784, 200, 80, 10)
    return [s for a, b in zip(sizes, sizes[1:]) for s in ((b, a), (b,))]


def model_shapes(name: str) -> tuple[list[tuple[str, tuple[int, ...]]], str]:
    """(kind, shape) of the parameters of ``bregman.models.create_model(name)``, or the hard-coded list."""
    try:
        from bregman.models import create_model

        shapes = [tuple(p.shape) for p in create_model(name).parameters()]
        source = f"bregman.models.create_model({name!r})"
    except Exception as e:  # noqa: BLE001 - the models package is optional here
        shapes = {"resnet18": resnet18_shapes, "mlp": mlp_shapes}[name]()
        source = f"hard-coded shapes ({type(e).__name__}: {e})"
    return [(_kind(s), s) for s in shapes], source


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
    if conv is None and linear is None:  # torch optimizers: no `reg` key
        return params, [{"params": ps} for ps in groups.values() if ps]
    regs = {"conv": conv, "linear": linear, "other": Null()}
    return params, [{"params": ps, "reg": regs[k] or Null()} for k, ps in groups.items() if ps]


@dataclass
class Case:
    name: str
    build: Callable[[list], torch.optim.Optimizer]
    conv: Regularizer | None = None
    linear: Regularizer | None = None
    baseline: str | None = None  # name of the case this one is compared with
    target: float | None = None  # max ratio vs baseline
    needs_conv: bool = False
    fused: bool = True  # False: torch's fused SGD/Adam kernels switched off (the foreach ops instead)
    torch_wrapper: bool = False  # True: the step wrapped by torch.optim's own wrapper (a profiler record per step)
    times: list[float] = field(default_factory=list)
    opt: torch.optim.Optimizer | None = None
    params: list | None = None


def cases(has_conv: bool) -> list[Case]:
    l1 = L1(LAM)
    todo = [
        Case("SGD", lambda g: torch.optim.SGD(g, lr=LR, foreach=True)),
        Case("SGD-momentum", lambda g: torch.optim.SGD(g, lr=LR, momentum=0.9, foreach=True)),
        Case("Adam", lambda g: torch.optim.Adam(g, lr=1e-3, foreach=True)),
        Case("LinBreg-l1", lambda g: LinBreg(g, lr=LR), l1, l1, "SGD-momentum", 1.0),
        Case("LinBreg-l1-momentum", lambda g: LinBreg(g, lr=LR, momentum=0.9), l1, l1, "SGD-momentum", 1.3),
        Case("AdaBreg-l1", lambda g: AdaBreg(g, lr=1e-3), l1, l1, "Adam", 1.0),
        Case("LinBreg-kernels", lambda g: LinBreg(g, lr=LR), GroupL12(LAM, "kernels"), l1, "SGD-momentum", 2.0,
             needs_conv=True),
        Case("ProxSGD-l1", lambda g: ProxSGD(g, lr=LR), l1, l1, "SGD", None),
        # what torch's fused kernels are worth here: the same steps with the foreach ops only
        Case("LinBreg-l1-momentum, no fused kernel", lambda g: LinBreg(g, lr=LR, momentum=0.9), l1, l1,
             "LinBreg-l1-momentum", fused=False),
        Case("AdaBreg-l1, no fused kernel", lambda g: AdaBreg(g, lr=1e-3), l1, l1, "AdaBreg-l1", fused=False),
        # what our step wrapper (bregman.optim._hooks: no profiler record unless profiling) is worth
        Case("LinBreg-l1-momentum, torch's wrapper", lambda g: LinBreg(g, lr=LR, momentum=0.9), l1, l1,
             "LinBreg-l1-momentum", torch_wrapper=True),
    ]
    return [c for c in todo if has_conv or not c.needs_conv]


@contextlib.contextmanager
def fused_kernels(on: bool):
    """Let the optimizers use torch's fused CPU kernels where exact (their default), or not."""
    saved = linbreg.fused_ok, adabreg.fused_ok
    if not on:
        linbreg.fused_ok = adabreg.fused_ok = lambda lists: False
    try:
        yield
    finally:
        linbreg.fused_ok, adabreg.fused_ok = saved


def state_ratio(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> float:
    """Bytes of all tensors in ``opt.state`` (but step counters) per byte of parameters."""
    state = sum(v.nbytes for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor) and v.dim())
    return state / sum(p.nbytes for p in params)


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def run_model(name: str, rounds: int, warmup: int, inner: int, seed: int, clock: str = "wall") -> dict[str, object]:
    """Time every case on ``name``'s shapes; returns its rows and what they were measured on."""
    shapes, source = model_shapes(name)
    init, grads = make_inputs(shapes, seed)
    n_params = sum(math.prod(s) for _, s in shapes)
    print(f"\n{name}: {n_params / 1e6:.2f} M parameters in {len(shapes)} tensors from {source}; "
          f"{DENSITY:.0%} of weights non-zero; {rounds} rounds of {inner} step(s) each")
    todo = cases(any(k == "conv" for k, _ in shapes))
    for c in todo:
        c.params, groups = make_params(shapes, init, grads, conv=c.conv, linear=c.linear)
        c.opt = c.build(groups)
        if c.torch_wrapper:
            c.opt.step = functools.partial(torch.optim.Optimizer.profile_hook_step(type(c.opt).step.__wrapped__), c.opt)
        with fused_kernels(c.fused):
            for _ in range(max(warmup, 1)):  # ≥ 1: creates v and the moments
                c.opt.step()

    tick = time.thread_time if clock == "cpu" else time.perf_counter
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            k = r % len(todo)
            for c in todo[k:] + todo[:k]:  # rotate the order so no case always follows the same one
                step = c.opt.step
                with fused_kernels(c.fused):
                    t0 = tick()
                    for _ in range(inner):
                        step()
                    c.times.append((tick() - t0) / inner)
    finally:
        if gc_was_enabled:
            gc.enable()

    by_name = {c.name: c for c in todo}
    rows = []
    for c in todo:
        base = by_name.get(c.baseline)
        paired = statistics.median(a / b for a, b in zip(c.times, base.times)) if base else None
        of_medians = statistics.median(c.times) / statistics.median(base.times) if base else None
        verdict = None if c.target is None else ("PASS" if paired <= c.target else "FAIL")
        rows.append(dict(method=c.name, ms=statistics.median(c.times) * 1e3, min_ms=min(c.times) * 1e3,
                         baseline=c.baseline, ratio=paired, ratio_of_medians=of_medians, target=c.target,
                         verdict=verdict, state_bytes_per_param_byte=state_ratio(c.opt, c.params)))

    head = f"{'method':<37}{'ms/step':>9}{'vs':>22}{'ratio':>8}{'(of medians)':>14}{'target':>8}{'':>6}{'state B/B':>11}"
    print(head)
    print("-" * len(head))
    for r in rows:
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "-"
        of_med = f"{r['ratio_of_medians']:.2f}x" if r["ratio_of_medians"] is not None else "-"
        target = f"<={r['target']:.1f}x" if r["target"] is not None else "-"
        print(f"{r['method']:<37}{r['ms']:>9.3f}{r['baseline'] or '-':>22}{ratio:>8}{of_med:>14}{target:>8}"
              f"{r['verdict'] or '':>6}{r['state_bytes_per_param_byte']:>11.2f}")
    return dict(model=name, shapes_from=source, n_params=n_params, n_tensors=len(shapes), inner=inner,
                results=rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=30, help="interleaved timing rounds (default 30)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {sorted(MODELS)}")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall time, or this thread's CPU time (for a loaded machine; with --threads 1)")
    ap.add_argument("--json", type=Path, default=None, help="write the results to this JSON file (atomically)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.rounds < 1 or args.warmup < 0:
        ap.error("--rounds must be >= 1 and --warmup >= 0")
    if not models or set(models) - set(MODELS):
        ap.error(f"--models: choose from {sorted(MODELS)}, got {args.models!r}")
    if args.threads is not None:
        if args.threads < 1:
            ap.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)

    cpu = cpu_info()
    print(f"CPU: {cpu['model']} ({cpu['cores']} cores); SIMD: {' '.join(cpu['simd_flags']) or 'unknown'}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; revision {git_revision()}; "
          f"clock {args.clock}")
    load_before = _loadavg()
    runs = [run_model(m, args.rounds, args.warmup, MODELS[m], args.seed, args.clock) for m in models]
    failed = [f"{run['model']}/{r['method']}" for run in runs for r in run["results"] if r["verdict"] == "FAIL"]
    print("\nratio: median over rounds of (step time / baseline's step time in the same round); "
          + (f"missed: {', '.join(failed)}" if failed else "all targets met"))
    loads = [x for x in (load_before, _loadavg()) if x is not None]
    load = max(loads) if loads else None
    if load is not None and load > (cpu["cores"] or 1):
        print(f"note: load average {load:.1f} on {cpu['cores']} cores during the run: other processes compete "
              f"for the CPU, so timings (and ratios) are noisy; rerun on a quiet machine to judge the targets")

    if args.json:
        command = "python benchmarks/optimizer_step.py " + " ".join(argv if argv is not None else sys.argv[1:])
        out = dict(benchmark="optimizer_step", command=command.strip(), git_revision=git_revision(),
                   cpu=cpu, torch=torch.__version__, threads=torch.get_num_threads(),
                   python=platform.python_version(), clock=args.clock, load_average=load, density=DENSITY, rounds=args.rounds,
                   warmup=args.warmup, seed=args.seed, models=runs, all_targets_met=not failed)
        write_text_atomic(args.json, json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
