"""The whole chain for real: checkpoint -> ONNX -> repository -> Triton -> client -> perf_analyzer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TRITONKIT = str(Path(sys.executable).parent / "tritonkit")


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TRITONKIT, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def test_pipeline_adds_nothing_when_rerun_unchanged(digits_build: dict[str, Path]) -> None:
    from toolkit.pipeline import build_repository
    from toolkit.repository.storage import version_numbers

    before = version_numbers(digits_build["repository"] / "digits")
    result = build_repository(
        digits_build["repository"], checkpoint=digits_build["checkpoint"], onnx_path=digits_build["onnx"],
        log=lambda *_: None,
    )
    assert before == [1]
    assert version_numbers(digits_build["repository"] / "digits") == [1]
    assert set(result.skipped) == {"train", "export", "publish"}


def test_default_model_reaches_97_percent_on_test_split(digits_checkpoint: Path) -> None:
    from trainers.checkpoint import load_checkpoint

    assert load_checkpoint(digits_checkpoint)["metrics"]["test_accuracy"] >= 0.97


def test_published_version_records_checkpoint_and_fp32_parity(digits_build: dict[str, Path]) -> None:
    from trainers.checkpoint import sha256_of

    manifest = json.loads((digits_build["repository"] / "digits" / "1" / "manifest.json").read_text())
    assert manifest["checkpoint_sha256"] == sha256_of(digits_build["checkpoint"])
    assert manifest["checkpoint_metrics"]["test_accuracy"] >= 0.97
    assert 0 <= manifest["parity"]["logits"]["max_abs"] <= 1e-5
    assert manifest["parity"]["logits"]["top1_agreement"] == 1.0


@pytest.mark.server
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_served_outputs_match_onnxruntime_within_1e5(triton_server, digits_onnx: Path, protocol: str) -> None:
    from toolkit.client.predictions import heldout_samples
    from toolkit.client.predictor import Predictor
    from toolkit.export.onnx import run_onnx, spec_from_onnx

    x, _ = heldout_samples(spec_from_onnx(digits_onnx), 32)
    url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url
    served = Predictor("digits", url=url, protocol=protocol).predict(x)
    local = run_onnx(digits_onnx, x)
    assert served.shape == local.shape == (32, 10)
    assert float(np.abs(served - local).max()) <= 1e-5


@pytest.mark.server
def test_predict_accuracy_equals_onnxruntime_over_heldout_samples(triton_server, digits_onnx: Path) -> None:
    from toolkit.client.predictions import heldout_samples
    from toolkit.export.onnx import run_onnx, spec_from_onnx

    proc = run_cli("predict", "digits", "--digits", "all", "--url", triton_server.grpc_url, "--json")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(ln) for ln in proc.stdout.splitlines()]
    rows, summary = lines[:-1], lines[-1]
    assert summary["n"] == len(rows) >= 200
    x, y = heldout_samples(spec_from_onnx(digits_onnx), len(rows))
    local_acc = float((run_onnx(digits_onnx, x).argmax(1) == y).mean())
    assert summary["accuracy"] == pytest.approx(local_acc, abs=0)
    assert [int(r["label"]) for r in rows] == run_onnx(digits_onnx, x).argmax(1).tolist()


@pytest.mark.server
def test_profile_writes_report_with_perf_analyzer_csv(triton_server, tmp_path: Path) -> None:
    proc = run_cli(
        "profile", "digits", "--url", triton_server.grpc_url, "--concurrency", "1,4", "--batch", "1",
        "--measurement-ms", "500", "--stability-pct", "100", "--out", str(tmp_path), "--json",
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    result = json.loads(proc.stdout)
    report = Path(result["report"])
    assert report.is_file() and "samples/s" in report.read_text()
    (run,) = result["runs"]
    assert run["ok"] and [r["concurrency"] for r in run["rows"]] == [1, 4]
    assert all(r["infer_per_sec"] > 0 for r in run["rows"])
    for csv_path in run["csv_path"].split(","):
        assert "Inferences/Second" in Path(csv_path).read_text()
    assert (report.parent / "throughput_latency.png").stat().st_size > 1000


def test_predict_fails_in_one_line_when_no_server_answers() -> None:
    from toolkit.serve.ports import free_port

    port = free_port()
    proc = run_cli("predict", "digits", "--url", f"127.0.0.1:{port}", "--digits", "2")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "tritonkit serve" in lines[0]


@pytest.mark.server
def test_predict_lists_ready_models_when_model_missing(triton_server) -> None:
    proc = run_cli("predict", "nosuchmodel", "--url", triton_server.grpc_url, "--digits", "2")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "nosuchmodel" in proc.stderr and "digits" in proc.stderr


def test_repo_list_fails_in_one_line_when_repository_missing(tmp_path: Path) -> None:
    proc = run_cli("repo", "list", "--repository", str(tmp_path / "nope"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "nope" in proc.stderr


def test_pipeline_fails_in_one_line_when_repository_is_a_file(tmp_path: Path, digits_build) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    proc = run_cli("pipeline", "--repository", str(target), "--checkpoint", str(digits_build["checkpoint"]),
                   "--onnx", str(digits_build["onnx"]), "--no-validate")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "not a folder" in proc.stderr.strip().splitlines()[-1]
    assert target.read_text() == "x"


@pytest.mark.server
def test_image_ensemble_matches_classifier_on_raw_and_encoded_images(triton_server) -> None:
    """Raw UINT8 digits and the same digits as PNG files give the classifier's own logits."""
    import io

    import tritonclient.grpc as grpcclient
    from PIL import Image

    from contract.spec import ModelSpec
    from trainers.data import load_digits_splits, normalize

    client = grpcclient.InferenceServerClient(triton_server.grpc_url)
    test = load_digits_splits()["test"]
    raw = test.images[:8]  # (8, 1, 8, 8), values 0..16
    params = client.get_model_config("digits", as_json=True)["config"]["parameters"]
    spec = ModelSpec.from_dict(json.loads(params["tritonkit.model_spec"]["string_value"]))

    def infer(model: str, name: str, array: np.ndarray, dtype: str) -> np.ndarray:
        inp = grpcclient.InferInput(name, list(array.shape), dtype)
        inp.set_data_from_numpy(array)
        return client.infer(model, [inp]).as_numpy("logits")

    direct = infer("digits", "input", normalize(raw, spec.scale, spec.mean, spec.std), "FP32")
    via_raw = infer("digits_image", "IMAGE", raw.transpose(0, 2, 3, 1).astype(np.uint8), "UINT8")
    assert float(np.abs(via_raw - direct).max()) <= 1e-5
    pixels = (raw[:, 0] * 255 / 16).round().astype(np.uint8)  # the digits as 8-bit grayscale PNGs
    pngs = []
    for img in pixels:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "PNG")
        pngs.append([buf.getvalue()])
    via_png = infer("digits_image", "IMAGE_BYTES", np.array(pngs, dtype=object), "BYTES")
    # decoded 0..255 is mapped back onto the value range 0..16, then the training transform
    expected = infer("digits", "input", normalize(pixels[:, None].astype(np.float32) * 16 / 255, spec.scale,
                                                  spec.mean, spec.std), "FP32")
    assert float(np.abs(via_png - expected).max()) <= 1e-4
    with pytest.raises(Exception, match="not a PNG/JPEG image"):
        infer("digits_image", "IMAGE_BYTES", np.array([[b"not an image"]], dtype=object), "BYTES")


