"""toolkit.dtypes: one vocabulary over tritonclient, Triton's ModelConfig enum and onnx (no own tables)."""

from __future__ import annotations

import numpy as np
import pytest

from contract.errors import UsageError
from contract.spec import DTYPES
from toolkit.dtypes import (
    config_from_numpy,
    config_from_onnx,
    config_from_wire,
    numpy_from_config,
    numpy_from_wire,
    wire_from_config,
    wire_from_numpy,
)


@pytest.mark.parametrize("name", DTYPES)
def test_every_spec_dtype_round_trips_through_wire_and_config_names(name: str) -> None:
    wire, config = wire_from_numpy(name), config_from_numpy(name)
    assert numpy_from_wire(wire) == np.dtype(name) == numpy_from_config(config)
    assert config_from_wire(wire) == config and wire_from_config(config) == wire


def test_names_follow_triton_spelling_when_bytes_and_floats_are_mapped() -> None:
    assert (wire_from_numpy(np.float32), config_from_numpy("float32")) == ("FP32", "TYPE_FP32")
    assert (wire_from_numpy(object), config_from_numpy("object")) == ("BYTES", "TYPE_STRING")


def test_onnx_element_types_map_to_the_config_types_triton_declares() -> None:
    from onnx import TensorProto as T

    assert [config_from_onnx(e) for e in (T.FLOAT, T.UINT8, T.INT64, T.STRING, T.BOOL, T.FLOAT16, T.DOUBLE,
                                         T.BFLOAT16)] == [
        "TYPE_FP32", "TYPE_UINT8", "TYPE_INT64", "TYPE_STRING", "TYPE_BOOL", "TYPE_FP16", "TYPE_FP64", "TYPE_BF16"]
    assert config_from_onnx(T.COMPLEX64) is None and config_from_onnx(999) is None


@pytest.mark.parametrize(("call", "value"), [
    (wire_from_numpy, "complex64"), (wire_from_numpy, "no-such-dtype"), (numpy_from_wire, "FP8"),
    (wire_from_config, "TYPE_FP8"), (config_from_wire, "FP8"),
])
def test_unknown_names_are_refused_with_usage_error_when_triton_has_no_such_type(call, value) -> None:
    with pytest.raises(UsageError):
        call(value)
