"""Training speed of every paper model: the library's pipeline against a plain PyTorch loop.

For each model (built by the library from its preset: sparse init, param groups, speed settings)
these ways to train on the same in-memory data (synthetic, of the real shape and size) are timed:

* ``plain``:   the loop a user would write (``torch.optim.SGD(model.parameters())``, per-batch
  index gather over float tensors, ``loss.item()`` per step; the model without any speed setting
  of ours), run in a separate process with the C library's and torch's defaults, so no
  process-wide setting of the library (allocator) helps it;
* ``SGD``:     the library's pipeline (``train_epoch`` over a ``BatchLoader``, default speed
  settings of ``Config``) with ``torch.optim.SGD``;
* ``LinBreg``: the same pipeline with LinBreg and the preset's regularizers;
* ``LinBreg dense`` (models built with support layers): LinBreg with ``support_conv=false`` and
  ``support_linear=false``, so its layers do the same dense work as SGD's: the optimizer's own
  overhead. (Support layers compute the forward pass and the input gradient on the non-zero
  kernels or rows only; a LinBreg net stays sparse, while SGD makes every weight non-zero at its
  first step.)
* ``LinBreg+compile`` (``--compile``): the pipeline with ``compile=true``; its compile time
  (first chunk minus a steady one) is reported apart.
* ``SGD no-step``, ``LinBreg no-step`` (``--step-cost``): the same pipelines with the optimizer
  step a no-op after the warm-up, so the step's own time per iteration is the difference (in the
  same round) to ``SGD`` and ``LinBreg``.

Variants are run round-robin in chunks of a fixed number of steps (the order rotated every
round), so background load hits all alike; the epoch time is the median chunk scaled to one
epoch (MLP: whole epochs, and ``FAST_ROUNDS``× the rounds, since an epoch takes under a second).
Each variant also evaluates 5,000 samples (the pipeline: ``evaluate``; the plain loop:
``model.eval()``, ``torch.no_grad()``, batches of the preset's evaluation size), timed apart.

Targets, per model, from paired rounds (a slow drift of the machine's speed moves both sides of a
pair alike): the Bregman overhead, the median over rounds of LinBreg's chunk / SGD's chunk − 1,
is at most 5 %; and LinBreg is no slower than the plain loop: the median over rounds of
(plain epoch + its 5k evaluation) / (LinBreg epoch + its 5k evaluation) is at least 1.
Also reported: FLOPs of one dense forward+backward (``torch.utils.flop_counter``), the GFLOP/s
that makes for the LinBreg pipeline, and its fraction of the machine's fp32 matmul peak timed in
the same run (on a sparse net the pipeline skips work, so this "dense-equivalent" rate can pass
the peak).

``--contention`` runs the rounds a second time with one busy background process (a pure-Python
spin loop) and reports how much each variant slows down (median contended / median quiet epoch);
the pipeline's LinBreg should slow down no more than the plain loop.

The models start from the preset's sparse initialization; ``--weights convnet=RUN/checkpoint.pt``
starts every variant of that model from a trained checkpoint's weights instead.

    python benchmarks/training_speed.py [--models mlp,convnet,resnet18,denoise] [--quick]
        [--rounds 3] [--threads N] [--clock wall|cpu] [--contention] [--compile] [--step-cost]
        [--weights MODEL=PATH ...] [--json PATH]

``--clock cpu`` (with ``--threads 1``) times the CPU time of the training thread instead of wall
time. The CPU model and its SIMD flags are printed and recorded. Exit status is 0 even when a
target is missed; the PASS/FAIL column and ``--json`` carry the verdict.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
try:
    import bregman  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import optimizer_step  # noqa: E402  (the machine's description and the git revision, shared)

BATCH = 128
TARGET_OVERHEAD = 0.05  # LinBreg's epoch at most 5 % above SGD's in the same pipeline
TARGET_VS_PLAIN = 1.0  # LinBreg's epoch (+ 5k evaluation) no slower than the plain loop's
DENSE = "LinBreg dense"
FAST_ROUNDS = 3  # models timed by whole epochs (the MLP) get this many times the rounds


@dataclass(frozen=True)
class Spec:
    """One model: its preset, its epoch and how many steps one timed chunk has."""

    key: str
    preset: str
    overrides: dict[str, Any]
    epoch_samples: int  # training samples of one epoch
    steps: int  # steps per timed chunk (0: whole epochs)
    quick_steps: int
    shape: tuple[int, ...]


SPECS = {
    # the "code" split (95/5) of MNIST: 57,000 training images, the target's epoch
    "mlp": Spec("mlp", "mnist-mlp", {"split": "code"}, 57_000, 0, 0, (1, 28, 28)),
    "convnet": Spec("convnet", "fmnist-cnn", {}, 55_000, 40, 15, (1, 28, 28)),
    "resnet18": Spec("resnet18", "cifar10-resnet18", {}, 50_000, 10, 3, (3, 32, 32)),
    "denoise": Spec("denoise", "mnist-denoise", {}, 55_000, 60, 20, (1, 28, 28)),
}
EVAL_SAMPLES = 5_000


def _eval_cap(spec: Spec) -> int:
    """Samples the 5k evaluation is timed on (ResNet-18: 500, scaled up; its epochs are long)."""
    return 500 if spec.key == "resnet18" else EVAL_SAMPLES


def _clock(kind: str) -> Callable[[], float]:
    return time.thread_time if kind == "cpu" else time.perf_counter


def _config(spec: Spec, **extra: Any):
    from bregman.train.config import apply_overrides, load_config

    cfg = load_config(spec.preset)
    return apply_overrides(cfg, {**spec.overrides, "device": "cpu", "progress": "off", **extra})


def _dataset(spec: Spec, n: int, seed: int = 0):
    """Synthetic data of the model's shape: uint8 images + labels, or (noisy, clean) float pairs."""
    from bregman.data.datasets import ArrayDataset

    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, *spec.shape), dtype=torch.uint8, generator=g)
    if spec.key == "denoise":
        from bregman.data.noisy import add_gaussian_noise

        return add_gaussian_noise(ArrayDataset(images, torch.zeros(n, dtype=torch.int64)), 0.05, generator=g)
    return ArrayDataset(images, torch.randint(0, 10, (n,), generator=g))


