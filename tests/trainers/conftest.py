"""Fixtures for the training tests: the real digits data, in small loaders."""

from __future__ import annotations

import pytest

from tests.trainers.helpers import subset
from trainers.data import Split, create_dataloader, load_digits_splits


@pytest.fixture(scope="session")
def digits() -> dict[str, Split]:
    return load_digits_splits(seed=0)


@pytest.fixture
def small_loaders(digits: dict[str, Split]):
    """(train, val) loaders over 192 / 128 real digits images."""
    train = create_dataloader(subset(digits["train"], 192), {"batch_size": 32, "shuffle": True})
    val = create_dataloader(subset(digits["val"], 128), {"batch_size": 128, "shuffle": False})
    return train, val


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models train faster on one thread, and far faster when the 2 cores are shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
