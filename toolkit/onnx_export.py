"""Checkpoint (or module) -> ONNX with a dynamic batch dimension, checked and self-describing."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

import toolkit
from toolkit.errors import ExportError
from toolkit.spec import ModelSpec

DEFAULT_OPSET = 17  # parsed by ONNX Runtime >= 1.14 and TensorRT 10.x/11.x (opsets 9-20+)
METADATA_SPEC_KEY = "tritonkit.model_spec"


def _example_input(spec: ModelSpec, batch: int = 2) -> tuple[torch.Tensor, ...]:
    tensors = []
    for t in spec.inputs:
        shape = [batch] + [d if d > 0 else 8 for d in t.shape]
        tensors.append(torch.zeros(shape, dtype=getattr(torch, t.dtype)))
    return tuple(tensors)


def onnx_from_module(
    model: torch.nn.Module,
    spec: ModelSpec,
    out: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Export ``model`` (eval mode) to ``out`` with names and shapes from ``spec``; atomic write."""
    out = Path(out)
    model = model.eval()
    in_names = [t.name for t in spec.inputs]
    out_names = [t.name for t in spec.outputs]
    dynamic_axes = {n: {0: "batch"} for n in in_names + out_names} if dynamic_batch else None
    buf = io.BytesIO()
    try:
        torch.onnx.export(
            model, _example_input(spec), buf, dynamo=False, opset_version=opset,
            input_names=in_names, output_names=out_names, dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )
    except Exception as exc:  # noqa: BLE001 - torch raises many types; report the first line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"ONNX export of {type(model).__name__} failed at opset {opset}: {first}") from None
    proto = onnx.load_from_string(buf.getvalue())
    meta = {"tritonkit.version": toolkit.__version__, METADATA_SPEC_KEY: spec.to_json(), **(metadata or {})}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    proto = onnx.shape_inference.infer_shapes(proto)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    onnx.save(proto, tmp)
    os.replace(tmp, out)
    return out


def onnx_from_checkpoint(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
) -> Path:
    """Rebuild the model from a checkpoint and export it; records the call beside the file."""
    from trainers.checkpoint import load_checkpoint, model_from_checkpoint, model_spec_of, sha256_of

    t0 = time.perf_counter()
    payload = load_checkpoint(checkpoint)
    spec = model_spec_of(payload)
    model = model_from_checkpoint(payload)
    sha = sha256_of(checkpoint)
    path = onnx_from_module(
        model, spec, out, opset=opset, dynamic_batch=dynamic_batch,
        metadata={"tritonkit.checkpoint_sha256": sha, "tritonkit.labels": json.dumps(list(spec.labels))},
    )
    record: dict[str, Any] = {
        "call": f"onnx_from_checkpoint({str(checkpoint)!r}, {str(out)!r}, opset={opset}, dynamic_batch={dynamic_batch})",
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": sha,
        "opset": opset,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    Path(f"{path}.export.json").write_text(json.dumps(record, indent=2))
    return path


def spec_from_onnx(path: str | os.PathLike[str]) -> ModelSpec:
    """The ModelSpec stored in a tritonkit ONNX file's metadata."""
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"{path}: not a readable ONNX model ({type(exc).__name__}); re-export it") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    if METADATA_SPEC_KEY not in meta:
        raise ExportError(f"{path}: has no tritonkit model spec; export it with 'tritonkit export'")
    return ModelSpec.from_dict(json.loads(meta[METADATA_SPEC_KEY]))


def run_onnx(path: str | os.PathLike[str], batch: np.ndarray) -> np.ndarray:
    """Run the first output of an ONNX model on one input batch with ONNX Runtime (CPU)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return sess.run(None, {name: batch})[0]
