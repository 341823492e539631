"""Fixtures shared by every test folder."""
from __future__ import annotations

import os

import pytest

from bregman.data import DataError, load_dataset


@pytest.fixture(scope="session")
def mnist_root():
    """The data root with real MNIST (CI fetches it before pytest via `make data`)."""
    root = os.environ.get("BREGMAN_DATA")
    try:
        load_dataset("mnist", root)
    except DataError as e:
        if root:
            raise
        pytest.skip(f"real MNIST not available ({e}); run `bregman data fetch mnist`")
    return root
