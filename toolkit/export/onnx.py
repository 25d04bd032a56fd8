"""Checkpoint (or module) -> ONNX: cleaned, checked, self-describing, and verified against torch.

Opset 17 by default: ONNX Runtime >= 1.14 and TensorRT 10.0+ (which parses opsets 9-20) and 11.x
all read it, and it has every op the registry's CNNs need (LayerNormalization is 17). The
TorchScript exporter (``dynamo=False``) is used because it needs no extra packages and names
inputs/outputs exactly as asked.

Each export: ``torch.onnx.export`` -> metadata (tritonkit version, checkpoint sha256, input spec,
labels, normalization, data set) -> onnx-graphsurgeon cleanup -> ``onnx.checker`` + shape
inference -> written to a temporary folder beside the output -> fp32 parity against torch on real
and random inputs -> renamed into place with ``<out>.export.json`` (the exact call/command).
A failed parity check raises :class:`toolkit.export.parity.ParityError` carrying the table; nothing is left.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

import toolkit
from contract.errors import ExportError, UsageError
from contract.fileio import atomic_write_text, sha256_of
from contract.spec import METADATA_SPEC_KEY, ModelSpec, TensorSpec
from toolkit.export.defaults import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, check_static_batch
from toolkit.export.graph_cleanup import cleanup_graph
from toolkit.export.optimize import optimize_for_inference
from toolkit.export.parity import compare, raise_if_failed
from toolkit.export.records import record_path, write_record
from toolkit.export.safety import EXTERNAL_DATA_THRESHOLD, ensure_writable, load_onnx, publish_onnx, save_onnx
from toolkit.runners import OnnxRunner, TorchRunner
from trainers.checkpoint import load_checkpoint, model_from_checkpoint, model_spec_of

__all__ = [
    "DEFAULT_OPSET", "METADATA_SPEC_KEY", "check_static_batch", "io_shapes", "onnx_from_checkpoint",
    "onnx_from_module", "spec_from_onnx",
    "run_onnx", "optimize_for_inference", "metadata_of", "example_input",
]

REFERENCE_SHAPES_KEY = "tritonkit.reference_shapes"


def example_input(spec: ModelSpec, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Zeros shaped like the spec's inputs (variable dims as 8): what the tracers run once."""
    tensors = []
    for t in spec.inputs:
        shape = [batch] + [d if d > 0 else 8 for d in t.shape]
        tensors.append(torch.zeros(shape, dtype=getattr(torch, t.dtype)))
    return tuple(tensors)


def _check_opset(opset: int) -> None:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise UsageError(
            f"opset {opset} is outside {MIN_OPSET}..{MAX_OPSET} (what the exporter, ONNX Runtime and "
            f"TensorRT 10 all handle); use --opset {DEFAULT_OPSET}"
        )


def _export_error(exc: Exception, model: torch.nn.Module, opset: int) -> ExportError:
    """One line naming the op the opset cannot express, and the opset to try."""
    text = str(exc).strip()
    op = re.search(r"operator '([^']+)'", text)
    if op:
        added = re.search(r"added in version (\d+)", text)
        if added:
            hint = f"export with --opset {added.group(1)} or newer"
        else:
            hint = (f"no opset up to {MAX_OPSET} has it: replace the op in the model or register a custom "
                    "symbolic (torch.onnx.register_custom_op_symbolic)")
        return ExportError(f"ONNX export of {type(model).__name__}: op {op.group(1)!r} is not supported at "
                           f"opset {opset}; {hint}")
    first = text.splitlines()[0] if text else type(exc).__name__
    return ExportError(f"ONNX export of {type(model).__name__} failed at opset {opset}: {first}")


@contextlib.contextmanager
def _quiet_fds():
    """Silence the exporter's C++ graph dumps and warnings (file descriptors 1 and 2)."""
    saved = [os.dup(1), os.dup(2)]
    sys.stdout.flush()
    sys.stderr.flush()
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _torch_export(
    model: torch.nn.Module, spec: ModelSpec, workdir: Path, *, opset: int, dynamic_batch: bool,
    dynamic_hw: bool, large: bool, batch: int,
) -> onnx.ModelProto:
    in_names = [t.name for t in spec.inputs]
    out_names = [t.name for t in spec.outputs]
    axes: dict[str, dict[int, str]] = {}
    for t in spec.inputs:
        a: dict[int, str] = {0: "batch"} if dynamic_batch else {}
        if dynamic_hw and len(t.shape) == 3:
            a.update({2: "height", 3: "width"} if spec.layout == "NCHW" else {1: "height", 2: "width"})
        if a:
            axes[t.name] = a
    if dynamic_batch:
        axes.update({n: {0: "batch"} for n in out_names})
    # Models near protobuf's 2 GiB limit go through a file: the exporter then writes external data.
    dest: Any = workdir / "torch_export.onnx" if large else io.BytesIO()
    try:
        with _quiet_fds(), torch.no_grad():
            torch.onnx.export(
                model, example_input(spec, batch), dest, dynamo=False, opset_version=opset,
                input_names=in_names, output_names=out_names, dynamic_axes=axes or None,
                do_constant_folding=True,
            )
    except Exception as exc:  # noqa: BLE001 - torch raises many types
        raise _export_error(exc, model, opset) from None
    if large:
        return onnx.load(str(dest), load_external_data=True)
    return onnx.load_from_string(dest.getvalue())


