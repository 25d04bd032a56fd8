"""A TensorRT plan through Polygraphy's TrtRunner (needs the tensorrt package and a GPU)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from polygraphy import mod

from contract.errors import MissingDependencyError
from toolkit.runners.base import BaseRunner, Feeds, InputMetadata

# Polygraphy's TensorRT backend imports tensorrt: loaded only once a plan is run.
common_backend = mod.lazy_import("polygraphy.backend.common")
trt_backend = mod.lazy_import("polygraphy.backend.trt")

INSTALL_HINT = "pip install 'tritonkit[tensorrt]' (tensorrt-cu12) on a machine with an NVIDIA GPU"


def gpu_visible() -> bool:
    """True when a CUDA device can be used (torch's view, or the driver's device nodes)."""
    try:
        if torch.cuda.is_available():
            return True
    except Exception:  # noqa: BLE001
        pass
    return Path("/dev/nvidia0").exists() and Path("/dev/nvidiactl").exists()


def require_tensorrt() -> Any:
    """Import ``tensorrt`` and check a GPU is visible; MissingDependencyError (exit 3) otherwise."""
    try:
        import tensorrt as trt
    except Exception as exc:  # noqa: BLE001 - ImportError or a broken CUDA library
        raise MissingDependencyError(
            f"TensorRT is not available here (import tensorrt: {type(exc).__name__}); {INSTALL_HINT}"
        ) from None
    if not gpu_visible():
        raise MissingDependencyError(f"no NVIDIA GPU is visible (TensorRT {trt.__version__} needs one); "
                                     "run 'tritonkit build' on a GPU machine")
    return trt


class TensorRTRunner(BaseRunner):
    """Polygraphy's ``TrtRunner`` over a serialized plan; outputs copied to host numpy arrays.

    Building the runner checks that TensorRT and a GPU are here (MissingDependencyError, exit 3).
    """

    def __init__(self, path: str | os.PathLike[str], *, name: str | None = None) -> None:
        self.path = Path(path)
        super().__init__(name or f"tensorrt:{self.path.name}")
        self._trt = require_tensorrt()
        self._runner: Any = None
        self.device_memory_bytes = 0

    @property
    def runtime(self) -> str:
        """``tensorrt VERSION`` for reports."""
        return f"tensorrt {self._trt.__version__}"

    def activate_impl(self) -> None:
        engine = trt_backend.EngineFromBytes(common_backend.BytesFromPath(str(self.path)))()
        self.device_memory_bytes = int(getattr(engine, "device_memory_size_v2", 0)
                                       or getattr(engine, "device_memory_size", 0))
        self._runner = trt_backend.TrtRunner(engine)
        self._runner.activate()

    def deactivate_impl(self) -> None:
        self._runner.deactivate()
        self._runner = None

    def get_input_metadata_impl(self) -> InputMetadata:
        self.require_active("get_input_metadata()")
        meta = self._runner.get_input_metadata(use_numpy_dtypes=True)
        return {name: (np.dtype(dtype), list(shape)) for name, (dtype, shape) in meta.items()}

    def infer_impl(self, feed_dict: Feeds) -> Feeds:
        out = self._runner.infer(feed_dict, copy_outputs_to_host=True)
        return {k: np.asarray(v) for k, v in out.items()}
