r"""Data-parallel training with torch's ``DistributedDataParallel``, started by ``torchrun --nproc_per_node=N``.

Each rank sees its shard of every global batch (``BatchLoader(rank=, world_size=)``) and trains the
model wrapped by :func:`data_parallel` (gloo on CPU, nccl on GPU), whose all-reduce of the gradients
overlaps the backward pass. Each rank's objective is its shard's loss *sum* divided by the global
batch size :math:`B` (:func:`global_count`, the sum of the ranks' shard sizes, so the shorter last
batch of an epoch is weighted exactly), and the gradient buckets are all-reduced as a *sum*
(:func:`sum_hook`, in place of DDP's mean over ranks):

.. math:: g = \sum_r \nabla \frac{1}{B}\sum_{i \in \text{shard}_r} \ell_i = \nabla \frac{1}{B}\sum_{i=1}^{B} \ell_i,

the gradient of the global batch mean: N ranks equal one process with the same global batch. Rank 0
alone writes logs and checkpoints.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["DistInfo", "setup", "data_parallel", "sum_hook", "global_count", "all_reduce_sum", "teardown", "exit_process"]


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


def sum_hook(state, bucket):  # unannotated: DDP checks the annotations' objects, not their strings
    """A DDP communication hook (``state``: unused, ``bucket``: a ``dist.GradBucket``): the bucket's
    gradients summed over the ranks (not averaged); returns a ``Future[Tensor]``."""
    work = dist.all_reduce(bucket.buffer(), async_op=True)
    return work.get_future().then(lambda fut: fut.value()[0])


def data_parallel(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """``model`` wrapped in ``DistributedDataParallel`` with :func:`sum_hook` (``model`` itself on one
    process). The parameters of rank 0 are broadcast to the others, once, here."""
    if not info.enabled:
        return model
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    ddp.register_comm_hook(None, sum_hook)
    return ddp


def global_count(local: int, device: torch.device) -> tuple[torch.Tensor, dist.Work]:
    """The global batch size: the sum of the ranks' ``local`` sizes, all-reduced asynchronously (wait
    on the returned work before reading the tensor; the forward pass runs meanwhile)."""
    count = torch.tensor(float(local), device=device)
    return count, dist.all_reduce(count, async_op=True)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    dist.all_reduce(t)
    return t


def teardown() -> None:
    global _joined
    if dist.is_initialized():
        dist.destroy_process_group()
        _joined = True


_joined = False  # set once this process has left a process group (see exit_process)


def exit_process(code: int) -> None:
    """End a process that trained in a process group: flush the output and leave with ``code``
    without the interpreter's finalization, where gloo's worker threads can abort a process that
    has finished its work and written its files ("terminate called without an active exception",
    SIGABRT; pytorch/pytorch#179291). A process that never joined a group just returns."""
    if _joined:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
