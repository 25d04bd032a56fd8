"""Tiny real repositories for the server tests: ONNX files exported by torch, configs built by
``toolkit.repository.config`` (never hand-written), and one embedded Triton per module."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from contract.spec import ModelSpec, TensorSpec
from toolkit.repository.config import ServingOptions, build_config, config_to_text


class TinyCnn(torch.nn.Module):
    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(1, 4, 3)
        self.fc = torch.nn.Linear(4 * 6 * 6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


class Gather(torch.nn.Module):
    """ONNX Runtime rejects an out-of-range index at run time: a request that fails in the backend."""

    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return torch.gather(x, 1, idx)


class Multi(torch.nn.Module):
    """Four inputs and four outputs of different dtypes."""

    def forward(self, a, b, c, d):  # type: ignore[no-untyped-def]
        return a * 2, b + 1, c, torch.logical_not(d)


TINY_SPEC = ModelSpec(inputs=(TensorSpec("input", (1, 8, 8)),), outputs=(TensorSpec("logits", (10,)),))
GATHER_SPEC = ModelSpec(
    inputs=(TensorSpec("x", (4,)), TensorSpec("idx", (1,), "int64")), outputs=(TensorSpec("y", (1,)),)
)
MULTI_SPEC = ModelSpec(
    inputs=(TensorSpec("a", (3,), "float16"), TensorSpec("b", (3,), "int32"), TensorSpec("c", (3,), "uint8"),
            TensorSpec("d", (3,), "bool")),
    outputs=(TensorSpec("a2", (3,), "float16"), TensorSpec("b1", (3,), "int32"), TensorSpec("c0", (3,), "uint8"),
             TensorSpec("nd", (3,), "bool")),
)


def export_onnx(module: torch.nn.Module, spec: ModelSpec, path: Path) -> Path:
    """Export with a dynamic batch axis, the way tritonkit exports models."""
    path.parent.mkdir(parents=True, exist_ok=True)
    examples = []
    for t in spec.inputs:
        shape = (2, *t.shape)
        if t.dtype == "bool":
            examples.append(torch.zeros(shape, dtype=torch.bool))
        elif t.dtype == "float16":
            examples.append(torch.zeros(shape, dtype=torch.float16))
        elif t.dtype in ("int32", "int64", "uint8"):
            examples.append(torch.zeros(shape, dtype=getattr(torch, t.dtype)))
        else:
            examples.append(torch.zeros(shape))
    names_in = [t.name for t in spec.inputs]
    names_out = [t.name for t in spec.outputs]
    torch.onnx.export(
        module.eval(), tuple(examples), str(path), dynamo=False, opset_version=17,
        input_names=names_in, output_names=names_out,
        dynamic_axes={n: {0: "batch"} for n in names_in + names_out},
    )
    return path


def write_model(repo: Path, name: str, module: torch.nn.Module, spec: ModelSpec, *, version: int = 1,
                platform: str = "onnxruntime_onnx", options: ServingOptions | None = None,
                config_spec: ModelSpec | None = None) -> Path:
    """A model folder: ``<version>/model.onnx`` and a config built from ``config_spec or spec``."""
    options = options or ServingOptions(max_batch_size=16, max_queue_delay_us=20000, label_filename=None,
                                        warmup=False)
    export_onnx(module, spec, repo / name / str(version) / "model.onnx")
    cfg = build_config(name, config_spec or spec, "onnxruntime_onnx", options)
    if platform == "backend":
        cfg.ClearField("platform")
        cfg.backend = "onnxruntime"
    (repo / name / "config.pbtxt").write_text(config_to_text(cfg))
    return repo / name


def write_string_model(repo: Path, name: str) -> None:
    """BYTES in, BYTES out (ONNX Identity on strings; torch cannot export string tensors)."""
    import onnx
    from onnx import TensorProto, helper

    spec = ModelSpec(inputs=(TensorSpec("text", (1,), "object"),), outputs=(TensorSpec("same", (1,), "object"),))
    graph = helper.make_graph(
        [helper.make_node("Identity", ["text"], ["same"])], "strings",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch", 1])],
        [helper.make_tensor_value_info("same", TensorProto.STRING, ["batch", 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (repo / name / "1").mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(repo / name / "1" / "model.onnx"))
    options = ServingOptions(max_batch_size=8, max_queue_delay_us=1000, label_filename=None, warmup=False)
    (repo / name / "config.pbtxt").write_text(config_to_text(build_config(name, spec, "onnxruntime_onnx", options)))


def publish_version(repo: Path, name: str, module: torch.nn.Module, spec: ModelSpec, version: int) -> None:
    """Build the version folder next to the repository, then rename it in (what a poller may see)."""
    stage = Path(tempfile.mkdtemp(dir=repo.parent, prefix=".stage-"))
    try:
        export_onnx(module, spec, stage / "model.onnx")
        os.rename(stage, repo / name / str(version))
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def ort_run(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.fixture(scope="session")
def triton_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Prepared once per run in the user's cache (what users get); tests never delete it."""
    from toolkit.serve.install import prepare_triton

    return prepare_triton().root