def _dynamic_spec(spec: ModelSpec, dynamic_hw: bool) -> ModelSpec:
    if not dynamic_hw:
        return spec
    ins = []
    for t in spec.inputs:
        shape = list(t.shape)
        if len(shape) == 3:
            idx = (1, 2) if spec.layout == "NCHW" else (0, 1)
            for i in idx:
                shape[i] = -1
        ins.append(TensorSpec(t.name, tuple(shape), t.dtype))
    return ModelSpec(tuple(ins), spec.outputs, spec.layout, spec.mean, spec.std, spec.scale, spec.value_range,
                     spec.labels)


def onnx_from_module(
    model: torch.nn.Module,
    spec: ModelSpec,
    out: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    dynamic_hw: bool = False,
    batch: int | None = None,
    metadata: dict[str, str] | None = None,
    optimize: bool = True,
    cleanup: bool = True,
    check_parity: bool = True,
    dataset: dict[str, Any] | None = None,
    tolerance: Any = None,
    external_data: bool | None = None,
    external_data_threshold: int = EXTERNAL_DATA_THRESHOLD,
    record: dict[str, Any] | None = None,
) -> Path:
    """Export ``model`` to ``out`` with names and shapes from ``spec``; verified, then renamed in.

    Args:
        optimize: fold Conv+BN and drop training-only ops first (:func:`optimize_for_inference`).
        dynamic_hw: also make height/width dynamic (the spec in the metadata then says -1).
        batch: the fixed batch size of a static export (``dynamic_batch=False``; default 1).
        check_parity: compare torch (the model as given) with ONNX Runtime at fp32 tolerance
            (``tolerance`` overrides); real samples are used when ``dataset`` names a known set.
        external_data: None = automatic above ``external_data_threshold`` bytes of weights.
        record: extra fields for ``<out>.export.json``; when None no record is written.

    Raises:
        UsageError: bad opset or unwritable output. ExportError: unsupported op, checker failure.
        ParityError: torch and ONNX Runtime disagree (``.report`` holds the table).
    """
    out = ensure_writable(Path(out))
    _check_opset(opset)
    batch = check_static_batch(dynamic_batch, batch)
    reference = model.eval()
    exported = optimize_for_inference(reference) if optimize else reference
    n_bytes = sum(p.numel() * p.element_size() for p in exported.state_dict().values())
    large = n_bytes > external_data_threshold
    workdir = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        proto = _torch_export(exported, spec, workdir, opset=opset, dynamic_batch=dynamic_batch,
                              dynamic_hw=dynamic_hw, large=large, batch=batch or 2)
        onnx_spec = _dynamic_spec(spec, dynamic_hw)
        meta = {
            "tritonkit.version": toolkit.__version__,
            METADATA_SPEC_KEY: onnx_spec.to_json(),
            "tritonkit.input_spec": json.dumps([{"name": t.name, "shape": list(t.shape), "dtype": t.dtype}
                                                for t in onnx_spec.inputs]),
            "tritonkit.labels": json.dumps(list(spec.labels)),
            "tritonkit.normalization": json.dumps({"layout": spec.layout, "scale": spec.scale,
                                                   "mean": list(spec.mean), "std": list(spec.std),
                                                   "value_range": list(spec.value_range)}),
            REFERENCE_SHAPES_KEY: json.dumps({t.name: list(t.shape) for t in spec.inputs}),
            "tritonkit.opset": str(opset),
        }
        if dataset:
            meta["tritonkit.dataset"] = json.dumps(dataset, sort_keys=True)
        meta.update(metadata or {})
        del proto.metadata_props[:]
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        if cleanup:
            proto = cleanup_graph_safe(proto)
        tmp_model = workdir / out.name
        if large or external_data:
            save_onnx(proto, tmp_model, external_data=True)
            onnx.checker.check_model(str(tmp_model))
            onnx.shape_inference.infer_shapes_path(str(tmp_model))
        else:
            try:
                onnx.checker.check_model(proto)
            except onnx.checker.ValidationError as exc:
                first = str(exc).strip().splitlines()[0]
                raise ExportError(f"ONNX checker rejected the export of {type(model).__name__}: {first}") from None
            proto = onnx.shape_inference.infer_shapes(proto)
            save_onnx(proto, tmp_model, external_data=False)
        if check_parity:
            report = compare(TorchRunner(reference, spec, name="torch", dataset=dataset), tmp_model,
                             spec=spec, tolerance=tolerance)
            raise_if_failed(report, what="export parity (torch fp32 vs ONNX Runtime)")
        publish_onnx(tmp_model, out)
        if record is not None:
            rec = {
                **record,
                "output": str(out),
                "sha256": sha256_of(out),
                "opset": opset,
                "dynamic_batch": dynamic_batch,
                "batch": batch,
                "dynamic_hw": dynamic_hw,
                "optimized": optimize,
                "external_data": out.with_name(f"{out.name}.data").exists(),
                "parity": report.summary() if check_parity else None,
                "tritonkit": toolkit.__version__,
                "torch": torch.__version__,
                "onnx": onnx.__version__,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            write_record(out, "export", rec)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def cleanup_graph_safe(proto: onnx.ModelProto) -> onnx.ModelProto:
    """graphsurgeon cleanup; a graph it cannot round-trip is an ExportError, not a traceback."""
    try:
        return cleanup_graph(proto)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"graph cleanup failed ({type(exc).__name__}: {exc}); retry with cleanup=False") from None


