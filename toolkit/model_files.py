"""Which runtime a model file is for, from its name: one table for the runners, profilers and CLI checks.

Kept free of heavy imports, so a command can check every file it was given (and refuse a missing one
in one line) before it loads torch or a runtime.
"""

from __future__ import annotations

import os
from pathlib import Path

from contract.errors import UsageError
from contract.fileio import open_user_file

ONNX_SUFFIXES = (".onnx",)
PLAN_SUFFIXES = (".plan", ".engine", ".trt")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
_HINT = "give an .onnx, .plan or checkpoint .pt file"


def model_kind(path: str | os.PathLike[str]) -> str:
    """``onnx``, ``plan`` or ``checkpoint`` for an existing regular model file; one UsageError line otherwise."""
    path = Path(path)
    os.close(open_user_file(path, UsageError, missing=f"model file not found; {_HINT}", hint=_HINT))
    suffix = path.suffix.lower()
    for kind, suffixes in (("onnx", ONNX_SUFFIXES), ("plan", PLAN_SUFFIXES), ("checkpoint", CHECKPOINT_SUFFIXES)):
        if suffix in suffixes:
            return kind
    raise UsageError(f"{path}: unknown model type {suffix or '(no suffix)'}; use one of "
                     f"{', '.join(ONNX_SUFFIXES + PLAN_SUFFIXES + CHECKPOINT_SUFFIXES)}")
