import pytest
import torch
import torch.nn.functional as F

from bregman.data import ArrayDataset, BatchLoader, cifar_augment, crop_flip, draw_crop_flip


def _dataset(n=103, shape=(1, 4, 4)):
    images = (torch.arange(n, dtype=torch.int64)[:, None, None, None] % 256).expand(n, *shape).to(torch.uint8).clone()
    return ArrayDataset(images, torch.arange(n))


def _epoch(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


@pytest.mark.parametrize(("drop_last", "batches"), [(False, 11), (True, 10)])
def test_batch_count_and_every_index_once(drop_last, batches):
    loader = BatchLoader(_dataset(), 10, shuffle=True, generator=torch.Generator().manual_seed(0), drop_last=drop_last)
    assert len(loader) == batches
    epoch = _epoch(loader)
    assert len(epoch) == batches
    seen = torch.cat([y for _, y in epoch])
    assert len(seen) == (100 if drop_last else 103) and len(set(seen.tolist())) == len(seen)
    if not drop_last:
        assert sorted(seen.tolist()) == list(range(103))


def test_batches_are_float_images_in_unit_range():
    data = _dataset(n=7)
    x, y = next(iter(BatchLoader(data, 4)))
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(x, data.images[:4].float() / 255) and y.tolist() == [0, 1, 2, 3]


def test_raw_images_come_as_stored_for_the_models_normalize():
    data = _dataset(n=7)
    a = next(iter(BatchLoader(data, 4, raw_images=True)))
    b = next(iter(BatchLoader(data, 4)))
    assert a[0].dtype == torch.uint8 and torch.equal(a[0], data.images[:4])
    assert torch.equal(a[1], b[1])
    clean = ArrayDataset(torch.rand(7, 1, 4, 4), data.images)  # denoising: float inputs, uint8 targets
    x, y = next(iter(BatchLoader(clean, 4, raw_images=True)))
    assert x.dtype == torch.float32 and y.dtype == torch.float32 and float(y.max()) <= 1.0


def test_same_seed_same_order_and_new_order_each_epoch():
    a = BatchLoader(_dataset(), 10, shuffle=True, generator=torch.Generator().manual_seed(3))
    b = BatchLoader(_dataset(), 10, shuffle=True, generator=torch.Generator().manual_seed(3))
    a1, b1, a2 = [torch.cat([y for _, y in _epoch(loader)]) for loader in (a, b, a)]
    assert torch.equal(a1, b1) and not torch.equal(a1, a2)
    assert not torch.equal(a1, torch.arange(103))
    unshuffled = torch.cat([y for _, y in BatchLoader(_dataset(), 10)])
    assert torch.equal(unshuffled, torch.arange(103))


@pytest.mark.parametrize("augment", [None, cifar_augment])
@pytest.mark.parametrize("world_size", [2, 4])
def test_ranks_together_equal_one_process(augment, world_size):
    data = _dataset(n=50, shape=(3, 32, 32))

    def loader(rank, ws):
        return BatchLoader(data, 8, shuffle=True, generator=torch.Generator().manual_seed(5),
                           augment=augment, rank=rank, world_size=ws)

    single = _epoch(loader(0, 1))
    shards = [_epoch(loader(r, world_size)) for r in range(world_size)]
    assert all(len(s) == len(single) == 7 for s in shards)
    for k, (x, y) in enumerate(single):
        assert torch.equal(torch.cat([s[k][0] for s in shards]), x)
        assert torch.equal(torch.cat([s[k][1] for s in shards]), y)


def test_resume_mid_epoch_is_exact():
    data = _dataset(n=40, shape=(3, 32, 32))

    def loader():
        return BatchLoader(data, 6, shuffle=True, generator=torch.Generator().manual_seed(1), augment=cifar_augment)

    reference = loader()
    expected = _epoch(reference) + _epoch(reference)
    interrupted = loader()
    _epoch(interrupted)
    it = iter(interrupted)
    got = []  # second epoch: take 3 batches, checkpoint, resume in a fresh loader
    for _ in range(3):
        x, y = next(it)
        got.append((x.clone(), y.clone()))
    state = interrupted.state_dict()
    resumed = loader()
    resumed.load_state_dict(state)
    assert resumed.state_dict()["batches_done"] == 3
    got += _epoch(resumed)
    assert len(got) == len(expected) // 2
    for (x, y), (ex, ey) in zip(got, expected[len(expected) // 2 :]):
        assert torch.equal(x, ex) and torch.equal(y, ey)


def test_state_dict_is_plain_and_loads_with_weights_only(tmp_path):
    loader = BatchLoader(_dataset(), 10, shuffle=True, generator=torch.Generator().manual_seed(0))
    torch.save(loader.state_dict(), tmp_path / "s.pt")
    state = torch.load(tmp_path / "s.pt", weights_only=True)
    other = BatchLoader(_dataset(), 10, shuffle=True, generator=torch.Generator().manual_seed(9))
    other.load_state_dict(state)
    assert torch.equal(torch.cat([y for _, y in loader]), torch.cat([y for _, y in other]))


def test_device_and_validation():
    loader = BatchLoader(_dataset(), 10, device="cpu")
    assert loader.dataset.images.device.type == "cpu"
    with pytest.raises(ValueError, match="batch_size 10 is not divisible by world_size 3"):
        BatchLoader(_dataset(), 10, world_size=3)
    with pytest.raises(ValueError, match="Invalid rank 2 for world_size 2"):
        BatchLoader(_dataset(), 10, rank=2, world_size=2)
    with pytest.raises(ValueError, match="Invalid batch_size: 0"):
        BatchLoader(_dataset(), 0)


def test_augmentation_matches_a_per_sample_reference():
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = cifar_augment(x, torch.Generator().manual_seed(4))
    offsets, flips = draw_crop_flip(16, torch.Generator().manual_seed(4))
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert flips.any() and not flips.all() and len(set(map(tuple, offsets.tolist()))) > 1
    for i in range(16):
        padded = F.pad(x[i], (4, 4, 4, 4))
        top, left = offsets[i].tolist()
        crop = padded[:, top : top + 32, left : left + 32]
        assert torch.equal(out[i], crop.flip(-1) if flips[i] else crop)


def test_crop_flip_special_cases():
    x = torch.rand(2, 3, 8, 8)
    centre = torch.tensor([[4, 4], [4, 4]])
    assert torch.equal(crop_flip(x, centre, torch.tensor([False, True])), torch.stack([x[0], x[1].flip(-1)]))
    corner = crop_flip(x, torch.tensor([[0, 0], [8, 8]]), torch.tensor([False, False]))
    assert torch.equal(corner[0, :, 4:, 4:], x[0, :, :4, :4]) and corner[0, :, :4].abs().sum() == 0
    assert torch.equal(corner[1, :, :4, :4], x[1, :, 4:, 4:]) and corner[1, :, 4:].abs().sum() == 0
