"""A served model's metadata and config, checked field by field: a peer that is not Triton fails in one line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from contract.errors import ClientError, UsageError
from contract.spec import ModelSpec
from toolkit.client.failures import first_line
from toolkit.dtypes import numpy_from_wire
from toolkit.repository.config import SPEC_PARAMETER

# Builds the error for a peer whose answer is not what Triton sends (the message says what).
Refuse = Callable[[str], Exception]


def as_dict(obj: Any) -> dict[str, Any]:
    """A metadata answer as a dict (anything else: empty, so the field checks below name what is missing)."""
    return obj if isinstance(obj, dict) else {}


def parse_tensors(meta: Any, key: str, model: str, refuse: Refuse) -> list[dict[str, Any]]:
    """``inputs`` / ``outputs`` of model metadata, every field Triton always sends checked."""
    where = f"model {model!r} metadata"
    items = meta.get(key) if isinstance(meta, dict) else None
    if not isinstance(items, list) or not items:
        raise refuse(f"{where} has no {key!r} list")
    out = []
    for i, t in enumerate(items):
        if not isinstance(t, dict):
            raise refuse(f"{where} {key}[{i}] is not an object")
        for name in ("name", "datatype", "shape"):
            if name not in t:
                raise refuse(f"{where} {key}[{i}] has no {name!r}")
        shape = t["shape"]
        if not isinstance(t["name"], str) or not isinstance(t["datatype"], str) or not isinstance(shape, list):
            raise refuse(f"{where} {key}[{i}] has a malformed name, datatype or shape")
        try:
            dims = [int(d) for d in shape]
        except (TypeError, ValueError):
            raise refuse(f"{where} {key}[{i}] shape {shape!r} is not a list of integers") from None
        if any(d < -1 for d in dims):
            raise refuse(f"{where} {key}[{i}] shape {dims} has a dimension below -1")
        if key == "inputs":
            try:
                numpy_from_wire(t["datatype"])
            except UsageError:
                raise refuse(f"{where} {key}[{i}] datatype {t['datatype']!r} is not a "
                             "Triton type tritonkit can send") from None
        out.append({"name": t["name"], "datatype": t["datatype"], "shape": dims})
    return out


def max_batch_size(config: dict[str, Any], model: str, refuse: Refuse) -> int:
    """The config's ``max_batch_size`` (0: the model does not batch)."""
    try:
        return int(config.get("max_batch_size", 0) or 0)
    except (TypeError, ValueError):
        raise refuse(f"model {model!r} config max_batch_size {config.get('max_batch_size')!r} "
                     "is not an integer") from None


def spec_from_config(config: dict[str, Any], model: str, where: str) -> ModelSpec | None:
    """The ModelSpec a served config carries in its ``tritonkit.model_spec`` parameter, if any.

    Raises:
        ClientError: the parameter is there but holds no tritonkit spec.
    """
    params = config.get("parameters")
    entry = params.get(SPEC_PARAMETER) if isinstance(params, dict) else None
    raw = entry.get("string_value") if isinstance(entry, dict) else None
    if not raw:
        return None
    try:
        return ModelSpec.from_json(raw, where=f"model {model!r} at {where}")
    except Exception as exc:  # noqa: BLE001 - anything a hostile config holds becomes one line
        raise ClientError(
            f"model {model!r} at {where} carries a {SPEC_PARAMETER} parameter that is not a "
            f"tritonkit spec ({first_line(exc)}); pass --spec FILE or --repository DIR"
        ) from None
