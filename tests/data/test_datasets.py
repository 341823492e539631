"""Real MNIST (and Fashion-MNIST when present): checksums, facts from DATA.md, errors, splits."""
import gzip
import shutil

import pytest
import torch

from bregman.data import SPLITS, DataError, get_info, load_dataset, read_idx, split_indices

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def _pixel_mean_std(images: torch.Tensor) -> tuple[float, float]:
    """Exact mean and std of images / 255 from the histogram of the uint8 values."""
    hist = torch.bincount(images.flatten(), minlength=256).double()
    values = torch.arange(256, dtype=torch.float64) / 255
    mean = (hist * values).sum() / hist.sum()
    return mean.item(), ((hist * (values - mean) ** 2).sum() / hist.sum()).sqrt().item()


@pytest.fixture(scope="module")
def mnist(mnist_root):
    return get_info("mnist").read(mnist_root)  # verifies every md5


def test_mnist_facts(mnist):
    (x, y), (xt, yt) = mnist
    assert x.shape == (60000, 1, 28, 28) and xt.shape == (10000, 1, 28, 28)
    assert x.dtype == xt.dtype == torch.uint8 and y.dtype == yt.dtype == torch.int64
    assert torch.bincount(y).tolist() == MNIST_TRAIN_COUNTS
    assert y[:5].tolist() == [5, 0, 4, 1, 9]
    assert len(yt) == 10000 and yt.min() == 0 and yt.max() == 9
    info = get_info("mnist")
    mean, std = _pixel_mean_std(x)
    assert (round(mean, 4), round(std, 4)) == (info.pixel_mean[0], info.pixel_std[0])
    assert (info.norm_mean, info.norm_std) == ((0.1307,), (0.3081,))


def test_fashion_mnist_facts(fmnist_root):
    info = get_info("fashion-mnist")
    (x, y), (xt, yt) = info.read(fmnist_root)
    assert x.shape == (60000, 1, 28, 28) and xt.shape == (10000, 1, 28, 28)
    assert torch.bincount(y).tolist() == [6000] * 10 and torch.bincount(yt).tolist() == [1000] * 10
    assert y[:5].tolist() == [9, 0, 0, 3, 0]
    mean, std = _pixel_mean_std(x)
    assert (round(mean, 4), round(std, 4)) == (info.pixel_mean[0], info.pixel_std[0]) == (0.2860, 0.3530)
    assert (info.norm_mean, info.norm_std) == ((0.5,), (0.5,))  # the authors' code's constants


@pytest.fixture
def mnist_copy(mnist_root, tmp_path):
    """A data root whose MNIST links to the real files, except a private copy of t10k labels."""
    real, copy = get_info("mnist").directory(mnist_root), tmp_path / "MNIST" / "raw"
    copy.mkdir(parents=True)
    for name in get_info("mnist").md5:
        src = real / name if (real / name).exists() else real / f"{name}.gz"
        (copy / src.name).symlink_to(src)
    labels = next(copy.glob("t10k-labels-idx1-ubyte*"))
    labels.unlink()
    shutil.copyfile(real / labels.name, labels)
    return tmp_path, labels


def _gunzip_in_place(path):
    if path.suffix == ".gz":
        plain = path.with_suffix("")
        plain.write_bytes(gzip.decompress(path.read_bytes()))
        path.unlink()
        return plain
    return path


def test_corrupt_copy_is_a_clear_error(mnist_copy):
    root, labels = mnist_copy
    labels = _gunzip_in_place(labels)
    data = bytearray(labels.read_bytes())
    data[5000] ^= 0xFF
    labels.write_bytes(bytes(data))
    with pytest.raises(DataError) as err:
        load_dataset("mnist", root)
    message = str(err.value)
    assert str(labels) in message and "expected md5 27ae3e4e09519cfbb04c329615203637" in message
    assert "bregman data fetch mnist" in message


def test_truncated_copy_is_a_clear_error(mnist_copy):
    root, labels = mnist_copy
    labels = _gunzip_in_place(labels)
    labels.write_bytes(labels.read_bytes()[:6000])
    with pytest.raises(DataError, match=r"Checksum mismatch for .*t10k-labels-idx1-ubyte"):
        load_dataset("mnist", root)
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte is truncated: .*needs 10008 bytes, found 6000") as err:
        read_idx(labels)
    assert "bregman data fetch mnist" in str(err.value)


def test_missing_file_is_a_clear_error(mnist_copy):
    root, labels = mnist_copy
    labels.unlink()
    with pytest.raises(DataError, match=r"MNIST file t10k-labels-idx1-ubyte \(or .*\.gz\) not found .*bregman data fetch mnist"):
        load_dataset("mnist", root)


def test_paper_split(mnist_root, mnist):
    (x, y), (xt, _) = mnist
    train, val, test = load_dataset("mnist", mnist_root)
    assert (len(train), len(val), len(test)) == (55000, 5000, 10000)
    assert torch.equal(test.images, xt)
    train_idx, val_idx = split_indices(60000, 55000, 42)
    assert torch.equal(torch.cat([train_idx, val_idx]).sort().values, torch.arange(60000))
    assert torch.equal(train.images, x[train_idx]) and torch.equal(val.labels, y[val_idx])


def test_code_split_sizes_and_equality_with_random_split(mnist_root):
    train, val, _ = load_dataset("mnist", mnist_root, split="code")
    assert (len(train), len(val)) == (57000, 3000)
    assert SPLITS["code"](50000) == 47500  # CIFAR-10: 47,500 / 2,500
    # The authors' code: random_split(train, [57000, 3000], generator=Generator().manual_seed(42)).
    reference = torch.utils.data.random_split(range(60000), [57000, 3000], generator=torch.Generator().manual_seed(42))
    train_idx, val_idx = split_indices(60000, 57000, 42)
    assert train_idx.tolist() == list(reference[0].indices) and val_idx.tolist() == list(reference[1].indices)


def test_split_is_reproducible_and_seed_dependent():
    a_train, a_val = split_indices(60000, 55000, 42)
    b_train, b_val = split_indices(60000, 55000, 42)
    c_train, c_val = split_indices(60000, 55000, 7)
    assert torch.equal(a_train, b_train) and torch.equal(a_val, b_val)
    assert not torch.equal(a_val.sort().values, c_val.sort().values)
    assert len(set(a_train.tolist()) & set(a_val.tolist())) == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="Unknown split 'half'; known: paper, code"):
        load_dataset("mnist", split="half")
    with pytest.raises(ValueError, match="Invalid training size 0 for 10 samples"):
        split_indices(10, 0, 0)
