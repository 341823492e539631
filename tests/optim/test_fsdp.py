"""LinBreg, AdaBreg and ProxSGD on parameters sharded by FSDP2 (``torch.distributed.fsdp.fully_shard``, two gloo
processes on CPU) end where the unsharded optimizer ends, to 1e-6.

FSDP2 shards every parameter along dim 0 (``DTensor`` with ``Shard(0)``): the optimizers see the
shards. ℓ1 acts entry by entry; rows of a Linear weight and kernels / filters of a conv weight are
groups inside one dim-0 slice, so their group norms are shard-local; the columns of a Linear weight
cross the shards, and the optimizers refuse them with an error. Every rank feeds the same batch, so
FSDP2's averaged gradient equals the one-process gradient.
"""
from __future__ import annotations

import gc
import os
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bregman import AdaBreg, LinBreg, ProxSGD, regularizers
from bregman.models import create_model
from bregman.params import param_groups

STEPS = 3
#: (model, regularizer of the linear weights, of the conv weights)
CASES = [("mlp", "l1", "l1"), ("mlp", "rows", "l1"),
         ("convnet", "l1", "l1"), ("convnet", "l1", "kernels"), ("convnet", "rows", "filters")]
OPTIMIZERS = {"linbreg": lambda g: LinBreg(g, lr=0.05, momentum=0.9), "adabreg": lambda g: AdaBreg(g, lr=1e-3),
              "proxsgd": lambda g: ProxSGD(g, lr=0.05)}


def _run(model_name: str, linear: str, conv: str, opt_name: str, shard: bool) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = create_model(model_name)
    x = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 10, (8,), generator=torch.Generator().manual_seed(2))
    if shard:
        from torch.distributed.fsdp import fully_shard

        fully_shard(model)
    opt = OPTIMIZERS[opt_name](param_groups(model, linear=regularizers.get(linear, 0.05),
                                            conv=regularizers.get(conv, 0.05)))
    for _ in range(STEPS):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return {n: (p.full_tensor() if shard else p).detach().clone() for n, p in model.named_parameters()}


def _worker(rank: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        results = {f"{c}-{o}": _run(*c, o, shard=True) for c in CASES for o in OPTIMIZERS}
        for o in OPTIMIZERS:
            try:
                _run("mlp", "columns", "l1", o, shard=True)
            except ValueError as e:
                results[f"columns-{o}"] = str(e)
        torch.save(results, f"{out}.{rank}")
        dist.barrier()  # neither rank tears its process group down while the other still talks to it
    finally:
        gc.collect()  # the FSDP states (cycles) go while their process group is alive
        dist.destroy_process_group()
    # Leave without the interpreter's finalization: gloo worker threads that outlive it can abort the
    # process after the results are written (pytorch/pytorch#179291); the results are on disk already.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fsdp")
    mp.spawn(_worker, args=(str(tmp / "store"), str(tmp / "out.pt")), nprocs=2, join=True)
    per_rank = [torch.load(tmp / f"out.pt.{r}", weights_only=True) for r in range(2)]
    for k in per_rank[0]:  # both ranks hold the same full tensors (and the same refusals)
        if isinstance(per_rank[0][k], dict):
            for n in per_rank[0][k]:
                torch.testing.assert_close(per_rank[1][k][n], per_rank[0][k][n], rtol=0, atol=0)
        else:
            assert per_rank[1][k] == per_rank[0][k]
    return per_rank[0]


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("case", CASES, ids="-".join)
def test_fully_sharded_equals_unsharded(sharded, case, opt_name):
    torch.set_num_threads(1)
    want = _run(*case, opt_name, shard=False)
    got = sharded[f"{case}-{opt_name}"]
    assert want.keys() == got.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_columns_across_shards_are_refused(sharded, opt_name):
    msg = sharded.get(f"columns-{opt_name}")
    assert msg is not None, "a columns grouping on dim-0 shards stepped instead of being refused"
    assert "layers.fc1.weight" in msg and "groups='columns'" in msg and "rows" in msg