def _chunk_samples(spec: Spec, quick: bool) -> int:
    steps = spec.quick_steps if quick else spec.steps
    return spec.epoch_samples if steps == 0 else steps * BATCH


# ------------------------------------------------------------------------ the plain loop (worker)
def _load_weights(model: torch.nn.Module, path: str | None) -> None:
    """Start from a trained run's weights (the ``model`` entry of its ``checkpoint.pt``)."""
    if path:
        state = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(state.get("model", state))


def _plain_worker(conn, spec: Spec, n: int, threads: int | None, clock: str, weights: str | None) -> None:
    """A plain PyTorch loop in a fresh process: torch's and the C library's defaults."""
    import torch.nn.functional as F

    if threads:
        torch.set_num_threads(threads)
    from bregman.train.loop import build_model

    # no speed setting of ours
    cfg = _config(spec, channels_last=False, retain_memory=False, support_conv=False, support_linear=False)
    model = build_model(cfg, torch.device("cpu"))
    _load_weights(model, weights)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    data = _dataset(spec, max(n, _eval_cap(spec)))
    x_all = data.images.float() / 255 if data.images.dtype == torch.uint8 else data.images
    y_all = data.labels
    loss_fn = F.mse_loss if spec.key == "denoise" else F.cross_entropy
    tick = _clock(clock)
    g = torch.Generator().manual_seed(1)

    def run(steps: int | None) -> float:
        model.train()
        perm = torch.randperm(n, generator=g)
        total, t0 = 0.0, tick()
        for k, i in enumerate(range(0, n, BATCH)):
            if steps is not None and k >= steps:
                break
            idx = perm[i:i + BATCH]
            x, y = x_all[idx], y_all[idx]
            out = model(x)
            loss = loss_fn(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        return tick() - t0

    x_val, y_val = x_all[:_eval_cap(spec)], y_all[:_eval_cap(spec)]

    def evaluate() -> float:
        model.eval()
        t0 = tick()
        with torch.no_grad():
            total = 0.0
            for i in range(0, len(x_val), cfg.eval_batch_size):
                out, y = model(x_val[i:i + cfg.eval_batch_size]), y_val[i:i + cfg.eval_batch_size]
                total += (loss_fn(out, y) if spec.key == "denoise" else (out.argmax(1) == y).sum()).item()
        return tick() - t0

    conn.send("ready")
    while True:
        msg = conn.recv()
        if msg == "stop":
            break
        conn.send(evaluate() if msg == "eval" else run(msg))
    conn.close()


class PlainRunner:
    def __init__(self, spec: Spec, n: int, threads: int | None, clock: str, weights: str | None) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.spec = spec
        self.proc = ctx.Process(target=_plain_worker, args=(child, spec, n, threads, clock, weights), daemon=True)
        self.proc.start()
        assert self.conn.recv() == "ready"

    def __call__(self, steps: int | None = None) -> float:
        self.conn.send(steps)
        return self.conn.recv()

    def eval_seconds(self) -> float:
        """Seconds to evaluate ``EVAL_SAMPLES`` samples (median of 3, timed on ``_eval_cap``)."""
        times = []
        for _ in range(3):
            self.conn.send("eval")
            times.append(self.conn.recv())
        return statistics.median(times) * EVAL_SAMPLES / _eval_cap(self.spec)

    def close(self) -> None:
        self.conn.send("stop")
        self.proc.join(timeout=30)


# ----------------------------------------------------------------------------- the pipeline
class PipelineRunner:
    """``train_epoch`` of the library over a BatchLoader, as ``train`` runs it."""

    def __init__(self, spec: Spec, n: int, clock: str, weights: str | None = None, **overrides: Any) -> None:
        from bregman.data import BatchLoader
        from bregman.train import distributed as dist_util
        from bregman.train.loop import _maybe_compile, build_model, build_optimizer, regularizer_groups
        from bregman.train.tasks import task_for

        self.spec, self.cfg = spec, _config(spec, **overrides)
        self.device = torch.device("cpu")
        self.model = build_model(self.cfg, self.device)
        _load_weights(self.model, weights)
        self.groups = regularizer_groups(self.cfg, self.model)
        self.opt = build_optimizer(self.cfg, self.groups)
        self.forward = _maybe_compile(self.model, self.cfg)
        self.task = task_for(self.cfg.dataset)
        self.info = dist_util.DistInfo()
        data = _dataset(spec, n)
        from bregman.data import cifar_augment

        # as build_loaders: CIFAR-10 batches are augmented (random crop + flip) on the fly
        self.augment = cifar_augment if self.cfg.dataset == "cifar10" and self.cfg.augment else None
        self.loader = BatchLoader(data, BATCH, shuffle=True, augment=self.augment,
                                  generator=torch.Generator().manual_seed(1), raw_images=True)  # as build_loaders
        self.data = data
        self.tick = _clock(clock)

    def __call__(self, steps: int | None = None) -> float:
        from bregman.data import BatchLoader
        from bregman.train.loop import train_epoch

        loader = self.loader
        if steps is not None:  # a short warm-up chunk
            sub = self.data.subset(torch.arange(min(len(self.data), steps * BATCH)))
            loader = BatchLoader(sub, BATCH, shuffle=True, augment=self.augment,
                                 generator=torch.Generator().manual_seed(2), raw_images=True)
        t0 = self.tick()
        train_epoch(self.model, self.forward, self.opt, loader, self.task, self.cfg, self.groups, self.info,
                    self.device)
        return self.tick() - t0

    def eval_seconds(self) -> float:
        """Seconds of ``evaluate`` over ``EVAL_SAMPLES`` samples at the preset's eval batch size
        (median of 3, timed on ``_eval_cap`` samples)."""
        from bregman.data import BatchLoader
        from bregman.train.loop import evaluate

        m = _eval_cap(self.spec)
        loader = BatchLoader(_dataset(self.spec, m, seed=3), min(self.cfg.eval_batch_size, m), device=self.device,
                             raw_images=True)
        evaluate(self.forward, self.model, loader, self.task, self.cfg, self.device)  # warm-up
        times = []
        for _ in range(3):
            t0 = self.tick()
            evaluate(self.forward, self.model, loader, self.task, self.cfg, self.device)
            times.append(self.tick() - t0)
        return statistics.median(times) * EVAL_SAMPLES / m


# ----------------------------------------------------------------------------------- measuring
def matmul_peak(clock: str, n: int = 2048, reps: int = 10) -> float:
    """Median GFLOP/s of an n×n fp32 matmul (the machine's practical peak)."""
    tick = _clock(clock)
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    for _ in range(2):
        torch.mm(a, b, out=out)
    times = []
    for _ in range(reps):
        t0 = tick()
        torch.mm(a, b, out=out)
        times.append(tick() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def step_flops(spec: Spec) -> float:
    """FLOPs of one dense forward + backward at batch 128 (matmuls and convolutions of the plain
    model: the work of the plain loop)."""
    from torch.utils.flop_counter import FlopCounterMode

    from bregman.train.loop import build_model
    from bregman.train.tasks import task_for

    cfg = _config(spec, support_conv=False, support_linear=False)
    model = build_model(cfg, torch.device("cpu")).train()
    data = _dataset(spec, BATCH)
    from bregman.data.loader import to_float

    x, y = to_float(data.images), to_float(data.labels)
    counter = FlopCounterMode(display=False)
    with counter:
        task_for(cfg.dataset).loss(model(x), y).backward()
    return float(counter.get_total_flops())


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def cpu_info() -> dict[str, Any]:
    """CPU model, SIMD flags (``/proc/cpuinfo``, as ``optimizer_step.py`` reads them) and the
    vector ISA torch's kernels dispatch to on this machine."""
    info = optimizer_step.cpu_info()
    return {"cpu": info["model"], "simd": info["simd_flags"], "cores": info["cores"],
            "torch_capability": torch.backends.cpu.get_cpu_capability()}


def _git_revision() -> str | None:
    return optimizer_step.git_revision()


def write_json(path: Path, record: dict[str, Any], argv: list[str] | None) -> None:
    """``record`` plus the command line that made it, as indented JSON at ``path`` (atomically)."""
    from bregman._atomic import write_text_atomic

    record["command"] = " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])])
    write_text_atomic(path, json.dumps(record, indent=2) + "\n")


def _paired(a: list[float], b: list[float]) -> float:
    """Median over rounds of ``a[r] / b[r]``, minus 1 (rounds are interleaved: a paired figure)."""
    return statistics.median(x / y for x, y in zip(a, b)) - 1


def _busy() -> None:
    """One busy background process: a pure-Python spin loop (one core, no memory traffic)."""
    while True:
        pass


def _rounds(runners: dict[str, Callable[..., float]], rounds: int, scale: float, label: str) -> dict[str, list[float]]:
    """``rounds`` round-robin chunks of every runner (order rotated each round), as epoch seconds."""
    times: dict[str, list[float]] = {k: [] for k in runners}
    names = list(runners)
    for r in range(rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            times[k].append(runners[k]() * scale)
        print(f"[{label}] round {r + 1}/{rounds}: " + ", ".join(f"{k} {times[k][-1]:.2f}s" for k in names),
              file=sys.stderr, flush=True)
    return times


def bench_model(spec: Spec, args, peak: float) -> dict[str, Any]:
    n = _chunk_samples(spec, args.quick)
    chunk_steps = math.ceil(n / BATCH)
    epoch_steps = math.ceil(spec.epoch_samples / BATCH)
    scale = epoch_steps / chunk_steps
    print(f"[{spec.key}] building ({chunk_steps} steps per chunk, {epoch_steps} per epoch) ...", file=sys.stderr,
          flush=True)
    runners: dict[str, Callable[..., float]] = {}
    weights = args.weights.get(spec.key)
    plain = PlainRunner(spec, n, args.threads, args.clock, weights)
    runners["plain"] = plain
    runners["SGD"] = PipelineRunner(spec, n, args.clock, weights, optimizer="sgd", momentum=0.0)
    runners["LinBreg"] = PipelineRunner(spec, n, args.clock, weights, optimizer="linbreg", momentum=0.0)
    from bregman.models.support_conv import SupportConv2d
    from bregman.models.support_linear import SupportLinear

    if any(isinstance(m, (SupportConv2d, SupportLinear)) for m in runners["LinBreg"].model.modules()):
        # the same dense layer work as SGD: the optimizer's own overhead
        runners[DENSE] = PipelineRunner(spec, n, args.clock, weights, optimizer="linbreg", momentum=0.0,
                                        support_conv=False, support_linear=False)
    compile_s = None
    if args.compile:
        comp = PipelineRunner(spec, n, args.clock, weights, optimizer="linbreg", momentum=0.0, compile=True)
        t0 = time.perf_counter()  # wall time: inductor compiles in worker processes too
        comp(steps=3)  # compiles forward and backward
        t1 = time.perf_counter()
        comp(steps=3)
        compile_s = (t1 - t0) - (time.perf_counter() - t1)
        runners["LinBreg+compile"] = comp
    if args.step_cost:
        for name, opt in (("SGD no-step", "sgd"), ("LinBreg no-step", "linbreg")):
            runners[name] = PipelineRunner(spec, n, args.clock, weights, optimizer=opt, momentum=0.0)
    warm = 3 if spec.key == "resnet18" else 10
    for run in runners.values():
        run(steps=warm if chunk_steps > warm else 1)
    for name in ("SGD no-step", "LinBreg no-step"):
        if name in runners:  # from here on the weights stay as the warm-up left them
            runners[name].opt.step = lambda *a, **k: None
    rounds = args.rounds * (FAST_ROUNDS if spec.steps == 0 and not args.quick else 1)
    times = _rounds(runners, rounds, scale, spec.key)
    eval_s = {"plain": plain.eval_seconds(), "LinBreg": runners["LinBreg"].eval_seconds()}
    contended = None
    if args.contention:  # the same rounds again, beside one busy process
        busy = mp.get_context("spawn").Process(target=_busy, daemon=True)
        busy.start()
        try:
            contended = _rounds({k: runners[k] for k in ("plain", "SGD", "LinBreg")}, rounds, scale,
                                f"{spec.key}, contended")
        finally:
            busy.kill()
            busy.join()
    plain.close()
    epoch = {k: statistics.median(v) for k, v in times.items()}
    flops = step_flops(spec)
    gflops = flops * epoch_steps / epoch["LinBreg"] / 1e9
    with_eval = {k: [t + eval_s[k] for t in times[k]] for k in eval_s}
    res = {
        "model": spec.key, "preset": spec.preset, "epoch_samples": spec.epoch_samples, "epoch_steps": epoch_steps,
        "chunk_steps": chunk_steps, "epoch_s": epoch, "epoch_s_all": times, "eval_5k_s": eval_s,
        "speedup_vs_plain": 1 / (1 + _paired(with_eval["LinBreg"], with_eval["plain"])),
        "speedup_vs_plain_training_only": 1 / (1 + _paired(times["LinBreg"], times["plain"])),
        "sgd_speedup_vs_plain": 1 / (1 + _paired(times["SGD"], times["plain"])),
        "bregman_overhead": _paired(times["LinBreg"], times["SGD"]),
        "bregman_overhead_dense": _paired(times[DENSE], times["SGD"]) if DENSE in epoch else None,
        "bregman_overhead_of_medians": epoch["LinBreg"] / epoch["SGD"] - 1, "rounds": rounds,
        "weights": weights,
        "gflop_per_step": flops / 1e9, "gflops": gflops, "peak_fraction": gflops / peak, "compile_s": compile_s,
    }
    checks = {"overhead": res["bregman_overhead"] <= TARGET_OVERHEAD,
              "vs_plain": res["speedup_vs_plain"] >= TARGET_VS_PLAIN}
    if contended is not None:
        slow = {k: statistics.median(contended[k]) / epoch[k] for k in contended}
        res["contended_epoch_s_all"], res["contention_slowdown"] = contended, slow
        checks["contention"] = slow["LinBreg"] <= slow["plain"]
    res["checks"] = checks
    if args.step_cost:
        per_step = {k: statistics.median((a - b) / epoch_steps * 1e6 for a, b in zip(times[k], times[f"{k} no-step"]))
                    for k in ("SGD", "LinBreg")}
        share = statistics.median(((a - b) - (c - d)) / c for a, b, c, d in
                                  zip(times["LinBreg"], times["LinBreg no-step"], times["SGD"], times["SGD no-step"]))
        res["step_us"], res["step_share_of_sgd_epoch"] = per_step, share
        print(f"[{spec.key}] optimizer step per iteration: SGD {per_step['SGD']:.0f} µs, LinBreg "
              f"{per_step['LinBreg']:.0f} µs; LinBreg's extra step time = {100 * share:+.1f} % of SGD's epoch",
              file=sys.stderr, flush=True)
    return res


def print_table(results: list[dict[str, Any]], peak: float, args) -> None:
    cols = ("model", "epoch", "plain s", "SGD s", "LinBreg s", "eval 5k plain/ours s", "vs plain", "Breg. ovh",
            "dense ovh", "GFLOP/s", "% peak", "slowdown busy plain/ours", "targets")
    rows = []
    for r in results:
        e, ev, slow = r["epoch_s"], r["eval_5k_s"], r.get("contention_slowdown")
        ok = " ".join(f"{k}:{'PASS' if v else 'FAIL'}" for k, v in r["checks"].items())
        rows.append((r["model"], f"{r['epoch_samples']:,}", f"{e['plain']:.2f}", f"{e['SGD']:.2f}",
                     f"{e['LinBreg']:.2f}", f"{ev['plain']:.2f}/{ev['LinBreg']:.2f}", f"{r['speedup_vs_plain']:.2f}x",
                     f"{100 * r['bregman_overhead']:+.1f}%",
                     "—" if r["bregman_overhead_dense"] is None else f"{100 * r['bregman_overhead_dense']:+.1f}%",
                     f"{r['gflops']:.0f}", f"{100 * r['peak_fraction']:.0f}%",
                     "—" if slow is None else f"{slow['plain']:.2f}x/{slow['LinBreg']:.2f}x", ok))
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    print(f"\nmatmul peak (2048² fp32, median): {peak:.0f} GFLOP/s; threads {torch.get_num_threads()}; "
          f"clock {args.clock}")
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for row in rows:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))
    for r in (r for r in results if r.get("compile_s") is not None):
        e = r["epoch_s"]
        print(f"{r['model']}: compile=true epoch {e['LinBreg+compile']:.2f} s vs eager {e['LinBreg']:.2f} s; "
              f"compile time {r['compile_s']:.1f} s (over 100 epochs: {100 * e['LinBreg+compile'] + r['compile_s']:.0f} s "
              f"vs {100 * e['LinBreg']:.0f} s)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="mlp,convnet,resnet18,denoise",
                    help="comma-separated subset of: " + ", ".join(SPECS))
    ap.add_argument("--quick", action="store_true", help="short chunks (a smoke test; noisier)")
    ap.add_argument("--rounds", type=int, default=None, help="timed chunks per variant (default 3, --quick 2)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall time, or the training thread's CPU time (needs --threads 1)")
    ap.add_argument("--contention", action="store_true",
                    help="also time plain, SGD and LinBreg beside one busy background process")
    ap.add_argument("--compile", action="store_true", help="also time compile=true (and its compile time)")
    ap.add_argument("--step-cost", action="store_true",
                    help="also time each pipeline with a no-op optimizer step (the step's own time)")
    ap.add_argument("--weights", action="append", default=[], metavar="MODEL=PATH",
                    help="start MODEL from a trained checkpoint's weights (repeatable)")
    ap.add_argument("--json", type=Path, default=None, help="write the results here (atomically)")
    args = ap.parse_args(argv)
    try:
        args.weights = dict(w.split("=", 1) for w in args.weights)
    except ValueError:
        ap.error("--weights takes MODEL=PATH, e.g. convnet=runs/cnn/checkpoint.pt")
    bad = [m for m in args.weights if m not in SPECS]
    if bad:
        ap.error(f"--weights: unknown model(s) {bad}; choose from {list(SPECS)}")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in SPECS]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; choose from {list(SPECS)}")
    if args.clock == "cpu" and args.threads != 1:
        ap.error("--clock cpu measures one thread: add --threads 1")
    if args.contention and args.clock == "cpu":
        ap.error("--contention needs --clock wall (CPU time does not see the time lost to the busy process)")
    args.rounds = args.rounds or (2 if args.quick else 3)
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu = cpu_info()
    print(f"CPU: {cpu['cpu']} ({cpu['cores']} cores); SIMD: {' '.join(cpu['simd']) or 'unknown'}; torch "
          f"{torch.__version__} (capability {cpu['torch_capability']}); threads {torch.get_num_threads()}", flush=True)
    load_before = _loadavg()
    cores = os.cpu_count() or 1
    if load_before is not None and load_before > 0.5 * cores:
        print(f"warning: load average {load_before:.1f} on {cores} cores: other work is running; absolute "
              f"figures are inflated (ratios measured within the run hold better)", file=sys.stderr)
    from bregman.train.speed import retain_freed_memory

    # process-wide (glibc): set before any runner allocates, so that every pipeline variant's
    # tensors come from the same allocator regime, whichever is built first (build_model sets it
    # only after its model's weights exist); the plain loop keeps the defaults in its own process
    retain_freed_memory()
    t_start = time.perf_counter()
    peak = matmul_peak(args.clock)
    results = [bench_model(SPECS[m], args, peak) for m in models]
    peak_end = matmul_peak(args.clock)
    print_table(results, peak, args)
    print(f"(matmul peak at the end: {peak_end:.0f} GFLOP/s; load average {load_before} → {_loadavg()}; "
          f"{time.perf_counter() - t_start:.0f} s)")
    if args.json:
        out = {"benchmark": "training_speed", "torch": torch.__version__, **cpu,
               "threads": torch.get_num_threads(), "clock": args.clock, "quick": args.quick, "rounds": args.rounds,
               "git_rev": _git_revision(), "loadavg_before": load_before, "loadavg_after": _loadavg(),
               "matmul_peak_gflops": peak, "matmul_peak_gflops_end": peak_end, "results": results}
        write_json(args.json, out, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
