"""One runner family for every runtime (Polygraphy's activate / infer / deactivate).

Parity (``toolkit.export.parity``), the in-process profiler (``toolkit.perf.local``) and
evaluation (``tritonkit evaluate``; a runner's :meth:`~BaseRunner.logits` is the callable
``trainers.evaluation`` takes) all run models through these. A new runtime is one
:class:`BaseRunner` subclass plus a suffix in :func:`runner_for_path`. The Triton endpoint runner
is :class:`toolkit.runners.triton.TritonRunner` (imported from there: it loads tritonclient).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from contract.errors import UsageError
from contract.spec import ModelSpec
from toolkit.model_files import CHECKPOINT_SUFFIXES, ONNX_SUFFIXES, PLAN_SUFFIXES
from toolkit.runners.base import BaseRunner, Feeds, InputMetadata
from toolkit.runners.function import FunctionRunner
from toolkit.runners.onnxrt import DEFAULT_THREADS, OnnxRunner
from toolkit.runners.torch_module import TorchRunner
from toolkit.runners.trt import TensorRTRunner

__all__ = ["BaseRunner", "CHECKPOINT_SUFFIXES", "Feeds", "FunctionRunner", "InputMetadata", "ONNX_SUFFIXES",
           "OnnxRunner", "PLAN_SUFFIXES", "TensorRTRunner", "TorchRunner", "as_runner", "runner_for_path"]


def runner_for_path(path: str | os.PathLike[str], *, threads: int | None = None) -> BaseRunner:
    """The runner for a checkpoint (``.pt``), ONNX model (``.onnx``) or TensorRT plan (``.plan``).

    Args:
        threads: intra-op threads. None = tritonkit's defaults (ONNX Runtime
            :data:`DEFAULT_THREADS`, torch untouched: its thread count is process-wide); 0 = each
            runtime's own default (all cores).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        return OnnxRunner(path, threads=DEFAULT_THREADS if threads is None else threads)
    if suffix in PLAN_SUFFIXES:
        return TensorRTRunner(path)
    if suffix in CHECKPOINT_SUFFIXES:
        return TorchRunner.from_checkpoint(path, threads=threads)
    raise UsageError(
        f"{path}: cannot tell what this is from its suffix; use .pt/.pth/.ckpt (checkpoint), "
        ".onnx (ONNX model) or .plan/.engine (TensorRT plan)"
    )


def as_runner(obj: Any, *, spec: ModelSpec | None = None) -> BaseRunner:
    """A runner for a path (see :func:`runner_for_path`), an ``nn.Module`` (needs ``spec``) or a callable."""
    if isinstance(obj, BaseRunner):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        return runner_for_path(obj)
    if isinstance(obj, torch.nn.Module):
        if spec is None:
            raise UsageError("comparing an nn.Module needs spec=ModelSpec(...) for its input/output names")
        return TorchRunner(obj, spec, name=type(obj).__name__)
    if callable(obj):
        return FunctionRunner(obj, spec=spec)
    raise UsageError(f"cannot compare a {type(obj).__name__}; give a path, an nn.Module or a callable")
