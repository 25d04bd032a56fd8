"""Adapters: anything that maps an input batch (numpy) to logits (numpy).

The evaluator only ever calls ``predict(batch) -> logits``, so the same numbers come out for a
torch module, an ONNX Runtime session, a TensorRT engine or a Triton endpoint. Only the torch
adapter lives here (training's own runtime); the deployment runtimes are ``toolkit.runners``
runners, whose ``.logits`` is such a callable (``trainers`` never imports ``toolkit``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from contract.errors import UsageError

PredictFn = Callable[[np.ndarray], np.ndarray]


class TorchAdapter:
    """A torch module in eval mode, no gradients, on CPU unless told otherwise."""

    def __init__(self, module: Any, device: str = "cpu") -> None:
        import torch

        self.torch = torch
        self.module = module.eval().to(device)
        self.device = device

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            x = self.torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
            return self.module(x).float().cpu().numpy()


def as_predict_fn(model: Any) -> PredictFn:
    """Wrap a torch module; pass callables (e.g. a ``toolkit.runners`` runner's ``.logits``) through."""
    try:
        import torch

        if isinstance(model, torch.nn.Module):
            return TorchAdapter(model)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if callable(model) and not isinstance(model, (str, os.PathLike)):
        return model
    raise UsageError(
        f"cannot evaluate a {type(model).__name__}; give a torch module or a callable mapping a numpy batch "
        "to logits (for an .onnx file, a TensorRT plan or a Triton endpoint: a toolkit.runners runner's .logits)"
    )
