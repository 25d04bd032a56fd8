"""Data sets that need no download: scikit-learn's bundled 8x8 digits, and an ImageFolder.

Splits are stratified and deterministic (a seed), so training, evaluation, export parity and
client predictions all see the same held-out images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from toolkit.errors import UsageError

DIGITS_SCALE = 1.0 / 16.0  # digits pixels are integers 0..16
DIGITS_MEAN = (0.3,)
DIGITS_STD = (0.4,)


@dataclass
class Split:
    """Images (N, C, H, W) as raw values, integer labels, and the class names."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    meta: dict[str, Any] = field(default_factory=dict)


def stratified_split(
    labels: np.ndarray, fractions: tuple[float, float, float], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices for train/val/test, each class split in the same proportions, deterministically."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[], [], []]
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n_val = int(round(len(idx) * fractions[1]))
        n_test = int(round(len(idx) * fractions[2]))
        parts[2].extend(idx[:n_test])
        parts[1].extend(idx[n_test : n_test + n_val])
        parts[0].extend(idx[n_test + n_val :])
    return tuple(np.sort(np.asarray(p, dtype=np.int64)) for p in parts)  # type: ignore[return-value]


def load_digits_splits(seed: int = 0, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> dict[str, Split]:
    """The digits set as raw float32 images (N, 1, 8, 8) in 0..16, split train/val/test."""
    from sklearn.datasets import load_digits

    ds = load_digits()
    images = ds.images.astype(np.float32)[:, None, :, :]
    labels = ds.target.astype(np.int64)
    classes = [str(c) for c in ds.target_names]
    tr, va, te = stratified_split(labels, fractions, seed)
    meta = {"name": "digits", "seed": seed, "fractions": list(fractions)}
    return {
        "train": Split(images[tr], labels[tr], classes, meta),
        "val": Split(images[va], labels[va], classes, meta),
        "test": Split(images[te], labels[te], classes, meta),
    }


def normalize(images: np.ndarray, scale: float, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """The training transform on raw values: ``(x * scale - mean) / std`` per channel."""
    x = images.astype(np.float32) * np.float32(scale)
    if mean:
        m = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
        s = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
        x = (x - m) / s
    return x.astype(np.float32)


def digits_tensors(split: Split) -> TensorDataset:
    x = normalize(split.images, DIGITS_SCALE, DIGITS_MEAN, DIGITS_STD)
    return TensorDataset(torch.from_numpy(x), torch.from_numpy(split.labels))


def create_dataloader(dataset: str | Split, config: dict[str, Any] | None = None) -> DataLoader:
    """A DataLoader over a named data set split (``{"split": "train", "batch_size": 64}``)."""
    config = dict(config or {})
    split_name = config.get("split", "train")
    batch_size = int(config.get("batch_size", 64))
    shuffle = bool(config.get("shuffle", split_name == "train"))
    seed = int(config.get("seed", 0))
    if isinstance(dataset, Split):
        split = dataset
    elif dataset == "digits":
        split = load_digits_splits(seed=seed)[split_name]
    else:
        raise UsageError(f"unknown data set {dataset!r}; choose one of: digits, imagefolder")
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(digits_tensors(split), batch_size=batch_size, shuffle=shuffle, generator=gen)
