"""One epoch of the MNIST MLP with LinBreg: this library's pipeline vs a per-sample DataLoader.

The baseline is what a plain PyTorch script does: a map-style ``Dataset`` that converts each
image as torchvision's ``ToTensor`` does (uint8 H×W → float 1×H×W in [0, 1]), batched by
``DataLoader(batch_size=128, shuffle=True)``. Both train the same model with the same optimizer
in this process, so the ratio is measured under the same load. Target: ≥ 5× faster.

    python benchmarks/epoch_time.py [--epochs 3] [--json results/epoch_time.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from bregman.data import BatchLoader, load_dataset
from bregman.train.config import apply_overrides, load_config
from bregman.train.distributed import DistInfo
from bregman.train.loop import build_model, build_optimizer, regularizer_groups, train_epoch
from bregman.train.tasks import task_for


class ToTensorDataset(Dataset):
    """Per-sample access, converting each image like torchvision.transforms.ToTensor."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images = images.squeeze(1).numpy()  # N×H×W uint8, as torchvision's MNIST keeps it
        self.labels = labels.tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = torch.from_numpy(np.array(self.images[i], copy=True))
        return img.unsqueeze(0).to(torch.float32).div(255), self.labels[i]


def _setup(cfg):
    model = build_model(cfg, torch.device("cpu"))
    groups = regularizer_groups(cfg, model)
    return model, groups, build_optimizer(cfg, groups)


def per_sample_epoch(cfg, dataset) -> float:
    model, _, opt = _setup(cfg)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(cfg.seed))
    task = task_for(cfg.dataset)
    t0 = time.perf_counter()
    model.train()
    for x, y in loader:
        loss = task.loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def pipeline_epoch(cfg, train) -> float:
    model, groups, opt = _setup(cfg)
    loader = BatchLoader(train, cfg.batch_size, shuffle=True, generator=torch.Generator().manual_seed(cfg.seed))
    t0 = time.perf_counter()
    train_epoch(model, model, opt, loader, task_for(cfg.dataset), cfg, groups, DistInfo(), torch.device("cpu"))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3, help="epochs timed per method (median)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    cfg = apply_overrides(load_config("mnist-mlp"), {"progress": "off"})
    train = load_dataset("mnist", cfg.data_root, split=cfg.split, seed=cfg.split_seed).train
    baseline_ds = ToTensorDataset(train.images, train.labels)
    times = {"pipeline": [], "per-sample DataLoader": []}
    for _ in range(args.epochs):  # interleaved, so both see the same machine load
        times["pipeline"].append(pipeline_epoch(cfg, train))
        times["per-sample DataLoader"].append(per_sample_epoch(cfg, baseline_ds))
    med = {k: statistics.median(v) for k, v in times.items()}
    speedup = med["per-sample DataLoader"] / med["pipeline"]
    print(f"MNIST MLP 784-200-80-10, LinBreg λ=0.1, {len(train)} samples/epoch, batch {cfg.batch_size}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'method':<24}{'median s/epoch':>16}")
    for k, v in med.items():
        print(f"{k:<24}{v:>16.3f}")
    print(f"speed-up: {speedup:.1f}x  (target >= 5x: {'PASS' if speedup >= 5 else 'FAIL'})")
    if args.json:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        with open(args.json, "w") as f:
            json.dump({"command": "python benchmarks/epoch_time.py " + (f"--epochs {args.epochs}"),
                       "git_rev": rev, "torch": torch.__version__, "threads": torch.get_num_threads(),
                       "samples": len(train), "times": times, "median": med, "speedup": speedup}, f, indent=2)


if __name__ == "__main__":
    main()
