"""Image files -> model inputs, with the transform the model was trained with.

The convention is the one calibration and parity use: 8-bit pixels ``0..255`` are mapped onto the
spec's raw ``value_range`` (digits: ``0..16``), then ``(x * scale - mean) / std`` per channel. One
channel means grayscale (``L``), three mean RGB; the image is resized to the spec's H x W.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import UsageError
from toolkit.spec import ModelSpec

IMAGE_HINT = "give PNG, JPEG, BMP, GIF, TIFF or WebP files"


def _chw(spec: ModelSpec) -> tuple[int, int, int]:
    shape = spec.input.shape
    if len(shape) != 3 or spec.layout not in ("NCHW", "NHWC"):
        raise UsageError(
            f"input {spec.input.name!r} has shape {list(shape)} with layout {spec.layout}; "
            "image preprocessing needs a 3-D NCHW or NHWC input (send arrays with Predictor.predict instead)"
        )
    c, h, w = shape if spec.layout == "NCHW" else (shape[2], shape[0], shape[1])
    if c not in (1, 3):
        raise UsageError(f"input {spec.input.name!r} has {c} channels; images need 1 (grayscale) or 3 (RGB)")
    if h <= 0 or w <= 0:
        raise UsageError(
            f"input {spec.input.name!r} has a variable size {list(shape)}; give the size with a spec "
            "whose H and W are fixed"
        )
    return c, h, w


def decode_image(source: str | os.PathLike[str] | bytes | Any, spec: ModelSpec) -> np.ndarray:
    """One image (a path, encoded bytes or a PIL image) as raw float32 ``(C, H, W)`` over the value range.

    Raises:
        UsageError: the file is missing or is not an image Pillow can decode.
    """
    import io

    from PIL import Image, UnidentifiedImageError

    c, h, w = _chw(spec)
    where = "image bytes" if isinstance(source, bytes | bytearray) else str(source)
    try:
        if isinstance(source, Image.Image):
            img = source
        elif isinstance(source, bytes | bytearray):
            img = Image.open(io.BytesIO(source))
        else:
            img = Image.open(Path(source))
        img.load()
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file; check the path") from None
    except IsADirectoryError:
        raise UsageError(f"{where}: is a folder, not an image; {IMAGE_HINT}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, UnidentifiedImageError):
            reason = "not an image Pillow can decode"
        raise UsageError(f"{where}: {reason}; {IMAGE_HINT}") from None
    img = img.convert("L" if c == 1 else "RGB")
    if img.size != (w, h):
        img = img.resize((w, h), Image.Resampling.BILINEAR)
    a = np.asarray(img, dtype=np.float32)
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    lo, hi = spec.value_range
    return (np.float32(lo) + a / np.float32(255.0) * np.float32(hi - lo)).astype(np.float32)


def normalize(raw: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """The training transform on raw ``(N, C, H, W)`` values, in the model's layout and dtype.

    The same float32 arithmetic as ``trainers.data.normalize`` (tests hold them equal), written here
    so the client does not import torch.
    """
    x = raw.astype(np.float32) * np.float32(spec.scale)
    if spec.mean:
        m = np.asarray(spec.mean, dtype=np.float32).reshape(1, -1, 1, 1)
        s = np.asarray(spec.std, dtype=np.float32).reshape(1, -1, 1, 1)
        x = (x - m) / s
    if spec.layout == "NHWC":
        x = x.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x.astype(spec.input.dtype))


def preprocess_images(sources: Sequence[str | os.PathLike[str] | bytes | Any], spec: ModelSpec) -> np.ndarray:
    """Decode, resize and normalize images into one batch ready to send."""
    if not sources:
        c, h, w = _chw(spec)
        return np.zeros((0, c, h, w), dtype=spec.input.dtype)
    return normalize(np.stack([decode_image(s, spec) for s in sources]), spec)
