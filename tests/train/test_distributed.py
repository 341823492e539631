"""Two gloo processes on CPU under DistributedDataParallel equal one process with the same global batch
(to 1e-6, 20 steps). The processes meet through a file store in the test's temporary directory: no
port to race for."""
from __future__ import annotations

import os
import subprocess
import sys


import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bregman.data import ArrayDataset, BatchLoader
from bregman.train import distributed as dist_util
from bregman.train.config import apply_overrides, load_config
from bregman.train.loop import build_model, build_optimizer, regularizer_groups, train_epoch
from bregman.train.tasks import task_for

STEPS, BATCH = 20, 64


def _data():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (STEPS * BATCH, 1, 28, 28), dtype=torch.uint8, generator=g)
    return ArrayDataset(images, torch.randint(0, 10, (STEPS * BATCH,), generator=g))


def _train(rank: int, world: int, out: str | None = None) -> list[torch.Tensor]:
    torch.set_num_threads(1)
    cfg = apply_overrides(load_config("mnist-mlp"), {"lam": 0.01, "momentum": 0.9, "progress": "off"})
    info = dist_util.DistInfo(rank, world) if world > 1 else dist_util.DistInfo()
    model = build_model(cfg, torch.device("cpu"))
    forward = dist_util.data_parallel(model, info, torch.device("cpu"))
    groups = regularizer_groups(cfg, model)
    opt = build_optimizer(cfg, groups)
    loader = BatchLoader(_data(), BATCH, shuffle=True, generator=torch.Generator().manual_seed(1),
                         rank=rank, world_size=world)
    train_epoch(model, forward, opt, loader, task_for("mnist"), cfg, groups, info, torch.device("cpu"))
    params = [p.detach().clone() for p in model.parameters()]
    if out is not None and rank == 0:
        torch.save(params, out)
    return params


def _worker(rank: int, world: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        _train(rank, world, out)
        dist.barrier()  # neither rank tears its process group down while the other still talks to it
    finally:
        dist.destroy_process_group()
    # Leave without the interpreter's finalization, where gloo worker threads can abort the process
    # after the result is written (pytorch/pytorch#179291).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_two_gloo_ranks_equal_one_process(tmp_path):
    single = _train(0, 1)
    out = str(tmp_path / "ddp.pt")
    mp.spawn(_worker, args=(2, str(tmp_path / "store"), out), nprocs=2, join=True)
    ddp = torch.load(out, weights_only=True)
    for a, b in zip(single, ddp):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_torchrun_cli_equals_one_process(mnist_root, tmp_path):
    """``torchrun --standalone --nproc_per_node=2 -m bregman.cli train mnist-mlp`` (one epoch of real
    MNIST; torchrun's standalone rendezvous picks its own free port) ends where one process ends."""
    args = ["-m", "bregman.cli", "train", "mnist-mlp", "--set", "epochs=1", "--set", "lam=0.01",
            "--set", "momentum=0.9", "--set", "threads=1", "--set", "progress=off", "--set", f"data_root={mnist_root}"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    for name, launch in (("one", [sys.executable]), ("two", torchrun)):
        subprocess.run([*launch, *args, "--out", str(tmp_path / name)], check=True, capture_output=True, timeout=600)
    one, two = (torch.load(tmp_path / n / "checkpoint.pt", weights_only=True)["model"] for n in ("one", "two"))
    assert one.keys() == two.keys()
    for k in one:
        torch.testing.assert_close(one[k], two[k], rtol=0, atol=1e-6)
