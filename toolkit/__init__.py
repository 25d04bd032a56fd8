"""tritonkit's deployment half: checkpoint -> ONNX -> plan -> repository -> server -> client/profile.

Heavy imports are lazy so ``tritonkit --help`` stays fast and works without TensorRT.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "ModelExporter": "toolkit.api",
    "FormatConverter": "toolkit.api",
    "PerformanceProfiler": "toolkit.api",
    "create_deployment": "toolkit.api",
    "Predictor": "toolkit.client.predictor",
    "TritonkitError": "contract.errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'toolkit' has no attribute {name!r}")


__all__ = [*_LAZY, "__version__"]
