"""A small, valid Triton repository to break in the validator's tests (and its benchmark).

Models: ``digits`` (ONNX, exported here with torch), ``digits_trt`` (a stand-in plan with its plan
record), ``preprocess`` (python backend: UINT8 image -> FP32 tensor), ``pipeline`` (ensemble
preprocess -> digits).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from contract.spec import ModelSpec, TensorSpec
from toolkit.repository.config import ONNX_PLATFORM, PLAN_PLATFORM, ServingOptions, build_config, config_to_text

LABELS = [f"digit_{i}" for i in range(10)]
SPEC = ModelSpec(inputs=(TensorSpec("input", (1, 8, 8)),), outputs=(TensorSpec("logits", (10,)),),
                 labels=tuple(LABELS))
PLAN_BYTES = b"stand-in for a serialized TensorRT engine\n"

PREPROCESS_PY = '''import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            img = pb_utils.get_input_tensor_by_name(r, "image").as_numpy()
            x = np.zeros((img.shape[0], 1, 8, 8), dtype=np.float32)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("input", x)]))
        return out
'''


def export_tiny_onnx(path: Path) -> Path:
    """A tiny CNN classifier, input [N, 1, 8, 8] FP32 -> logits [N, 10], dynamic batch, opset 17."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 8 * 8, 10)).eval()
    torch.onnx.export(net, (torch.zeros(2, 1, 8, 8),), str(path), input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=17, dynamo=False)
    return path


def write_config(model_dir: Path, cfg: mc.ModelConfig) -> None:
    (model_dir / "config.pbtxt").write_text(config_to_text(cfg))


def read_config(model_dir: Path) -> mc.ModelConfig:
    return text_format.Parse((model_dir / "config.pbtxt").read_text(), mc.ModelConfig())


def plan_record(max_batch: int = 32, trt: str = "10.4.0.26", plan: bytes = PLAN_BYTES) -> dict:
    import hashlib

    return {
        "tensorrt_version": trt, "gpu_name": "NVIDIA H100", "compute_capability": "9.0", "precision": "fp16",
        "profiles": [{"input": {"min": [1, 1, 8, 8], "opt": [8, 1, 8, 8], "max": [max_batch, 1, 8, 8]}}],
        "max_batch_size": max_batch,
        "inputs": [{"name": "input", "dtype": "float32", "shape": [-1, 1, 8, 8]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": [-1, 10]}],
        "sha256": hashlib.sha256(plan).hexdigest(),
    }


def add_onnx_model(repo: Path, name: str, onnx_file: Path, *, warmup: bool = True) -> Path:
    d = repo / name
    (d / "1").mkdir(parents=True)
    shutil.copyfile(onnx_file, d / "1" / "model.onnx")
    (d / "labels.txt").write_text("\n".join(LABELS) + "\n")
    write_config(d, build_config(name, SPEC, ONNX_PLATFORM, ServingOptions(max_batch_size=32, warmup=warmup)))
    return d


def build_clean_repository(repo: Path, onnx_file: Path) -> Path:
    """The four-model repository the tests break, one way each."""
    repo.mkdir(parents=True, exist_ok=True)
    add_onnx_model(repo, "digits", onnx_file)

    trt = repo / "digits_trt"
    (trt / "1").mkdir(parents=True)
    (trt / "1" / "model.plan").write_bytes(PLAN_BYTES)
    (trt / "1" / "model.plan.json").write_text(json.dumps(plan_record()))
    (trt / "labels.txt").write_text("\n".join(LABELS) + "\n")
    cfg = build_config("digits_trt", SPEC, PLAN_PLATFORM, ServingOptions(max_batch_size=32, kind="gpu"))
    cfg.instance_group[0].profile.append("0")
    write_config(trt, cfg)

    pre = repo / "preprocess"
    (pre / "1").mkdir(parents=True)
    (pre / "1" / "model.py").write_text(PREPROCESS_PY)
    cfg = mc.ModelConfig(name="preprocess", backend="python", max_batch_size=32)
    cfg.input.add(name="image", data_type=mc.TYPE_UINT8, dims=[-1, -1])
    cfg.output.add(name="input", data_type=mc.TYPE_FP32, dims=[1, 8, 8])
    cfg.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=1)
    cfg.dynamic_batching.SetInParent()
    write_config(pre, cfg)

    ens = repo / "pipeline"
    (ens / "1").mkdir(parents=True)
    cfg = mc.ModelConfig(name="pipeline", platform="ensemble", max_batch_size=32)
    cfg.input.add(name="image", data_type=mc.TYPE_UINT8, dims=[-1, -1])
    cfg.output.add(name="logits", data_type=mc.TYPE_FP32, dims=[10])
    s0 = cfg.ensemble_scheduling.step.add(model_name="preprocess", model_version=-1)
    s0.input_map["image"] = "image"
    s0.output_map["input"] = "pixels"
    s1 = cfg.ensemble_scheduling.step.add(model_name="digits", model_version=-1)
    s1.input_map["input"] = "pixels"
    s1.output_map["logits"] = "logits"
    write_config(ens, cfg)
    return repo
