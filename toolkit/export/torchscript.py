"""Checkpoint -> TorchScript (``model.pt`` for Triton's ``pytorch_libtorch`` backend), verified.

A third format beside ONNX and TensorRT: traced (not scripted) from the optimized module, so the
registry's CNNs need no annotations; a trace freezes data-dependent control flow, which the
parity check against the original module catches. Spec and hashes go in ``<out>.export.json``
(TorchScript has no metadata field Triton reads).
"""

from __future__ import annotations

import io
import os
import shlex
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

import toolkit
from contract.errors import ExportError
from contract.fileio import atomic_write_bytes, sha256_of
from toolkit.export.onnx import example_input
from toolkit.export.optimize import optimize_for_inference
from toolkit.export.parity import compare, raise_if_failed
from toolkit.export.records import write_record
from toolkit.export.safety import ensure_writable
from toolkit.runners import TorchRunner
from trainers.checkpoint import load_checkpoint, model_from_checkpoint, model_spec_of


def torchscript_from_checkpoint(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    optimize: bool = True,
    check_parity: bool = True,
    command: list[str] | None = None,
) -> Path:
    """Trace the checkpoint's model to ``out`` (atomic), check fp32 parity, write the record.

    Raises:
        CheckpointError, UsageError (unwritable output), ExportError (trace failed),
        ParityError (the traced module disagrees with the original).
    """
    t0 = time.perf_counter()
    out = ensure_writable(Path(out), create=False)  # the folder is made once the checkpoint is accepted
    payload = load_checkpoint(checkpoint)
    spec = model_spec_of(payload, where=str(checkpoint))
    model = model_from_checkpoint(payload, where=str(checkpoint))
    traced_from = optimize_for_inference(model) if optimize else model
    try:
        with torch.no_grad():
            traced = torch.jit.trace(traced_from, example_input(spec), check_trace=False)
            traced = torch.jit.freeze(traced.eval())
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"TorchScript trace of {type(model).__name__} failed: {first}") from None
    report = None
    if check_parity:
        report = compare(TorchRunner(model, spec, name="torch", dataset=payload.get("dataset")),
                         TorchRunner(traced, spec, name="torchscript"), spec=spec)
        raise_if_failed(report, what="TorchScript parity (eager vs traced)")
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    ensure_writable(out)
    atomic_write_bytes(out, buf.getvalue())
    record: dict[str, Any] = {
        "call": f"toolkit.export.torchscript.torchscript_from_checkpoint({str(checkpoint)!r}, {str(out)!r}, "
                f"optimize={optimize}, check_parity={check_parity})",
        "command": shlex.join(command) if command else None,
        "format": "torchscript",
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": sha256_of(checkpoint),
        "sha256": sha256_of(out),
        "model_spec": spec.to_dict(),
        "parity": report.summary() if report else None,
        "tritonkit": toolkit.__version__,
        "torch": torch.__version__,
        "seconds": round(time.perf_counter() - t0, 3),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_record(out, "export", record)
    return out
