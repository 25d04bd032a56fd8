"""The tensor shapes and dtypes every stage agrees on.

A :class:`ModelSpec` travels from the checkpoint into ONNX metadata, the Triton config and the
client, so no stage has to guess names, shapes or normalization.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from contract.errors import UsageError

# The numpy dtype names a spec may declare: each has a Triton type (toolkit/dtypes.py maps them,
# through tritonclient; the contract itself stays free of it, since trainers import it).
DTYPES: tuple[str, ...] = (
    "float32", "float16", "float64", "int8", "int16", "int32", "int64", "uint8", "bool", "object",
)


def check_dtype(numpy_dtype: str) -> str:
    """``numpy_dtype`` when a spec may declare it.

    Raises:
        UsageError: the name is not one of :data:`DTYPES`.
    """
    if numpy_dtype not in DTYPES:
        raise UsageError(f"dtype {numpy_dtype!r} has no Triton type; use one of {', '.join(DTYPES)}")
    return numpy_dtype


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
        check_dtype(self.dtype)


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
    def from_dict(cls, d: Any, *, where: str = "") -> ModelSpec:
        """A spec from its dict form (a checkpoint's ``model_spec``, ONNX metadata, a manifest).

        The dict may come from a hostile file, so its shape is checked key by key and one
        example of each tensor must fit :data:`MAX_BATCH_BYTES` (shapes drive allocations later).

        Raises:
            UsageError: one line naming ``where`` and the first thing that is wrong.
        """
        prefix = f"{where}: " if where else ""
        try:
            return cls._from_dict(d)
        except _SpecShapeError as exc:
            raise UsageError(f"{prefix}model spec is malformed ({exc}); re-export the model") from None
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            what = f"missing key {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
            raise UsageError(f"{prefix}model spec is malformed ({what}); re-export the model") from None

    @classmethod
    def from_json(cls, text: str | bytes, *, where: str = "") -> ModelSpec:
        """A spec from JSON text (the ``tritonkit.model_spec`` ONNX metadata or config parameter).

        Raises:
            UsageError: not JSON, not a JSON object, or malformed as in :meth:`from_dict`.
        """
        prefix = f"{where}: " if where else ""
        if len(text) > MAX_SPEC_JSON_BYTES:
            raise UsageError(f"{prefix}model spec is {len(text)} bytes, over the {MAX_SPEC_JSON_BYTES} allowed; "
                             "re-export the model")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            first = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            raise UsageError(f"{prefix}model spec is not JSON ({first}); re-export the model") from None
        return cls.from_dict(data, where=where)

    @classmethod
    def _from_dict(cls, d: Any) -> ModelSpec:
        if not isinstance(d, dict):
            raise _SpecShapeError(f"a JSON object is needed, got {_kind(d)}")
        spec = cls(
            inputs=_tensors(d, "inputs"),
            outputs=_tensors(d, "outputs"),
            layout=_string(d.get("layout", "NCHW"), "layout"),
            mean=_numbers(d.get("mean", ()), "mean"),
            std=_numbers(d.get("std", ()), "std"),
            scale=_number(d.get("scale", 1.0), "scale"),
            value_range=_value_range(d.get("value_range", (0.0, 1.0))),
            labels=tuple(_string(v, "labels[]") for v in _sequence(d.get("labels", ()), "labels")),
        )
        _check_normalization(spec)
        return spec

    @property
    def input(self) -> TensorSpec:
        return self.inputs[0]

    @property
    def output(self) -> TensorSpec:
        return self.outputs[0]


# Where a ModelSpec is stored: ONNX metadata_props key, and the served config's parameter.
METADATA_SPEC_KEY = "tritonkit.model_spec"


class _SpecShapeError(ValueError):
    """A spec dict of the wrong shape (internal: becomes a UsageError naming the file)."""


def _kind(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {_short(value)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _sequence(value: Any, what: str) -> list[Any] | tuple[Any, ...]:
    if not isinstance(value, (list, tuple)):
        raise _SpecShapeError(f"{what} must be a list, got {_kind(value)}")
    return value


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise _SpecShapeError(f"{what} must be a string, got {_kind(value)}")
    return value


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _SpecShapeError(f"{what} must be a finite number, got {_kind(value)}")
    return float(value)


def _numbers(value: Any, what: str) -> tuple[float, ...]:
    return tuple(_number(v, f"{what}[]") for v in _sequence(value, what))


def _value_range(value: Any) -> tuple[float, float]:
    lo_hi = _numbers(value, "value_range")
    if len(lo_hi) != 2:
        raise _SpecShapeError(f"value_range must be [low, high], got {_short(list(lo_hi))}")
    return lo_hi[0], lo_hi[1]


def _check_normalization(spec: ModelSpec) -> None:
    """mean/std divide every input value: std must be positive and both must fit the channels."""
    if len(spec.mean) != len(spec.std):
        raise _SpecShapeError(f"mean has {len(spec.mean)} values but std has {len(spec.std)}")
    if any(s <= 0 for s in spec.std):
        raise _SpecShapeError(f"std {_short(list(spec.std))} must be positive")
    shape = spec.input.shape
    if spec.mean and len(shape) == 3:
        channels = shape[0] if spec.layout == "NCHW" else shape[-1]
        if channels > 0 and len(spec.mean) not in (1, channels):
            raise _SpecShapeError(f"mean/std have {len(spec.mean)} values for {channels} input channel(s)")


def _tensors(d: dict[str, Any], key: str) -> tuple[TensorSpec, ...]:
    items = _sequence(d[key], key)
    if not items:
        raise _SpecShapeError(f"{key} is empty")
    out = []
    for t in items:
        if not isinstance(t, dict):
            raise _SpecShapeError(f"each of {key} must be an object with name, shape, dtype; got {_kind(t)}")
        name = _string(t["name"], f"{key}[].name")
        if not name or len(name) > 256 or not name.isprintable() or any(c.isspace() for c in name):
            raise _SpecShapeError(f"tensor name {_short(name)} must be 1-256 printable characters without spaces")
        dtype = _string(t.get("dtype", "float32"), f"{name}.dtype")
        if dtype not in DTYPES:
            raise _SpecShapeError(f"{name}: dtype {_short(dtype)} is not one of {', '.join(DTYPES)}")
        dims = _sequence(t["shape"], f"{name}.shape")
        if len(dims) > MAX_RANK:
            raise _SpecShapeError(f"{name}: shape has {len(dims)} dims, more than {MAX_RANK}")
        for dim in dims:
            if isinstance(dim, bool) or not isinstance(dim, int) or dim < -1:
                raise _SpecShapeError(f"{name}: shape {_short(list(dims))} must hold integers >= 0 (-1: variable)")
        check_batch_budget(name, dims, dtype, 1, where="", error=_SpecShapeError)
        out.append(TensorSpec(name, tuple(dims), dtype))
    return tuple(out)


# -- the byte budget of one generated input batch ------------------------------------------------
MAX_RANK = 8
MAX_SPEC_JSON_BYTES = 1 << 20
MAX_BATCH_BYTES = 2 << 30
"""Default budget (2 GiB) for one input batch that tritonkit itself allocates from a declared shape
(``profile-local``'s inputs, parity's random batches, and one example of any spec read from a file).
A declared shape over it is refused before anything is allocated; ``profile-local --max-batch-mib``
raises it for one run."""


def batch_bytes(dims: Sequence[int], dtype: str, batch: int) -> int:
    """Bytes of a ``[batch, *dims]`` array (variable dims count as 1)."""
    itemsize = 8 if dtype == "object" else _itemsize(dtype)
    return batch * math.prod(max(1, int(d)) for d in dims) * itemsize


def _itemsize(dtype: str) -> int:
    import numpy as np

    try:
        return int(np.dtype(dtype).itemsize)
    except TypeError:
        return 8


def check_batch_budget(name: str, dims: Sequence[int], dtype: str, batch: int, *, where: str,
                       budget: int = MAX_BATCH_BYTES, hint: str = "",
                       error: type[Exception] = UsageError) -> None:
    """Refuse a ``[batch, *dims]`` input over ``budget`` bytes before anything is allocated.

    Raises:
        ``error`` (UsageError by default): one line with the shape, its size and the budget.
    """
    size = batch_bytes(dims, dtype, batch)
    if size > budget:
        prefix = f"{where}: " if where else ""
        raise error(f"{prefix}input {name!r} of shape {[batch, *dims]} ({dtype}) needs {_human(size)}, over the "
                    f"{_human(budget)} budget for one input batch{hint}")


def _human(size: int) -> str:
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"
