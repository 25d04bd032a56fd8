"""Hypothesis fuzzing of the ensemble's image preprocessing (toolkit/serve/preprocessing/model.py): no
input makes it raise anything but its own ValueError (which the model turns into an error response)."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from tests.reliability.refusals import report_counts

MODEL_PY = Path(__file__).resolve().parents[2] / "toolkit" / "serve" / "preprocessing" / "model.py"
TRIED = {"count": 0}


class _Tensor:
    def __init__(self, name: str, data: np.ndarray) -> None:
        self.name, self._data = name, data

    def as_numpy(self) -> np.ndarray:
        return self._data


def _load_model_module() -> types.ModuleType:
    """Import model.py as the stub would, with a minimal ``triton_python_backend_utils`` stand-in."""
    pb = types.ModuleType("triton_python_backend_utils")
    pb.get_input_tensor_by_name = lambda req, name: req.get(name)  # type: ignore[attr-defined]
    pb.Tensor = _Tensor  # type: ignore[attr-defined]
    class TritonError:
        INVALID_ARG, INTERNAL = "INVALID_ARG", "INTERNAL"

        def __init__(self, msg: str, code: str = "INTERNAL") -> None:
            self.msg, self.code = msg, code

    pb.TritonError = TritonError  # type: ignore[attr-defined]
    pb.InferenceResponse = lambda output_tensors=None, error=None: (output_tensors, error)  # type: ignore[attr-defined]
    saved = sys.modules.get("triton_python_backend_utils")
    sys.modules["triton_python_backend_utils"] = pb
    try:
        spec = importlib.util.spec_from_file_location("tk_preprocess_model", MODEL_PY)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        if saved is None:
            sys.modules.pop("triton_python_backend_utils", None)
        else:
            sys.modules["triton_python_backend_utils"] = saved
    return mod


_MODULE: list[types.ModuleType] = []


def model_module() -> types.ModuleType:
    """model.py, imported once (its constants)."""
    if not _MODULE:
        _MODULE.append(_load_model_module())
    return _MODULE[0]


@pytest.fixture(scope="module", params=[(1, 8, 8), (3, 16, 12)], ids=["digits", "rgb"])
def model(request):
    c, h, w = request.param
    spec = {"inputs": [{"name": "input", "shape": [c, h, w]}], "scale": 1.0, "value_range": [0, 16],
            "mean": [0.5] * c, "std": [0.25] * c}
    config = {"output": [{"name": "input"}], "parameters": {"spec": {"string_value": json.dumps(spec)}}}
    m = model_module().TritonPythonModel()
    m.initialize({"model_config": json.dumps(config)})
    return m


def _check(model, request: dict) -> None:
    TRIED["count"] += 1
    try:
        out = model._one(request)
    except ValueError as exc:
        assert "\n" not in str(exc)
        return
    assert out.dtype == np.float32 and out.shape[1:] == (model.c, model.h, model.w)
    # and the model's own execute() never lets anything escape
    (resp,) = model.execute([request])
    assert resp is not None


def _png(w: int, h: int, mode: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, (w, h)).save(buf, format="PNG")
    return buf.getvalue()


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(arrays(np.uint8, array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=12)))
def test_raw_image_of_any_shape_is_transformed_or_refused_with_value_error(model, batch) -> None:
    _check(model, {"IMAGE": _Tensor("IMAGE", batch)})


@SETTINGS
@given(st.lists(st.binary(max_size=256), min_size=0, max_size=3))
def test_arbitrary_bytes_are_decoded_or_refused_with_value_error(model, blobs) -> None:
    arr = np.array([[b] for b in blobs], dtype=object).reshape(len(blobs), 1)
    _check(model, {"IMAGE_BYTES": _Tensor("IMAGE_BYTES", arr)})


@SETTINGS
@given(st.integers(1, 64), st.integers(1, 64), st.sampled_from(["L", "RGB", "RGBA", "1", "I;16", "LA", "P"]),
       st.integers(0, 40), st.binary(max_size=8))
def test_mutated_png_is_decoded_or_refused_with_value_error(model, w, h, mode, cut, noise) -> None:
    data = _png(w, h, mode)
    mutated = data[: max(0, len(data) - cut)] + noise
    _check(model, {"IMAGE_BYTES": _Tensor("IMAGE_BYTES", np.array([[mutated]], dtype=object))})


def test_decompression_bomb_is_refused_with_value_error(model) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    # A PNG header declaring 100000 x 100000 grey pixels and almost no data.
    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    _check(model, {"IMAGE_BYTES": _Tensor("IMAGE_BYTES", np.array([[bomb]], dtype=object))})


def test_neither_or_both_inputs_are_refused_with_value_error(model) -> None:
    img = np.zeros((1, 8, 8, 1), np.uint8)
    for req in ({}, {"IMAGE": _Tensor("IMAGE", img), "IMAGE_BYTES": _Tensor("IMAGE_BYTES", np.array([[b""]], object))}):
        with pytest.raises(ValueError):
            model._one(req)
        TRIED["count"] += 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, 1 << 31), st.integers(1, 1 << 31), st.integers(1, 6))
def test_declared_png_size_over_a_budget_is_refused_before_decoding(model, w, h, n) -> None:
    from tests.reliability.test_security_client import png_header_only

    blobs = np.array([[png_header_only(w, h)]] * n, dtype=object)
    TRIED["count"] += 1
    if w * h <= model_module().MAX_IMAGE_PIXELS and n * w * h <= model_module().MAX_REQUEST_PIXELS:
        return _check(model, {"IMAGE_BYTES": _Tensor("IMAGE_BYTES", blobs)})  # in budget: a truncated image
    with pytest.raises(ValueError, match="allowed per (image|request)"):
        model._one({"IMAGE_BYTES": _Tensor("IMAGE_BYTES", blobs)})


@pytest.mark.parametrize("fmt", ["BMP", "GIF", "TIFF", "WEBP", "PPM", "ICO", "TGA", "PCX", "SGI", "IM", "DDS"])
def test_formats_other_than_png_and_jpeg_are_refused_with_value_error(model, fmt) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(buf, format=fmt)
    TRIED["count"] += 1
    with pytest.raises(ValueError, match="not a PNG/JPEG image"):
        model._one({"IMAGE_BYTES": _Tensor("IMAGE_BYTES", np.array([[buf.getvalue()]], dtype=object))})


def test_budgets_of_the_served_preprocessor_equal_the_client_budgets() -> None:
    from toolkit.client import images

    assert model_module().MAX_IMAGE_PIXELS == images.MAX_IMAGE_PIXELS == 4096 * 4096
    assert model_module().MAX_REQUEST_PIXELS == images.MAX_REQUEST_PIXELS == 4 * 4096 * 4096


@pytest.fixture(scope="module", autouse=True)
def _report_count(request: pytest.FixtureRequest):
    """The number of fuzz inputs, printed once the module's tests ran (every one is checked by its test)."""
    yield
    report_counts(request, "preprocessor fuzz", {"inputs tried": TRIED["count"]})
