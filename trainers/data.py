"""Data sets that need no download: scikit-learn's bundled 8x8 digits, and an ImageFolder.

Splits are stratified and deterministic (a seed), so training, evaluation, export parity and
client predictions all see the same held-out images.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from contract.errors import UsageError
from contract.spec import ModelSpec, TensorSpec

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


class DataError(UsageError):
    """A data folder or image set cannot be used as given."""


DATASETS = ("digits", "imagefolder")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _load_image(path: Path, mode: str, resize: int, crop: int) -> np.ndarray:
    """Decode with Pillow, resize the shorter side to ``resize``, center-crop ``crop``: (C, H, W) 0..255."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert(mode)
        w, h = img.size
        factor = resize / min(w, h)
        img = img.resize((max(crop, round(w * factor)), max(crop, round(h * factor))),
                         Image.Resampling.BILINEAR)
        w, h = img.size
        left, top = (w - crop) // 2, (h - crop) // 2
        img = img.crop((left, top, left + crop, top + crop))
        arr = np.asarray(img, dtype=np.float32)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def load_imagefolder_splits(
    root: str | Path,
    image_size: int = 32,
    resize: int | None = None,
    channels: int = 3,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
) -> dict[str, Split]:
    """A folder per class (``root/<class>/*.png``) decoded with Pillow, split train/val/test.

    Images are resized (shorter side to ``resize``, default ``image_size``) and center-cropped to
    ``image_size``; they are kept as raw 0..255 float32 values, and ``meta`` carries the scale and
    mean/std the loaders (and the model spec) normalize with. Corrupt files are skipped with a
    warning and counted in ``meta["skipped_corrupt"]``.

    Raises:
        DataError: missing/empty folder, a class folder without images, every image corrupt.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found; give a folder with one sub-folder per class")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise DataError(
            f"{root}: data folder is empty (no class sub-folders); put images in {root}/<class>/"
        )
    if channels not in (1, 3):
        raise DataError(f"channels {channels} is not supported; choose one of: 1, 3")
    mode = "RGB" if channels == 3 else "L"
    resize = int(resize or image_size)
    images: list[np.ndarray] = []
    labels: list[int] = []
    corrupt: list[Path] = []
    total = 0
    for idx, d in enumerate(class_dirs):
        files = sorted(f for f in d.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise DataError(
                f"{d}: class folder {d.name!r} has no images ({', '.join(IMAGE_EXTENSIONS)}); "
                "add images or remove the folder"
            )
        good = 0
        for f in files:
            total += 1
            try:
                images.append(_load_image(f, mode, resize, image_size))
            except Exception:  # noqa: BLE001 - Pillow raises many types for damaged files
                corrupt.append(f)
                continue
            labels.append(idx)
            good += 1
        if good == 0 and len(corrupt) < total:
            raise DataError(
                f"{d}: every image of class {d.name!r} is corrupt ({len(files)} files); "
                "replace them or remove the folder"
            )
    if not images:
        raise DataError(
            f"{root}: all {total} image files are corrupt or unreadable (first: {corrupt[0]}); "
            "check the files"
        )
    if corrupt:
        warnings.warn(
            f"{root}: skipped {len(corrupt)} corrupt image(s) of {total} (first: {corrupt[0]})",
            stacklevel=2,
        )
    x = np.stack(images).astype(np.float32)
    y = np.asarray(labels, dtype=np.int64)
    mean = tuple(mean) if mean is not None else (IMAGENET_MEAN if channels == 3 else (0.5,))
    std = tuple(std) if std is not None else (IMAGENET_STD if channels == 3 else (0.5,))
    classes = [d.name for d in class_dirs]
    tr, va, te = stratified_split(y, fractions, seed)
    meta = {
        "name": "imagefolder", "root": str(root), "seed": seed, "fractions": list(fractions),
        "image_size": image_size, "resize": resize, "channels": channels,
        "scale": 1.0 / 255.0, "mean": list(mean), "std": list(std),
        "value_range": [0.0, 255.0], "skipped_corrupt": len(corrupt), "num_files": total,
    }
    return {
        "train": Split(x[tr], y[tr], classes, meta),
        "val": Split(x[va], y[va], classes, meta),
        "test": Split(x[te], y[te], classes, meta),
    }


def load_splits(name: str, data_dir: str | Path | None = None, seed: int = 0, **kwargs: Any) -> dict[str, Split]:
    """Splits of a named data set (``digits`` or ``imagefolder`` with ``data_dir``)."""
    if name == "digits":
        return load_digits_splits(seed=seed)
    if name == "imagefolder":
        if data_dir is None:
            raise DataError("data set 'imagefolder' needs a folder; pass --data-dir DIR")
        return load_imagefolder_splits(data_dir, seed=seed, **kwargs)
    raise UsageError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")


# The data set tritonkit embeds (no download) and uses when a model records none.
DEFAULT_DATASET = "digits"


def embedded_split(record: dict[str, Any] | None, split: str) -> Split | None:
    """The ``split`` of a model's recorded data set (name, seed, fractions) when it is embedded here.

    Why: parity, calibration and held-out predictions want a model's own data without knowing which
    set it is; a user's image folder is not embedded (None), so they fall back to what they are given.
    """
    record = dict(record or {"name": DEFAULT_DATASET})
    if record.get("name") != DEFAULT_DATASET:
        return None
    fractions = tuple(float(f) for f in record.get("fractions", (0.7, 0.15, 0.15)))
    return _digits_splits(int(record.get("seed", 0)), fractions)[split]  # type: ignore[arg-type]


@functools.lru_cache(maxsize=4)
def _digits_splits(seed: int, fractions: tuple[float, float, float]) -> dict[str, Split]:
    return load_digits_splits(seed=seed, fractions=fractions)


def split_normalization(split: Split) -> tuple[float, tuple[float, ...], tuple[float, ...]]:
    """(scale, mean, std) a split is normalized with: from its meta, else the digits constants."""
    meta = split.meta or {}
    if "scale" in meta:
        return float(meta["scale"]), tuple(meta.get("mean", ())), tuple(meta.get("std", ()))
    return DIGITS_SCALE, DIGITS_MEAN, DIGITS_STD


class SplitDataset(Dataset):
    """A split normalized once, with an optional random horizontal flip (global torch RNG, so a
    resumed run replays the same flips)."""

    def __init__(self, split: Split, flip: bool = False) -> None:
        scale, mean, std = split_normalization(split)
        self.x = torch.from_numpy(normalize(split.images, scale, mean, std))
        self.y = torch.from_numpy(split.labels)
        self.flip = flip

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.x[i]
        if self.flip and bool(torch.rand(()) < 0.5):
            x = torch.flip(x, dims=(-1,))
        return x, self.y[i]


def create_dataloader(dataset: str | Split | Dataset, config: dict[str, Any] | None = None) -> DataLoader:
    """A DataLoader over a data set split.

    ``dataset`` is ``"digits"``, ``"imagefolder"`` (with ``config["data_dir"]``), a :class:`Split`
    or any torch ``Dataset``. Config keys: ``split`` (train/val/test), ``batch_size`` (64),
    ``shuffle`` (train only), ``seed`` (0), ``flip`` (random horizontal flip; imagefolder train
    default), ``image_size``/``channels`` (imagefolder), ``num_workers`` (0).
    """
    config = dict(config or {})
    split_name = config.get("split", "train")
    if split_name not in ("train", "val", "test"):
        raise UsageError(f"split {split_name!r} is invalid; choose one of: train, val, test")
    batch_size = int(config.get("batch_size", 64))
    shuffle = bool(config.get("shuffle", split_name == "train"))
    seed = int(config.get("seed", 0))
    flip = bool(config.get("flip", False))
    if isinstance(dataset, Dataset):
        ds: Dataset = dataset
    else:
        if isinstance(dataset, Split):
            split = dataset
        elif isinstance(dataset, str):
            extra = {k: config[k] for k in ("image_size", "channels", "resize") if k in config}
            split = load_splits(dataset, config.get("data_dir"), seed=seed, **extra)[split_name]
            if dataset == "imagefolder":
                flip = bool(config.get("flip", split_name == "train"))
        else:
            raise UsageError(f"dataset is a {type(dataset).__name__}; give a name, a Split or a Dataset")
        same_as_before = not flip and "scale" not in (split.meta or {})
        ds = digits_tensors(split) if same_as_before else SplitDataset(split, flip=flip)
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=gen,
                        num_workers=int(config.get("num_workers", 0)))
    if not isinstance(dataset, Dataset):  # what a Trainer writes into self-describing checkpoints
        loader.model_spec, loader.labels, loader.dataset_meta = spec_for_split(split), list(split.classes), split.meta
    return loader


INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def digits_model_spec(labels: list[str]) -> ModelSpec:
    """Spec of the digits models: one 1x8x8 fp32 image in, one logit per class out."""
    return ModelSpec(
        inputs=(TensorSpec(INPUT_NAME, (1, 8, 8), "float32"),),
        outputs=(TensorSpec(OUTPUT_NAME, (len(labels),), "float32"),),
        layout="NCHW",
        mean=DIGITS_MEAN,
        std=DIGITS_STD,
        scale=DIGITS_SCALE,
        value_range=(0.0, 16.0),
        labels=tuple(labels),
    )


def spec_for_split(split: Split) -> ModelSpec:
    """The input spec of a model trained on ``split`` (digits: :func:`digits_model_spec`)."""
    if (split.meta or {}).get("name") == "digits":
        return digits_model_spec(list(split.classes))
    meta = split.meta
    c, h, w = (int(d) for d in split.images.shape[1:])
    return ModelSpec(
        inputs=(TensorSpec(INPUT_NAME, (c, h, w), "float32"),),
        outputs=(TensorSpec(OUTPUT_NAME, (len(split.classes),), "float32"),),
        layout="NCHW",
        mean=tuple(meta["mean"]),
        std=tuple(meta["std"]),
        scale=float(meta["scale"]),
        value_range=tuple(meta.get("value_range", (0.0, 255.0))),  # type: ignore[arg-type]
        labels=tuple(split.classes),
    )


