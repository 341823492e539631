"""The character-level text data set: split by file, windows shifted by one, ASCII codes."""
from __future__ import annotations

import zlib

import pytest
import torch

from bregman.data import text


def _fake_stdlib(root, n=200):
    for i in range(n):
        sub = root / ("pkg" if i % 3 else "") / f"mod{i}.py"
        sub.parent.mkdir(parents=True, exist_ok=True)
        sub.write_text(f"# module {i}\ndef f{i}(x):\n    return x * {i}  # é\n" * 20)
    (root / "site-packages").mkdir()
    (root / "site-packages" / "third.py").write_text("never read\n")
    (root / "notes.txt").write_text("not python\n")
    return root


def test_split_by_file_is_by_path_only(tmp_path):
    root = _fake_stdlib(tmp_path)
    files = text.stdlib_files(root)
    assert all(f.suffix == ".py" and "site-packages" not in f.parts for f in files) and len(files) == 200
    for f in files:
        rel = f.relative_to(root).as_posix()
        assert text.split_of(rel) == {0: "val", 1: "test"}.get(zlib.crc32(rel.encode()) % 20, "train")


def test_windows_are_inputs_and_next_characters(tmp_path):
    root = _fake_stdlib(tmp_path)
    train, val, test = text.stdlib_splits(root, seed=3, context=16, train_windows=50, eval_windows=7)
    assert train.images.shape == (50, 16) and train.images.dtype == torch.uint8
    assert train.labels.dtype == torch.int64 and len(val) == len(test) == 7
    torch.testing.assert_close(train.images[:, 1:].long(), train.labels[:, :-1])  # y is x shifted by one
    assert int(train.images.max()) < text.VOCAB and int(train.labels.max()) == text.VOCAB - 1  # é → 127
    again = text.stdlib_splits(root, seed=3, context=16, train_windows=50, eval_windows=7)
    assert torch.equal(again.train.images, train.images) and torch.equal(again.val.labels, val.labels)
    other = text.stdlib_splits(root, seed=4, context=16, train_windows=50, eval_windows=7)
    assert not torch.equal(other.train.images, train.images) and torch.equal(other.val.images, val.images)


def test_a_split_without_text_is_a_clear_error(tmp_path):
    _fake_stdlib(tmp_path, n=3)  # no file falls into validation
    with pytest.raises(ValueError, match="the val split of .* has 0 characters"):
        text.stdlib_splits(tmp_path, context=16)


def test_encode_and_decode():
    codes = text.encode("a\tb\né".encode())
    assert codes.tolist() == [97, 9, 98, 10, 127, 127]
    assert text.decode(codes[:5]) == "a\tb\n\x7f"


def test_no_sources_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no \\*.py files under"):
        text.stdlib_files(tmp_path)
