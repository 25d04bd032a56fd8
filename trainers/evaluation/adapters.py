"""Adapters: anything that maps an input batch (numpy) to logits (numpy).

The evaluator only ever calls ``predict(batch) -> logits``, so the same numbers come out for a
torch module, an ONNX Runtime session, a TensorRT engine or a Triton endpoint; the deployment
side passes its own callables (any ``Callable[[np.ndarray], np.ndarray]``).
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


class OnnxRuntimeAdapter:
    """An ONNX Runtime session (or a path to an .onnx file): first input in, first output out."""

    def __init__(self, session: Any, input_name: str | None = None, output_name: str | None = None) -> None:
        if isinstance(session, (str, os.PathLike)):
            import onnxruntime as ort

            session = ort.InferenceSession(str(session), providers=["CPUExecutionProvider"])
        self.session = session
        self.input_name = input_name or session.get_inputs()[0].name
        self.output_name = output_name or session.get_outputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(batch)})
        return np.asarray(out[0])


def as_predict_fn(model: Any) -> PredictFn:
    """Wrap a torch module, an ONNX Runtime session or an .onnx path; pass other callables through."""
    try:
        import torch

        if isinstance(model, torch.nn.Module):
            return TorchAdapter(model)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if isinstance(model, (str, os.PathLike)) and str(model).endswith(".onnx"):
        return OnnxRuntimeAdapter(model)
    if type(model).__name__ == "InferenceSession" and hasattr(model, "get_inputs"):
        return OnnxRuntimeAdapter(model)
    if callable(model):
        return model
    raise UsageError(
        f"cannot evaluate a {type(model).__name__}; give a torch module, an ONNX Runtime session, "
        "an .onnx path, or a callable mapping a numpy batch to logits"
    )
