"""Data: the imagefolder set from tiny PNGs made here, and its bad-input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from trainers.data import (
    DataError,
    create_dataloader,
    load_digits_splits,
    load_imagefolder_splits,
)


def make_folder(root, classes=("cat", "dog"), per_class=6, size=(12, 10)):
    rng = np.random.default_rng(0)
    for ci, name in enumerate(classes):
        d = root / name
        d.mkdir(parents=True)
        for i in range(per_class):
            arr = rng.integers(0, 60, size=(size[1], size[0], 3), dtype=np.uint8) + ci * 150
            Image.fromarray(arr.astype(np.uint8)).save(d / f"{i}.png")
    return root


def test_imagefolder_loads_resized_cropped_images_with_class_labels(tmp_path):
    root = make_folder(tmp_path / "data")
    splits = load_imagefolder_splits(root, image_size=8, seed=0)
    assert splits["train"].classes == ["cat", "dog"]
    n = sum(len(s.labels) for s in splits.values())
    assert n == 12 and splits["train"].images.shape[1:] == (3, 8, 8)
    train = splits["train"]
    assert train.images[train.labels == 1].mean() > train.images[train.labels == 0].mean() + 100


def test_imagefolder_split_is_deterministic_for_a_seed(tmp_path):
    root = make_folder(tmp_path / "data", per_class=10)
    a = load_imagefolder_splits(root, image_size=8, seed=3)
    b = load_imagefolder_splits(root, image_size=8, seed=3)
    c = load_imagefolder_splits(root, image_size=8, seed=4)
    assert np.array_equal(a["test"].images, b["test"].images)
    assert not np.array_equal(a["test"].images, c["test"].images)


def test_imagefolder_loader_normalizes_and_flips_when_asked(tmp_path):
    root = make_folder(tmp_path / "data", per_class=10)
    loader = create_dataloader("imagefolder", {"data_dir": str(root), "image_size": 8, "split": "train",
                                               "batch_size": 64, "shuffle": False, "flip": False})
    x, y = next(iter(loader))
    assert x.dtype == torch.float32 and x.shape[1:] == (3, 8, 8)
    assert -3 < float(x.min()) and float(x.max()) < 3  # normalized, not 0..255
    torch.manual_seed(0)
    flipped = create_dataloader("imagefolder", {"data_dir": str(root), "image_size": 8, "split": "train",
                                                "batch_size": 64, "shuffle": False, "flip": True})
    xf, _ = next(iter(flipped))
    same = [torch.equal(a, b) for a, b in zip(x, xf)]
    mirrored = [torch.equal(torch.flip(a, dims=(-1,)), b) for a, b in zip(x, xf)]
    assert all(s or m for s, m in zip(same, mirrored)) and any(mirrored) and any(same)


def test_imagefolder_skips_and_counts_corrupt_images_with_a_warning(tmp_path):
    root = make_folder(tmp_path / "data")
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.warns(UserWarning, match="skipped 1 corrupt image"):
        splits = load_imagefolder_splits(root, image_size=8)
    assert splits["train"].meta["skipped_corrupt"] == 1
    assert sum(len(s.labels) for s in splits.values()) == 12


def test_imagefolder_raises_when_every_image_is_corrupt(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="all 2 image files are corrupt"):
        load_imagefolder_splits(tmp_path)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "data folder not found"),
        (lambda p: p.mkdir(), "data folder is empty"),
        (lambda p: (make_folder(p), (p / "empty_class").mkdir()), "class folder 'empty_class' has no images"),
    ],
)
def test_imagefolder_raises_one_line_error_when_folder_is_unusable(tmp_path, setup, message):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(DataError, match=message) as err:
        load_imagefolder_splits(root)
    assert "\n" not in str(err.value)


def test_digits_split_is_stratified_and_deterministic():
    a, b = load_digits_splits(0), load_digits_splits(0)
    assert np.array_equal(a["val"].labels, b["val"].labels)
    counts = np.bincount(a["test"].labels, minlength=10)
    assert counts.min() >= 25 and counts.max() <= 29


def test_create_dataloader_lists_valid_names_when_dataset_is_unknown():
    from contract.errors import UsageError

    with pytest.raises(UsageError, match="choose one of: digits, imagefolder"):
        create_dataloader("mnist")
