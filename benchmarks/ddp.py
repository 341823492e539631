"""Data-parallel step time: 2 DistributedDataParallel ranks (gloo on CPU) against 1 process, same global batch.

Each measurement spawns ``world`` processes (one thread each, ``torch.set_num_threads(1)``) that meet
through a file store and train the library's step (:func:`bregman.train.loop.train_epoch`: forward,
backward with DDP's bucketed all-reduce, the non-finite check, LinBreg's step) on synthetic
MNIST-shaped data, a warm-up epoch first. The seconds per step of rank 0 are reported; the rounds
alternate 1 and 2 ranks, and the ratio printed is the median over rounds of ``t(2) / t(1)`` (paired:
both ran under the same load). Each rank computes half the batch, so a ratio below 1 is the speed-up
of data parallelism on this machine, and the rest is what the all-reduce costs. The CPU model and
its SIMD flags are printed beside it.

    python benchmarks/ddp.py [--model mnist-mlp|fmnist-cnn] [--batch 128] [--steps 30] [--rounds 3] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parents[1]
try:
    import bregman  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import optimizer_step  # noqa: E402  (the machine's description and the git revision, shared)

from bregman.data import ArrayDataset, BatchLoader  # noqa: E402
from bregman.train import distributed as dist_util  # noqa: E402
from bregman.train.build import build_model, build_optimizer, regularizer_groups  # noqa: E402
from bregman.train.config import apply_overrides, load_config  # noqa: E402
from bregman.train.loop import train_epoch  # noqa: E402
from bregman.train.tasks import task_for  # noqa: E402

SHAPES = {"mnist-mlp": (1, 28, 28), "fmnist-cnn": (1, 28, 28)}


def _data(n: int, shape: tuple[int, ...]) -> ArrayDataset:
    g = torch.Generator().manual_seed(0)
    return ArrayDataset(torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g),
                        torch.randint(0, 10, (n,), generator=g))


def _worker(rank: int, world: int, store: str, preset: str, batch: int, steps: int, out: str) -> None:
    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        cfg = apply_overrides(load_config(preset), {"progress": "off", "lam": 0.01})
        info = dist_util.DistInfo(rank, world) if world > 1 else dist_util.DistInfo()
        device = torch.device("cpu")
        model = build_model(cfg, device)
        forward = dist_util.data_parallel(model, info, device)
        groups = regularizer_groups(cfg, model)
        opt = build_optimizer(cfg, groups)
        task = task_for(cfg.dataset)
        seconds = []
        for n_steps in (3, steps):  # warm-up, then timed
            loader = BatchLoader(_data(n_steps * batch, SHAPES[preset]), batch, shuffle=True,
                                 generator=torch.Generator().manual_seed(1), rank=rank, world_size=world)
            if world > 1:
                dist.barrier()
            t0 = time.perf_counter()
            train_epoch(model, forward, opt, loader, task, cfg, groups, info, device)
            seconds.append((time.perf_counter() - t0) / n_steps)
        if rank == 0:
            Path(out).write_text(json.dumps(seconds[-1]))
    finally:
        if world > 1:
            dist_util.teardown()
    dist_util.exit_process(0)  # (no interpreter finalization after gloo: see its docstring)


def step_seconds(world: int, preset: str, batch: int, steps: int) -> float:
    """Seconds per training step of rank 0 with ``world`` processes (a fresh group each time)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "seconds.json")
        mp.spawn(_worker, args=(world, str(Path(tmp) / "store"), preset, batch, steps, out), nprocs=world, join=True)
        return json.loads(Path(out).read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(SHAPES), default="mnist-mlp", help="the preset trained")
    ap.add_argument("--batch", type=int, default=128, help="the global batch size")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="alternating 1-rank / 2-rank rounds")
    ap.add_argument("--json", type=Path, help="write the record here")
    args = ap.parse_args(argv)
    cpu = optimizer_step.cpu_info()
    print(f"CPU: {cpu['model']} ({cpu['cores']} cores); SIMD: {' '.join(cpu['simd_flags']) or 'unknown'}; "
          f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()})")
    one, two = [], []
    for r in range(args.rounds):
        one.append(step_seconds(1, args.model, args.batch, args.steps))
        two.append(step_seconds(2, args.model, args.batch, args.steps))
        print(f"round {r + 1}: 1 rank {1e3 * one[-1]:.2f} ms/step, 2 ranks {1e3 * two[-1]:.2f} ms/step", flush=True)
    ratio = statistics.median(b / a for a, b in zip(one, two))
    print(f"{args.model}, global batch {args.batch}: 2 ranks / 1 rank step time = {ratio:.3f} "
          f"(median of {args.rounds} paired rounds; < 1: data parallelism pays on this machine)")
    if args.json:
        from bregman._atomic import write_text_atomic

        record = {"model": args.model, "batch": args.batch, "steps": args.steps, "cpu": cpu,
                  "torch": torch.__version__, "git_rev": optimizer_step.git_revision(),
                  "seconds_1_rank": one, "seconds_2_ranks": two, "ratio_2_over_1": ratio,
                  "command": " ".join(["benchmarks/ddp.py", *(argv if argv is not None else sys.argv[1:])])}
        write_text_atomic(args.json, json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
