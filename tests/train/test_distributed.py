"""Two gloo processes on CPU equal one process with the same global batch (to 1e-6, 20 steps)."""
from __future__ import annotations

import os
import socket

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
    groups = regularizer_groups(cfg, model)
    opt = build_optimizer(cfg, groups)
    loader = BatchLoader(_data(), BATCH, shuffle=True, generator=torch.Generator().manual_seed(1),
                         rank=rank, world_size=world)
    train_epoch(model, model, opt, loader, task_for("mnist"), cfg, groups, info, torch.device("cpu"))
    params = [p.detach().clone() for p in model.parameters()]
    if out is not None and rank == 0:
        torch.save(params, out)
    return params


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        _train(rank, world, out)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
def test_two_gloo_ranks_equal_one_process(tmp_path):
    single = _train(0, 1)
    out = str(tmp_path / "ddp.pt")
    mp.spawn(_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    ddp = torch.load(out, weights_only=True)
    for a, b in zip(single, ddp):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
