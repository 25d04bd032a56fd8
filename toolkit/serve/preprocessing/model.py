"""Triton python-backend model: raw or encoded images -> the tensor the classifier was trained on.

Copied into ``<repo>/<name>_preprocess/<version>/model.py`` by tritonkit. Its config carries the
model's spec (``parameters { key: "spec" }``: shape without batch, scale, mean, std, value range),
so the transform here is the training one, not a second guess:

- ``IMAGE`` (UINT8, ``[H, W, C]`` per sample, any H/W): raw pixel values in the model's value
  range (for the digits set 0..16), resized with Pillow when H/W differ from the model's.
- ``IMAGE_BYTES`` (BYTES, ``[1]`` per sample): an encoded PNG or JPEG (no other format is
  decoded); decoded pixels 0..255 are mapped linearly onto the model's value range first.

Exactly one of the two inputs must be given. The output is ``(x * scale - mean) / std`` as FP32
in the model's layout. A request that cannot be decoded gets its own error response.

Budgets (a few bytes of PNG can declare gigapixels, and decoding costs time on the one instance
every other request waits for): each image may hold at most ``MAX_IMAGE_PIXELS`` (4096 x 4096,
more than a 12 Mpixel phone photo) and one request at most ``MAX_REQUEST_PIXELS`` (4 such images).
Both are checked from the PNG/JPEG header or the raw tensor's shape before any pixel is decoded
or copied, and refused with INVALID_ARG (HTTP 400) naming the budget. The same numbers are in
``toolkit.client.images`` (this file must stay self-contained; a test holds them equal).
"""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import triton_python_backend_utils as pb_utils

MAX_IMAGE_PIXELS = 4096 * 4096
MAX_REQUEST_PIXELS = 4 * MAX_IMAGE_PIXELS
ACCEPTED_FORMATS = ("PNG", "JPEG")

