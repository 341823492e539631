"""One epoch of the MNIST MLP with LinBreg: this library's pipeline vs a per-sample DataLoader.

The baseline is what a plain PyTorch script does: torchvision's ``MNIST(transform=ToTensor())``
(re-implemented here line for line, since torchvision has no CPU wheel on this machine: a PIL image
per sample, converted by ``to_tensor``), batched by ``DataLoader(batch_size=128, shuffle=True)``. Both train the same model with the same optimizer
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


def to_tensor(pic) -> torch.Tensor:
    """torchvision.transforms.functional.to_tensor for a mode-'L' PIL image (its code path)."""
    img = torch.from_numpy(np.array(pic, np.uint8, copy=True))
    img = img.view(pic.size[1], pic.size[0], 1).permute((2, 0, 1)).contiguous()
    return img.to(dtype=torch.get_default_dtype()).div(255)


class TorchvisionStyleMNIST(Dataset):
    """What ``torchvision.datasets.MNIST(transform=ToTensor())`` does per sample: index the uint8
    tensor, wrap it in a PIL image, convert it back with ``to_tensor``; the label as a Python int."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.data = images.squeeze(1)  # N×H×W uint8, as torchvision's MNIST keeps it
        self.targets = labels

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        from PIL import Image

        img, target = self.data[i], int(self.targets[i])
        return to_tensor(Image.fromarray(img.numpy(), mode="L")), target


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
    loader = BatchLoader(train, cfg.batch_size, shuffle=True, generator=torch.Generator().manual_seed(cfg.seed),
                         raw_images=True)  # as the training pipeline: the model's Normalize scales uint8
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
    baseline_ds = TorchvisionStyleMNIST(train.images, train.labels)
    times = {"pipeline": [], "torchvision-style DataLoader": []}
    for _ in range(args.epochs):  # interleaved, so both see the same machine load
        times["pipeline"].append(pipeline_epoch(cfg, train))
        times["torchvision-style DataLoader"].append(per_sample_epoch(cfg, baseline_ds))
    med = {k: statistics.median(v) for k, v in times.items()}
    speedup = med["torchvision-style DataLoader"] / med["pipeline"]
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
