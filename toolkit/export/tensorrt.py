"""ONNX -> TensorRT plan with Polygraphy's loaders, and the JSON record later stages read.

Everything around the build is plain code tested on CPU: the optimization profiles derived from
the batch options (:func:`derive_profiles`), the precision choice for TensorRT 10 (builder flags)
vs 11 (strongly typed: precision comes from the ONNX, :func:`choose_precision`), and the record
(:func:`build_record`). The build itself (:func:`plan_from_onnx`) imports ``tensorrt`` and
Polygraphy's TensorRT backend lazily and needs a GPU; without them it raises
:class:`MissingDependencyError` (exit code 3) before writing anything.

Profiles use min batch 1..max as asked: the TensorRT backend's usable batch is the smallest
profile-0 max over inputs, so the record's ``max_batch_size`` is exactly that value and the Triton
config must not declare more. A static-batch ONNX (``export --static --batch N``) is built for
batch N only, whatever the options ask; its record says ``fixed_batch: N, max_batch_size: 0``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from contract.errors import ExportError, UsageError
from contract.fileio import atomic_write_bytes, sha256_of
from toolkit.export.defaults import HARDWARE_COMPAT, MAX_BATCH, MIN_BATCH, OPT_BATCH, PLAN_PRECISIONS
from toolkit.export.onnx import REFERENCE_SHAPES_KEY, metadata_of
from toolkit.export.precision import onnx_precision
from toolkit.export.records import record_path, write_record
from toolkit.export.safety import ensure_writable, load_onnx
from toolkit.runners.onnxrt import OnnxRunner
from toolkit.runners.trt import require_tensorrt

__all__ = [
    "EngineDescription", "HARDWARE_COMPAT", "PRECISIONS", "PrecisionChoice", "RECORD_KEYS", "build_record",
    "check_batches", "choose_precision", "derive_profiles", "max_batch_of", "plan_from_onnx", "read_record",
    "require_tensorrt",
]

PRECISIONS = PLAN_PRECISIONS
RECORD_KEYS = (
    "tensorrt_version", "gpu_name", "compute_capability", "precision", "profiles", "max_batch_size",
    "inputs", "outputs", "build_seconds", "call", "sha256", "onnx_sha256", "created",
)


# --------------------------------------------------------------------------- profiles (pure)
def check_batches(min_batch: int, opt_batch: int, max_batch: int) -> None:
    """Raise UsageError unless 1 <= min <= opt <= max."""
    if max_batch < 1 or min_batch < 1 or opt_batch < 1:
        raise UsageError(
            f"batch options must be >= 1 (got --min-batch {min_batch} --opt-batch {opt_batch} "
            f"--max-batch {max_batch}); e.g. --min-batch 1 --opt-batch 8 --max-batch 32"
        )
    if not min_batch <= opt_batch <= max_batch:
        raise UsageError(
            f"batch options must satisfy min <= opt <= max (got --min-batch {min_batch} --opt-batch "
            f"{opt_batch} --max-batch {max_batch}); e.g. --min-batch 1 --opt-batch 8 --max-batch 32"
        )


def derive_profiles(
    inputs: Mapping[str, Sequence[int]],
    *,
    min_batch: int = 1,
    opt_batch: int = 8,
    max_batch: int = 32,
    reference_shapes: Mapping[str, Sequence[int]] | None = None,
) -> list[dict[str, dict[str, list[int]]]]:
    """One optimization profile from the batch options.

    Args:
        inputs: input name -> shape without batch (-1 = dynamic, filled from ``reference_shapes``).

    Returns:
        ``[{name: {"min": [...], "opt": [...], "max": [...]}}]`` (full shapes, batch first).

    Raises:
        UsageError: inconsistent batch options, or a dynamic non-batch dimension with no reference.
    """
    check_batches(min_batch, opt_batch, max_batch)
    profile: dict[str, dict[str, list[int]]] = {}
    for name, shape in inputs.items():
        ref = list((reference_shapes or {}).get(name, shape))
        dims = []
        for i, d in enumerate(shape):
            if d > 0:
                dims.append(int(d))
            elif i < len(ref) and ref[i] > 0:
                dims.append(int(ref[i]))
            else:
                raise UsageError(
                    f"input {name!r} dimension {i + 1} is dynamic and has no reference size; "
                    "export without --dynamic-hw or give reference shapes"
                )
        profile[name] = {"min": [min_batch, *dims], "opt": [opt_batch, *dims], "max": [max_batch, *dims]}
    return [profile]


def max_batch_of(profiles: Sequence[Mapping[str, Mapping[str, Sequence[int]]]]) -> int:
    """What Triton may declare as ``max_batch_size``: the smallest profile-0 max batch over inputs."""
    if not profiles or not profiles[0]:
        raise UsageError("no optimization profile; give --min-batch/--opt-batch/--max-batch")
    return min(int(p["max"][0]) for p in profiles[0].values())


# --------------------------------------------------------------------------- precision (pure)
@dataclass(frozen=True)
class PrecisionChoice:
    """What the build does: the precision, builder flags (TensorRT 10) and strong typing (11)."""

    precision: str
    flags: dict[str, bool]
    strongly_typed: bool


def choose_precision(requested: str, onnx_precision: str, tensorrt_major: int) -> PrecisionChoice:
    """TensorRT >= 11: strongly typed, precision from the ONNX; 10: flags over an fp32 ONNX.

    Raises:
        UsageError: unknown precision, a request TensorRT 11 cannot honour (the ONNX carries
        another precision: run ``tritonkit quantize`` first), or INT8 without Q/DQ on 10.
    """
    if requested not in PRECISIONS:
        raise UsageError(f"unknown precision {requested!r}; choose one of: {', '.join(PRECISIONS)}")
    if tensorrt_major >= 11:
        if requested not in ("auto", onnx_precision):
            raise UsageError(
                f"TensorRT {tensorrt_major} takes precision from the ONNX, which is {onnx_precision}; run "
                f"'tritonkit quantize MODEL --precision {requested} -o OUT' and build OUT, or use --precision auto"
            )
        return PrecisionChoice(onnx_precision, {}, True)
    precision = onnx_precision if requested == "auto" else requested
    if precision == "int8" and onnx_precision != "int8":
        raise UsageError(
            "INT8 needs an ONNX with Q/DQ nodes (tritonkit uses no implicit calibrators); run "
            "'tritonkit quantize MODEL --precision int8 -o OUT' and build OUT"
        )
    flags = {"fp16": precision in ("fp16", "int8") or onnx_precision == "fp16", "int8": precision == "int8"}
    return PrecisionChoice(precision, {k: v for k, v in flags.items() if v}, False)


# --------------------------------------------------------------------------- record (pure)
@dataclass(frozen=True)
class EngineDescription:
    """What the record needs from a built engine and the machine that built it."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    inputs: list[dict[str, Any]]  # {name, dtype, shape (without batch)}
    outputs: list[dict[str, Any]]


