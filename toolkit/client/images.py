"""Image files -> model inputs, with the transform the model was trained with.

The convention is the one calibration and parity use: 8-bit pixels ``0..255`` are mapped onto the
spec's raw ``value_range`` (digits: ``0..16``), then ``(x * scale - mean) / std`` per channel. One
channel means grayscale (``L``), three mean RGB; the image is resized to the spec's H x W.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from contract.errors import UsageError
from contract.fileio import open_user_file
from contract.spec import ModelSpec

# The formats decoded here, by Pillow's plugin names (PPM covers PGM/PBM). Pillow is never left to
# guess among all its plugins: some (EPS) run external programs, others are rarely hardened.
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
IMAGE_HINT = "give PNG, JPEG, BMP, GIF, TIFF, WebP or PGM/PPM files"
# Pixel budgets, checked from an image's header before it is decoded (a few bytes of PNG can declare
# gigapixels). A 12 Mpixel phone photo passes. The served preprocessing model
# (toolkit/serve/preprocessing/model.py) holds the same numbers; a test keeps them equal.
MAX_IMAGE_PIXELS = 4096 * 4096
MAX_REQUEST_PIXELS = 4 * MAX_IMAGE_PIXELS


def _chw(spec: ModelSpec) -> tuple[int, int, int]:
    shape = spec.input.shape
    if len(shape) != 3 or spec.layout not in ("NCHW", "NHWC"):
        raise UsageError(
            f"input {spec.input.name!r} has shape {list(shape)} with layout {spec.layout}; "
            "image preprocessing needs a 3-D NCHW or NHWC input; send ready model inputs instead of images"
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


def check_pixels(where: str, width: int, height: int) -> None:
    """Refuse an image whose declared size is over :data:`MAX_IMAGE_PIXELS`, before decoding it."""
    if width * height > MAX_IMAGE_PIXELS:
        raise UsageError(f"{where}: declares {width}x{height} = {width * height} pixels, over the "
                         f"{MAX_IMAGE_PIXELS} (4096x4096) allowed per image; give a smaller image")


def _open(source: str | os.PathLike[str] | bytes, where: str) -> tuple[Any, Any]:
    """Pillow's view of one encoded image and the file under it: only the header is read, nothing decoded."""
    import io
    import warnings

    from PIL import Image, UnidentifiedImageError

    if isinstance(source, bytes | bytearray):
        fh: Any = io.BytesIO(source)
    else:
        # Regular files only, opened without blocking: a FIFO or device never hangs the client.
        fh = os.fdopen(open_user_file(source, UsageError, missing="no such file; check the path", hint=IMAGE_HINT),
                       "rb")
    try:
        with warnings.catch_warnings():  # a size over Pillow's own threshold is refused just below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(fh, formats=IMAGE_FORMATS), fh
    except Image.DecompressionBombError:
        fh.close()
        raise UsageError(f"{where}: declares more than {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels, over the "
                         f"{MAX_IMAGE_PIXELS} (4096x4096) allowed per image; give a smaller image") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        fh.close()
        reason = "not an image in a format accepted here" if isinstance(exc, UnidentifiedImageError) else (
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise UsageError(f"{where}: {reason}; {IMAGE_HINT}") from None


def check_image(path: str | os.PathLike[str]) -> None:
    """Decode one image file completely (within the pixel budget) and drop it: UsageError when it cannot
    be, so a corrupt file is found before any request carries it."""
    where = str(path)
    opened, fh = _open(path, where)
    try:
        check_pixels(where, *opened.size)
        opened.load()
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{where}: {reason}; {IMAGE_HINT}") from None
    finally:
        opened.close()
        fh.close()


def encoded_image(path: str | os.PathLike[str]) -> bytes:
    """An image file as PNG or JPEG bytes (what a server-side decoder such as the image ensemble takes):
    the file's own bytes when it is one, else the decoded image re-encoded as PNG."""
    import io

    where = str(path)
    opened, fh = _open(path, where)
    try:
        if opened.format in ("PNG", "JPEG"):
            fh.seek(0)
            return bytes(fh.read())
        check_pixels(where, *opened.size)
        out = io.BytesIO()
        opened.save(out, format="PNG")
        return out.getvalue()
    finally:
        opened.close()
        fh.close()


def decode_image(source: str | os.PathLike[str] | bytes | Any, spec: ModelSpec) -> np.ndarray:
    """One image (a path, encoded bytes or a PIL image) as raw float32 ``(C, H, W)`` over the value range.

    Only regular files are opened; only :data:`IMAGE_FORMATS` are decoded, and only once the header's
    size is within :data:`MAX_IMAGE_PIXELS`.

    Raises:
        UsageError: the file is missing, not a regular file, too large, or not an image decoded here.
    """
    from PIL import Image

    c, h, w = _chw(spec)
    where = "image bytes" if isinstance(source, bytes | bytearray) else str(source)
    opened, fh = (source, None) if isinstance(source, Image.Image) else _open(source, where)
    try:
        check_pixels(where, *opened.size)
        img = opened.convert("L" if c == 1 else "RGB")
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{where}: {reason}; {IMAGE_HINT}") from None
    finally:
        if fh is not None:
            opened.close()
            fh.close()
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
