"""An in-memory batch loader: the data set stays as two tensors, a batch is one index gather.

Per epoch::

    order = randperm(n, generator)   if shuffle, else 0 .. n-1
    batch k = order[k*B : (k+1)*B]   (B = batch_size; the last batch is shorter unless drop_last)

Batches are yielded as ``(x, y)``; uint8 tensors are images and become float32 in [0, 1]
(``x / 255``, per batch, so the stored data stays four times smaller); float tensors become
float32; integer labels stay int64. Normalization happens inside the models. With
``raw_images=True`` uint8 inputs ``x`` are yielded as they are, for models whose first layer is
:class:`~bregman.models.normalize.Normalize`: it folds the 1/255 into its own scale, one pass
over the batch fewer (the training pipeline does this).

Distributed data parallel: ``batch_size`` is the *global* batch. Every rank draws the same
permutation (pass generators with the same seed) and keeps a contiguous 1/world_size slice of each
global batch, so N ranks together see exactly the batches of one process with the same
``batch_size`` and ``len()`` is equal on all ranks.

Exact resume: :meth:`BatchLoader.state_dict` holds the generator state at the start of the current
epoch and the number of batches already yielded; after :meth:`BatchLoader.load_state_dict` the next
iteration redraws that epoch's permutation and continues with the following batch. Augmentation
draws from a per-batch generator seeded from the epoch's stream, so resumed batches are augmented
identically too. The loader owns its generator: draw nothing else from it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from .datasets import ArrayDataset

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def to_float(t: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1]; floats -> float32; anything else unchanged."""
    if t.dtype == torch.uint8:
        return t.div(255.0)  # true division of an integer tensor: float32 in one pass
    if t.is_floating_point():
        return t.to(torch.float32)
    return t


class BatchLoader:
    """Iterate over ``dataset`` in batches of ``(x, y)``, whole data set in memory.

    Args:
        dataset: the data (uint8 images, int64 labels, or any pair of same-length tensors).
        batch_size: the global batch size (divisible by ``world_size``).
        shuffle: draw a new permutation every epoch.
        generator: CPU ``torch.Generator`` for the permutations and augmentation; default: one
            seeded from torch's global RNG (so ``torch.manual_seed`` makes runs repeatable).
        drop_last: drop the last, shorter batch.
        augment: ``augment(x, generator) -> x`` applied to each uint8 batch, e.g.
            :func:`~bregman.data.augment.cifar_augment`. With ``world_size > 1`` every rank
            augments the whole global batch and keeps its slice: ``world_size`` times the (small)
            augmentation cost, bought for results that do not depend on the number of ranks.
        device: move the whole data set there once, up front.
        rank, world_size: this process's shard for distributed data parallel.
        raw_images: yield uint8 inputs unconverted (their model scales them; see above).
    """

    def __init__(
        self,
        dataset: ArrayDataset,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
        augment: Augment | None = None,
        device: torch.device | str | None = None,
        rank: int = 0,
        world_size: int = 1,
        raw_images: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"Invalid batch_size: {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"Invalid rank {rank} for world_size {world_size}")
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} is not divisible by world_size {world_size}")
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(f"generator must be a CPU generator, got one on {generator.device}")
        self.dataset = dataset.to(device) if device is not None else dataset
        self.raw_images = raw_images
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.augment = augment
        self.rank = rank
        self.world_size = world_size
        if generator is None and (shuffle or augment is not None):
            generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, ())))
        self.generator = generator
        self._epoch_state: torch.Tensor | None = None  # generator state when the epoch began
        self._batches_done = 0
        self._resume = False

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _shard(self, size: int) -> slice:
        """This rank's contiguous part of a global batch of ``size`` (as ``tensor_split`` cuts it)."""
        q, r = divmod(size, self.world_size)
        start = self.rank * q + min(self.rank, r)
        return slice(start, start + q + (self.rank < r))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        images, labels = self.dataset.images, self.dataset.labels
        n, g = len(self.dataset), self.generator
        start = self._batches_done if self._resume else 0
        self._resume = False
        self._epoch_state = g.get_state() if g is not None else None
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        order = order.to(images.device)  # one transfer per epoch, not per batch
        aug_seed = int(torch.randint(0, 2**62, (), generator=g)) if self.augment is not None else 0
        for k in range(start, len(self)):
            index = order[k * self.batch_size : (k + 1) * self.batch_size]
            shard = self._shard(len(index))
            if self.augment is not None:
                x = self.augment(images.index_select(0, index), torch.Generator().manual_seed(aug_seed + k))[shard]
            else:
                x = images.index_select(0, index[shard])  # 7× faster than [] indexing
            y = labels.index_select(0, index[shard])
            self._batches_done = k + 1
            yield (x if self.raw_images else to_float(x)), to_float(y)
        self._batches_done = 0
        self._epoch_state = None

    def state_dict(self) -> dict[str, object]:
        """``{"generator": uint8 tensor or None, "batches_done": int}`` (loads with weights_only)."""
        g = self.generator
        state = self._epoch_state if self._epoch_state is not None else (g.get_state() if g is not None else None)
        return {"generator": None if state is None else state.clone(), "batches_done": self._batches_done}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore :meth:`state_dict`; the next iteration resumes after the last batch yielded."""
        if state["generator"] is not None:
            if self.generator is None:
                raise ValueError("state has a generator state but this loader has no generator")
            self.generator.set_state(state["generator"])
        self._batches_done = int(state["batches_done"])
        self._epoch_state = None
        self._resume = True