def build_record(
    desc: EngineDescription,
    *,
    precision: str,
    profiles: list[dict[str, dict[str, list[int]]]],
    build_seconds: float,
    call: str,
    plan_sha256: str,
    onnx_sha256: str,
    created: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON record beside a plan (keys in :data:`RECORD_KEYS`, plus ``extra``)."""
    rec = {
        "tensorrt_version": desc.tensorrt_version,
        "gpu_name": desc.gpu_name,
        "compute_capability": desc.compute_capability,
        "precision": precision,
        "profiles": profiles,
        "max_batch_size": max_batch_of(profiles),
        "inputs": desc.inputs,
        "outputs": desc.outputs,
        "build_seconds": round(float(build_seconds), 3),
        "call": call,
        "sha256": plan_sha256,
        "onnx_sha256": onnx_sha256,
        "created": created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    rec.update(extra or {})
    return rec


def read_record(plan: str | os.PathLike[str]) -> dict[str, Any]:
    """The record beside a plan; ExportError if it is missing or incomplete."""
    path = record_path(plan, "plan")
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path}: plan record unreadable ({exc}); rebuild with 'tritonkit build'") from None
    missing = [k for k in RECORD_KEYS if k not in rec]
    if missing:
        raise ExportError(f"{path}: plan record lacks {missing}; rebuild with 'tritonkit build'")
    return rec


# --------------------------------------------------------------------------- the build (GPU)
def _gpu_identity() -> tuple[str, str]:
    """GPU name and compute capability ("8.0") of device 0, through torch's CUDA runtime."""
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return torch.cuda.get_device_name(0), f"{major}.{minor}"
    except Exception:  # noqa: BLE001
        pass
    return "unknown", "unknown"


def _describe(engine: Any, trt: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    ins, outs = [], []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        entry = {"name": name, "dtype": str(engine.get_tensor_dtype(name)).split(".")[-1].lower(),
                 "shape": list(engine.get_tensor_shape(name))[1:]}
        (ins if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outs).append(entry)
    return ins, outs


def plan_from_onnx(
    onnx_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    min_batch: int = MIN_BATCH, opt_batch: int = OPT_BATCH, max_batch: int = MAX_BATCH,
    precision: str = "auto",
    workspace_mb: int | None = None,
    timing_cache: str | os.PathLike[str] | None = None,
    hardware_compat: str = "none",
    command: list[str] | None = None,
) -> Path:
    """Build ``out`` (a TensorRT plan) from ``onnx_path``; write ``<out>.json``; return ``out``.

    Options are checked first (UsageError, exit 2), then the ONNX (ExportError), then TensorRT
    and the GPU (MissingDependencyError, exit 3); nothing is written until the engine exists.
    """

    check_batches(min_batch, opt_batch, max_batch)
    if hardware_compat not in HARDWARE_COMPAT:
        raise UsageError(f"unknown --hardware-compat {hardware_compat!r}; choose one of: {', '.join(HARDWARE_COMPAT)}")
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    if workspace_mb is not None and workspace_mb < 1:
        raise UsageError(f"--workspace must be >= 1 MB (got {workspace_mb})")
    out = ensure_writable(Path(out), what="plan", create=False)
    proto = load_onnx(onnx_path, load_external_data=False)
    meta = metadata_of(onnx_path)
    refs = json.loads(meta.get(REFERENCE_SHAPES_KEY, "{}"))
    inits = {i.name for i in proto.graph.initializer}
    inputs = {
        i.name: [d.dim_value if d.HasField("dim_value") else -1 for d in i.type.tensor_type.shape.dim][1:]
        for i in proto.graph.input if i.name not in inits
    }
    fixed = OnnxRunner(onnx_path).fixed_batch()
    if fixed is not None:  # a static-batch export: the one shape the engine can take
        min_batch = opt_batch = max_batch = fixed
    profiles = derive_profiles(inputs, min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch,
                               reference_shapes=refs)
    onnx_prec = onnx_precision(load_onnx(onnx_path))
    trt = require_tensorrt()
    choice = choose_precision(precision, onnx_prec, int(trt.__version__.split(".")[0]))

    from polygraphy.backend.trt import CreateConfig, Profile, engine_from_network, network_from_onnx_path

    trt_profiles = []
    for prof in profiles:
        p = Profile()
        for name, shp in prof.items():
            p.add(name, min=shp["min"], opt=shp["opt"], max=shp["max"])
        trt_profiles.append(p)
    config_kwargs: dict[str, Any] = {"profiles": trt_profiles, **choice.flags}
    if workspace_mb:
        config_kwargs["memory_pool_limits"] = {trt.MemoryPoolType.WORKSPACE: workspace_mb << 20}
    if timing_cache:
        config_kwargs["load_timing_cache"] = str(timing_cache)
    if hardware_compat != "none":
        config_kwargs["hardware_compatibility_level"] = getattr(
            trt.HardwareCompatibilityLevel, hardware_compat.upper())
    call = (f"polygraphy.backend.trt.engine_from_network(network_from_onnx_path({str(onnx_path)!r}, "
            f"strongly_typed={choice.strongly_typed}), config=CreateConfig("
            + ", ".join(f"{k}={v!r}" for k, v in config_kwargs.items() if k != "profiles")
            + f"{', ' if len(config_kwargs) > 1 else ''}profiles={profiles!r}))")
    t0 = time.perf_counter()
    try:
        network = network_from_onnx_path(str(onnx_path), strongly_typed=choice.strongly_typed or None)
        engine = engine_from_network(network, config=CreateConfig(**config_kwargs),
                                     save_timing_cache=str(timing_cache) if timing_cache else None)
    except Exception as exc:  # noqa: BLE001 - Polygraphy raises PolygraphyException and others
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"TensorRT build of {onnx_path} failed: {first}") from None
    seconds = time.perf_counter() - t0
    # Serialized here and written by rename (Polygraphy's save_engine writes in place).
    data = bytes(engine.serialize())
    ins, outs = _describe(engine, trt)
    gpu, cc = _gpu_identity()
    desc = EngineDescription(trt.__version__, gpu, cc, ins, outs)
    record = build_record(
        desc, precision=choice.precision, profiles=profiles, build_seconds=seconds, call=call,
        plan_sha256=hashlib.sha256(data).hexdigest(), onnx_sha256=sha256_of(onnx_path),
        extra={"command": shlex.join(command) if command else None, "hardware_compat": hardware_compat,
               "strongly_typed": choice.strongly_typed, "onnx": str(onnx_path),
               # Triton cannot batch a fixed dimension: served with full dims (max_batch_size 0).
               **({"fixed_batch": fixed, "max_batch_size": 0} if fixed is not None else {})},
    )
    atomic_write_bytes(out, data)
    write_record(out, "plan", record)
    return out
