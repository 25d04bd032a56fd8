"""Triton python-backend model: raw or encoded images -> the tensor the classifier was trained on.

Copied into ``<repo>/<name>_preprocess/<version>/model.py`` by tritonkit. Its config carries the
model's spec (``parameters { key: "spec" }``: shape without batch, scale, mean, std, value range),
so the transform here is the training one, not a second guess:

- ``IMAGE`` (UINT8, ``[H, W, C]`` per sample, any H/W): raw pixel values in the model's value
  range (for the digits set 0..16), resized with Pillow when H/W differ from the model's.
- ``IMAGE_BYTES`` (BYTES, ``[1]`` per sample): an encoded PNG/JPEG; decoded pixels 0..255 are
  mapped linearly onto the model's value range first.

Exactly one of the two inputs must be given. The output is ``(x * scale - mean) / std`` as FP32
in the model's layout. A request that cannot be decoded gets its own error response.
"""

from __future__ import annotations

import io
import json

import numpy as np
import triton_python_backend_utils as pb_utils

# Encoded images may declare any size in a few bytes; refuse before decoding what would not fit.
MAX_PIXELS = 1 << 24


def _error(message: str, code: str):
    """A TritonError with ``code`` where this python backend supports codes (23.xx+)."""
    value = getattr(pb_utils.TritonError, code, None)
    return pb_utils.TritonError(message, value) if value is not None else pb_utils.TritonError(message)


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

    def _resize(self, img: np.ndarray) -> np.ndarray:
        """HWC float image in value-range units -> (C, H, W) at the model's size."""
        from PIL import Image

        channels = img.shape[2]
        if channels in (2, 4):  # grayscale+alpha, RGBA: alpha is not part of the image
            img, channels = img[:, :, : channels - 1], channels - 1
        if channels not in (1, 3) or 0 in img.shape[:2]:
            raise ValueError(f"IMAGE must be [N, H, W, C] with H, W >= 1 and C in 1..4, got H, W, C = "
                             f"{list(img.shape[:2]) + [img.shape[2]]}")
        if channels != self.c:
            if self.c == 1:  # Pillow's RGB -> L weights (ITU-R 601-2), as training's convert("L")
                img = (img @ np.asarray([0.299, 0.587, 0.114], np.float32))[:, :, None]
            else:
                img = np.repeat(img, self.c, axis=2)
        if img.shape[:2] != (self.h, self.w):
            chans = [
                np.asarray(Image.fromarray(img[:, :, k].astype(np.float32), mode="F").resize(
                    (self.w, self.h), Image.BILINEAR))
                for k in range(img.shape[2])
            ]
            img = np.stack(chans, axis=2)
        return img.transpose(2, 0, 1)

    def _decode(self, data: bytes) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        arr, size = None, (0, 0)
        try:
            with Image.open(io.BytesIO(data)) as im:
                size = im.size
                if size[0] * size[1] <= MAX_PIXELS:
                    arr = np.asarray(im.convert("L" if self.c == 1 else "RGB"), dtype=np.float32)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            raise ValueError(f"IMAGE_BYTES is not a PNG/JPEG image ({type(exc).__name__})") from None
        if arr is None:
            raise ValueError(f"IMAGE_BYTES declares {size[0]}x{size[1]} pixels, over the {MAX_PIXELS} "
                             "allowed; send a smaller image")
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return self.lo + arr * np.float32((self.hi - self.lo) / 255.0)

    def _one(self, request) -> np.ndarray:
        raw = pb_utils.get_input_tensor_by_name(request, "IMAGE")
        enc = pb_utils.get_input_tensor_by_name(request, "IMAGE_BYTES")
        if (raw is None) == (enc is None):
            raise ValueError("send exactly one of IMAGE (UINT8 [N,H,W,C]) or IMAGE_BYTES (BYTES [N,1])")
        if raw is not None:
            batch = raw.as_numpy()
            if batch.ndim != 4:
                raise ValueError(f"IMAGE must be [N, H, W, C], got shape {list(batch.shape)}")
            images = [self._resize(b.astype(np.float32)) for b in batch]
        else:
            images = [self._resize(self._decode(bytes(b[0]))) for b in enc.as_numpy()]
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