def onnx_from_checkpoint(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    dynamic_hw: bool = False,
    batch: int | None = None,
    optimize: bool = True,
    check_parity: bool = True,
    external_data: bool | None = None,
    command: list[str] | None = None,
) -> Path:
    """Rebuild the model from a checkpoint and export it; records the call beside the file.

    ``command`` (the CLI's argv) is saved in ``<out>.export.json`` next to the equivalent call.
    Raises the same errors as :func:`onnx_from_module`, plus CheckpointError for a bad checkpoint.
    """
    t0 = time.perf_counter()
    check_static_batch(dynamic_batch, batch)
    ensure_writable(out, create=False)  # made by onnx_from_module, once the checkpoint is accepted
    payload = load_checkpoint(checkpoint)
    spec = model_spec_of(payload, where=str(checkpoint))
    model = model_from_checkpoint(payload, where=str(checkpoint))
    sha = sha256_of(checkpoint)
    call = (f"toolkit.export.onnx.onnx_from_checkpoint({str(checkpoint)!r}, {str(out)!r}, opset={opset}, "
            f"dynamic_batch={dynamic_batch}, dynamic_hw={dynamic_hw}, batch={batch}, optimize={optimize}, "
            f"check_parity={check_parity}, external_data={external_data})")
    record: dict[str, Any] = {
        "call": call,
        "command": shlex.join(command) if command else None,
        "cwd": os.getcwd(),
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": sha,
    }
    path = onnx_from_module(
        model, spec, out, opset=opset, dynamic_batch=dynamic_batch, dynamic_hw=dynamic_hw, batch=batch,
        optimize=optimize,
        check_parity=check_parity, dataset=payload.get("dataset"), external_data=external_data,
        metadata={"tritonkit.checkpoint_sha256": sha,
                  "tritonkit.architecture": json.dumps(payload["architecture"], sort_keys=True)},
        record=record,
    )
    rec_file = record_path(path)
    rec = json.loads(rec_file.read_text())
    rec["seconds"] = round(time.perf_counter() - t0, 3)
    atomic_write_text(rec_file, json.dumps(rec, indent=2, sort_keys=True))
    return path


def metadata_of(path: str | os.PathLike[str]) -> dict[str, str]:
    """All metadata properties of an ONNX file (external data is not loaded)."""
    proto = load_onnx(path, load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def spec_from_onnx(path: str | os.PathLike[str]) -> ModelSpec:
    """The ModelSpec stored in a tritonkit ONNX file's metadata."""
    meta = metadata_of(path)
    if METADATA_SPEC_KEY not in meta:
        raise ExportError(f"{path}: has no tritonkit model spec; export it with 'tritonkit export'")
    try:
        return ModelSpec.from_json(meta[METADATA_SPEC_KEY], where=f"{path}: metadata {METADATA_SPEC_KEY}")
    except UsageError as exc:
        raise ExportError(str(exc)) from None


def io_shapes(path: str | os.PathLike[str]) -> tuple[dict[str, str], dict[str, str]]:
    """``({input: "float32 [batch, 1, 8, 8]"}, {output: ...})`` of an ONNX file, for summaries."""
    proto = load_onnx(path, load_external_data=False)
    initializers = {i.name for i in proto.graph.initializer}

    def shown(values: Any) -> dict[str, str]:
        out = {}
        for v in values:
            t = v.type.tensor_type
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)).name if t.elem_type else "?"
            dims = [str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
            out[v.name] = f"{dtype} [{', '.join(dims)}]"
        return out

    return shown(i for i in proto.graph.input if i.name not in initializers), shown(proto.graph.output)


def run_onnx(path: str | os.PathLike[str], batch: np.ndarray) -> np.ndarray:
    """Run the first output of an ONNX model on one input batch with ONNX Runtime (CPU)."""
    with OnnxRunner(path) as runner:
        return runner.infer({runner.input_names[0]: batch})[runner.output_names[0]]
