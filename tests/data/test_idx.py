import gzip

import numpy as np
import pytest
import torch

from bregman.data import DataError, parse_idx, read_idx

ARRAYS = {
    "uint8": np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
    "int8": np.array([-128, -1, 0, 127], dtype=np.int8),
    "int16": np.array([[-300, 2], [1000, -1]], dtype=np.int16),
    "int32": np.array([1 << 30, -5, 7], dtype=np.int32),
    "float32": np.array([[0.5, -1.25e3]], dtype=np.float32),
    "float64": np.array([1e-300, -2.5], dtype=np.float64),
}


@pytest.mark.parametrize("kind", ARRAYS)
@pytest.mark.parametrize("gz", [False, True])
def test_round_trip(tmp_path, idx_bytes, kind, gz):
    array = ARRAYS[kind]
    data = idx_bytes(array)
    path = tmp_path / ("x.gz" if gz else "x")
    path.write_bytes(gzip.compress(data) if gz else data)
    out = read_idx(path)
    assert out.shape == array.shape
    assert out.dtype == torch.from_numpy(array.astype(array.dtype.newbyteorder("="))).dtype
    np.testing.assert_array_equal(out.numpy(), array)


def test_md5_is_of_the_decompressed_bytes(tmp_path, idx_bytes, md5):
    data = idx_bytes(ARRAYS["uint8"])
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(data))
    assert read_idx(path, md5=md5(data)).shape == (2, 3, 4)
    with pytest.raises(DataError, match=r"(?s)x\.gz.*expected md5 0{32}.*found " + md5(data)):
        read_idx(path, md5="0" * 32)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x1f\x8b\x08\x08" + bytes(20), "not an IDX file"),
        (b"\x00\x00\x07\x01" + bytes(8), "not an IDX file"),  # unknown type code
        (b"", "not an IDX file"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated inside its IDX header"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05" + bytes(3), r"truncated: .*needs 13 bytes, found 11"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05" + bytes(6), "longer than its header says"),
    ],
)
def test_bad_bytes_are_a_data_error_naming_the_source(data, message):
    with pytest.raises(DataError, match=message) as err:
        parse_idx(data, source="somefile")
    assert "somefile" in str(err.value) and "bregman data fetch" in str(err.value)


def test_truncated_gzip_is_a_data_error(tmp_path, idx_bytes):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(ARRAYS["int32"]))[:-10])
    with pytest.raises(DataError, match=r"Cannot decompress .*x\.gz"):
        read_idx(path)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="Cannot read .*nothing-here"):
        read_idx(tmp_path / "nothing-here")