# Leading bytes of formats Pillow could decode but this model refuses, to name them in the error.
_OTHER_FORMATS = ((b"GIF8", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
                  (b"RIFF", "WebP or another RIFF"), (b"\x00\x00\x01\x00", "ICO"), (b"P1", "PNM"), (b"P2", "PNM"),
                  (b"P3", "PNM"), (b"P4", "PNM"), (b"P5", "PNM"), (b"P6", "PNM"), (b"P7", "PAM"),
                  (b"%!PS", "PostScript"), (b"8BPS", "PSD"))


def _error(message: str, code: str):
    """A TritonError with ``code`` where this python backend supports codes (23.xx+)."""
    value = getattr(pb_utils.TritonError, code, None)
    return pb_utils.TritonError(message, value) if value is not None else pb_utils.TritonError(message)


def _budget_text(pixels: int) -> str:
    side = int(round(pixels ** 0.5))
    return f"{pixels} ({side}x{side})" if side * side == pixels else str(pixels)


def _check_pixels(where: str, h: int, w: int) -> None:
    """Refuse one image over the per-image budget, from its declared size."""
    if h * w > MAX_IMAGE_PIXELS:
        raise ValueError(f"{where} declares {w}x{h} = {w * h} pixels, over the {_budget_text(MAX_IMAGE_PIXELS)} "
                         "allowed per image; send a smaller image")


def _check_request(what: str, sizes: list[tuple[int, int]]) -> None:
    """Refuse a request whose images, all together, exceed the per-request budget."""
    total = sum(h * w for h, w in sizes)
    if total > MAX_REQUEST_PIXELS:
        raise ValueError(f"the request's {len(sizes)} {what} images hold {total} pixels in all, over the "
                         f"{MAX_REQUEST_PIXELS} (4 x {_budget_text(MAX_IMAGE_PIXELS)}) allowed per request; "
                         "send fewer or smaller images per request")


def _sniff(data: bytes) -> str:
    for magic, name in _OTHER_FORMATS:
        if data.startswith(magic):
            return name
    return ""


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        spec = json.loads(config["parameters"]["spec"]["string_value"])
        self.out_name = config["output"][0]["name"]
        c, h, w = [int(d) for d in spec["inputs"][0]["shape"]]
        self.c, self.h, self.w = c, h, w
        self.scale = np.float32(spec.get("scale", 1.0))
        self.lo, self.hi = (float(v) for v in spec.get("value_range", (0.0, 1.0)))
        mean, std = spec.get("mean") or [0.0] * c, spec.get("std") or [1.0] * c
        self.mean = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(1, -1, 1, 1)

    def _resize(self, img: np.ndarray, lo: float = 0.0, step: float = 1.0) -> np.ndarray:
        """HWC image (``lo + value * step`` in value-range units) -> float32 (C, H, W) at the model's size.

        Channels are converted to float one at a time, so a large image never exists as a whole in
        float32 (4x its bytes).
        """
        from PIL import Image

        channels = img.shape[2]
        if channels in (2, 4):  # grayscale+alpha, RGBA: alpha is not part of the image
            channels -= 1
        if channels not in (1, 3) or 0 in img.shape[:2]:
            raise ValueError(f"IMAGE must be [N, H, W, C] with H, W >= 1 and C in 1..4, got H, W, C = "
                             f"{list(img.shape[:2]) + [img.shape[2]]}")

        def chan(k: int) -> np.ndarray:
            return np.float32(lo) + img[:, :, k].astype(np.float32) * np.float32(step)

        if channels == self.c:
            planes = [chan(k) for k in range(channels)]
        elif self.c == 1:  # Pillow's RGB -> L weights (ITU-R 601-2), as training's convert("L")
            gray = chan(0) * np.float32(0.299)
            gray += chan(1) * np.float32(0.587)
            gray += chan(2) * np.float32(0.114)
            planes = [gray]
        else:
            planes = [chan(0)] * self.c
        if img.shape[:2] != (self.h, self.w):
            planes = [np.asarray(Image.fromarray(p, mode="F").resize((self.w, self.h), Image.BILINEAR))
                      for p in planes]
        return np.stack(planes, axis=0)

    def _open(self, where: str, data: bytes):
        """The PNG/JPEG header of ``data`` (nothing decoded yet), or a ValueError naming what it is."""
        from PIL import Image, UnidentifiedImageError

        try:
            with warnings.catch_warnings():  # over Pillow's own bomb threshold: refused just below
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
        except Image.DecompressionBombError:
            raise ValueError(f"{where} declares more than {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels, over the "
                             f"{_budget_text(MAX_IMAGE_PIXELS)} allowed per image; send a smaller image") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            other = _sniff(data)
            reason = f"a {other} image; only PNG and JPEG are accepted" if other else type(exc).__name__
            raise ValueError(f"{where} is not a PNG/JPEG image ({reason}); send PNG or JPEG bytes") from None
        w, h = im.size
        _check_pixels(where, h, w)
        return im

    def _decode(self, where: str, im) -> np.ndarray:
        """Decode one opened image (its size already checked) into HWC 0..255 values."""
        from PIL import Image

        try:
            with im:
                arr = np.asarray(im.convert("L" if self.c == 1 else "RGB"))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, EOFError) as exc:
            raise ValueError(f"{where} is not a PNG/JPEG image Pillow can decode ({type(exc).__name__}); "
                             "send PNG or JPEG bytes") from None
        return arr[:, :, None] if arr.ndim == 2 else arr

    def _one(self, request) -> np.ndarray:
        raw = pb_utils.get_input_tensor_by_name(request, "IMAGE")
        enc = pb_utils.get_input_tensor_by_name(request, "IMAGE_BYTES")
        if (raw is None) == (enc is None):
            raise ValueError("send exactly one of IMAGE (UINT8 [N,H,W,C]) or IMAGE_BYTES (BYTES [N,1])")
        step = (self.hi - self.lo) / 255.0
        if raw is not None:
            shape = raw.shape() if callable(getattr(raw, "shape", None)) else raw.as_numpy().shape
            shape = [int(d) for d in shape]
            if len(shape) != 4:
                raise ValueError(f"IMAGE must be [N, H, W, C], got shape {shape}")
            n, h, w, _ = shape
            _check_pixels(f"each image of IMAGE {shape}", h, w)
            _check_request("IMAGE", [(h, w)] * n)
            images = [self._resize(b) for b in raw.as_numpy()]
        else:
            blobs = enc.as_numpy().reshape(-1)
            opened = []
            try:
                for i, b in enumerate(blobs):
                    opened.append(self._open(f"IMAGE_BYTES[{i}]", bytes(b)))
                _check_request("IMAGE_BYTES", [(im.size[1], im.size[0]) for im in opened])
                images = [self._resize(self._decode(f"IMAGE_BYTES[{i}]", im), self.lo, step)
                          for i, im in enumerate(opened)]
            finally:
                for im in opened:
                    im.close()
        if not images:
            raise ValueError("the request holds no images; send at least one")
        x = np.stack(images).astype(np.float32) * self.scale
        return ((x - self.mean) / self.std).astype(np.float32)

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            try:
                out = pb_utils.Tensor(self.out_name, self._one(request))
                responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
            except ValueError as exc:  # the client's input: a 400, not a server fault
                responses.append(pb_utils.InferenceResponse(error=_error(str(exc), "INVALID_ARG")))
            except Exception as exc:  # noqa: BLE001 - becomes this request's error response
                responses.append(pb_utils.InferenceResponse(error=_error(str(exc), "INTERNAL")))
        return responses
