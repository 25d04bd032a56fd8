"""A torch module on the CPU: from a tritonkit checkpoint (the safe loader) or a module + spec."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from contract.spec import ModelSpec
from toolkit.runners.base import BaseRunner, Feeds, InputMetadata, failed_on, require_inputs
from trainers.checkpoint import load_checkpoint, model_from_checkpoint, model_spec_of


class TorchRunner(BaseRunner):
    """``model(*inputs in spec order)`` under ``torch.inference_mode``; outputs named by the spec.

    Args:
        model: the ``nn.Module`` (put in eval mode).
        spec: its input/output names, shapes and dtypes.
        threads: torch intra-op threads set on activation (None = torch's default).
    """

    def __init__(self, model: Any, spec: ModelSpec, *, name: str = "torch", dataset: dict | None = None,
                 threads: int | None = None) -> None:
        super().__init__(name)
        self.model, self.spec, self.dataset, self.threads = model.eval(), spec, dataset, threads

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str], *, threads: int | None = None) -> TorchRunner:
        """The model a checkpoint describes (loaded without executing pickled code)."""
        payload = load_checkpoint(path)
        return cls(model_from_checkpoint(payload, where=str(path)), model_spec_of(payload, where=str(path)),
                   name=f"torch:{Path(path).name}", dataset=payload.get("dataset"), threads=threads)

    @property
    def runtime(self) -> str:
        """``torch VERSION CPU`` for reports."""
        return f"torch {torch.__version__} CPU"

    def activate_impl(self) -> None:
        if self.threads:
            torch.set_num_threads(self.threads)

    def get_input_metadata_impl(self) -> InputMetadata:
        return {t.name: (np.dtype(t.dtype), [-1, *t.shape]) for t in self.spec.inputs}

    def infer_impl(self, feed_dict: Feeds) -> Feeds:
        require_inputs(self.name, [t.name for t in self.spec.inputs], feed_dict)
        args = [torch.from_numpy(np.ascontiguousarray(feed_dict[t.name])) for t in self.spec.inputs]
        try:
            with torch.inference_mode():
                out = self.model(*args)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise failed_on(self.name, "the model", feed_dict, exc) from None
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return {t.name: o.detach().cpu().numpy() for t, o in zip(self.spec.outputs, outs)}
