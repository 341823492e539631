import pytest
import torch

from bregman.data import ArrayDataset, BatchLoader, Splits, add_gaussian_noise, noisy_splits


def _clean(n=200):
    images = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return ArrayDataset(images, torch.zeros(n, dtype=torch.int64))


def test_noise_statistics_and_targets():
    clean = _clean()
    noisy = add_gaussian_noise(clean, 0.05, generator=torch.Generator().manual_seed(1), clamp=False)
    assert noisy.images.dtype == torch.float32 and torch.equal(noisy.labels, clean.images)
    residual = noisy.images - clean.images.float() / 255
    assert abs(residual.mean().item()) < 2e-3 and abs(residual.std().item() - 0.05) < 2e-3


def test_clamp_and_determinism():
    clean = _clean()
    a = add_gaussian_noise(clean, 0.3, generator=torch.Generator().manual_seed(2))
    b = add_gaussian_noise(clean, 0.3, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a.images, b.images)
    assert a.images.min() == 0 and a.images.max() == 1


def test_noisy_splits_plug_into_the_loader():
    splits = noisy_splits(Splits(_clean(30), _clean(10), _clean(10)), seed=0)
    again = noisy_splits(Splits(_clean(30), _clean(10), _clean(10)), seed=0)
    assert torch.equal(splits.train.images, again.train.images)
    assert not torch.equal(splits.val.images, splits.test.images)  # independent draws
    x, y = next(iter(BatchLoader(splits.train, 8)))
    assert x.dtype == y.dtype == torch.float32 and x.shape == y.shape == (8, 1, 28, 28)
    assert torch.equal(y, splits.train.labels[:8].float() / 255)


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="Invalid noise_std: -1"):
        add_gaussian_noise(_clean(2), -1)
    with pytest.raises(ValueError, match="expected uint8 images"):
        add_gaussian_noise(ArrayDataset(torch.zeros(2, 1, 2, 2), torch.zeros(2)), 0.1)
