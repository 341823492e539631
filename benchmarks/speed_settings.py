"""What each execution setting of ``Config`` buys: one model's LinBreg epoch with every default
setting, and with each one switched off in turn (interleaved rounds, same run).

    python benchmarks/speed_settings.py [--model convnet] [--rounds 5] [--threads N] [--clock wall|cpu]
        [--weights PATH] [--json PATH]

A setting pays where switching it off makes the epoch slower (ratio > 1); the ratios are medians
over rounds of the paired ratio (setting off / all on, same round). Settings that do not apply to
the model (``SPEED_OPTIONS``: e.g. ``support_conv`` on an MLP) are skipped; ``retain_memory`` is
process-wide and is on for all variants. ``--weights`` starts
from a trained checkpoint's weights (the sparsity of a trained net) instead of the sparse init.
The CPU model and its SIMD flags are printed and recorded.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import training_speed as ts  # noqa: E402  (the runners and specs of the main benchmark)

#: settings of the model's layers (applicable per model) and of the optimizer (all models).
#: ``retain_memory`` is process-wide (glibc's allocator): one process cannot time it on and off.
LAYER_SETTINGS = ("channels_last", "support_conv", "support_linear")
SETTINGS = (*LAYER_SETTINGS, "foreach")


def main(argv: list[str] | None = None) -> int:
    from bregman.models import SPEED_OPTIONS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="convnet", choices=sorted(ts.SPECS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall time, or the training thread's CPU time (needs --threads 1)")
    ap.add_argument("--weights", default=None, help="a checkpoint.pt to start from")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.clock == "cpu" and args.threads != 1:
        ap.error("--clock cpu measures one thread: add --threads 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    from bregman.train.speed import retain_freed_memory

    retain_freed_memory()  # as the config's default, before any variant allocates (see training_speed)
    spec = ts.SPECS[args.model]
    cpu = ts.cpu_info()
    print(f"CPU: {cpu['cpu']}; SIMD: {' '.join(cpu['simd'])}; torch {torch.__version__} "
          f"(capability {cpu['torch_capability']}); threads {torch.get_num_threads()}", flush=True)
    applies = SPEED_OPTIONS.get(ts._config(spec).model, frozenset())
    settings = [k for k in SETTINGS if k not in LAYER_SETTINGS or k in applies]
    n = ts._chunk_samples(spec, quick=False)
    scale = -(-spec.epoch_samples // ts.BATCH) / -(-n // ts.BATCH)
    runners = {"all on": ts.PipelineRunner(spec, n, args.clock, args.weights, optimizer="linbreg", momentum=0.0)}
    for key in settings:
        runners[f"{key}=false"] = ts.PipelineRunner(spec, n, args.clock, args.weights, optimizer="linbreg",
                                                     momentum=0.0, **{key: False})
    for run in runners.values():
        run(steps=5)
    times: dict[str, list[float]] = {k: [] for k in runners}
    names = list(runners)
    for r in range(args.rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            times[k].append(runners[k]() * scale)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()),
              file=sys.stderr, flush=True)
    epoch = {k: statistics.median(v) for k, v in times.items()}
    slowdown = {k: statistics.median(a / b for a, b in zip(times[k], times["all on"])) for k in names}
    print(f"\n{spec.key}: LinBreg epoch ({spec.epoch_samples:,} samples), median of {args.rounds} rounds; "
          f"clock {args.clock}" + (f"; weights {args.weights}" if args.weights else ""))
    for k in names:
        print(f"  {k:22s} {epoch[k]:8.2f} s   {slowdown[k]:5.2f}x (paired)")
    if args.json:
        out = {"benchmark": "speed_settings", "model": spec.key, "weights": args.weights, "rounds": args.rounds,
               "threads": torch.get_num_threads(), "clock": args.clock, **cpu, "torch": torch.__version__,
               "git_rev": ts._git_revision(), "epoch_s": epoch, "epoch_s_all": times,
               "slowdown_when_off": slowdown}
        ts.write_json(args.json, out, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
