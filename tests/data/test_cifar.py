import os
import pickle

import numpy as np
import pytest
import torch

from bregman.data import DataError, fetch, load_dataset, read_cifar10, read_cifar_batch


def test_reads_fabricated_batches_in_the_official_format(tmp_path, cifar_like):
    directory = tmp_path / "cifar-10-batches-py"
    content = cifar_like(directory, n=4)
    (train_x, train_y), (test_x, test_y) = read_cifar10(directory, verify=False)
    assert train_x.shape == (20, 3, 32, 32) and train_x.dtype == torch.uint8
    assert train_y.shape == (20,) and train_y.dtype == torch.int64
    assert test_x.shape == (4, 3, 32, 32)
    batches = [content[f"data_batch_{i}"] for i in range(1, 6)]
    np.testing.assert_array_equal(train_x.numpy(), np.concatenate([x for x, _ in batches]))
    assert train_y.tolist() == sum((y for _, y in batches), [])
    np.testing.assert_array_equal(test_x.numpy(), content["test_batch"][0])


def test_row_layout_is_channel_first(tmp_path, cifar_batch_bytes):
    # Row = 1024 red, 1024 green, 1024 blue values, each 32 x 32 row-major.
    row = np.concatenate([np.full(1024, 10), np.full(1024, 20), np.arange(1024) % 256]).astype(np.uint8)
    path = tmp_path / "b"
    path.write_bytes(cifar_batch_bytes(row[None], [3]))
    x, y = read_cifar_batch(path)
    assert x[0, 0].unique().tolist() == [10] and x[0, 1].unique().tolist() == [20]
    assert x[0, 2, 1, :3].tolist() == [32, 33, 34] and y.tolist() == [3]


def test_verify_rejects_files_that_are_not_the_official_ones(tmp_path, cifar_like):
    directory = tmp_path / "cifar-10-batches-py"
    cifar_like(directory)
    with pytest.raises(DataError, match=r"(?s)data_batch_1.*expected md5 c99cafc152244af753f735de768cd75f"):
        read_cifar10(directory)


def test_missing_directory_says_where_to_put_the_batches(tmp_path):
    with pytest.raises(DataError, match=r"(?s)cifar-10-batches-py.*No package registry ships") as err:
        load_dataset("cifar10", tmp_path)
    assert "data_batch_1" in str(err.value) and "--download" in str(err.value)
    with pytest.raises(DataError, match="No package registry ships"):
        fetch("cifar10", tmp_path)


def test_load_dataset_splits_cifar(tmp_path, cifar_like):
    cifar_like(tmp_path / "cifar-10-batches-py", n=8)
    train, val, test = load_dataset("cifar-10", tmp_path, split="code", verify=False)
    assert (len(train), len(val), len(test)) == (38, 2, 8)
    assert train.images.shape[1:] == (3, 32, 32)


def test_refuses_pickles_that_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil"
    path.write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(DataError, match=r"refusing to load global .*system"):
        read_cifar_batch(path)


@pytest.mark.parametrize(
    "batch",
    [
        {b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]},
        {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]},
        {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]},
        {b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]},
        [1, 2, 3],
    ],
)
def test_malformed_batches_are_data_errors(tmp_path, batch):
    path = tmp_path / "bad"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match="bad"):
        read_cifar_batch(path)
