"""GPU smoke check for a lent CUDA machine (no TensorRT, no project venv there).

Uses only torch, onnxruntime and tritonkit modules that need nothing else: loads the default
checkpoint with tritonkit's safe loader, exports ONNX with a dynamic batch, and compares torch on
CUDA, ONNX Runtime's CUDA provider and ONNX Runtime on the CPU over the digits test split (saved
beforehand as ``build/digits_test.npz`` with ``--prepare`` on a machine that has scikit-learn).
Also checks that ``tritonkit build``'s guard says TensorRT is missing while a GPU is visible.

    python benchmarks/gpu_smoke.py --prepare          # here: writes build/digits_test.npz
    python benchmarks/gpu_smoke.py --out "$OUT"       # on the GPU machine
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CKPT = ROOT / "checkpoints" / "digits_smallcnn.pt"
DATA = ROOT / "build" / "digits_test.npz"


def prepare() -> None:
    from trainers.checkpoint import load_checkpoint, model_spec_of
    from trainers.data import load_digits_splits, normalize

    spec = model_spec_of(load_checkpoint(CKPT))
    test = load_digits_splits()["test"]
    np.savez(DATA, x=normalize(test.images, spec.scale, spec.mean, spec.std), y=test.labels)
    print(f"wrote {DATA}")


def smoke(out: Path) -> dict:
    import onnxruntime as ort
    import torch

    from contract.errors import MissingDependencyError
    from trainers.checkpoint import load_checkpoint, model_from_checkpoint, model_spec_of

    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"torch": torch.__version__, "onnxruntime": ort.__version__,
                    "cuda_available": torch.cuda.is_available(),
                    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                    "ort_providers": ort.get_available_providers()}
    data = np.load(DATA)
    x, y = data["x"].astype(np.float32), data["y"]
    payload = load_checkpoint(CKPT)
    spec = model_spec_of(payload)
    model = model_from_checkpoint(payload)
    onnx_path = out / "digits.onnx"
    torch.onnx.export(model, (torch.zeros(2, *spec.input.shape),), str(onnx_path), dynamo=False, opset_version=17,
                      input_names=[spec.input.name], output_names=[spec.output.name],
                      dynamic_axes={spec.input.name: {0: "batch"}, spec.output.name: {0: "batch"}})
    with torch.no_grad():
        ref_cpu = model(torch.from_numpy(x)).numpy()
        if torch.cuda.is_available():
            gpu_model = model.cuda()
            t0 = time.perf_counter()
            ref_gpu = gpu_model(torch.from_numpy(x).cuda()).cpu().numpy()
            result["torch_cuda_ms"] = round((time.perf_counter() - t0) * 1000, 2)
            result["torch_cuda_vs_cpu_max_abs"] = float(np.abs(ref_gpu - ref_cpu).max())
            # cuDNN convolutions default to TF32 on Ampere and later: fp32 parity needs it off
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
            strict = gpu_model(torch.from_numpy(x).cuda()).cpu().numpy()
            result["torch_cuda_no_tf32_vs_cpu_max_abs"] = float(np.abs(strict - ref_cpu).max())
            result["torch_cuda_accuracy"] = float((ref_gpu.argmax(1) == y).mean())
    for provider in ("CPUExecutionProvider", "CUDAExecutionProvider"):
        if provider not in ort.get_available_providers():
            result[provider] = "not available"
            continue
        sess = ort.InferenceSession(str(onnx_path), providers=[provider])
        got = sess.run(None, {spec.input.name: x})[0]
        result[provider] = {"providers_used": sess.get_providers(),
                            "max_abs_vs_torch_cpu": float(np.abs(got - ref_cpu).max()),
                            "accuracy": float((got.argmax(1) == y).mean())}
    result["torch_accuracy"] = float((ref_cpu.argmax(1) == y).mean())
    try:
        from toolkit.runners.trt import require_tensorrt

        require_tensorrt()
        result["tensorrt_guard"] = "tensorrt imported"
    except MissingDependencyError as exc:
        result["tensorrt_guard"] = f"exit {exc.exit_code}: {exc}"
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True)
        result["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except FileNotFoundError:
        result["nvidia_smi"] = "nvidia-smi not found"
    (out / "gpu_smoke.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepare", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "gpu_smoke")
    args = ap.parse_args()
    if args.prepare:
        prepare()
    else:
        print(json.dumps(smoke(args.out), indent=2))
