"""What `tritonkit predict` sends, from what the user gives: image files and folders, ``.npy`` inputs,
and the two forms an image front door (the ``<model>_image`` ensemble) takes.

A folder stands for the images in it; one that cannot be decoded there is skipped with its reason
(a folder of a thousand photos is not lost to one truncated file), while a file named on the command
line must be readable. Nothing is opened here that is not a regular file, so a FIFO never blocks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from contract.errors import UsageError
from contract.fileio import open_user_file
from toolkit.client.images import check_image, encoded_image

# The suffixes of toolkit.client.images.IMAGE_FORMATS (what the client decodes).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


@dataclass(frozen=True)
class Listed:
    """A file to classify, and whether it was found in a folder (then a bad one is skipped, not fatal)."""

    path: Path
    in_folder: bool


def expand(paths: tuple[str, ...]) -> list[Listed]:
    """Files as given; a folder stands for its image and .npy files, sorted."""
    out: list[Listed] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(Listed(f, True) for f in sorted(p.iterdir()) if f.suffix.lower() in (*IMAGE_SUFFIXES, ".npy"))
        else:
            out.append(Listed(p, False))
    return out


def readable_images(listed: list[Listed]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The images that decode, and (path, reason) for each one skipped from a folder.

    Raises:
        UsageError: an image named on the command line cannot be decoded, or none is left.
    """
    good: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for item in listed:
        try:
            check_image(item.path)
        except UsageError as exc:
            if not item.in_folder:
                raise
            skipped.append((item.path, str(exc).split(": ", 1)[-1]))
            continue
        good.append(item.path)
    if not good:
        raise UsageError(f"none of the {len(skipped)} image(s) found could be decoded (first: {skipped[0][0]}: "
                         f"{skipped[0][1]}); give PNG or JPEG images")
    return good, skipped


def load_npy(path: Path) -> Any:
    """One ``.npy`` model input, read only from a regular file whose size matches its header.

    A header may declare any shape in a few bytes; numpy would allocate it before reading, so the
    declared size is checked against the bytes the file holds first.
    """
    from numpy.lib import format as npformat

    hint = "save model inputs with numpy.save"
    fh = os.fdopen(open_user_file(path, UsageError, missing="no such file; check the path",
                                  hint="give .npy files or images"), "rb")
    with fh:
        try:
            version = npformat.read_magic(fh)
            read_header = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
            shape, _, dtype = read_header(fh)
            declared = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize if shape else dtype.itemsize
            held = os.fstat(fh.fileno()).st_size - fh.tell()
            if dtype.hasobject:
                raise UsageError(f"{path}: holds Python objects ({dtype}), not numbers; {hint}")
            if declared != held:
                raise UsageError(f"{path}: its header declares shape {list(shape)} {dtype} ({declared} bytes) "
                                 f"but the file holds {held}; {hint}")
            fh.seek(0)
            return np.load(fh, allow_pickle=False)
        except (OSError, ValueError, EOFError, SyntaxError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsageError(f"{path}: cannot be read as a .npy array ({reason}); {hint}") from None


@dataclass(frozen=True)
class FrontDoor:
    """The inputs of an image front door (the image ensemble): encoded bytes and/or raw UINT8 pixels.

    The ensemble declares both as optional and wants exactly one per request.
    """

    encoded: str | None = None  # BYTES [1] per sample: a PNG or JPEG file's bytes
    raw: str | None = None  # UINT8 [H, W, C] per sample: pixel values in the model's value range

    @property
    def found(self) -> bool:
        return bool(self.encoded or self.raw)


def front_door(inputs: list[dict[str, Any]], max_batch_size: int) -> FrontDoor:
    """Which inputs of a served model take images (none for a tensor model such as ``digits``)."""
    def dims(t: dict[str, Any]) -> list[int]:
        return list(t["shape"][1:] if max_batch_size > 0 else t["shape"])

    encoded = next((t["name"] for t in inputs if t["datatype"] == "BYTES" and dims(t) == [1]), None)
    raw = next((t["name"] for t in inputs if t["datatype"] == "UINT8" and len(dims(t)) == 3), None)
    if len(inputs) < 2 and not encoded:
        raw = None  # a lone UINT8 input is a tensor model's own input, not an image door
    return FrontDoor(encoded, raw)


def encoded_batch(paths: list[Path]) -> np.ndarray:
    """Image files as the BYTES ``[N, 1]`` batch an encoded-image input takes."""
    batch = np.empty((len(paths), 1), dtype=object)
    for i, p in enumerate(paths):
        batch[i, 0] = encoded_image(p)
    return batch


def raw_pixels(images: np.ndarray) -> np.ndarray:
    """Raw ``(N, C, H, W)`` values in the model's value range (the digits set: 0..16) as UINT8 ``(N, H, W, C)``."""
    return np.ascontiguousarray(np.clip(np.rint(images), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1))
