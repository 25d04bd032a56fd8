"""What makes a run replayable: batch order as a function of (seed, epoch), and saved RNG states.

An interrupted and resumed run ends with bitwise the same weights as an uninterrupted one on CPU
because the resumed loader starts mid-epoch in the same order and every RNG continues where it was.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler

from contract.errors import UsageError


class EpochSampler(Sampler[int]):
    """Sample order that is a pure function of (seed, epoch), so it can be replayed on resume.

    ``start`` skips the first samples of the epoch (the batches a resumed run already did).
    """

    def __init__(self, n: int, shuffle: bool, seed: int) -> None:
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.epoch, self.start = 0, 0

    def order(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=gen)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order(self.epoch)[self.start:].tolist())

    def __len__(self) -> int:
        return self.n - self.start


def replayable_loader(data: DataLoader | Dataset, seed: int) -> DataLoader:
    """A loader whose batch order is a function of (seed, epoch) and that can start mid-epoch."""
    if isinstance(data, DataLoader):
        if data.batch_size is None:
            raise UsageError("train_data uses a custom batch_sampler; give a batch_size instead")
        shuffle = isinstance(data.sampler, RandomSampler)
        dataset, batch_size = data.dataset, data.batch_size
        extra = {"collate_fn": data.collate_fn, "num_workers": data.num_workers, "drop_last": data.drop_last}
    elif isinstance(data, Dataset):
        shuffle, dataset, batch_size, extra = True, data, 64, {}
    else:
        raise UsageError(f"train_data is a {type(data).__name__}; give a DataLoader or a Dataset")
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise UsageError("train_data is empty; give at least one training sample")
    sampler = EpochSampler(len(dataset), shuffle, seed)  # type: ignore[arg-type]
    # A private generator: creating the loader's iterator must not draw from the global RNG.
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                      generator=torch.Generator().manual_seed(seed), **extra)


def batch_size_of(batch: Any) -> int:
    """Samples in ``batch`` (a tensor or a tuple whose first item is one)."""
    first = batch[0] if isinstance(batch, (list, tuple)) else batch
    return int(first.shape[0]) if hasattr(first, "shape") else 1


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def capture_rng_state() -> dict[str, Any]:
    """torch/numpy/python RNG states as tensors, lists and numbers (weights-only loadable)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, pystate, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
        "python": [version, list(pystate), gauss_next],
    }


def restore_rng_state(state: dict[str, Any] | None) -> None:
    """Put back what :func:`capture_rng_state` saved (nothing when ``state`` is empty)."""
    if not state:
        return
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, pystate, gauss_next = state["python"]
    random.setstate((version, tuple(pystate), gauss_next))
