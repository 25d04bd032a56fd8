"""The one dtype vocabulary: numpy <-> Triton wire (``FP32``) <-> config enum (``TYPE_FP32``) <-> ONNX.

No own tables: wire names come from ``tritonclient.utils``, config enum names from Triton's own
``ModelConfig`` protobuf (``DataType``), ONNX element types from ``onnx.helper``. The libraries
are imported on first use, so importing this module stays cheap for ``tritonkit --help``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from contract.errors import UsageError

__all__ = [
    "config_from_numpy", "config_from_onnx", "config_from_wire", "numpy_from_config", "numpy_from_wire",
    "wire_from_config", "wire_from_numpy",
]

# The one naming difference between the wire and the config enum (Triton's own rule).
_WIRE_BYTES, _CONFIG_BYTES = "BYTES", "TYPE_STRING"


def _config_names() -> list[str]:
    from tritonclient.grpc import model_config_pb2 as mc

    return [n for n in mc.DataType.keys() if n != "TYPE_INVALID"]


def wire_from_numpy(dtype: Any) -> str:
    """Triton wire type (``FP32``) for a numpy dtype or dtype name.

    Raises:
        UsageError: numpy has no such dtype, or Triton no type for it.
    """
    from tritonclient.utils import np_to_triton_dtype

    try:
        wire = np_to_triton_dtype(np.dtype(dtype))
    except TypeError:
        wire = None
    if wire is None:
        raise UsageError(f"dtype {dtype!r} has no Triton type; use a numeric, bool or object (bytes) dtype")
    return str(wire)


def numpy_from_wire(wire: str) -> np.dtype:
    """Numpy dtype for a Triton wire type (``FP32`` -> float32).

    Raises:
        UsageError: the name is not a Triton wire type numpy can hold.
    """
    from tritonclient.utils import triton_to_np_dtype

    found = triton_to_np_dtype(wire) if isinstance(wire, str) else None
    if found is None:
        raise UsageError(f"Triton wire type {wire!r} is not supported by tritonkit")
    return np.dtype(found)


def config_from_wire(wire: str) -> str:
    """Config enum name for a wire type (``FP32`` -> ``TYPE_FP32``, ``BYTES`` -> ``TYPE_STRING``)."""
    name = _CONFIG_BYTES if wire == _WIRE_BYTES else f"TYPE_{wire}"
    if name not in _config_names():
        raise UsageError(f"Triton wire type {wire!r} has no config data type")
    return name


def wire_from_config(config: str) -> str:
    """Wire type for a config enum name (``TYPE_FP32`` -> ``FP32``)."""
    if config not in _config_names():
        raise UsageError(f"Triton data type {config!r} is not one of {', '.join(_config_names())}")
    return _WIRE_BYTES if config == _CONFIG_BYTES else config.removeprefix("TYPE_")


def config_from_numpy(dtype: Any) -> str:
    """Config enum name (``TYPE_FP32``) for a numpy dtype or dtype name."""
    return config_from_wire(wire_from_numpy(dtype))


def numpy_from_config(config: str) -> np.dtype:
    """Numpy dtype for a config enum name (``TYPE_FP32`` -> float32)."""
    return numpy_from_wire(wire_from_config(config))


def config_from_onnx(elem_type: int) -> str | None:
    """Config enum name for an ONNX ``TensorProto`` element type (1 -> ``TYPE_FP32``); None when Triton has none."""
    from onnx.helper import tensor_dtype_to_np_dtype

    try:
        dtype = np.dtype(tensor_dtype_to_np_dtype(int(elem_type)))
    except (KeyError, TypeError, ValueError):
        return None
    if dtype.name == "bfloat16":  # an ml_dtypes extension type: tritonclient sends it as float32 bytes
        return "TYPE_BF16"
    try:
        return config_from_numpy(dtype)
    except UsageError:
        return None
