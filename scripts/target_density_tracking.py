"""How closely the density follows its target when the controller steps every batch or once per epoch.

A plain training loop (the README's usage) on the MNIST MLP with LinBreg (τ = 0.1, λ₀ = 0.1, 1 %
sparse start), trained on the first ``--train`` images of the training split for ``--epochs`` epochs,
the ramp taking ``--ramp`` epochs to the target. After every batch the density N_total is measured
against the scheduled target d*_t (the schedule read at the same point of the run in both cases);
the relative error |d − d*_t|/d*_t is averaged over the batches after the ramp (``track_after``) and
over all batches (``track_all``), and the test accuracy of the last model on the 10,000 test images
is reported. Usage::

    BREGMAN_DATA=.data python scripts/target_density_tracking.py --out results/target_density/tracking.json
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from torch import nn

from bregman import DensityController, LinBreg, param_groups
from bregman.data import BatchLoader, load_dataset
from bregman.init import sparse_init_
from bregman.metrics import n_total
from bregman.models import create_model
from bregman.regularizers import L1


def run(splits, mode: str, every: str, target: float, epochs: int, ramp: int, n_train: int, seed: int) -> dict:
    torch.manual_seed(seed)
    model = create_model("mlp")
    sparse_init_(model, 0.01, generator=torch.Generator().manual_seed(seed))
    loader = BatchLoader(splits.train.subset(torch.arange(n_train)), 128, shuffle=True,
                         generator=torch.Generator().manual_seed(seed), raw_images=True)
    opt = LinBreg(param_groups(model, linear=L1(0.1)), lr=0.1)
    per_epoch = len(loader) if every == "batch" else 1
    ctrl = DensityController(opt, target, mode=mode, ramp_steps=ramp * per_epoch, gain=10.0 / per_epoch)
    errors_all, errors_after = [], []
    for epoch in range(epochs):
        for k, (xb, yb) in enumerate(loader):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
            if every == "batch":
                ctrl.step()
            elif k == len(loader) - 1:
                ctrl.step()
            # the schedule at this point of the run, in units of the per-batch ramp
            t = (epoch * len(loader) + k + 1) / (len(loader) * ramp)
            goal = ctrl.target + ((ctrl.ramp_start or n_total(model)) - ctrl.target) * (1 - min(t, 1.0)) ** 3
            err = abs(n_total(model) - goal) / goal
            errors_all.append(err)
            if t >= 1:
                errors_after.append(err)
    model.eval()
    with torch.inference_mode():
        xt, yt = splits.test.images, splits.test.labels
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    return {"mode": mode, "every": every, "target": target, "final_density": n_total(model),
            "track_all": sum(errors_all) / len(errors_all), "track_after": sum(errors_after) / len(errors_after),
            "max_after": max(errors_after), "test_acc": acc}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", type=float, default=0.05)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--ramp", type=int, default=3)
    ap.add_argument("--train", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    splits = load_dataset("mnist", None)
    rows = []
    for mode in ("exact", "adaptive"):
        for every in ("batch", "epoch"):
            t0 = time.perf_counter()
            rows.append({**run(splits, mode, every, args.target, args.epochs, args.ramp, args.train, args.seed),
                         "seconds": time.perf_counter() - t0})
            print(json.dumps(rows[-1]), flush=True)
    out = {"command": "python scripts/target_density_tracking.py " + " ".join(
               f"--{k} {v}" for k, v in vars(args).items() if k != "out") + f" --out {args.out}",
           "torch": torch.__version__, "cpu": platform.processor() or platform.machine(), "runs": rows}
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
