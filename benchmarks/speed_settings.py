"""What each execution setting of ``Config`` buys: one model's LinBreg epoch with every default
setting, and with each one switched off in turn (interleaved rounds, same run).

    python benchmarks/speed_settings.py [--model convnet] [--rounds 5] [--weights PATH] [--json PATH]

A setting pays where switching it off makes the epoch slower (ratio > 1). ``--weights`` starts
from a trained checkpoint's weights (the sparsity of a trained net) instead of the sparse init.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import training_speed as ts  # noqa: E402  (the runners and specs of the main benchmark)

SETTINGS = ("channels_last", "retain_memory", "fuse_conv_pool", "support_conv", "foreach")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="convnet", choices=sorted(ts.SPECS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--weights", default=None, help="a checkpoint.pt to start from")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    spec = ts.SPECS[args.model]
    n = ts._chunk_samples(spec, quick=False)
    epoch_steps = -(-spec.epoch_samples // ts.BATCH)
    scale = epoch_steps / -(-n // ts.BATCH)
    runners = {"all on": ts.PipelineRunner(spec, n, "wall", args.weights, optimizer="linbreg", momentum=0.0)}
    for key in SETTINGS:
        runners[f"{key}=false"] = ts.PipelineRunner(spec, n, "wall", args.weights, optimizer="linbreg",
                                                     momentum=0.0, **{key: False})
    for run in runners.values():
        run(steps=5)
    times: dict[str, list[float]] = {k: [] for k in runners}
    names = list(runners)
    for r in range(args.rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            times[k].append(runners[k]() * scale)
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
    epoch = {k: statistics.median(v) for k, v in times.items()}
    base = epoch["all on"]
    print(f"\n{spec.key}: LinBreg epoch ({spec.epoch_samples:,} samples), median of {args.rounds} rounds; "
          f"threads {torch.get_num_threads()}" + (f"; weights {args.weights}" if args.weights else ""))
    for k in names:
        print(f"  {k:22s} {epoch[k]:8.2f} s   {epoch[k] / base:5.2f}x")
    if args.json:
        out = {"benchmark": "speed_settings", "model": spec.key, "weights": args.weights, "rounds": args.rounds,
               "threads": torch.get_num_threads(), "git_rev": ts._git_revision(), "epoch_s": epoch,
               "epoch_s_all": times, "slowdown_when_off": {k: epoch[k] / base for k in names}}
        ts.write_json(args.json, out, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
