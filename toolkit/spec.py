"""The tensor shapes and dtypes every stage agrees on.

A :class:`ModelSpec` travels from the checkpoint into ONNX metadata, the Triton config and the
client, so no stage has to guess names, shapes or normalization.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from toolkit.errors import UsageError

# numpy dtype name -> Triton config data type (TYPE_*) and wire type (used by tritonclient).
_DTYPES: dict[str, tuple[str, str]] = {
    "float32": ("TYPE_FP32", "FP32"),
    "float16": ("TYPE_FP16", "FP16"),
    "float64": ("TYPE_FP64", "FP64"),
    "int8": ("TYPE_INT8", "INT8"),
    "int16": ("TYPE_INT16", "INT16"),
    "int32": ("TYPE_INT32", "INT32"),
    "int64": ("TYPE_INT64", "INT64"),
    "uint8": ("TYPE_UINT8", "UINT8"),
    "bool": ("TYPE_BOOL", "BOOL"),
    "object": ("TYPE_STRING", "BYTES"),
}


def triton_config_dtype(numpy_dtype: str) -> str:
    """Triton config enum name (``TYPE_FP32``) for a numpy dtype name."""
    try:
        return _DTYPES[numpy_dtype][0]
    except KeyError:
        raise UsageError(
            f"dtype {numpy_dtype!r} has no Triton type; use one of {', '.join(_DTYPES)}"
        ) from None


def triton_wire_dtype(numpy_dtype: str) -> str:
    """Triton wire type name (``FP32``) for a numpy dtype name."""
    triton_config_dtype(numpy_dtype)
    return _DTYPES[numpy_dtype][1]


def numpy_dtype_from_config(config_dtype: str) -> str:
    """Numpy dtype name for a Triton config enum name (``TYPE_FP32`` -> ``float32``)."""
    for name, (cfg, _) in _DTYPES.items():
        if cfg == config_dtype:
            return name
    raise UsageError(f"Triton data type {config_dtype!r} is not supported by tritonkit")


def numpy_dtype_from_wire(wire_dtype: str) -> str:
    """Numpy dtype name for a Triton wire type name (``FP32`` -> ``float32``)."""
    for name, (_, wire) in _DTYPES.items():
        if wire == wire_dtype:
            return name
    raise UsageError(f"Triton wire type {wire_dtype!r} is not supported by tritonkit")


@dataclass(frozen=True)
class TensorSpec:
    """One tensor: name, shape without the batch dimension (-1 = variable), numpy dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise UsageError(f"tensor name {self.name!r} is invalid; use letters, digits and _")
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        triton_config_dtype(self.dtype)


@dataclass(frozen=True)
class ModelSpec:
    """Inputs, outputs and the preprocessing a model expects.

    ``mean``/``std`` are per channel and applied after scaling raw values by ``scale``
    (``x * scale - mean) / std``), exactly as the training transform does.
    """

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    layout: str = "NCHW"
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    scale: float = 1.0
    value_range: tuple[float, float] = (0.0, 1.0)
    labels: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["inputs"] = [asdict(t) for t in self.inputs]
        d["outputs"] = [asdict(t) for t in self.outputs]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        try:
            return cls(
                inputs=tuple(TensorSpec(t["name"], tuple(t["shape"]), t["dtype"]) for t in d["inputs"]),
                outputs=tuple(
                    TensorSpec(t["name"], tuple(t["shape"]), t["dtype"]) for t in d["outputs"]
                ),
                layout=str(d.get("layout", "NCHW")),
                mean=tuple(float(v) for v in d.get("mean", ())),
                std=tuple(float(v) for v in d.get("std", ())),
                scale=float(d.get("scale", 1.0)),
                value_range=tuple(float(v) for v in d.get("value_range", (0.0, 1.0))),  # type: ignore[arg-type]
                labels=tuple(str(v) for v in d.get("labels", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"model spec is malformed ({exc}); re-export the model") from None

    @property
    def input(self) -> TensorSpec:
        return self.inputs[0]

    @property
    def output(self) -> TensorSpec:
        return self.outputs[0]


# Where a ModelSpec is stored: ONNX metadata_props key, and the served config's parameter.
METADATA_SPEC_KEY = "tritonkit.model_spec"