@pytest.mark.server
def test_evaluate_through_triton_equals_onnxruntime_accuracy(triton_server, digits_onnx: Path) -> None:
    from toolkit.export.onnx import run_onnx, spec_from_onnx
    from trainers.data import load_digits_splits, normalize

    proc = run_cli("evaluate", "--triton", triton_server.grpc_url, "--model", "digits", "--data", "digits",
                   "--bootstrap", "20", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    spec = spec_from_onnx(digits_onnx)
    test = load_digits_splits()["test"]
    local = run_onnx(digits_onnx, normalize(test.images, spec.scale, spec.mean, spec.std)).argmax(1)
    assert report["num_samples"] == len(test.labels)
    assert report["top1_accuracy"] == pytest.approx(float((local == test.labels).mean()), abs=0)


@pytest.mark.server
def test_served_ensemble_config_describes_its_image_inputs_when_published_by_make_repo(triton_server) -> None:
    """predict/evaluate/profile learn from the served config alone that ``digits_image`` takes UINT8
    ``IMAGE`` or encoded ``IMAGE_BYTES`` (exactly one), and the classifier's spec (labels, transform)."""
    import tritonclient.grpc as grpcclient

    from contract.spec import ModelSpec
    from toolkit.repository.options import IMAGE_INPUTS_PARAMETER

    client = grpcclient.InferenceServerClient(triton_server.grpc_url)
    params = client.get_model_config("digits_image", as_json=True)["config"]["parameters"]
    spec = ModelSpec.from_dict(json.loads(params["tritonkit.model_spec"]["string_value"]))
    classifier = client.get_model_config("digits", as_json=True)["config"]["parameters"]
    assert spec == ModelSpec.from_dict(json.loads(classifier["tritonkit.model_spec"]["string_value"]))
    inputs = json.loads(params[IMAGE_INPUTS_PARAMETER]["string_value"])
    assert (inputs["raw"]["name"], inputs["raw"]["datatype"], inputs["raw"]["layout"]) == ("IMAGE", "UINT8", "HWC")
    assert (inputs["encoded"]["name"], inputs["encoded"]["datatype"]) == ("IMAGE_BYTES", "BYTES")
    assert inputs["tensor_model"] == "digits" and "exactly one" in inputs["send"]
