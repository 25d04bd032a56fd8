"""A small registry of tiny models, as Polygraphy's tests keep one: each entry builds one artifact
(a checkpoint, its ONNX export, a plain function) and the runner for it, so every runner is
exercised by the same tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from contract.spec import ModelSpec
from toolkit.export.onnx import onnx_from_checkpoint
from toolkit.runners import BaseRunner, FunctionRunner, OnnxRunner, TorchRunner, runner_for_path
from trainers.checkpoint import save_checkpoint
from trainers.models import create_model
from trainers.recipes import digits_model_spec

CLASSES = [str(i) for i in range(10)]


def tiny_checkpoint(root: Path) -> Path:
    """A SmallCNN of width 4 with random weights (no training): enough to compare runtimes."""
    torch.manual_seed(0)
    model = create_model("smallcnn", num_classes=10, in_channels=1, width=4)
    payload = {
        "architecture": {"name": "smallcnn", "kwargs": {"num_classes": 10, "in_channels": 1, "width": 4}},
        "model_spec": digits_model_spec(CLASSES).to_dict(),
        "labels": CLASSES,
        "model_state": model.state_dict(),
        "metrics": {},
        "dataset": {"name": "digits", "seed": 0},
    }
    return save_checkpoint(payload, root / "tiny.pt")


def tiny_onnx(root: Path) -> Path:
    ckpt = root / "tiny.pt"
    return onnx_from_checkpoint(ckpt if ckpt.exists() else tiny_checkpoint(root), root / "tiny.onnx",
                                check_parity=False)


def spec_of(root: Path) -> ModelSpec:
    return digits_model_spec(CLASSES)


@dataclass(frozen=True)
class TinyModel:
    """How to build one artifact under a folder, and its runner."""

    name: str
    build: Callable[[Path], BaseRunner]
    outputs: tuple[str, ...] = ("logits",)


def _linear_fn(root: Path) -> BaseRunner:
    weights = np.random.default_rng(0).standard_normal((64, 10)).astype(np.float32)
    return FunctionRunner(lambda x: x.reshape(len(x), -1) @ weights, spec=spec_of(root), name="linear")


MODELS: list[TinyModel] = [
    TinyModel("torch checkpoint", lambda root: TorchRunner.from_checkpoint(tiny_checkpoint(root))),
    TinyModel("onnxruntime", lambda root: OnnxRunner(tiny_onnx(root))),
    TinyModel("by suffix (.onnx)", lambda root: runner_for_path(tiny_onnx(root))),
    TinyModel("function", _linear_fn),
]
