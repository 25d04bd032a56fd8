"""Image decoding and the training transform, with real Pillow files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from contract.errors import UsageError
from contract.spec import ModelSpec, TensorSpec
from toolkit.client.images import decode_image, preprocess_images
from trainers.data import DIGITS_MEAN, DIGITS_SCALE, DIGITS_STD, load_digits_splits, normalize
from trainers.recipes import digits_model_spec

SPEC = digits_model_spec([str(i) for i in range(10)])


def save_digit_png(raw: np.ndarray, path: Path) -> Path:
    """A raw 0..16 digit (1, 8, 8) as an 8-bit grayscale PNG over the spec's value range."""
    Image.fromarray(np.round(raw[0] / 16.0 * 255.0).astype(np.uint8), mode="L").save(path)
    return path


def test_preprocess_matches_training_transform_when_digit_saved_as_png(tmp_path: Path) -> None:
    raw = load_digits_splits()["test"].images[:4]
    files = [save_digit_png(r, tmp_path / f"{i}.png") for i, r in enumerate(raw)]
    x = preprocess_images(files, SPEC)
    want = normalize(raw, DIGITS_SCALE, DIGITS_MEAN, DIGITS_STD)
    assert x.shape == (4, 1, 8, 8) and x.dtype == np.float32
    # 8-bit quantization of 0..16 is at most half a step of 16/255, then scaled by 1/16 and 1/0.4
    assert float(np.abs(x - want).max()) <= 0.5 / 255.0 / 0.4 + 1e-6


def test_decode_converts_to_grayscale_and_resizes_when_image_is_rgb_and_large(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    Image.new("RGB", (64, 32), (255, 255, 255)).save(path)
    raw = decode_image(path, SPEC)
    assert raw.shape == (1, 8, 8) and np.allclose(raw, 16.0, atol=0.2)


def test_decode_keeps_three_channels_when_spec_is_rgb(tmp_path: Path) -> None:
    spec = ModelSpec(inputs=(TensorSpec("input", (3, 4, 4)),), outputs=(TensorSpec("logits", (2,)),),
                     mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    path = tmp_path / "red.png"
    Image.new("RGB", (4, 4), (255, 0, 0)).save(path)
    x = preprocess_images([path], spec)
    assert x.shape == (1, 3, 4, 4)
    assert np.allclose(x[0, 0], 1.0) and np.allclose(x[0, 1:], -1.0)


@pytest.mark.parametrize("content", [b"not an image at all", b"\x89PNG\r\n\x1a\n truncated"])
def test_decode_raises_one_line_usage_error_when_file_is_not_an_image(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.png"
    path.write_bytes(content)
    with pytest.raises(UsageError) as err:
        decode_image(path, SPEC)
    assert str(path) in str(err.value) and "\n" not in str(err.value) and "PNG" in str(err.value)


def test_decode_raises_usage_error_when_file_is_missing(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        decode_image(tmp_path / "nope.png", SPEC)


def test_client_normalize_equals_training_normalize_bit_for_bit() -> None:
    from toolkit.client.images import normalize as client_normalize

    raw = load_digits_splits()["test"].images
    assert np.array_equal(client_normalize(raw, SPEC), normalize(raw, DIGITS_SCALE, DIGITS_MEAN, DIGITS_STD))


def test_decode_refuses_fifo_without_blocking_when_path_is_a_fifo(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "pipe.png")  # nobody writes: opening it for reading would block forever
    with pytest.raises(UsageError, match=r"pipe.png is a FIFO, not a regular file"):
        decode_image(tmp_path / "pipe.png", SPEC)


@pytest.mark.parametrize("size", [(4097, 4096), (10000, 10000), (100000, 100000)])
def test_decode_refuses_before_decoding_when_header_declares_more_than_the_budget(tmp_path: Path, size) -> None:
    from tests.reliability.test_security_client import png_header_only

    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(*size))
    with pytest.raises(UsageError, match="allowed per image") as err:
        decode_image(path, SPEC)
    assert "\n" not in str(err.value)


def test_decode_accepts_an_image_at_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("L", (4096, 4096), 255).save(path)
    assert np.allclose(decode_image(path, SPEC), 16.0)


@pytest.mark.parametrize("fmt", ["EPS", "ICO", "TGA"])
def test_decode_refuses_formats_it_does_not_list_when_pillow_could_open_them(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"x.{fmt.lower()}"
    Image.new("RGB", (8, 8)).save(path, format=fmt)
    with pytest.raises(UsageError, match="not an image in a format accepted here"):
        decode_image(path, SPEC)
