"""Data-parallel training with torch.distributed, started by ``torchrun --nproc_per_node=N``.

Each rank sees its shard of every global batch (``BatchLoader(rank=, world_size=)``). Each rank's
loss is its shard's loss sum divided by the *global* batch size, so the all-reduced sum of the
gradients is exactly the gradient of the global batch mean: N ranks equal one process with the
same global batch. Rank 0 alone writes logs and checkpoints.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "setup", "all_reduce_grads", "all_reduce_sum", "teardown"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device_type: str) -> DistInfo:
    """Join the process group if launched by torchrun (WORLD_SIZE > 1); gloo on CPU, nccl on GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def all_reduce_grads(params: list[torch.Tensor], local_count: int) -> None:
    """Turn each rank's gradient of its *local loss sum* into the gradient of the global batch mean.

    One coalesced all-reduce carries the gradients and the local batch size, so ranks with
    unequal shards (the last batch of an epoch) are weighted exactly.
    """
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([torch._utils._flatten_dense_tensors(grads),
                      torch.tensor([float(local_count)], dtype=grads[0].dtype, device=grads[0].device)])
    dist.all_reduce(flat)
    flat[:-1].div_(flat[-1])
    for g, r in zip(grads, torch._utils._unflatten_dense_tensors(flat[:-1], grads)):
        g.copy_(r)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    dist.all_reduce(t)
    return t


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
